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

OUT = results_dir("cpu") / "search_finetune.csv"
CURVES = results_dir("cpu") / "search_finetune"
SEED = 0
THREE_PASSES = {"model.loops": "3"}  # the base of search candidate e60-looped2x3-grokfast-60k and its regimes

# name -> (base regime, overrides of the cpu preset's finetuning run, why)
CANDIDATES: dict[str, tuple[str, dict[str, str], str]] = {
    "preset": ("natural", {}, "the cpu preset's finetuning: LR 5e-4 (half the pretraining LR), 3,000 steps"),
    "lr1e-4": ("natural", {"finetune.lr": "1e-4"}, "a fifth of the LR: less disturbance of the pretrained circuit"),
    "lr2e-3": ("natural", {"finetune.lr": "2e-3"}, "four times the LR: new facts pushed harder into every stage"),
    "steps9k": ("natural", {"finetune.steps": "9000"},
                "three times longer: the paper's new+old rate reaches 1 only after 6k steps"),
    "keep-paper": ("natural", {"finetune.keep_policy": "paper"},
                   "the paper's wording of the retained set: old atomic facts plus the compositions of kept facts"),
    "keep-paper-9k": ("natural", {"finetune.keep_policy": "paper", "finetune.steps": "9000"},
                      "the paper's retained set, three times longer: old facts are not forgotten, so time can help"),
    "base-looped2x3": ("natural", THREE_PASSES,
                       "the preset's finetuning of a three-pass base (search: e60-looped2x3-grokfast-60k), whose own "
                       "OOD exact match is higher"),
    "base-looped2x3-keep-paper": ("natural", {**THREE_PASSES, "finetune.keep_policy": "paper"},
                                  "the three-pass base with the paper's retained set"),
    "base-looped2x3-both-full": ("both_hop_full", THREE_PASSES, "the three-pass both-hop-full base"),
    "base-looped2x3-second-full": ("second_hop_full", THREE_PASSES,
                                   "the three-pass second-hop-full base (the paper's fake-grokked base)"),
    "base-looped2x3-control": ("control", THREE_PASSES, "the from-scratch control with the three-pass model"),
}


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
            **summarize_finetune(metrics, base, bridge_metric(cfg.model.arch))}


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
