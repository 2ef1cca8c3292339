"""The command line's front: top-level help, the config listing, shipped-config paths and
lazy imports (``lightning_kan --help`` and ``import lightning_kan`` stay free of
torch/Lightning and of the plotting, vision, W&B and sympy stacks)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

import lightning_kan
from lightning_kan import cli
from lightning_kan.cli import COMMANDS, describe_config, list_configs, main, resolve_shipped_paths

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.relative_to(ROOT / "configs").as_posix() for p in ROOT.glob("configs/**/*.yaml"))
HEAVY = ("torch", "lightning", "matplotlib", "torchvision", "wandb", "sympy", "scipy")


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def imported_after(code: str, cwd: Path = ROOT) -> list[str]:
    """The HEAVY modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY} if m in sys.modules]))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_top_level_help_describes_lightning_kan_its_commands_and_the_configs(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    assert out.startswith("usage: lightning_kan [-h] {fit,validate,test,predict,symbolic,configs}")
    assert "Kolmogorov-Arnold Networks (KANs)" in out
    for name, text in COMMANDS.items():
        assert f"  {name:<8}  {text}\n" in out
    assert f"Shipped configs: {ROOT / 'configs'} (`lightning_kan configs` lists them)" in out
    assert "lightning_kan fit --config configs/quickstart.yaml --print_config" in out
    assert run(["-h"], capsys)[1] == out


def test_no_command_prints_the_help_to_stderr_and_fails(capsys):
    code, out, err = run([], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("usage: lightning_kan") and "commands:" in err


def test_the_help_names_exactly_the_lightning_cli_commands_and_configs():
    from lightning_kan.lightning_cli import KANCLI

    assert list(COMMANDS) == [*KANCLI.subcommands(), "configs"]


def test_the_old_names_still_come_from_lightning_kan_cli():
    from lightning_kan import lightning_cli

    for name in ("KANCLI", "KANTrainer", "build_cli", "ConfigError", "AtomicSaveConfig"):
        assert getattr(cli, name) is getattr(lightning_cli, name)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        cli.no_such_name  # noqa: B018


def test_configs_lists_every_shipped_config_once_with_its_first_sentence(
    capsys, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["configs"], capsys)
    lines = out.splitlines()
    assert code == 0
    header = "Shipped configs (lightning_kan fit --config configs/NAME), in "
    assert lines[0] == f"{header}{ROOT / 'configs'}:"
    monkeypatch.chdir(ROOT)
    assert run(["configs"], capsys)[1].splitlines()[0] == f"{header}configs:"
    names = [line.split()[0] for line in lines[1:]]
    assert names == SHIPPED
    quickstart = lines[1 + SHIPPED.index("quickstart.yaml")]
    assert quickstart.endswith(
        "  Quick start: fit f(x, y) = exp(sin(pi x) + y^2) with a [2, 5, 1] B-spline KAN"
        " on the CPU."
    )


def test_configs_filters_by_a_part_of_the_name_or_a_glob(capsys):
    code, out, _ = run(["configs", "pde"], capsys)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == [n for n in SHIPPED if "pde" in n]
    code, out, _ = run(["configs", "nets/*"], capsys)
    assert [line.split()[0] for line in out.splitlines()[1:]] == [
        n for n in SHIPPED if n.startswith("nets/")
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["configs", "no-such"], "no shipped config matches 'no-such'; `lightning_kan configs`"),
        (["configs", "a", "b"], "unexpected arguments 'a b'; it takes at most one PATTERN"),
        (["configs", "--all"], "unexpected arguments '--all'"),
    ],
)
def test_configs_refuses_what_it_cannot_list_in_one_paragraph(capsys, argv, message):
    code, out, err = run(argv, capsys)
    assert (code, out) == (2, "")
    assert message in err and err.count("\n") == 1


def test_configs_help(capsys):
    code, out, _ = run(["configs", "--help"], capsys)
    assert code == 0 and out.startswith("usage: lightning_kan configs [PATTERN]")


def test_describe_config_takes_the_first_sentence_of_the_opening_comment(tmp_path):
    config = tmp_path / "a.yaml"
    config.write_text("# Fit one thing with a KAN, as in the\n# paper. More text.\n#   cmd\nx: 1\n")
    assert describe_config(config) == "Fit one thing with a KAN, as in the paper."
    config.write_text("# No full stop\n#   lightning_kan fit --config a.yaml\n# Later.\n")
    assert describe_config(config) == "No full stop"
    config.write_text("seed_everything: 0\n# a comment later\n")
    assert describe_config(config) == ""


