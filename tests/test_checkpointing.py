"""Checkpoints: last.ckpt is always current, writes are atomic, non-finite is never best."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint

from lightning_kan.callbacks import ModelCheckpoint
from lightning_kan.callbacks.checkpoint import CheckpointError, load_checkpoint_file
from lightning_kan.data import FunctionDataModule
from lightning_kan.nets import KAN
from lightning_kan.tasks import NonFiniteLossError, RegressionTask

ROOT = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 4  # 200 training samples, batches of 50


def fit(
    tmp_path: Path,
    callbacks: list[Callback],
    task: RegressionTask | None = None,
    ckpt_path: Path | None = None,
    **kwargs,
) -> tuple[L.Trainer, RegressionTask]:
    L.seed_everything(0)
    task = task or RegressionTask(KAN([2, 3, 1]))
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        logger=False,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        **{"max_epochs": 4, **kwargs},
    )
    data = FunctionDataModule("kan-toy", num_train=200, num_val=50, batch_size=50)
    trainer.fit(task, data, ckpt_path=ckpt_path)
    return trainer, task


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def assert_holds_weights_of(checkpoint: dict, task: RegressionTask) -> None:
    for name, value in task.state_dict().items():
        torch.testing.assert_close(checkpoint["state_dict"][name], value, rtol=0, atol=0)


# "best" is the first epoch (mode=max on a falling loss): Lightning then writes `last` once
def best_first(tmp_path: Path, cls: type = LightningModelCheckpoint) -> LightningModelCheckpoint:
    return cls(dirpath=tmp_path / "ckpt", monitor="val/loss", mode="max", save_last=True)


@pytest.mark.parametrize(
    "cls", [LightningModelCheckpoint, ModelCheckpoint], ids=["lightning", "ours"]
)
def test_last_is_the_final_state_after_early_stopping(tmp_path, cls):
    """A plain Lightning ModelCheckpoint with a KANTask is upgraded; ours works directly."""
    stop = EarlyStopping(monitor="val/loss", mode="max", patience=1)
    trainer, task = fit(tmp_path, [best_first(tmp_path, cls), stop], max_epochs=10)
    assert trainer.current_epoch == 2  # stopped early
    last = load(tmp_path / "ckpt/last.ckpt")
    assert (last["epoch"], last["global_step"]) == (1, 2 * STEPS_PER_EPOCH)
    assert_holds_weights_of(last, task)
    assert type(trainer.checkpoint_callback) is ModelCheckpoint


def test_a_linked_last_never_points_at_a_stale_checkpoint(tmp_path):
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", monitor="val/loss", mode="max", save_last="link"
    )
    trainer, task = fit(tmp_path, [checkpoint], max_epochs=3)
    last = load(tmp_path / "ckpt/last.ckpt")
    assert last["global_step"] == trainer.global_step == 3 * STEPS_PER_EPOCH
    assert_holds_weights_of(last, task)


def test_last_is_the_final_state_after_max_steps(tmp_path):
    trainer, task = fit(tmp_path, [best_first(tmp_path)], max_steps=STEPS_PER_EPOCH + 2)
    last = load(tmp_path / "ckpt/last.ckpt")
    assert last["global_step"] == trainer.global_step == STEPS_PER_EPOCH + 2
    assert_holds_weights_of(last, task)


def test_last_resumes_like_an_uninterrupted_run(tmp_path):
    _, straight = fit(tmp_path / "a", [best_first(tmp_path / "a")], max_epochs=4)
    fit(tmp_path / "b", [best_first(tmp_path / "b")], max_epochs=2)
    middle = tmp_path / "b/ckpt/last.ckpt"
    assert load(middle)["global_step"] == 2 * STEPS_PER_EPOCH
    trainer, resumed = fit(tmp_path / "c", [best_first(tmp_path / "c")], ckpt_path=middle)
    assert trainer.global_step == 4 * STEPS_PER_EPOCH
    assert_holds_weights_of(load(tmp_path / "a/ckpt/last.ckpt"), straight)
    assert_holds_weights_of(load(tmp_path / "c/ckpt/last.ckpt"), straight)
    assert_holds_weights_of(load(tmp_path / "c/ckpt/last.ckpt"), resumed)


class RaiseAtStep(Callback):
    def __init__(self, step: int, error: BaseException) -> None:
        self.step, self.error = step, error

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise self.error


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("boom")], ids=repr)
def test_an_interruption_writes_last(tmp_path, error):
    task = RegressionTask(KAN([2, 3, 1]))
    step = STEPS_PER_EPOCH + 1
    with pytest.raises((SystemExit, RuntimeError)):  # Lightning exits 1 on Ctrl-C
        fit(tmp_path, [best_first(tmp_path), RaiseAtStep(step, error)], task=task)
    last = load(tmp_path / "ckpt/last.ckpt")
    assert last["global_step"] == step
    assert_holds_weights_of(last, task)


class PoisonAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.net.parameters()).fill_(float("nan"))


def test_a_nan_stop_keeps_the_last_finite_state(tmp_path):
    with pytest.raises(NonFiniteLossError):
        fit(tmp_path, [best_first(tmp_path), PoisonAtStep(STEPS_PER_EPOCH + 1)])
    last = load(tmp_path / "ckpt/last.ckpt")
    assert last["global_step"] == STEPS_PER_EPOCH  # the end of epoch 0, not NaN weights
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_a_non_finite_monitored_value_is_never_best(tmp_path):
    """SGD with lr 1e12, one step per epoch: val/loss is inf after the first step."""
    from functools import partial

    task = RegressionTask(KAN([2, 3, 1]), optimizer=partial(torch.optim.SGD, lr=1e12))
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/loss", save_last=True)
    with pytest.raises(NonFiniteLossError):
        fit(tmp_path, [checkpoint], task=task, limit_train_batches=1, max_epochs=5)
    assert checkpoint.best_model_path == "" and checkpoint.best_k_models == {}
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["last.ckpt"]


@contextlib.contextmanager
def file_size_limit(size: int | None = None):
    """While active, writes past ``size`` bytes fail (EFBIG) as if the process died
    half way through; ``limit(size)`` sets it later. Restored on exit."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def limit(size: int) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))

    if size is not None:
        limit(size)
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def change_weights(task: RegressionTask) -> None:
    with torch.no_grad():
        for p in task.parameters():
            p.add_(1.0)


