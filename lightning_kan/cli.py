"""``lightning_kan`` command line: a LightningCLI with lightning_kan's classes.

    lightning_kan fit --config configs/quickstart.yaml
    lightning_kan test --config runs/quickstart/version_0/config.yaml --ckpt_path .../last.ckpt
    lightning_kan fit --print_config   # the full, commented configuration

Sizes come from the data module, so a config never repeats them: every size argument
the network or task accepts (``in_features``, ``out_features``, ``in_channels``,
``num_classes``) and leaves unset is filled in from the data module's
``num_features``, ``num_outputs``, ``in_channels``; a value that disagrees with the
data is an error naming the field. Bad configurations exit with a one-paragraph
message, not a traceback.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.cli import LightningCLI

# imported so that configs and --trainer.callbacks+=... can name these classes by their
# short names (jsonargparse resolves subclasses that have been imported)
import lightning_kan.callbacks
import lightning_kan.data
import lightning_kan.lotra
import lightning_kan.nets
import lightning_kan.pde  # noqa: F401
from lightning_kan.cpu import skip_failing_nvml_probe
from lightning_kan.tasks import KANTask

__all__ = ["KANCLI", "build_cli", "main"]

#: network/task argument -> data module attribute that defines it
SIZE_SOURCES = {
    "in_features": "num_features",
    "out_features": "num_outputs",
    "in_channels": "in_channels",
    "num_classes": "num_outputs",
}


class ConfigError(ValueError):
    """A configuration value that cannot work; reported without a traceback."""


class KANCLI(LightningCLI):
    """LightningCLI over any ``KANTask`` and ``LightningDataModule`` subclass."""

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        try:
            data = _instantiate(config.data)
            _fill_sizes(config.model, "model", data)
            if isinstance(config.model.get("init_args", {}).get("net"), Namespace):
                _fill_sizes(config.model.init_args.net, "model.net", data)
        except (ConfigError, ValueError, TypeError, FileNotFoundError, ImportError) as error:
            _exit(error)

    def instantiate_classes(self) -> None:
        """Build the objects; a value a class rejects exits with its message, no traceback."""
        try:
            super().instantiate_classes()
        except (ValueError, TypeError, FileNotFoundError, ImportError) as error:
            _exit(error)


def _exit(error: Exception) -> None:
    message = " ".join(str(error).split())
    print(f"lightning_kan: error: invalid configuration: {message}", file=sys.stderr)
    raise SystemExit(2)


def _import(class_path: str) -> Any:
    module_name, _, name = class_path.rpartition(".")
    return getattr(__import__(module_name, fromlist=[name]), name)


def _instantiate(section: Namespace | dict | None) -> Any:
    """Build ``{class_path, init_args}`` (nested ones too) to read the data's sizes."""
    if section is None:
        return None
    spec = section.as_dict() if isinstance(section, Namespace) else section
    init_args = {
        name: _instantiate(value) if isinstance(value, dict) and "class_path" in value else value
        for name, value in (spec.get("init_args") or {}).items()
    }
    return _import(spec["class_path"])(**init_args)


def _fill_sizes(section: Namespace, name: str, data: Any) -> None:
    """Set the size arguments ``section``'s class accepts from ``data`` (or check them)."""
    if data is None or not section.get("class_path"):
        return
    accepted = inspect.signature(_import(section.class_path)).parameters
    init_args = section.init_args
    for argument, attribute in SIZE_SOURCES.items():
        if argument not in accepted or not hasattr(data, attribute):
            continue
        value, expected = init_args.get(argument), getattr(data, attribute)
        if value is None:
            init_args[argument] = expected
        elif value != expected:
            raise ConfigError(
                f"{name}.{argument}={value} but the data module gives {attribute}={expected}; "
                f"remove {name}.{argument} from the config (it is filled in from the data)"
            )


def build_cli(args: list[str] | dict[str, Any] | None = None, run: bool = True) -> KANCLI:
    """The CLI over lightning_kan's tasks and any data module; ``args`` as on the command
    line or a config dict. ``run=False`` only builds the trainer, model and data module
    (for scripts that drive them)."""
    return KANCLI(
        KANTask,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``lightning_kan`` console script."""
    skip_failing_nvml_probe()
    build_cli(args)


if __name__ == "__main__":
    main(sys.argv[1:])
