"""``KANCLI``: the LightningCLI behind the ``lightning_kan`` command, with lightning_kan's
classes (:mod:`lightning_kan.cli` is the console script's light front: it answers
``--help`` and ``configs`` without importing Lightning, then hands over to
:func:`run_command`).

``symbolic`` (:meth:`KANTrainer.symbolic`) reads a trained KAN: prune, fit a function to
every edge, fine-tune, and write ``formula.txt``/``formula.tex``/``symbolic_edges.csv``
into the run folder of the checkpoint.

Sizes come from the data module, so a config never repeats them: every size argument
the network or task accepts (``in_features``, ``out_features``, ``in_channels``,
``num_classes``) and leaves unset is filled in from the data module's
``num_features``, ``num_outputs``, ``in_channels``; a value that disagrees with the
data is an error naming the field. Bad configurations exit with a one-paragraph
message, not a traceback (an unknown key with the closest valid one).

``--ckpt_path``: ``last`` means the newest ``last.ckpt`` of the run (every
``version_*`` folder of the logger's ``save_dir/name``, or the checkpoint callback's
``dirpath``), said in one line; a missing or incomplete file is an error, and so is a
model option given in the configuration that the checkpoint's hyper-parameters would
silently replace (LightningCLI loads a checkpoint's hyper-parameters over the config).
A run stopped by a non-finite loss ends with one paragraph and exit code 1.
"""

from __future__ import annotations

import difflib
import glob
import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from jsonargparse import ArgumentError, Namespace
from jsonargparse._parameter_resolvers import get_signature_parameters
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from torch.nn.parameter import is_lazy

# imported so that configs and --trainer.callbacks+=... can name these classes by their
# short names (jsonargparse resolves subclasses that have been imported)
import lightning_kan.callbacks
import lightning_kan.data
import lightning_kan.lotra
import lightning_kan.nets
import lightning_kan.pde  # noqa: F401
from lightning_kan.atomic import atomic_write_text, remove_stale_partials
from lightning_kan.callbacks.checkpoint import CheckpointError, load_checkpoint_file
from lightning_kan.cpu import skip_failing_nvml_probe
from lightning_kan.interpret.workflow import FormulaReport, read_formula, write_formula_report
from lightning_kan.tasks import KANTask, NonFiniteLossError
from lightning_kan.utils import close_process_group

__all__ = ["KANCLI", "KANTrainer", "build_cli", "run_command"]

#: network/task argument -> data module attribute that defines it
SIZE_SOURCES = {
    "in_features": "num_features",
    "out_features": "num_outputs",
    "in_channels": "in_channels",
    "num_classes": "num_outputs",
}


class ConfigError(ValueError):
    """A configuration value that cannot work; reported without a traceback."""


class AtomicSaveConfig(SaveConfigCallback):
    """Writes the run's ``config.yaml`` atomically into the run's own folder (rank 0;
    remote log dirs as Lightning), and gives a W&B run the whole resolved config."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        log_dir = _run_folder(trainer)  # broadcasts: every rank takes part
        if self.already_saved or log_dir is None or not _is_local_file_protocol(log_dir):
            super().setup(trainer, pl_module, stage)
            return
        if trainer.is_global_zero:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            remove_stale_partials(log_dir)  # a killed run's half-written config
            text = self.parser.dump(self.config, skip_none=False)
            atomic_write_text(Path(log_dir) / self.config_filename, text)
            self.save_config(trainer, pl_module, stage)
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """W&B keeps no config file of the run: its config gets every section (trainer,
        model, data, seed_everything), as ``config.yaml`` has them (rank 0)."""
        loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if loggers:
            config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
            config.pop("config", None)  # the paths of the config files given
            for logger in loggers:
                logger.log_hyperparams(config)


def _drop_unset_wandb_anonymous(trainer: L.Trainer) -> None:
    """Lightning's ``WandbLogger`` always passes ``anonymous=None`` to ``wandb.init``, and
    wandb >= 0.19 warns on every run that the (deprecated) setting has no effect when the
    key is present at all; drop the key where the user did not set it."""
    for logger in trainer.loggers:
        init = getattr(logger, "_wandb_init", None) if isinstance(logger, WandbLogger) else None
        if isinstance(init, dict) and init.get("anonymous", "set") is None:
            del init["anonymous"]


def _run_folder(trainer: L.Trainer) -> str | None:
    """The folder of this run's files. ``trainer.log_dir`` where it is one per run (CSV,
    TensorBoard: ``version_N``); for a logger whose log_dir is its ``save_dir``, shared by
    all its runs (W&B), ``<save_dir>/<name>/<version>``: where Lightning's
    ``ModelCheckpoint`` puts this run's ``checkpoints/``. Every rank must call it."""
    log_dir = trainer.log_dir  # a broadcast
    logger = trainer.loggers[0] if trainer.loggers else None
    if logger is None or log_dir is None or isinstance(logger, CSVLogger | TensorBoardLogger):
        return log_dir
    folder = None
    if trainer.is_global_zero:
        save_dir = logger.save_dir or trainer.default_root_dir
        _ = logger.experiment  # started (Lightning does before setup): its id is the version
        version = logger.version
        version = version if isinstance(version, str) else f"version_{version}"
        folder = os.path.join(save_dir, str(logger.name), version)
    return trainer.strategy.broadcast(folder)


