"""Start-up time of the ``lightning_kan`` command, as ratios to Python and to Lightning.

    python benchmarks/cli_startup.py [--rounds 5] [--importtime]

Each command runs in a fresh interpreter (``python -m lightning_kan.cli ...``, what the
console script runs), in interleaved rounds so that the machine's drift hits every row
alike; the table gives the median wall time and its ratio to ``python -c pass`` and to
``python -c "import lightning"`` measured in the same rounds. ``--importtime`` adds the
modules that cost most when the LightningCLI is imported (``python -X importtime``,
cumulative), the floor of every command other than ``--help`` and ``configs``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "lightning_kan.cli"]

#: row name -> command line
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import torch": [sys.executable, "-c", "import torch"],
    "import lightning": [sys.executable, "-c", "import lightning"],
    "import lightning_kan": [sys.executable, "-c", "import lightning_kan"],
    "lightning_kan --help": [*CLI, "--help"],
    "lightning_kan configs": [*CLI, "configs"],
    "lightning_kan fit --help": [*CLI, "fit", "--help"],
    "fit --print_config": [*CLI, "fit", "--config", "configs/quickstart.yaml", "--print_config"],
}


def wall_time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def heaviest_imports(module: str, count: int) -> list[tuple[float, str]]:
    """The ``count`` imports with the largest cumulative time (s) when importing ``module``."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in result.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]) / 1e6, parts[2].rstrip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for command in COMMANDS.values():  # warm the file cache and the .pyc files
        wall_time(command)
    for _ in range(args.rounds):
        for name, command in COMMANDS.items():
            times[name].append(wall_time(command))
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n(median of {args.rounds} interleaved rounds, fresh interpreter each)")
    print(f"{'command':>26} {'s':>7} {'/ pass':>8} {'/ import lightning':>19}")
    for name, seconds in median.items():
        print(
            f"{name:>26} {seconds:7.2f} {seconds / median['python -c pass']:8.1f} "
            f"{seconds / median['import lightning']:19.2f}"
        )
    if args.importtime:
        print("\nheaviest imports of lightning_kan.lightning_cli (cumulative s):")
        for seconds, module in heaviest_imports("lightning_kan.lightning_cli", 15):
            print(f"{seconds:7.2f}  {module}")


if __name__ == "__main__":
    main()
