"""Where runs write: ``test``/``validate`` of a run's checkpoint put their metrics beside
that run (``<run>/test/version_N``) without the "dirpath has changed" warning, and
``examples/quickstart.py`` writes to its own folder."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from lightning_kan.callbacks import ModelCheckpoint
from lightning_kan.cli import main
from lightning_kan.data import FunctionDataModule
from lightning_kan.nets import KAN
from lightning_kan.tasks import RegressionTask

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_root(tmp_path_factory) -> Path:
    """A folder with one short quick-start fit in ``runs/quickstart/version_0``."""
    root = tmp_path_factory.mktemp("runs_root")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        main(
            [
                "fit",
                "--config",
                str(ROOT / "configs/quickstart.yaml"),
                "--trainer.max_epochs=2",
                "--trainer.limit_train_batches=3",
                "--trainer.enable_progress_bar=false",
            ]
        )
    finally:
        os.chdir(cwd)
    return root


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as file:
        return list(csv.DictReader(file))


def evaluate(command: str, ckpt_path: str) -> list[warnings.WarningMessage]:
    config = "runs/quickstart/version_0/config.yaml"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main([command, "--config", config, "--ckpt_path", ckpt_path])
    return caught


def test_test_writes_its_metrics_beside_the_run_without_a_dirpath_warning(
    run_root, monkeypatch, capsys
):
    monkeypatch.chdir(run_root)
    run = Path("runs/quickstart/version_0")
    caught = evaluate("test", str(run / "checkpoints/last.ckpt"))
    assert not [w for w in caught if "dirpath has changed" in str(w.message)]
    assert sorted(p.name for p in Path("runs/quickstart").iterdir()) == ["version_0"]
    assert f"test metrics go to {run.resolve() / 'test'}/version_N" in capsys.readouterr().err
    (written,) = rows(run / "test/version_0/metrics.csv")
    assert (run / "test/version_0/config.yaml").is_file()
    assert "test/loss" not in rows(run / "metrics.csv")[0]  # the fit's own file is untouched

    # the logged MSE is the checkpoint's MSE on the data module's test split (float64)
    task = RegressionTask.load_from_checkpoint(run / "checkpoints/last.ckpt")
    data = FunctionDataModule(equation="kan-toy", num_train=1000, batch_size=100)
    data.setup("test")
    x, y = (torch.cat(t) for t in zip(*data.test_dataloader(), strict=True))
    with torch.no_grad():
        expected = ((task.net.double()(x.double()) - y.double()) ** 2).mean().item()
    assert float(written["test/mse"]) == pytest.approx(expected, rel=1e-5)

    evaluate("test", str(run / "checkpoints/last.ckpt"))  # again: a new version, none lost
    assert (run / "test/version_0/metrics.csv").is_file()
    assert (run / "test/version_1/metrics.csv").is_file()


def test_validate_with_ckpt_path_last_logs_beside_the_run(run_root, monkeypatch):
    monkeypatch.chdir(run_root)
    caught = evaluate("validate", "last")
    assert not [w for w in caught if "dirpath has changed" in str(w.message)]
    (written,) = rows(Path("runs/quickstart/version_0/validate/version_0/metrics.csv"))
    fit_rows = rows(Path("runs/quickstart/version_0/metrics.csv"))
    last_val = [row["val/loss"] for row in fit_rows if row.get("val/loss")][-1]
    assert float(written["val/loss"]) == pytest.approx(float(last_val), rel=1e-5)


def test_a_checkpoint_outside_a_runs_checkpoints_folder_logs_as_before(
    run_root, monkeypatch, tmp_path
):
    monkeypatch.chdir(run_root)
    loose = tmp_path / "model.ckpt"
    loose.write_bytes(Path("runs/quickstart/version_0/checkpoints/last.ckpt").read_bytes())
    evaluate("test", str(loose))
    assert rows(Path("runs/quickstart/version_1/metrics.csv"))[0]["test/loss"]
    assert not (tmp_path / "test").exists()


def test_a_saved_dirpath_naming_the_same_folder_restores_the_state(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    saved = ModelCheckpoint(dirpath=tmp_path / "checkpoints", monitor="val/loss").state_dict()
    saved.update(dirpath="checkpoints", best_model_score=torch.tensor(0.25))
    saved.update(last_model_path="checkpoints/last.ckpt")
    callback = ModelCheckpoint(dirpath=tmp_path / "checkpoints", monitor="val/loss")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Lightning's "dirpath has changed" would raise
        callback.load_state_dict(saved)
    assert callback.best_model_score == 0.25
    assert callback.last_model_path == "checkpoints/last.ckpt"
    assert callback.dirpath == str(tmp_path / "checkpoints")

    elsewhere = ModelCheckpoint(dirpath=tmp_path / "other", monitor="val/loss")
    with pytest.warns(UserWarning, match="dirpath has changed"):
        elsewhere.load_state_dict(saved)
    assert elsewhere.best_model_score is None


def test_quickstart_example_writes_to_its_own_folder(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples/quickstart.py"), "--steps", "30"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    weights = tmp_path / "runs/examples/quickstart/kan.pt"
    assert f"weights written to {weights.relative_to(tmp_path)}" in result.stdout
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["examples"]

    # the printed test MSE is the saved network's on the example's test points
    printed = float(re.search(r"test MSE (\S+)", result.stdout).group(1))
    net = KAN([2, 5, 1], basis="bspline", basis_kwargs={"grid_size": 5})
    net.refine_grid(10)  # the example refines 5 -> 10 intervals at step 30 // 3
    net.load_state_dict(torch.load(weights, weights_only=True))
    torch.manual_seed(0)
    _, test_x = torch.rand(1000, 2) * 2 - 1, torch.rand(1000, 2) * 2 - 1
    test_y = torch.exp(torch.sin(torch.pi * test_x[:, :1]) + test_x[:, 1:] ** 2)
    with torch.no_grad():
        mse = torch.nn.functional.mse_loss(net(test_x), test_y).item()
    assert mse == pytest.approx(printed, rel=1e-3)  # printed with 4 significant digits