def test_a_write_that_dies_half_way_leaves_the_old_last_intact(tmp_path):
    trainer, task = fit(tmp_path, [best_first(tmp_path)], max_epochs=1)
    path = tmp_path / "ckpt/last.ckpt"
    before = path.read_bytes()
    change_weights(task)
    with pytest.raises(OSError), file_size_limit(len(before) // 2):
        trainer.save_checkpoint(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["epoch=0-step=4.ckpt", "last.ckpt"]


def test_a_kill_while_moving_from_another_filesystem_cannot_truncate_last(tmp_path, monkeypatch):
    """fsspec (Lightning's writer) stages a checkpoint in the temporary directory and
    moves it; from another filesystem the move is a copy, and a kill during the copy
    left a truncated last.ckpt. Here the temporary directory acts as another
    filesystem (renames out of it fail with EXDEV) and the process dies (a file size
    limit) as soon as that copy starts."""
    trainer, task = fit(tmp_path, [best_first(tmp_path)], max_epochs=1)
    path = tmp_path / "ckpt/last.ckpt"
    before = path.read_bytes()
    change_weights(task)
    other = tmp_path / "other_filesystem"
    other.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(other))
    with file_size_limit() as limit:

        def cross_device(real):
            def move(src, dst, *args, **kwargs):
                if Path(src).resolve().parent == other.resolve() != Path(dst).resolve().parent:
                    limit(len(before) // 2)  # killed while copying across filesystems
                    raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))
                return real(src, dst, *args, **kwargs)

            return move

        for name in ("rename", "replace"):
            monkeypatch.setattr(os, name, cross_device(getattr(os, name)))
        with contextlib.suppress(OSError):
            trainer.save_checkpoint(path)
    monkeypatch.undo()
    saved = load(path)  # the old or the whole new checkpoint, never a torn one
    if path.read_bytes() != before:
        assert_holds_weights_of(saved, task)
    assert sorted(p.name for p in path.parent.iterdir()) == ["epoch=0-step=4.ckpt", "last.ckpt"]


