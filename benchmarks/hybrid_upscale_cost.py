"""What a hybrid member costs through the upscaler, against a pure tree member (issue #13).

Runs the measured dry run (``uflux_xr.workflow.plan.plan_run``, what ``uflux-xr run --dry-run``
does) of configs/uk_daily_100m.yaml on the lazy demo world, with one LightGBM kind
(200 trees, 31 leaves, 64 bins) and the NIRv feature set, once as a pure tree model and
once as a hybrid (``baseline: auto``), in ``--rounds`` interleaved rounds.  The dry run
fits each flux's model on the world's towers and times it on two sampled 100 m chunks
(8 days x 500 x 200 cells) through the upscaler's own block function, all five fluxes
of a member predicted together as in a run's task.  Printed per round and as medians:
predictions per second per core of the plain predict, of the deduplicated predict,
and through the upscaler, and the hybrid's share of the pure model's upscaler rate.

Usage: python benchmarks/hybrid_upscale_cost.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from uflux_xr.workflow.config import load_config
from uflux_xr.workflow.plan import plan_run

REPO = Path(__file__).resolve().parents[1]
WINDOW = {"y": slice(4000, 4700), "x": slice(2000, 2200)}  # two chunks of land
MODEL = {"name": "lightgbm", "max_bin": 64, "params": {"n_estimators": 200, "learning_rate": 0.1, "num_leaves": 31}}


def measure(baseline: str | None, workdir: Path) -> dict[str, float]:
    raw = yaml.safe_load((REPO / "configs" / "uk_daily_100m.yaml").read_text())
    raw["ensemble"]["proxies"] = {"NIRv": ["NIRv"]}
    raw["models"] = [MODEL | ({"baseline": baseline} if baseline else {})]
    # inputs that do not exist: the config's fallback, the lazy demo world of the domain
    raw["data"] |= {"cube": str(workdir / "none.zarr"), "sites": str(workdir / "none.nc")}
    path = workdir / f"{baseline or 'pure'}.yaml"
    path.write_text(yaml.safe_dump(raw))
    tp = plan_run(load_config(path, demo_inputs=True), window=WINDOW, measure=True).throughput["lightgbm"]
    return {
        "plain": tp.predictions_per_s,
        "dedup": tp.dedup_predictions_per_s or float("nan"),
        "upscaler": tp.upscaler_predictions_per_s or float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict[str, list[dict[str, float]]] = {"pure": [], "hybrid": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for label, baseline in (("pure", None), ("hybrid", "auto")):
                rates = measure(baseline, Path(tmp))
                results[label].append(rates)
                print(
                    f"round {round_ + 1} {label:6s} "
                    + " ".join(f"{k} {v / 1e6:.2f}" for k, v in rates.items())
                    + " (M predictions/s per core)",
                    flush=True,
                )
    print(f"# {platform.node()} {platform.machine()}, {time.strftime('%Y-%m-%d %H:%M')}")
    medians = {
        label: {k: statistics.median(r[k] for r in rounds) for k in rounds[0]} for label, rounds in results.items()
    }
    for label, rates in medians.items():
        print(f"median {label:6s} " + " ".join(f"{k} {v / 1e6:.2f}" for k, v in rates.items()))
    print(f"hybrid / pure through the upscaler: {medians['hybrid']['upscaler'] / medians['pure']['upscaler']:.2f}")
    print(f"# {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
