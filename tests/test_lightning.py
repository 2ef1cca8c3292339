"""Lightning integration: configs, checkpoints, resume, DDP, W&B, mixed precision, errors."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lightning_kan.cli import main
from lightning_kan.tasks import RegressionTask

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
IN_PROCESS = [c for c in CONFIGS if "ddp" not in c.name]


def run_cli(*args: str) -> None:
    main(list(args))


def run_console(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(ROOT / "tests"), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "lightning_kan.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.mark.parametrize("config", IN_PROCESS, ids=lambda c: c.name)
def test_every_config_runs_one_fast_dev_run(config):
    run_cli("fit", "--config", str(config), "--trainer.fast_dev_run=1")


def test_ddp_config_parses():
    with pytest.raises(SystemExit) as exit_info:
        run_cli("fit", "--config", str(ROOT / "configs/quickstart_ddp.yaml"), "--print_config")
    assert exit_info.value.code == 0


def quickstart(*extra: str) -> None:
    run_cli("fit", "--config", str(ROOT / "configs/quickstart.yaml"), *extra)


def test_fit_checkpoint_test_predict(tmp_path):
    quickstart("--trainer.max_epochs=3")
    version = tmp_path / "runs/quickstart/version_0"
    last = version / "checkpoints/last.ckpt"
    assert (
        last.is_file()
        and (version / "metrics.csv").is_file()
        and (version / "config.yaml").is_file()
    )
    checkpoint = torch.load(last, weights_only=True)  # primitives only: loads safely
    assert checkpoint["epoch"] == 2
    run_cli("test", "--config", str(version / "config.yaml"), "--ckpt_path", str(last))
    run_cli("predict", "--config", str(version / "config.yaml"), "--ckpt_path", str(last))
    task = RegressionTask.load_from_checkpoint(last)  # the network is rebuilt from the config
    x = torch.rand(4, 2) * 2 - 1
    assert task(x).shape == (4, 1)
    with torch.no_grad():
        expected = torch.exp(torch.sin(math.pi * x[:, :1]) + x[:, 1:] ** 2)
        assert torch.isfinite(task(x)).all() and (task(x) - expected).abs().mean() < 2.0


def test_resume_from_mid_training_checkpoint_matches_uninterrupted_run(tmp_path):
    quickstart("--trainer.max_epochs=4", "--trainer.logger.init_args.name=straight")
    quickstart("--trainer.max_epochs=2", "--trainer.logger.init_args.name=resumed")
    middle = tmp_path / "runs/resumed/version_0/checkpoints/last.ckpt"
    quickstart(
        "--trainer.max_epochs=4",
        "--trainer.logger.init_args.name=resumed",
        "--ckpt_path",
        str(middle),
    )
    straight = torch.load(
        tmp_path / "runs/straight/version_0/checkpoints/last.ckpt", weights_only=True
    )
    resumed = torch.load(
        tmp_path / "runs/resumed/version_1/checkpoints/last.ckpt", weights_only=True
    )
    assert resumed["global_step"] == straight["global_step"] == 40
    for name, value in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], value, rtol=0, atol=0, msg=name)


def test_two_process_ddp_keeps_ranks_identical(tmp_path):
    result = run_console(
        "fit",
        "--config",
        str(ROOT / "configs/quickstart_ddp.yaml"),
        "--trainer.max_epochs=2",
        "--trainer.callbacks+=lightning_helpers.SaveRankWeights",
        f"--trainer.callbacks.folder={tmp_path / 'weights'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "weights/rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "weights/rank1.pt", weights_only=True)
    for name, value in rank0.items():
        torch.testing.assert_close(rank1[name], value, rtol=0, atol=0, msg=name)


def test_offline_wandb_run_writes_its_metrics(tmp_path):
    """A real W&B run, offline and without an API key, as a user starts it (a process)."""
    pytest.importorskip("wandb")
    result = run_console(
        "fit",
        "--config",
        str(ROOT / "configs/quickstart_wandb.yaml"),
        "--trainer.max_epochs=2",
        cwd=tmp_path,
        env={"WANDB_MODE": "offline", "WANDB_API_KEY": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "runs/wandb").glob("offline-run-*")
    (run_file,) = run.glob("run-*.wandb")  # what `wandb sync` uploads later
    for key in ("train/loss", "val/loss", "val/rel_l2"):
        values = logged_values(run_file, key)
        assert values and all(math.isfinite(v) for v in values), key


def logged_values(run_file: Path, key: str) -> list[float]:
    """Values of ``key`` in an offline run file: wandb stores each history item as a
    protobuf with the key (field 2) followed by its JSON value (field 16)."""
    data = run_file.read_bytes()
    name = key.encode()
    pattern = re.compile(rb"\x12" + bytes([len(name)]) + re.escape(name) + rb"\x82\x01(.)", re.S)
    values = []
    for match in pattern.finditer(data):
        length = match.group(1)[0]
        values.append(float(json.loads(data[match.end() : match.end() + length])))
    return values


def test_bf16_mixed_fit_has_finite_loss(tmp_path):
    run_cli("fit", "--config", str(ROOT / "configs/quickstart_bf16.yaml"), "--trainer.max_epochs=2")
    rows = (tmp_path / "runs/quickstart_bf16/version_0/metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    losses = [
        float(r.split(",")[header.index("val/loss")])
        for r in rows[1:]
        if r.split(",")[header.index("val/loss")]
    ]
    assert losses and all(math.isfinite(v) for v in losses)


def test_non_finite_loss_stops_with_a_message_and_keeps_the_last_checkpoint(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        with pytest.raises(SystemExit) as exit_info:  # one paragraph, no traceback
            quickstart(
                "--trainer.callbacks+=lightning_helpers.PoisonWeightsAtStep",
                "--trainer.callbacks.step=5",
                "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
                "--trainer.callbacks.every_n_train_steps=1",
                "--trainer.callbacks.dirpath=kept",
                "--trainer.callbacks.save_last=true",
            )
    finally:
        sys.path.remove(str(ROOT / "tests"))
    assert exit_info.value.code == 1
    assert "loss became nan at global step 5 (epoch 0, batch 5)" in capsys.readouterr().err
    kept = torch.load(tmp_path / "kept/last.ckpt", weights_only=True)
    assert kept["global_step"] == 5
    assert all(
        torch.isfinite(v).all() for v in kept["state_dict"].values() if v.is_floating_point()
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["--model.init_args.net=lightning_kan.nets.NoSuchNet"], "net"),
        (["--trainer.max_epochs=many"], "max_epochs"),
        (["--data.init_args.equation=I.99.99"], "unknown equation 'I.99.99'"),
        (["--model.init_args.net.init_args.basis=fourier"], "unknown basis 'fourier'"),
        (
            ["--model.init_args.net.init_args.in_features=3"],
            "model.net.in_features=3 but the data module gives num_features=2",
        ),
    ],
)
def test_bad_configs_exit_with_a_message_naming_the_field(overrides, expected, tmp_path):
    result = run_console(
        "fit", "--config", str(ROOT / "configs/quickstart.yaml"), *overrides, cwd=tmp_path
    )
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_data_root_is_a_clear_error(tmp_path):
    config = yaml.safe_load((ROOT / "configs/digits_kan.yaml").read_text())
    config["data"]["init_args"].update({"dataset": "mnist", "root": str(tmp_path / "nowhere")})
    path = tmp_path / "mnist.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_console("fit", "--config", str(path), cwd=tmp_path)
    assert result.returncode != 0
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_training_loss_is_logged_fresh_at_the_logger_cadence(tmp_path):
    """Steps the logger does not write skip ``self.log``; the written ones are that step's."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from lightning_kan.data import FunctionDataModule
    from lightning_kan.nets import KAN

    class LossRecorder(L.Callback):
        losses: dict[int, float] = {}  # noqa: RUF012

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.losses[trainer.global_step - 1] = float(outputs["loss"])

    recorder = LossRecorder()
    trainer = L.Trainer(
        max_epochs=2,
        log_every_n_steps=3,
        logger=CSVLogger(tmp_path),
        callbacks=[recorder],
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    data = FunctionDataModule("kan-toy", num_train=1000, batch_size=100)
    trainer.fit(RegressionTask(KAN([2, 3, 1])), data)
    rows = [
        r for r in csv_rows(tmp_path / "lightning_logs/version_0/metrics.csv") if r["train/loss"]
    ]
    assert [int(r["step"]) for r in rows] == [2, 5, 8, 11, 14, 17]
    for r in rows:
        assert math.isclose(float(r["train/loss"]), recorder.losses[int(r["step"])], rel_tol=1e-6)


def csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path) as handle:
        return list(csv.DictReader(handle))
