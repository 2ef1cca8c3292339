"""configs/quickstart_wandb.yaml as a user runs it (offline, no API key), read back from
the run's offline file: metrics, the whole config, images, the checkpoint artifact."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
import yaml
from test_lightning import ROOT, run_console

#: wandb's offline ``run-<id>.wandb``: a 7-byte file header (":W&B", magic, version),
#: then LevelDB-log records in 32 KiB blocks: 7-byte header (crc32 uint32, length
#: uint16, type uint8: 1 full, 2 first, 3 middle, 4 last chunk), then a protobuf Record
BLOCK, HEADER = 32768, 7

pytestmark = pytest.mark.slow  # one CLI fit in a process: 15-40 s on 2 shared cores


def read_records(path: Path) -> list:
    """Every ``wandb_internal_pb2.Record`` of an offline run file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    position, chunks, pending = HEADER, [], b""
    while position + HEADER <= len(data):
        left = BLOCK - position % BLOCK
        _, length, kind = struct.unpack("<IHB", data[position : position + HEADER])
        if left < HEADER or (length, kind) == (0, 0):  # the rest of the block is padding
            position += left
            continue
        chunk = data[position + HEADER : position + HEADER + length]
        position += HEADER + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            chunks.append(pending)
    return [wandb_internal_pb2.Record.FromString(chunk) for chunk in chunks]


def by_type(records: list, kind: str) -> list:
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory):
    """A 2-epoch fit of the W&B quick start (about 15 s), run once for every test here."""
    pytest.importorskip("wandb")
    cwd = tmp_path_factory.mktemp("wandb")
    result = run_console(
        "fit",
        "--config",
        str(ROOT / "configs/quickstart_wandb.yaml"),
        "--trainer.max_epochs=2",
        cwd=cwd,
        env={"WANDB_MODE": "offline", "WANDB_API_KEY": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (cwd / "runs/wandb").glob("offline-run-*")
    (run_file,) = run.glob("run-*.wandb")
    return cwd, run, read_records(run_file), result.stdout + result.stderr


def test_history_holds_the_metrics_and_the_edge_images(wandb_run):
    _, run, records, _ = wandb_run
    history = [
        {"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in h.item}
        for h in by_type(records, "history")
    ]
    for key in ("train/loss", "val/loss", "val/rel_l2", "val/r2"):
        values = [row[key] for row in history if key in row]
        assert values and all(math.isfinite(v) for v in values), key
    # ActivationPlot at the end of fit: one image per layer of the [2, 5, 1] KAN
    # (an image is flattened into keys "<key>/filenames", "<key>/width", ...)
    images = {
        key.removesuffix("/filenames"): value
        for row in history
        for key, value in row.items()
        if key.startswith("activations/") and key.endswith("/filenames")
    }
    assert set(images) == {"activations/layer_0", "activations/layer_1"}
    for filenames in images.values():
        (png,) = filenames
        assert (run / "files" / png).stat().st_size > 1000


def test_run_config_holds_every_section_and_one_config_file_per_run(wandb_run):
    cwd, run, records, _ = wandb_run
    config = {
        (u.key or "/".join(u.nested_key)): json.loads(u.value_json)
        for c in by_type(records, "config")
        for u in c.update
    }
    assert {"trainer", "model", "data", "seed_everything"} <= set(config)
    assert config["trainer"]["max_epochs"] == 2
    assert config["trainer"]["logger"]["init_args"]["log_model"] is True
    assert config["model"]["init_args"]["net"]["init_args"]["widths"] == [5]
    # config.yaml in the run's own folder, next to its checkpoints; none shared in runs/
    run_id = run.name.rsplit("-", 1)[1]
    saved = yaml.safe_load((cwd / f"runs/lightning_kan/{run_id}/config.yaml").read_text())
    assert saved["trainer"] == config["trainer"]
    assert not (cwd / "runs/config.yaml").exists()


def test_checkpoints_are_a_model_artifact(wandb_run):
    cwd, run, records, _ = wandb_run
    run_id = run.name.rsplit("-", 1)[1]
    # log_model=True: at the end of fit, the best and the last checkpoint, two versions of
    # the run's "model" artifact, each holding model.ckpt
    artifacts = by_type(records, "artifact")
    metadata = [json.loads(a.metadata) for a in artifacts]
    assert [m["original_filename"] for m in metadata] == ["epoch=1-step=20.ckpt", "last.ckpt"]
    assert [sorted(a.aliases) for a in artifacts] == [["best", "latest"], ["latest"]]
    for artifact, meta in zip(artifacts, metadata, strict=True):
        assert (artifact.name, artifact.type) == (f"model-{run_id}", "model")
        assert [entry.path for entry in artifact.manifest.contents] == ["model.ckpt"]
        assert meta["ModelCheckpoint"]["monitor"] == "val/loss" and math.isfinite(meta["score"])
    assert (cwd / f"runs/lightning_kan/{run_id}/checkpoints/epoch=1-step=20.ckpt").is_file()


def test_no_warning_from_the_config_and_a_summary_at_the_end(wandb_run):
    _, run, _, output = wandb_run
    assert "log_model" not in output  # no "invalid configuration" of log_model with offline
    assert "anonymous setting" not in output  # Lightning's unset anonymous=None is dropped
    assert f"metrics: W&B run {run.name.rsplit('-', 1)[1]}, offline in runs/wandb/" in output
    assert "plots: W&B images, local copies in" in output
