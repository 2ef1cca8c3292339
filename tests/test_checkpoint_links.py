"""``last.ckpt`` at a step whose top-k checkpoint was just written is a hard link to that
file (one write per improving epoch instead of two), made atomically; every other
``last`` is written as before."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import pytest
import torch

from lightning_kan.atomic import atomic_link, atomic_write_bytes
from lightning_kan.callbacks import ModelCheckpoint
from lightning_kan.data import FunctionDataModule
from lightning_kan.nets import KAN
from lightning_kan.tasks import RegressionTask

STEPS_PER_EPOCH = 4  # 200 training samples, batches of 50


def fit(tmp_path: Path, callback: ModelCheckpoint, epochs: int, ckpt_path=None) -> L.Trainer:
    L.seed_everything(0)
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        logger=False,
        callbacks=[callback],
        max_epochs=epochs,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    data = FunctionDataModule("kan-toy", num_train=200, num_val=50, batch_size=50)
    trainer.fit(RegressionTask(KAN([2, 3, 1])), data, ckpt_path=ckpt_path)
    return trainer


def test_atomic_link_shares_the_file_and_later_writes_keep_them_apart(tmp_path):
    source, path = tmp_path / "best.ckpt", tmp_path / "last.ckpt"
    source.write_bytes(b"new state")
    path.write_bytes(b"old state")
    atomic_link(source, path)
    assert path.read_bytes() == b"new state"
    assert path.stat().st_ino == source.stat().st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt"]
    atomic_write_bytes(path, b"next state")  # a write replaces the name, not the file
    assert (source.read_bytes(), path.read_bytes()) == (b"new state", b"next state")
    source.unlink()  # removing the top-k file keeps last
    assert path.read_bytes() == b"next state"


def test_atomic_link_copies_where_hard_links_fail(tmp_path, monkeypatch):
    source, path = tmp_path / "best.ckpt", tmp_path / "last.ckpt"
    source.write_bytes(b"state")

    def no_links(*args):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    atomic_link(source, path)
    assert path.read_bytes() == b"state"
    assert path.stat().st_ino != source.stat().st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt"]


def test_last_of_an_improving_epoch_is_the_top_k_file(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/loss", save_last=True)
    fit(tmp_path, callback, epochs=2)  # the loss falls: both epochs improve
    last, best = Path(callback.last_model_path), Path(callback.best_model_path)
    assert best.name == f"epoch=1-step={2 * STEPS_PER_EPOCH}.ckpt"
    assert last.stat().st_ino == best.stat().st_ino
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == 2 * STEPS_PER_EPOCH
    (state,) = (v for k, v in saved["callbacks"].items() if k.startswith("ModelCheckpoint"))
    # what Lightning writes into last: its own name as last, the new best as best
    assert (state["last_model_path"], state["best_model_path"]) == (str(last), str(best))


def test_the_first_last_is_written_not_linked(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/loss", save_last=True)
    fit(tmp_path, callback, epochs=1)  # no last.ckpt before: the top-k state names none
    last, best = Path(callback.last_model_path), Path(callback.best_model_path)
    assert last.stat().st_ino != best.stat().st_ino
    (state,) = (
        v
        for k, v in torch.load(last, weights_only=True)["callbacks"].items()
        if k.startswith("ModelCheckpoint")
    )
    assert state["last_model_path"] == str(last)


def test_last_after_the_best_epoch_is_its_own_current_file(tmp_path):
    # mode="max" on a falling loss: the first epoch stays best, so later lasts are written
    callback = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", monitor="val/loss", mode="max", save_last=True
    )
    trainer = fit(tmp_path, callback, epochs=3)
    last, best = Path(callback.last_model_path), Path(callback.best_model_path)
    assert best.name == f"epoch=0-step={STEPS_PER_EPOCH}.ckpt"
    assert last.stat().st_ino != best.stat().st_ino
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == trainer.global_step == 3 * STEPS_PER_EPOCH
    for name, value in trainer.lightning_module.state_dict().items():
        torch.testing.assert_close(saved["state_dict"][name], value, rtol=0, atol=0)


def test_a_fit_resumes_from_a_linked_last(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/loss", save_last=True)
    fit(tmp_path, callback, epochs=2)
    last = Path(callback.last_model_path)
    assert last.stat().st_ino == Path(callback.best_model_path).stat().st_ino
    resumed = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/loss", save_last=True)
    trainer = fit(tmp_path, resumed, epochs=3, ckpt_path=last)
    assert trainer.global_step == 3 * STEPS_PER_EPOCH
    assert torch.load(resumed.last_model_path, weights_only=True)["global_step"] == (
        3 * STEPS_PER_EPOCH
    )
    assert Path(resumed.last_model_path).name == "last.ckpt"


@pytest.mark.parametrize("save_last", ["link", False])
def test_other_save_last_modes_write_as_before(tmp_path, save_last):
    callback = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/loss", save_last=save_last)
    fit(tmp_path, callback, epochs=1)
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    expected = [f"epoch=0-step={STEPS_PER_EPOCH}.ckpt"]
    assert names == sorted([*expected, "last.ckpt"] if save_last else expected)
    if save_last == "link":
        assert (tmp_path / "ckpt" / "last.ckpt").is_symlink()  # Lightning's own link
