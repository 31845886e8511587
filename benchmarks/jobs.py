"""Wall time of one set of runs trained by `grokcircuit reproduce --jobs J`, for J = 1 and 2, alternated.

    python benchmarks/jobs.py [--rounds 2] [--out benchmarks/jobs-cpu.csv]

Each call of `reproduce` starts from an empty run store and writes its summary to a scratch results folder, so
nothing committed is touched. The set (`SWEEP`) is two regimes of the `cpu` preset, shortened so that one round
takes minutes. Every run is deterministic given its config, so the summaries of all calls must agree in every
column but the times; the script checks that and says so in the `same_results` column.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SWEEP = ["--preset", "cpu", "--seeds", "0", "--regimes", "natural", "both_hop_full", "--no-finetune",
         "--set", "train.steps=1600", "--set", "train.eval_every=400", "--quiet"]
TIMES = ("train_seconds", "wall_seconds_this_call")


def reproduce(jobs: int, scratch: Path) -> tuple[float, pd.DataFrame]:
    """Seconds for `grokcircuit reproduce --jobs jobs` of `SWEEP` in a fresh store, and the summary it wrote."""
    env = {**os.environ, "GROKCIRCUIT_RUNS": str(scratch / "runs"), "GROKCIRCUIT_RESULTS": str(scratch / "results"),
           "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "grokcircuit.cli", "reproduce", *SWEEP, "--jobs", str(jobs)],
                          env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"reproduce --jobs {jobs} failed:\n{proc.stderr[-3000:]}")
    summary = pd.read_csv(scratch / "results" / "cpu" / "summary.csv")
    return seconds, summary.drop(columns=[c for c in TIMES if c in summary]).sort_values(["regime", "seed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="pairs of calls, J = 1 then 2 (default: 2)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "jobs-cpu.csv")
    args = parser.parse_args()
    rows, summaries = [], []
    for round_ in range(args.rounds):
        for jobs in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                load_before = os.getloadavg()[0]
                seconds, summary = reproduce(jobs, Path(tmp))
            summaries.append(summary.reset_index(drop=True))
            rows.append({"round": round_, "jobs": jobs, "wall_s": round(seconds, 1), "runs": len(summary),
                         "loadavg_before": round(load_before, 2), "loadavg_after": round(os.getloadavg()[0], 2)})
            print(f"round {round_} --jobs {jobs}: {seconds:6.1f} s", flush=True)
    same = all(s.equals(summaries[0]) for s in summaries[1:])
    stamp = {"same_results": same, "cpus": os.cpu_count(), "sweep": " ".join(SWEEP),
             "date": datetime.date.today().isoformat()}
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*rows[0], *stamp])
        writer.writeheader()
        writer.writerows({**row, **stamp} for row in rows)
    print(f"same results at every --jobs: {same}; wrote {args.out}")


if __name__ == "__main__":
    main()