#: --ckpt_path values Lightning resolves itself
LIGHTNING_CKPT_NAMES = ("best", "hpc", "registry")
#: subcommands that evaluate a checkpoint without training it
EVALUATIONS = ("validate", "test", "predict")


class KANTrainer(L.Trainer):
    """Lightning's ``Trainer`` plus :meth:`symbolic`, the CLI's ``symbolic`` subcommand."""

    def symbolic(
        self,
        model: L.LightningModule,
        datamodule: L.LightningDataModule | None = None,
        ckpt_path: str | None = None,
        weights_only: bool | None = None,
        edge_threshold: float = 1e-2,
        node_threshold: float = 1e-2,
        r2_threshold: float = 0.0,
        library: list[str] | None = None,
        fine_tune_steps: int = 50,
        digits: int = 4,
        output_dir: str | None = None,
    ) -> FormulaReport:
        """Read a trained KAN as a formula: prune, fit symbols, fine-tune, write the result.

        Loads ``ckpt_path`` (a checkpoint of a fit, or ``last``; ``weights_only`` as in
        ``fit``: tensors and primitives only unless it is ``False``) into the task, runs
        :func:`~lightning_kan.interpret.workflow.read_formula` on the data module's train
        and test splits, writes its files into ``output_dir`` (default: ``symbolic/`` in
        the checkpoint's run folder) and logs the formula and its test MSEs to the
        trainer's loggers (CSV: metrics; TensorBoard: text; W&B: a table).
        """
        if not ckpt_path:
            raise CheckpointError(
                "lightning_kan symbolic needs --ckpt_path: the checkpoint of a trained run "
                "(a path, or 'last' for the newest last.ckpt of the run in --config)"
            )
        safe = weights_only is None or weights_only
        checkpoint = load_checkpoint_file(ckpt_path, weights_only=safe, map_location="cpu")
        model.load_state_dict(checkpoint["state_dict"])
        if datamodule is None:
            raise ValueError(
                "lightning_kan symbolic reads the training and test samples from the data "
                "module of the config; give one under data:"
            )
        train = _split_tensors(datamodule, "fit", "train_dataloader")
        test = _split_tensors(datamodule, "test", "test_dataloader")
        net = getattr(model, "net", model)
        report = read_formula(
            net,
            train,
            test,
            edge_threshold=edge_threshold,
            node_threshold=node_threshold,
            r2_threshold=r2_threshold,
            library=library,
            fine_tune_steps=fine_tune_steps,
            digits=digits,
            variables=getattr(datamodule, "input_variables", None),
        )
        folder = Path(output_dir) if output_dir else Path(ckpt_path).resolve().parent.parent
        paths = write_formula_report(report, folder / "symbolic" if not output_dir else folder)
        _log_formula(self, report)
        print(paths["formula.txt"].read_text(), end="")
        print(f"lightning_kan: wrote {', '.join(str(p) for p in paths.values())}")
        return report


