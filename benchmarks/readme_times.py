"""The times the README states, measured: the demo job and (with ``--suite``) the test suite.

Runs, in a subprocess each, exactly what the README's commands run after the install:
``uflux-xr run configs/demo.yaml --out DIR`` (into a temporary folder) and ``pytest`` (``--suite``),
and prints their wall times with the per-step timings of the demo (its ``run.json``).  The README says
"95–135 s" for the demo and "10–15 minutes" for the suite on a 2-core machine.

Usage: python benchmarks/readme_times.py [--suite]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="store_true", help="also time the whole test suite (10–15 minutes)")
    args = parser.parse_args()
    print(f"# readme_times — {datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, {os.cpu_count()} cores")
    uflux = Path(sys.executable).with_name("uflux-xr")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo_out"
        demo_s = timed([str(uflux), "run", "configs/demo.yaml", "--out", str(out), "-q"], REPO)
        steps = json.loads((out / "run.json").read_text())["timings"]
    print(f"demo job (uflux-xr run configs/demo.yaml): {demo_s:.1f} s wall (README: 95–135 s)")
    print("  steps [s]: " + ", ".join(f"{k} {v:.1f}" for k, v in steps.items()))
    if args.suite:
        suite_s = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], REPO)
        print(f"test suite (pytest): {suite_s / 60:.1f} min wall (README: 10–15 minutes)")


if __name__ == "__main__":
    main()
