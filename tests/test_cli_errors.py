"""The command line: config and checkpoint errors in one paragraph, ``--ckpt_path`` rules."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from test_checkpointing import file_size_limit

from lightning_kan.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs/quickstart.yaml")
SMALL = ["--data.init_args.num_train=200", "--trainer.enable_progress_bar=false"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def fails(capsys, *args: str) -> tuple[int, str]:
    """Run the CLI expecting an error exit; return its code and its one error paragraph."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr and "usage:" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("lightning_kan: error:")]
    assert len(errors) == 1, stderr[-3000:]
    return exit_info.value.code, errors[0]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["--model.init_args.lrr=3"],
            ["model.init_args.lrr='3'", "did you mean model.init_args.optimizer.init_args.lr?"],
        ),
        (
            ["--model.init_args.optimizer.init_args.lrr=0.1"],
            [
                "optimizer.init_args.lrr='0.1'",
                "did you mean model.init_args.optimizer.init_args.lr?",
            ],
        ),
        (["--trainer.max_epocs=3"], ["trainer.max_epocs=3", "did you mean trainer.max_epochs?"]),
        (
            ["--model.init_args.net.init_args.widht=[3]"],
            ["widht=[3]", "did you mean model.init_args.net.init_args.widths?"],
        ),
        (["--model.init_args.net=foo.Bar"], ["model.init_args.net='foo.Bar'", "No module named"]),
        (
            ["--model.init_args.optimizer=torch.optim.Adamm"],
            ["model.init_args.optimizer='torch.optim.Adamm'", "no attribute 'Adamm'"],
        ),
        (["--trainer.max_epochs=many"], ["trainer.max_epochs=many", "type int"]),
        (
            ["--model.init_args.optimizer.init_args.lr=-1"],
            ["model.init_args.optimizer (torch.optim.Adam with lr=-1.0)", "Invalid learning rate"],
        ),
        # a task constructor's own error, not jsonargparse's report of every subtype tried
        (["--model.init_args.regularization=-1"], ["regularization must be >= 0, got -1.0"]),
    ],
    ids=lambda v: v[0] if isinstance(v[0], str) and v[0].startswith("--") else None,
)
def test_a_config_error_is_one_paragraph_naming_field_and_value(capsys, overrides, expected):
    code, error = fails(capsys, "fit", "--config", QUICKSTART, *overrides)
    assert code != 0
    assert "Does not validate" not in error and "Namespace(" not in error, error
    for text in expected:
        assert text in error


def test_a_missing_config_file_is_named(capsys):
    code, error = fails(capsys, "fit", "--config", "nope.yaml")
    assert code != 0 and "config" in error and "does not exist" in error and "nope.yaml" in error


@pytest.fixture
def trained(tmp_path) -> Path:
    """A one-epoch quick-start run in runs/quickstart/version_0; returns its last.ckpt."""
    main(["fit", "--config", QUICKSTART, "--trainer.max_epochs=1", *SMALL])
    return tmp_path / "runs/quickstart/version_0/checkpoints/last.ckpt"


def test_a_model_option_the_checkpoint_would_replace_is_refused(capsys, trained):
    args = ["test", "--config", QUICKSTART, "--ckpt_path", str(trained)]
    code, error = fails(capsys, *args, "--model.init_args.net.init_args.widths=[7]")
    assert code != 0
    assert "model.init_args.net.init_args.widths=[7] (the checkpoint has [5])" in error
    main(args)  # the same values as the checkpoint: no conflict
    run_config = trained.parents[1] / "config.yaml"
    main(["test", "--config", str(run_config), "--ckpt_path", str(trained)])


@pytest.mark.parametrize("fraction", [0.0, 0.3], ids=["empty", "truncated"])
def test_an_incomplete_checkpoint_is_named(capsys, trained, tmp_path, fraction):
    broken = tmp_path / "broken.ckpt"
    whole = trained.read_bytes()
    broken.write_bytes(whole[: int(len(whole) * fraction)])
    for subcommand in ("test", "fit"):
        code, error = fails(capsys, subcommand, "--config", QUICKSTART, "--ckpt_path", str(broken))
        assert code != 0 and "not a complete checkpoint" in error and str(broken) in error


