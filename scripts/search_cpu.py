"""The CPU-scale search: train candidate configurations one after another, each within a wall-time budget,
and append what each reached to `results/cpu/search.csv`.

    python scripts/search_cpu.py [--budget-min 10] [--only NAME ...] [--record-only]

Runs go through the run store, so a candidate stopped by its budget resumes when run again (and the
table then shows how far it got in total). Single-threaded torch, so two processes never thrash.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import pandas as pd

import grokcircuit as gc
from grokcircuit.experiments import backfill
from grokcircuit import paths
from grokcircuit.findings import READOUTS, bridge_metric, readout_columns, summarize_pretrain
from grokcircuit.runs import results_dir, upsert_csv
from grokcircuit.search import CANDIDATES

OUT = results_dir("cpu") / "search.csv"
CURVES = results_dir("cpu") / "search"


def patching(run: gc.Run, step: int | None = None) -> dict:
    """Activation patching of the EMA model at `step` (default: the final one; `grokcircuit.paths`): the largest
    share of OOD and ID test answers that follow a donor's bridge, over the stages after the embedding, patching the
    first-hop slots, and where it peaks; and on OOD queries, the share of correct answers whose bridge the entity-restricted lens shows
    and that patching uses."""
    task, model, out = gc.build_task(run.cfg), run.load_model(step), {}
    for short, split in (("ood", "test_inferred_ood"), ("iid", "test_inferred_iid")):
        q = gc.experiments.split_queries(run.cfg, split, task)
        profile = gc.patch_profile(model, q, task.tail_of, position=paths.FIRST_HOP).iloc[1:]  # the first stage
        best = profile.loc[profile.followed.idxmax()]  # is the input itself: any model that answers follows there
        out[f"{short}_patch_followed"] = round(float(best.followed), 4)
        out[f"{short}_patch_stage"] = best.stage
        if short == "ood":
            rates = paths.bridge_rate_when_correct(model, q, task.tail_of)
            out.update({f"ood_{k}": round(v, 4) for k, v in rates.items() if k.endswith("_when_correct")})
    return out


def run_candidate(name: str, budget_s: float, train: bool = True) -> dict:
    """Train `name` for at most `budget_s` seconds (resuming), then summarize what its run reached."""
    regime, overrides, why = CANDIDATES[name]
    cfg = gc.preset("cpu", regime=regime, **overrides)
    cmd = [sys.executable, "-m", "grokcircuit.cli", "train", "--preset", "cpu", "--regime", regime, "--quiet"]
    for key, value in overrides.items():
        cmd += ["--set", f"{key}={value}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    t0 = time.perf_counter()
    try:
        if train:
            subprocess.run(cmd, env=env, timeout=budget_s, check=False, stdout=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pass
    if gc.Run(cfg).load_checkpoint() is None:
        raise SystemExit(f"{name}: no checkpoint yet (the budget ended before the first evaluation)")
    run = gc.Run(cfg)
    metrics = backfill(run, metrics=READOUTS, splits=("test_inferred_ood",))
    CURVES.mkdir(parents=True, exist_ok=True)
    metrics[~metrics.metric.str.startswith("bridge@")].to_csv(CURVES / f"{name}.csv", index=False)
    seconds = run.load_checkpoint()["seconds"]
    row = {"name": name, "regime": regime, "overrides": json.dumps(overrides), "why": why, "run_id": run.id,
           "config": json.dumps(gc.config.to_dict(cfg), sort_keys=True),
           "status": run.status(), "train_seconds": round(seconds, 1),
           "wall_seconds_this_call": round(time.perf_counter() - t0, 1),
           **summarize_pretrain(metrics, regime, bridge_metric(cfg.model.arch, metrics)), **readout_columns(metrics),
           **patching(run), **{f"chance_{k}": v for k, v in patching(run, 0).items() if "followed" in k}}
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget-min", type=float, default=10.0)
    p.add_argument("--only", nargs="*", default=None)
    p.add_argument("--record-only", action="store_true", help="do not train; rewrite the rows from the run store")
    args = p.parse_args()
    for name in args.only or list(CANDIDATES):
        row = run_candidate(name, args.budget_min * 60, train=not args.record_only)
        upsert_csv(OUT, pd.DataFrame([row]), ["name"])
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