def test_a_stale_partial_is_removed_when_fit_starts(tmp_path):
    (tmp_path / "ckpt").mkdir()
    stale = tmp_path / "ckpt/.last.ckpt.x1y2z3.partial"
    stale.write_bytes(b"half a checkpoint")
    fit(tmp_path, [best_first(tmp_path)], max_epochs=1)
    assert not stale.exists() and (tmp_path / "ckpt/last.ckpt").is_file()


@pytest.mark.parametrize("fraction", [0.0, 0.3], ids=["empty", "truncated"])
def test_an_incomplete_checkpoint_is_named(tmp_path, fraction):
    fit(tmp_path, [best_first(tmp_path)], max_epochs=1)
    whole = (tmp_path / "ckpt/last.ckpt").read_bytes()
    path = tmp_path / "broken.ckpt"
    path.write_bytes(whole[: int(len(whole) * fraction)])
    with pytest.raises(CheckpointError, match="is not a complete checkpoint") as error:
        load_checkpoint_file(path, weights_only=True)
    assert str(path) in str(error.value)
    task = RegressionTask(KAN([2, 3, 1]))
    with pytest.raises(CheckpointError, match="is not a complete checkpoint"):
        fit(tmp_path, [best_first(tmp_path)], task=task, max_epochs=2, ckpt_path=path)


def run_ddp_quickstart(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """The shipped 2-process DDP config, 200 samples (2 steps per epoch), as a user runs it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "lightning_kan.cli",
            "fit",
            "--config",
            str(ROOT / "configs/quickstart_ddp.yaml"),
            "--trainer.enable_progress_bar=false",
            "--data.init_args.num_train=200",
            *overrides,
        ],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "tests")),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_two_process_ddp_writes_one_complete_current_last(tmp_path):
    # best is epoch 0 (mode=max on a falling loss): Lightning's own last would stay there
    result = run_ddp_quickstart(tmp_path, "--trainer.max_epochs=3", "--trainer.callbacks.mode=max")
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "runs/quickstart_ddp/version_0/checkpoints"
    last = load(folder / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (2, 6)
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0-step=2.ckpt", "last.ckpt"]


@pytest.mark.slow
def test_two_process_ddp_nan_stop_ends_cleanly_and_keeps_last(tmp_path):
    result = run_ddp_quickstart(
        tmp_path,
        "--trainer.max_epochs=3",
        "--trainer.callbacks+=lightning_helpers.PoisonWeightsAtStep",
        "--trainer.callbacks.step=3",
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "lightning_kan: error: the training loss became nan at global step 3" in result.stderr
    last = load(tmp_path / "runs/quickstart_ddp/version_0/checkpoints/last.ckpt")
    assert last["global_step"] == 2  # the end of epoch 0: the NaN weights are not saved


@pytest.mark.slow
def test_two_process_ddp_nan_on_one_process_stops_both_at_the_same_step(tmp_path):
    # only process 1 sees the NaN: process 0 must not wait for it in the gradient all-reduce
    result = run_ddp_quickstart(
        tmp_path,
        "--trainer.max_epochs=3",
        "--trainer.callbacks+=lightning_helpers.PoisonWeightsAtStep",
        "--trainer.callbacks.step=3",
        "--trainer.callbacks.rank=1",
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "the training loss became nan at global step 3" in result.stderr
    assert "became non-finite on another process at global step 3" in result.stderr
    last = load(tmp_path / "runs/quickstart_ddp/version_0/checkpoints/last.ckpt")
    # rank 0 writes it: its weights are the (finite) state both processes had at step 3
    assert last["global_step"] == 3
    assert all(torch.isfinite(value).all() for value in last["state_dict"].values())
