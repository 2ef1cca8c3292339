"""``lightning_kan`` command line: a LightningCLI with lightning_kan's classes.

    lightning_kan --help                       # what it does, its commands
    lightning_kan configs                      # the shipped configs, one line each
    lightning_kan fit --config configs/quickstart.yaml
    lightning_kan test --config runs/quickstart/version_0/config.yaml --ckpt_path last
    lightning_kan symbolic --config runs/quickstart/version_0/config.yaml --ckpt_path last
    lightning_kan fit --print_config   # the full, commented configuration

This module is the console script's light front: the top-level help and ``configs``
answer without importing torch or Lightning (``import lightning`` alone costs seconds);
every other command goes to :func:`lightning_kan.lightning_cli.run_command`. Config paths
under ``configs/`` that do not exist in the working directory name the shipped configs
(so the README's commands work after a non-editable ``pip install .``).

``KANCLI``, ``KANTrainer`` and ``build_cli`` live in :mod:`lightning_kan.lightning_cli`;
this module still names them (resolved on first use, PEP 562).
"""

from __future__ import annotations

import fnmatch
import importlib
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # resolved by __getattr__ at run time
    from lightning_kan.lightning_cli import KANCLI, KANTrainer, build_cli

__all__ = ["COMMANDS", "KANCLI", "KANTrainer", "build_cli", "list_configs", "main"]

#: command -> one line of the top-level help (the LightningCLI's subcommands plus ``configs``)
COMMANDS = {
    "fit": "train: checkpoints, metrics.csv, config.yaml and plots go to the run folder",
    "validate": "one evaluation epoch over the validation split (metrics beside --ckpt_path's run)",
    "test": "one evaluation epoch over the test split (metrics beside --ckpt_path's run)",
    "predict": "predictions of a trained model on the data module's predict split",
    "symbolic": "read a trained KAN as a formula: prune, fit symbols, fine-tune, write it",
    "configs": "list the shipped configs, one line each (lightning_kan configs [PATTERN])",
}

HELP = """\
usage: lightning_kan [-h] {commands} ...

Kolmogorov-Arnold Networks (KANs) trained with PyTorch Lightning. A LightningCLI over
lightning_kan's tasks (RegressionTask, ClassificationTask, PINNTask), networks (KAN,
ConvKAN, SlimKAN, MetaKAN, MLP, any nn.Module) and data modules (Feynman equations,
digits/MNIST, PDEs): every Trainer, model and data option is set in a YAML config or on
the command line, and sizes (input width, classes) come from the data.

commands:
{lines}

examples:
  lightning_kan configs                                  # the shipped configs
  lightning_kan fit --config configs/quickstart.yaml     # a [2, 5, 1] KAN, ~15 s on a CPU
  lightning_kan fit --config configs/quickstart.yaml --print_config   # every option
  lightning_kan test --config runs/quickstart/version_0/config.yaml --ckpt_path last
  lightning_kan symbolic --config runs/quickstart/version_0/config.yaml --ckpt_path last
  lightning_kan fit --help                               # one command's options

Shipped configs: {configs}
"""


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``lightning_kan`` console script (``args``: ``sys.argv[1:]``)."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv in ([], ["-h"], ["--help"]):
        print(help_text(), end="", file=sys.stdout if argv else sys.stderr)
        raise SystemExit(0 if argv else 2)
    if argv[0] == "configs":
        raise SystemExit(_configs_command(argv[1:]))
    resolved = resolve_shipped_paths(argv)
    from lightning_kan.lightning_cli import run_command

    if args is not None:
        run_command(resolved)
        return
    sys.argv[1:] = resolved  # LightningCLI reads sys.argv itself (and warns if given both)
    run_command(None)


def help_text() -> str:
    """The top-level ``--help``: what lightning_kan is, its commands, examples."""
    width = max(map(len, COMMANDS))
    lines = "\n".join(f"  {name:<{width}}  {text}" for name, text in COMMANDS.items())
    folder = configs_dir()
    where = f"{folder} (`lightning_kan configs` lists them)" if folder else "not found"
    return HELP.format(commands="{" + ",".join(COMMANDS) + "}", lines=lines, configs=where)