def _split_tensors(datamodule: L.LightningDataModule, stage: str, loader: str):
    """``(inputs, targets)`` of every batch of ``datamodule``'s ``loader``, concatenated."""
    datamodule.setup(stage)
    batches = list(getattr(datamodule, loader)())
    inputs = [batch[0] for batch in batches]
    targets = [batch[1] for batch in batches]
    return torch.cat(inputs), torch.cat(targets)


def _log_formula(trainer: L.Trainer, report: FormulaReport) -> None:
    """The test MSEs as metrics on every logger; the formula as TensorBoard text and a
    W&B table where those loggers are used."""
    metrics = {
        "symbolic/mse_network": report.mse_network,
        "symbolic/mse_symbolic_network": report.mse_symbolic_network,
        "symbolic/mse_formula": report.mse_formula,
    }
    text = "  \n".join(f"y_{k + 1} = {f}" for k, f in enumerate(report.formulas))
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=0)
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "add_text"):
            experiment.add_text("symbolic/formula", text)
        if hasattr(logger, "log_text"):
            rows = [[f"y_{k + 1}", str(f)] for k, f in enumerate(report.formulas)]
            logger.log_text(key="symbolic/formula", columns=["output", "formula"], data=rows)
        logger.save()


class KANCLI(LightningCLI):
    """LightningCLI over any ``KANTask`` and ``LightningDataModule`` subclass, with the
    ``symbolic`` subcommand of :class:`KANTrainer`."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {**LightningCLI.subcommands(), "symbolic": {"model", "datamodule"}}

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """Parsers raise instead of printing usage: :meth:`parse_arguments` reports."""
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as error:
            argv = [] if isinstance(args, dict) else list(sys.argv[1:] if args is None else args)
            _exit(ConfigError(_describe_parse_error(str(error), parser, argv)))

    def _parse_ckpt_path(self) -> None:
        """Resolve ``last``, check the file and apply its hyper-parameters (refusing
        configured model options that they would replace)."""
        subcommand = self.config.get("subcommand")
        section = self.config[subcommand] if subcommand else None
        ckpt_path = section.get("ckpt_path") if section is not None else None
        if not ckpt_path or ckpt_path in LIGHTNING_CKPT_NAMES or "://" in str(ckpt_path):
            return
        try:
            if ckpt_path == "last":
                section.ckpt_path = ckpt_path = str(_find_last_checkpoint(section))
                print(f"lightning_kan: --ckpt_path last is {ckpt_path}", file=sys.stderr)
            checkpoint = load_checkpoint_file(ckpt_path, weights_only=True, map_location="cpu")
        except (CheckpointError, ConfigError) as error:
            _exit(ConfigError(f"--ckpt_path: {error}"))
        if subcommand in EVALUATIONS:
            _evaluate_beside_run(section, subcommand, ckpt_path)
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        try:
            merged = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
        except ArgumentError as error:
            _exit(ConfigError(f"--ckpt_path {ckpt_path}: its hyper-parameters fail: {error}"))
        _refuse_conflicts(section.model, merged[subcommand].model, ckpt_path)
        self.config = merged

    def after_instantiate_classes(self) -> None:
        """Build the optimizer and scheduler once, so that a value they reject (``lr:
        -1``) is a configuration error now, not a traceback when training starts."""
        super().after_instantiate_classes()
        _drop_unset_wandb_anonymous(self.trainer)
        model = self.model
        if not isinstance(model, KANTask) or any(is_lazy(p) for p in model.parameters()):
            return
        config = (self.config[self.subcommand] if self.subcommand else self.config).model
        try:
            optimizer = model.optimizer(model.optimizer_parameters())
        except (ValueError, TypeError) as error:
            _exit(ConfigError(f"{_describe_class(config, 'optimizer')}: {error}"))
        try:
            if model.lr_scheduler is not None:
                model.lr_scheduler(optimizer)
        except (ValueError, TypeError) as error:
            _exit(ConfigError(f"{_describe_class(config, 'lr_scheduler')}: {error}"))

    def _run_subcommand(self, subcommand: str) -> None:
        """Run it; a non-finite loss or an unreadable checkpoint ends in one paragraph."""
        handled: tuple[type[Exception], ...] = (NonFiniteLossError, CheckpointError)
        if subcommand == "symbolic":  # read_formula's errors are one paragraph each
            handled += (ValueError, TypeError, ImportError)
        try:
            super()._run_subcommand(subcommand)
        except handled as error:
            print(f"lightning_kan: error: {' '.join(str(error).split())}", file=sys.stderr)
            raise SystemExit(1) from None

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
    message = str(error)
    if message.startswith("Does not validate against any of the Union subtypes"):
        # a constructor's own error, wrapped in jsonargparse's report of every subtype tried
        message = _innermost_reason(message)
    message = " ".join(message.split())
    print(f"lightning_kan: error: invalid configuration: {message}", file=sys.stderr)
    raise SystemExit(2)


def _describe_parse_error(message: str, parser: LightningArgumentParser, argv: list[str]) -> str:
    """One paragraph from jsonargparse's nested report: the field, the value, the
    reason and, for an unknown key, the closest valid key."""
    unknown = re.search(r"unrecognized arguments: (\S+)|does not accept option '([^']+)'", message)
    option = re.search(r"Option '([^']+)' is not accepted", message)
    if unknown:
        field, _, value = (unknown.group(1) or unknown.group(2)).lstrip("-").partition("=")
        reason = "unknown option"
    else:
        chain = re.findall(r'Parser key "([^"]+)"', message)
        nested = re.search(r"NestedArg\(key='([^']*)', val=(.*)\)\s*$", message, re.M)
        given = re.search(r"^\s*Given value: (.*)$", message, re.M)
        if nested:
            field, value = f"{chain[0]}.init_args.{nested.group(1)}", nested.group(2)
        else:
            field = ".init_args.".join(chain) or "configuration"
            field += f".init_args.{option.group(1)}" if option else ""
            in_file = option and re.search(rf"\b{option.group(1)}=([^,)]+)", message)
            value = in_file.group(1) if in_file else given.group(1) if given else ""
        reason = _innermost_reason(message)
    text = f"{field}={value}: {reason}" if value and len(value) <= 80 else f"{field}: {reason}"
    if unknown or option:
        match = _closest_key(field, _valid_keys(parser, argv, field, _owner(message, option)))
        if match:
            text += f"; did you mean {match}?"
    subcommand = next((a for a in argv if a in KANCLI.subcommands()), "fit")
    return f"{text} (lightning_kan {subcommand} --help lists the options)"


def _owner(message: str, option: re.Match | None) -> str | None:
    """The class whose option is unknown: named on the option's line, else the last
    class named before it; ``Trainer`` for a trainer key."""
    if option is None:
        return "lightning.pytorch.Trainer" if "trainer." in message else None
    line_start = message.rfind("\n", 0, option.start()) + 1
    line_end = message.find("\n", option.end())
    line = message[line_start : line_end if line_end >= 0 else None]
    named = re.findall(r"class_path='([\w.]+)'", line) or re.findall(
        r"class_path '([\w.]+)'", message[: option.start()]
    )
    return named[-1] if named else None


#: lines of jsonargparse's report that only frame the reason
_FRAME = re.compile(
    r"^(Parser key|Does not validate|Subtypes:|Errors:|Given value|Problem with given class_path"
    r"|Expected a path but|Expected a <class 'NoneType'>)"
)


def _innermost_reason(message: str) -> str:
    reasons = []
    for line in message.splitlines():
        line = line.strip().removeprefix("- ").strip()
        if line.startswith("Parser key") and ": " in line.rstrip(":"):
            line = line.split(": ", 1)[1]  # 'Parser key "config": File does not exist'
        elif not line or _FRAME.match(line):
            continue
        line = re.sub(r"^Type .* expects a function or a callable class: ", "", line)
        line = re.sub(r"\. Got value: .*$", "", line)
        line = re.sub(r"^Expected a <class '(\w+)'>", r"expected a value of type \1", line)
        if line.startswith("Option '"):
            line = "unknown option"
        if line not in reasons:
            reasons.append(line)
    return "; ".join(reasons) or " ".join(message.split())


def _valid_keys(
    parser: LightningArgumentParser, argv: list[str], bad: str, owner: str | None
) -> list[str]:
    """Every key of the configuration that ``argv`` without the bad option gives; if that
    does not parse either (the bad key is in a file), the options of its ``owner`` class."""
    leaf, kept, skip = bad.rsplit(".", 1)[-1], [], False
    for arg in argv:
        name = arg.split("=", 1)[0]
        if skip or (arg.startswith("--") and name.endswith(leaf)):
            skip = not skip and "=" not in arg  # "--key value": drop the value too
            continue
        kept.append(arg)
    try:
        config = parser.parse_args(kept)
    except (ArgumentError, SystemExit):
        if owner is None:
            return []
        prefix = bad.rsplit(".", 1)[0]
        return [f"{prefix}.{name}" for name in _accepted(owner)]
    subcommand = config.get("subcommand")
    keys = (config[subcommand] if subcommand else config).keys()  # flattened, dotted
    return [key for key in keys if not key.endswith("class_path")]


def _closest_key(bad: str, keys: list[str]) -> str | None:
    """The valid key whose last part is closest to ``bad``'s (nearest the same section)."""
    by_leaf: dict[str, list[str]] = {}
    for key in keys:
        by_leaf.setdefault(key.rsplit(".", 1)[-1], []).append(key)
    leaves = difflib.get_close_matches(bad.rsplit(".", 1)[-1], list(by_leaf), n=1, cutoff=0.6)
    if not leaves:
        close = difflib.get_close_matches(bad, keys, n=1, cutoff=0.6)
        return close[0] if close else None
    parts = bad.split(".")
    return max(by_leaf[leaves[0]], key=lambda key: _shared_parts(key.split("."), parts))


