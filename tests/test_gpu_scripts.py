"""The GPU scripts on a machine without CUDA: ``benchmarks/gpu_check.sh`` is valid bash,
refuses clearly without CUDA and, with a stand-in interpreter, runs its three steps and
reports a failing one; ``benchmarks/kan_linear.py`` and ``benchmarks/precision_epoch.py``
refuse ``cuda`` in one paragraph and run their CPU path (the GPU path's arithmetic is
the same code; its timing and memory calls are CUDA's own)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from device_checks import library_bases

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "benchmarks" / "gpu_check.sh"

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")


def run(*command: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    environment = dict(os.environ, **(env or {}))
    return subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )


def test_gpu_check_is_valid_bash():
    result = run("bash", "-n", str(CHECK))
    assert result.returncode == 0, result.stderr


def test_gpu_check_refuses_without_cuda_before_writing_anything(tmp_path):
    result = run("bash", str(CHECK), str(tmp_path / "out"), env={"PYTHON": sys.executable})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check.sh: no CUDA device:"), lines
    assert sys.executable in lines[0] and "NVIDIA GPU" in lines[0]
    assert not (tmp_path / "out").exists()


def stand_in_python(tmp_path: Path, failing: str) -> Path:
    """A fake interpreter: the CUDA probe and version print succeed; every other call
    appends its arguments to ``calls.txt`` and fails if they mention ``failing``."""
    script = tmp_path / "python"
    script.write_text(
        "#!/bin/bash\n"
        'if [ "$1" = -c ]; then exit 0; fi\n'
        f'echo "$*" >> {tmp_path}/calls.txt\n'
        f'case "$*" in *{failing}*) echo boom; exit 3;; esac\n'
    )
    script.chmod(0o755)
    return script


def test_gpu_check_runs_every_step_and_reports_the_failing_one(tmp_path):
    python = stand_in_python(tmp_path, failing="precision_epoch")
    out = tmp_path / "out"
    result = run("bash", str(CHECK), str(out), env={"PYTHON": str(python)})
    assert result.returncode == 1
    assert "failed or timed out: precision_epoch" in result.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert [call.split()[1] if call.startswith("-m") else call.split()[0] for call in calls] == [
        "pytest",
        "benchmarks/kan_linear.py",
        "benchmarks/precision_epoch.py",
    ]
    assert "tests/test_cuda.py" in calls[0] and "--device cuda" in calls[1]
    summary = (out / "summary.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in summary[:3]] == [
        "test_cuda",
        "kan_linear_cuda",
        "precision_epoch",
    ]
    assert "exit 0" in summary[0] and "exit 3" in summary[2]
    assert (out / "precision_epoch.txt").read_text() == "boom\n"
    assert (out / "environment.txt").is_file()


def test_gpu_check_refuses_when_the_package_does_not_import(tmp_path):
    python = tmp_path / "python"  # CUDA "available", lightning_kan missing
    python.write_text('#!/bin/bash\ncase "$2" in *lightning_kan*) exit 1;; esac\nexit 0\n')
    python.chmod(0o755)
    result = run("bash", str(CHECK), str(tmp_path / "out"), env={"PYTHON": str(python)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "lightning_kan or pytest does not import" in lines[0], lines
    assert "pip install -e '.[dev]'" in lines[0] and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("kan_linear.py", ["--device", "cuda"], "--device cuda: no CUDA device"),
        ("precision_epoch.py", [], "--accelerator gpu: no CUDA device"),
        ("kan_linear.py", ["--shapes", "12x3"], "--shapes: '12x3' is not batch x in x out"),
    ],
)
def test_benchmarks_refuse_in_one_paragraph(script, args, expected):
    result = run(sys.executable, f"benchmarks/{script}", *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr


def test_kan_linear_cpu_rows_cover_every_basis_and_the_grid_suffix():
    result = run(
        sys.executable,
        "benchmarks/kan_linear.py",
        *("--shapes", "16x4x3,8x2x2:g20", "--repeats", "1", "--no-memory", "--no-foreign"),
        env={"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines() if "->" in line]
    # the benchmark runs in a fresh process: the library's bases, none a test registered
    kinds = ["floor", "mlp", *(f"kan-{name}" for name in library_bases())]
    assert [row[1] for row in rows[: len(kinds)]] == kinds
    assert [row[2] for row in rows[len(kinds) :]] == kinds  # after the "K=23" label cell
    assert all(row[1] == "K=23" for row in rows[len(kinds) :])
    assert rows[0][4:6] == ["1.00", "1.00"]  # the floor is its own reference


def test_precision_epoch_times_each_precision_on_the_cpu():
    result = run(
        sys.executable,
        "benchmarks/precision_epoch.py",
        *("--accelerator", "cpu", "--features", "4", "--widths", "4"),
        *("--samples", "128", "--batch-size", "64", "--epochs", "2"),
        *("--precisions", "32-true,bf16-mixed"),
        env={"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    assert [row[0] for row in rows] == ["32-true", "bf16-mixed"]
    assert rows[0][2] == "1.00x" and float(rows[1][1]) > 0
