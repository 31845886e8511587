"""Finding 3's levers at the CPU scale: finetune `cpu`-scale bases with other finetuning settings, or other bases
with the preset's settings, and write what each variant reached to `results/cpu/search_finetune.csv` (curves in
`results/cpu/search_finetune/`).

    python scripts/search_finetune.py [--only NAME ...] [--record-only]

Each variant names its base regime (seed 0; the base is trained first when it is missing). Runs go through the
run store, so a finished variant is only read back. Single-threaded torch.
"""
from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd  # noqa: E402

import grokcircuit as gc  # noqa: E402
from grokcircuit.experiments import backfill, finetune_config  # noqa: E402
from grokcircuit.findings import bridge_metric, final, summarize_finetune  # noqa: E402
from grokcircuit.runs import results_dir, upsert_csv  # noqa: E402
from grokcircuit.search import FINETUNE_CANDIDATES as CANDIDATES  # noqa: E402

OUT = results_dir("cpu") / "search_finetune.csv"
CURVES = results_dir("cpu") / "search_finetune"
SEED = 0


def run_candidate(name: str, train: bool = True) -> dict:
    """Train (or read back) one variant and summarize its last evaluation."""
    base, overrides, why = CANDIDATES[name]
    cfg = finetune_config("cpu", base, SEED, **overrides)
    run = gc.get_or_train(cfg, progress=False) if train else gc.Run(cfg)
    if run.status() != "finished":
        raise SystemExit(f"{name}: run {run.id} is not finished; run without --record-only")
    metrics = backfill(run)
    CURVES.mkdir(parents=True, exist_ok=True)
    metrics[~metrics.metric.str.startswith("bridge@")].to_csv(CURVES / f"{name}.csv", index=False)
    return {"name": name, "base": base, "seed": SEED, "overrides": json.dumps(overrides), "why": why,
            "run_id": run.id, "config": json.dumps(gc.config.to_dict(cfg), sort_keys=True),
            "train_seconds": round(run.load_checkpoint()["seconds"], 1),
            "final_id_atomic": final(metrics, "id_atomic", "exact_match"),
            **summarize_finetune(metrics, base, bridge_metric(cfg.model.arch, metrics))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", default=None)
    p.add_argument("--record-only", action="store_true", help="do not train; rewrite the rows from the run store")
    args = p.parse_args()
    rows = [run_candidate(name, train=not args.record_only) for name in args.only or list(CANDIDATES)]
    frame = upsert_csv(OUT, pd.DataFrame(rows), ["name"])
    print(frame[["name", "final_new_atomic", "final_new_old_exact_match", "final_old_new_exact_match",
                 "final_id_atomic"]].to_string(index=False))


if __name__ == "__main__":
    main()
