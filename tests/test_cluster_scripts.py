"""examples/torchrun.sh with 2 CPU processes on the quick start, and the command line that
examples/slurm.sh gives srun (a stand-in srun records it: no SLURM here)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def run_script(script: str, *args: str, cwd: Path, path: str) -> subprocess.CompletedProcess:
    """``bash examples/<script> args`` in ``cwd`` (no runs/ folder there), with ``path``
    first on PATH (this interpreter's ``torchrun`` and ``lightning_kan``)."""
    environment = dict(os.environ, PATH=f"{path}:{os.environ['PATH']}")
    return subprocess.run(
        ["bash", str(ROOT / "examples" / script), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_torchrun_example_fits_the_quick_start_on_two_cpu_processes(tmp_path):
    """About 30 s on 2 cores: torchrun starts 2 processes, DDP (gloo) trains 2 epochs."""
    if shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("torchrun is not installed next to this interpreter")
    (tmp_path / "configs").symlink_to(ROOT / "configs")  # the script's default config path
    result = run_script(
        "torchrun.sh",
        "cpu",
        "2",
        "configs/quickstart_ddp.yaml",
        "--trainer.max_epochs=2",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'out'}",
        cwd=tmp_path,
        path=str(Path(sys.executable).parent),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    run = tmp_path / "out/quickstart_ddp/version_0"
    with open(run / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows if row["val/loss"]] == [0, 1]
    # 1000 samples in batches of 50 split over 2 processes: 10 steps an epoch (1 process: 20)
    last = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert last["global_step"] == 20 and last["epoch"] == 1
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr
    assert "lightning_kan: fit ended after 2 epochs (20 steps)" in result.stderr
    assert not (tmp_path / "runs").exists()


def recorder(tmp_path: Path, name: str) -> Path:
    """A folder with a stand-in ``name`` command that writes its arguments, one a line,
    to ``<name>.args`` in the working folder."""
    folder = tmp_path / "bin"
    folder.mkdir()
    command = folder / name
    command.write_text(f'#!/bin/bash\nprintf "%s\\n" "$@" > {name}.args\n')
    command.chmod(0o755)
    return folder


def test_torchrun_example_defaults_to_two_cpu_processes(tmp_path):
    result = run_script("torchrun.sh", cwd=tmp_path, path=str(recorder(tmp_path, "torchrun")))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "torchrun.args").read_text().splitlines() == [
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "lightning_kan.cli",
        "fit",
        "--config",
        "configs/quickstart_ddp.yaml",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
    ]


@pytest.mark.parametrize(
    ("args", "slurm_env", "expected"),
    [
        ((), {}, ["cpu", "2", "1", "configs/quickstart_ddp.yaml"]),
        ((), {"SLURM_NTASKS_PER_NODE": "3", "SLURM_NNODES": "2"}, ["cpu", "3", "2", None]),
        (("gpu", "4", "configs/mnist5k_kan.yaml", "--trainer.precision=16-mixed"), {}, None),
    ],
)
def test_slurm_example_passes_accelerator_devices_and_nodes(tmp_path, args, slurm_env, expected):
    path = recorder(tmp_path, "srun")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    environment.update(slurm_env, PATH=f"{path}:{os.environ['PATH']}")
    result = subprocess.run(
        ["bash", str(ROOT / "examples/slurm.sh"), *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    given = (tmp_path / "srun.args").read_text().splitlines()
    accelerator, devices, nodes, config = expected or ["gpu", "4", "1", "configs/mnist5k_kan.yaml"]
    assert given[:3] == ["lightning_kan", "fit", "--config"]
    assert given[3] == (config or "configs/quickstart_ddp.yaml")
    assert given[4:8] == [
        f"--trainer.accelerator={accelerator}",
        f"--trainer.devices={devices}",
        f"--trainer.num_nodes={nodes}",
        "--trainer.strategy=ddp",
    ]
    assert given[8:] == list(args[3:])
    assert not (tmp_path / "runs").exists()