def test_a_missing_checkpoint_is_named(capsys):
    code, error = fails(capsys, "test", "--config", QUICKSTART, "--ckpt_path", "gone.ckpt")
    assert code != 0 and "'gone.ckpt' does not exist" in error


def epochs_logged(version: Path) -> set[int]:
    with open(version / "metrics.csv") as handle:
        return {int(row["epoch"]) for row in csv.DictReader(handle)}


@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "absolute"])
def test_ckpt_path_last_resumes_the_newest_earlier_version(capsys, tmp_path, absolute):
    save_dir = tmp_path / "runs" if absolute else Path("runs")
    args = ["fit", "--config", QUICKSTART, f"--trainer.logger.init_args.save_dir={save_dir}"]
    main([*args, "--trainer.max_epochs=1", *SMALL])
    capsys.readouterr()
    main([*args, "--trainer.max_epochs=2", "--ckpt_path", "last", *SMALL])
    previous = save_dir / "quickstart/version_0/checkpoints/last.ckpt"
    assert f"--ckpt_path last is {previous}" in capsys.readouterr().err
    resumed = tmp_path / "runs/quickstart/version_1"
    assert epochs_logged(resumed) == {1}  # epoch 0 came from the checkpoint
    assert torch.load(resumed / "checkpoints/last.ckpt", weights_only=True)["epoch"] == 1


def test_ckpt_path_last_without_a_previous_run_says_where_it_looked(capsys):
    code, error = fails(capsys, "fit", "--config", QUICKSTART, "--ckpt_path", "last")
    assert code != 0 and "runs/quickstart/*/checkpoints" in error


def test_a_diverged_run_ends_in_one_paragraph_and_keeps_last(capsys, tmp_path):
    """SGD with lr 1e12, one step per epoch: inf, then the NaN stop."""
    code, error = fails(
        capsys,
        "fit",
        "--config",
        QUICKSTART,
        "--model.init_args.optimizer=torch.optim.SGD",
        "--model.init_args.optimizer.init_args.lr=1e12",
        "--trainer.limit_train_batches=1",
        *SMALL,
    )
    assert code == 1 and "the training loss became" in error
    folder = tmp_path / "runs/quickstart/version_0/checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]  # inf is never best
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] >= 1


class LimitFileSizeAtSetup(Callback):
    """From setup on (before the config is saved), files are cut at ``size`` bytes."""

    limit = None  # set by the test: file_size_limit's setter

    def __init__(self, size: int) -> None:
        self.size = size

    def setup(self, trainer, pl_module, stage) -> None:
        type(self).limit(self.size)


def test_a_config_write_that_dies_half_way_leaves_the_old_config_intact(tmp_path):
    args = ["fit", "--config", QUICKSTART, "--trainer.logger.init_args.version=0", *SMALL]
    main([*args, "--trainer.max_epochs=1"])
    config = tmp_path / "runs/quickstart/version_0/config.yaml"
    before = config.read_text()
    callback = [
        "--trainer.callbacks+=test_cli_errors.LimitFileSizeAtSetup",
        "--trainer.callbacks.size=200",
    ]
    with file_size_limit() as limit, pytest.raises(OSError):
        LimitFileSizeAtSetup.limit = limit
        main([*args, "--trainer.max_epochs=2", *callback])
    assert config.read_text() == before
    assert [p.name for p in config.parent.glob("*.partial")] == []


def optimizer_arguments(config: dict) -> dict:
    return config["model"]["init_args"]["optimizer"]["init_args"]


@pytest.mark.parametrize(
    ("section", "typo", "expected"),
    [
        (
            optimizer_arguments,
            "lrr",
            "model.init_args.optimizer.init_args.lrr=0.5: unknown option; "
            "did you mean model.init_args.optimizer.init_args.lr?",
        ),
        (
            lambda config: config["trainer"],
            "max_epocs",
            "trainer.max_epocs: unknown option; did you mean trainer.max_epochs?",
        ),
    ],
    ids=["optimizer", "trainer"],
)
def test_an_unknown_key_in_a_config_file_names_the_closest_valid_one(
    capsys, tmp_path, section, typo, expected
):
    config = yaml.safe_load(Path(QUICKSTART).read_text())
    section(config)[typo] = 0.5
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(config))
    code, error = fails(capsys, "fit", "--config", str(path))
    assert code != 0 and expected in error