def _shared_parts(a: list[str], b: list[str]) -> int:
    """How many leading parts two dotted keys share."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))


def _find_last_checkpoint(section: Namespace) -> Path:
    """The newest ``last*.ckpt`` of the run that ``section``'s trainer writes: in the
    checkpoint callback's ``dirpath``, else in every version of the logger's run."""
    folders = _checkpoint_folders(section.trainer)
    found = [Path(path) for folder in folders for path in glob.glob(f"{folder}/last*.ckpt")]
    if not found:
        raise ConfigError(
            f"'last' found no last*.ckpt in {', '.join(map(str, folders))}; pass the path of "
            "the checkpoint to resume, or drop --ckpt_path to start from scratch"
        )
    return max(found, key=lambda path: path.stat().st_mtime)


def _evaluate_beside_run(section: Namespace, subcommand: str, ckpt_path: str) -> None:
    """Point an evaluation of a run's checkpoint (``<run>/checkpoints/*.ckpt``) at that
    run: CSV/TensorBoard loggers write to ``<run>/<subcommand>/version_N`` (next to the
    fit's files, never over them; a new ``version_N`` of the run's logger otherwise), and
    a ``ModelCheckpoint`` without ``dirpath`` gets the checkpoint's folder, so restoring
    its state does not warn that the dirpath changed. Said in one line."""
    folder = Path(ckpt_path).resolve().parent
    if folder.name != "checkpoints":
        return
    trainer, run = section.trainer, folder.parent
    loggers = trainer.get("logger")
    moved = False
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        if isinstance(logger, Namespace) and str(logger.get("class_path")).endswith(
            ("CSVLogger", "TensorBoardLogger")
        ):
            logger.init_args = logger.get("init_args") or Namespace()
            logger.init_args.save_dir, logger.init_args.name = str(run), subcommand
            logger.init_args.version = None
            moved = True
    callbacks = trainer.get("callbacks") or []
    for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
        if isinstance(callback, Namespace) and str(callback.get("class_path")).endswith(
            "ModelCheckpoint"
        ):
            callback.init_args = callback.get("init_args") or Namespace()
            if not callback.init_args.get("dirpath"):
                callback.init_args.dirpath = str(folder)
    if moved:
        print(
            f"lightning_kan: {subcommand} metrics go to {run / subcommand}/version_N "
            "(next to the run of --ckpt_path)",
            file=sys.stderr,
        )


def _checkpoint_folders(trainer: Namespace) -> list[str]:
    """Glob patterns of the folders a run's ModelCheckpoint writes to (see Lightning's
    ``ModelCheckpoint.__resolve_ckpt_dir``): its ``dirpath``, else
    ``<save_dir>/<name>/*/checkpoints`` of the first logger (any version)."""
    callbacks = trainer.get("callbacks") or []
    for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
        if isinstance(callback, Namespace) and callback.get("class_path", "").endswith(
            "ModelCheckpoint"
        ):
            dirpath = (callback.get("init_args") or {}).get("dirpath")
            if dirpath:
                return [str(dirpath)]
    root = trainer.get("default_root_dir") or "."
    logger = trainer.get("logger")
    logger = logger[0] if isinstance(logger, list) and logger else logger
    if isinstance(logger, Namespace):
        init_args = logger.get("init_args") or Namespace()
        save_dir = init_args.get("save_dir") or root
        if logger.class_path.endswith("WandbLogger"):
            name = init_args.get("project") or "lightning_logs"
        else:
            name = init_args.get("name") or "lightning_logs"
        return [f"{save_dir}/{name}/*/checkpoints"]
    if logger is False:
        return [f"{root}/checkpoints"]
    return [f"{root}/lightning_logs/*/checkpoints"]