def test_list_configs_reads_any_folder(tmp_path):
    (tmp_path / "nets").mkdir()
    (tmp_path / "b.yaml").write_text("# B. x\n")
    (tmp_path / "a.yaml").write_text("# A.\n")
    (tmp_path / "nets" / "c.yaml").write_text("x: 1\n")
    (tmp_path / "notes.txt").write_text("# not a config\n")
    expected = [("a.yaml", "A."), ("b.yaml", "B."), ("nets/c.yaml", "")]
    assert list_configs(folder=tmp_path) == expected
    assert list_configs("b", folder=tmp_path) == [("b.yaml", "B.")]


def test_an_installed_package_finds_its_own_configs_first(tmp_path):
    """The wheel layout: ``site-packages/lightning_kan/configs`` next to ``cli.py``."""
    package = tmp_path / "site" / "lightning_kan"
    (package / "configs").mkdir(parents=True)
    (package / "cli.py").write_text((ROOT / "lightning_kan" / "cli.py").read_text())
    (package / "configs" / "quickstart.yaml").write_text("# Planted.\n")
    spec = importlib.util.spec_from_file_location("planted_cli", package / "cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.configs_dir() == (package / "configs").resolve()
    assert module.list_configs() == [("quickstart.yaml", "Planted.")]
    (package / "configs" / "quickstart.yaml").unlink()
    assert module.configs_dir() is None


def test_configs_paths_name_the_shipped_files_where_none_is_here(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mine.yaml").write_text("x: 1\n")
    argv = [
        "fit",
        "--config",
        "configs/quickstart.yaml",
        "--model.init_args.net=configs/nets/mlp.yaml",
        "--data",
        "configs/mine.yaml",
        "--trainer",
        "configs/missing.yaml",
    ]
    assert resolve_shipped_paths(argv) == [
        "fit",
        "--config",
        str(ROOT / "configs" / "quickstart.yaml"),
        f"--model.init_args.net={ROOT / 'configs' / 'nets' / 'mlp.yaml'}",
        "--data",
        "configs/mine.yaml",  # a file here wins
        "--trainer",
        "configs/missing.yaml",  # shipped nowhere: left to the parser's error
    ]
    err = capsys.readouterr().err
    assert f"lightning_kan: configs/quickstart.yaml is the shipped {ROOT / 'configs'}" in err
    monkeypatch.chdir(ROOT)
    assert resolve_shipped_paths(argv) == argv


def test_a_shipped_config_runs_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    short = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2"]
    main(["fit", "--config", "configs/quickstart.yaml", *short])
    run_folder = tmp_path / "runs" / "quickstart" / "version_0"  # where it was started
    assert (run_folder / "checkpoints" / "last.ckpt").is_file()
    assert "equation: kan-toy" in (run_folder / "config.yaml").read_text()


def test_help_and_configs_import_neither_torch_nor_lightning(tmp_path):
    code = (
        "from lightning_kan.cli import main\n"
        "for argv in (['--help'], ['configs'], ['configs', 'pde']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
    )
    assert imported_after(code) == []


def test_import_lightning_kan_imports_no_heavy_stack():
    assert imported_after("import lightning_kan") == []
    # the layers need torch, and nothing of the plotting, vision, W&B or sympy stacks
    assert imported_after("from lightning_kan import KAN, KANLinear, count_parameters") == ["torch"]


def test_public_names_are_unchanged_and_resolve_lazily():
    assert lightning_kan.__all__ == [
        "KAN",
        "KANLinear",
        "Prune",
        "__version__",
        "available_bases",
        "available_coefficients",
        "build_basis",
        "build_coefficients",
        "count_parameters",
        "register_basis",
        "register_coefficients",
    ]
    from lightning_kan.callbacks import Prune
    from lightning_kan.layers import KANLinear
    from lightning_kan.nets import KAN

    assert lightning_kan.KAN is KAN and lightning_kan.KANLinear is KANLinear
    assert lightning_kan.Prune is Prune
    assert set(lightning_kan.__all__) <= set(dir(lightning_kan))
    assert lightning_kan.cpu is sys.modules["lightning_kan.cpu"]
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        lightning_kan.nothing_here  # noqa: B018
