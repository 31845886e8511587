"""Wall time of each chapter, executed with papermill as a reader would, written to `benchmarks/chapters-cpu.csv`.

    OMP_NUM_THREADS=1 python benchmarks/chapters.py [--preset ci] [--out benchmarks/chapters-cpu.csv]

Two passes over the notebooks, in book order, in a fresh run store: "first run" (the store starts empty, so each
chapter trains its live runs; a run shared with an earlier chapter is already there) and "runs in store" (the
same commands again, every run loaded). The chapters read the committed results and shipped weights as in the
book. Each time includes starting a kernel and importing the package. The table is rewritten after every chapter,
so appendix A2 (which quotes it, as does the teaching page) finds the chapters measured before it.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PASSES = ("first_run_s", "runs_in_store_s")


def run_chapter(notebook: Path, preset: str, store: Path, out: Path) -> float:
    """Seconds to execute `notebook` with papermill at `preset`, with the run store at `store`."""
    env = {**os.environ, "GROKCIRCUIT_RUNS": str(store), "TQDM_DISABLE": "1",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "papermill", str(notebook), str(out), "-p", "preset", preset, "-k", "python3",
           "--cwd", str(notebook.parent), "--no-progress-bar"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{notebook.name} failed:\n{proc.stderr[-3000:]}")
    return seconds


def write_table(path: Path, times: dict[str, dict[str, float]], stamp: dict[str, object]) -> None:
    """Write one row per chapter measured so far (a pass not yet run stays empty)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["chapter", *PASSES, *stamp])
        writer.writeheader()
        for chapter, row in times.items():
            if row:
                writer.writerow({"chapter": chapter, **row, **stamp})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="ci", help="the notebooks' `preset` parameter (default: ci)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "chapters-cpu.csv")
    parser.add_argument("notebooks", nargs="*", type=Path, help="a subset (default: every notebook)")
    args = parser.parse_args()
    notebooks = args.notebooks or sorted((REPO / "notebooks").glob("*.ipynb"))
    times: dict[str, dict[str, float]] = {nb.stem: {} for nb in notebooks}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "runs"
        for column in PASSES:
            for nb in notebooks:
                times[nb.stem][column] = round(run_chapter(nb, args.preset, store, Path(tmp) / nb.name), 1)
                print(f"{nb.stem:40s} {column:16s} {times[nb.stem][column]:7.1f} s", flush=True)
                stamp = {"preset": args.preset, "threads": os.environ.get("OMP_NUM_THREADS", "1"),
                         "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
                         "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                         "date": datetime.date.today().isoformat()}
                write_table(args.out, times, stamp)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