def _refuse_conflicts(configured: Namespace, merged: Namespace, ckpt_path: str) -> None:
    """Raise if a model option set in the configuration differs from the checkpoint's."""
    before = dict(configured.items()) if isinstance(configured, Namespace) else {}
    after = dict(merged.items()) if isinstance(merged, Namespace) else {}
    conflicts = [
        f"model.{key}={value!r} (the checkpoint has {after[key]!r})"
        for key, value in before.items()
        if value is not None and key in after and after[key] != value
    ]
    if conflicts:
        _exit(
            ConfigError(
                f"--ckpt_path {ckpt_path} was trained with other model options than the "
                f"configuration gives: {'; '.join(conflicts)}. A checkpoint's hyper-parameters "
                "replace the configuration's, so these would be silently ignored: drop them "
                "(e.g. use the run's own config.yaml) or train a new model without --ckpt_path"
            )
        )


def _describe_class(model: Namespace, name: str) -> str:
    """``model.init_args.<name>`` with its class and the arguments set to non-defaults."""
    spec = (model.get("init_args") or Namespace()).get(name)
    if not isinstance(spec, Namespace) or not spec.get("class_path"):
        return f"model.init_args.{name}"
    defaults = inspect.signature(_import(spec.class_path)).parameters
    arguments = ", ".join(
        f"{key}={value!r}"
        for key, value in (spec.get("init_args") or Namespace()).items()
        if key not in defaults or defaults[key].default != value
    )
    return f"model.init_args.{name} ({spec.class_path} with {arguments or 'its defaults'})"


def _accepted(class_path: str) -> list[str]:
    """The argument names a config may give ``class_path``, as jsonargparse resolves them:
    with the options a ``**kwargs`` forwards to the parent (the SlimKAN preset's), which
    ``inspect.signature`` cannot see. The resolver is jsonargparse's private one (there is
    no public equivalent; it has been stable since 4.18)."""
    return [parameter.name for parameter in get_signature_parameters(_import(class_path))]


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
    accepted = _accepted(section.class_path)
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
        trainer_class=KANTrainer,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=AtomicSaveConfig,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )


def run_command(args: list[str] | None = None) -> None:
    """Run the ``lightning_kan`` command ``args`` (``None``: ``sys.argv``)."""
    skip_failing_nvml_probe()
    build_cli(args)
    close_process_group()