def configs_dir() -> Path | None:
    """The folder of the shipped configs: package data (``lightning_kan/configs``, in a
    wheel) or the source checkout's ``configs/`` (editable install); ``None`` if neither."""
    package = Path(__file__).resolve().parent
    for folder in (package / "configs", package.parent / "configs"):
        if (folder / "quickstart.yaml").is_file():
            return folder.resolve()  # a checkout's lightning_kan/configs links to configs/
    return None


def describe_config(path: Path) -> str:
    """The first sentence of the comment block a config opens with (command lines,
    indented ``#   ...``, end it), or ``""``."""
    words: list[str] = []
    for line in path.read_text().splitlines():
        if not line.startswith("#") or line.startswith("#  ") or not line.strip("# "):
            break
        words.append(line.lstrip("#").strip())
    text = " ".join(words)
    end = text.find(". ")
    return text[: end + 1] if end >= 0 else text


def list_configs(pattern: str = "*", folder: Path | None = None) -> list[tuple[str, str]]:
    """``(name, description)`` of every shipped config whose name (``quickstart.yaml``,
    ``nets/mlp.yaml``) matches ``pattern`` (a glob, or a part of the name)."""
    folder = folder or configs_dir()
    if folder is None:
        return []
    glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.yaml"))
    return [(name, describe_config(folder / name)) for name in names if fnmatch.fnmatch(name, glob)]


def _configs_command(argv: list[str]) -> int:
    """``lightning_kan configs [PATTERN]``: one line per config; the exit code."""
    if len(argv) > 1 or (argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        print(
            f"lightning_kan configs: error: unexpected arguments {' '.join(argv)!r}; it takes "
            "at most one PATTERN (a glob or a part of a config's name, e.g. "
            "'lightning_kan configs pde')",
            file=sys.stderr,
        )
        return 2
    if argv and argv[0] in ("-h", "--help"):
        print(f"usage: lightning_kan configs [PATTERN]\n\n{COMMANDS['configs']}.")
        return 0
    folder = configs_dir()
    if folder is None:
        package = Path(__file__).resolve().parent
        print(
            "lightning_kan configs: error: the shipped configs are in neither "
            f"{package / 'configs'} (an installed wheel) nor {package.parent / 'configs'} "
            "(a source checkout); reinstall lightning-kan, or pass your own file to "
            "--config",
            file=sys.stderr,
        )
        return 2
    pattern = argv[0] if argv else "*"
    found = list_configs(pattern, folder)
    if not found:
        print(
            f"lightning_kan configs: error: no shipped config matches {pattern!r}; "
            "`lightning_kan configs` lists them all",
            file=sys.stderr,
        )
        return 2
    local = Path("configs").resolve() == folder
    shown = "configs" if local else str(folder)
    print(f"Shipped configs (lightning_kan fit --config configs/NAME), in {shown}:")
    width = max(len(name) for name, _ in found)
    columns = max(shutil.get_terminal_size().columns, 60) if sys.stdout.isatty() else None
    for name, text in found:
        line = f"  {name:<{width}}  {text}"
        if columns and len(line) > columns:  # a terminal: one screen line each
            line = line[: columns - 4].rsplit(" ", 1)[0] + " ..."
        print(line)
    return 0


def resolve_shipped_paths(argv: list[str]) -> list[str]:
    """``argv`` with each ``configs/...`` value that is no file here replaced by the shipped
    config of that name (said on stderr); other arguments unchanged."""
    folder = configs_dir()
    if folder is None or Path("configs").resolve() == folder:
        return argv
    resolved = []
    for arg in argv:
        key, equals, value = arg.rpartition("=") if arg.startswith("--") else ("", "", arg)
        shipped = folder / value.removeprefix("configs/")
        if value.startswith("configs/") and not Path(value).exists() and shipped.is_file():
            print(f"lightning_kan: {value} is the shipped {shipped}", file=sys.stderr)
            arg = f"{key}{equals}{shipped}"
        resolved.append(arg)
    return resolved


def __getattr__(name: str) -> Any:
    """``KANCLI``, ``KANTrainer``, ``build_cli`` and the rest of
    :mod:`lightning_kan.lightning_cli`, imported on first use."""
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module("lightning_kan.lightning_cli")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


if __name__ == "__main__":
    main()
