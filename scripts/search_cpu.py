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
from grokcircuit.encode import layout_of
from grokcircuit.experiments import backfill
from grokcircuit.findings import bridge_metric, summarize_pretrain
from grokcircuit.runs import results_dir, upsert_csv

OUT = results_dir("cpu") / "search.csv"
CURVES = results_dir("cpu") / "search"

# name -> (regime, overrides of the cpu preset, why)
# Overrides are explicit about scale, so a candidate keeps its meaning when the cpu preset moves.
PLAIN = {"train.grokfast_alpha": "0.0", "train.grokfast_lamb": "2.0", "train.grokfast_from": "0"}  # no filter
E100 = {"data.entities": "100", "train.batch_size": "256", **PLAIN}
GROKFAST = {"train.grokfast_alpha": "0.98", "train.grokfast_lamb": "2.0", "train.grokfast_from": "6000"}
SMALL = {"data.entities": "60", "train.batch_size": "128", "train.steps": "20000", **PLAIN}
THREE_PASSES = {**SMALL, **GROKFAST, "model.loops": "3"}  # the filtered model with a third pass through its blocks
TRM = {**SMALL, **GROKFAST, "model.arch": "trm", "model.h_cycles": "2", "model.l_cycles": "2", "model.prefix_len": "0",
       "model.q_halt_weight": "0", "model.mlp_multiple": "16"}  # the paper's architecture, at the filtered scale

CANDIDATES: dict[str, tuple[str, dict[str, str], str]] = {
    "looped2x2-wd1": ("natural", {**E100, "train.steps": "16000", "train.weight_decay": "1.0"},
                      "early-probe model (2 blocks x 2 loops, d=128, E=100) with the paper's weight decay 1.0"),
    "e60-looped2x2": ("natural", {**SMALL},
                      "smaller graph (E=60) and batch 128, so the fit comes within the budget"),
    "e60-looped1x4": ("natural", {**SMALL, "model.n_blocks": "1", "model.loops": "4"},
                      "one block applied 4 times: every fact lookup uses the same weights at every depth"),
    "e60-looped2x2-rope": ("natural", {**SMALL, "model.positions": "rope"},
                           "rotary (relative) positions: hop 2 can reuse the atomic lookup one slot later"),
    "e60-looped1x4-rope": ("natural", {**SMALL, "model.n_blocks": "1", "model.loops": "4", "model.positions": "rope"},
                           "one block applied 4 times, with rotary positions"),
    "e60-looped2x2-both-full": ("both_hop_full", {**SMALL},
                                "Finding 1's no-wait regime at the e60-looped2x2 scale"),
    "e60-looped2x2-second-full": ("second_hop_full", {**SMALL},
                                  "Finding 2's fake-grokking regime at the e60-looped2x2 scale"),
    "e60-looped2x2-wd1": ("natural", {**SMALL, "train.weight_decay": "1.0"},
                          "the paper's weight decay 1.0: twice the per-step decay, to speed consolidation after the fit"),
    "e60-looped2x2-second-full-s1": ("second_hop_full", {**SMALL, "data.seed": "1", "train.seed": "1"},
                                     "the second-hop-full run with another seed (data and model)"),
    "e60-standard4": ("natural", {**SMALL, "model.n_blocks": "4", "model.loops": "1"},
                      "no parameter sharing: 4 distinct blocks, the same depth (the paper's Figure 1 argument)"),
    "e60-standard4-both-full": ("both_hop_full", {**SMALL, "model.n_blocks": "4", "model.loops": "1"},
                                "no parameter sharing, both-hop-full augmentation"),
    "e60-looped2x2-40k": ("natural", {**SMALL, "train.steps": "40000"},
                          "the natural run continued to 40k steps (4.7x its fit), past the paper's T_ood of 3.7x T_fit"),
    "e60-looped2x2-80k": ("natural", {**SMALL, "train.steps": "80000"},
                          "the natural run continued to 80k steps: at 40k its OOD bridge and patching rates still rose"),
    "e60-looped2x2-lr2e-3": ("natural", {**SMALL, "train.lr": "2e-3"},
                             "twice the learning rate: twice the per-step decay lr*wd after the fit"),
    "e60-looped2x2-grokfast": ("natural", {**SMALL, **GROKFAST},
                               "Grokfast-EMA gradient filter (alpha 0.98, lambda 2) switched on near the fit"),
    "e60-looped2x2-grokfast-60k": ("natural", {**SMALL, **GROKFAST, "train.steps": "60000"},
                                   "the Grokfast run continued to 60k steps: at 20k its OOD exact match still rose"),
    "e60-looped2x3-grokfast": ("natural", THREE_PASSES,
                               "three passes through the two blocks: the OOD plateau near 0.5 is hop-2 lookups of "
                               "atomic-only facts failing, and more recurrence gives hop 2 its own pass"),
    "e60-looped2x3-grokfast-60k": ("natural", {**THREE_PASSES, "train.steps": "60000"},
                                   "the three-pass run continued to 60k steps, as long as the cpu preset's "
                                   "natural run"),
    "e60-looped2x3-grokfast-60k-s1": ("natural", {**THREE_PASSES, "train.steps": "60000",
                                                  "data.seed": "1", "train.seed": "1"},
                                      "the three-pass natural run with another seed (data and model)"),
    "e60-looped2x3-grokfast-60k-s2": ("natural", {**THREE_PASSES, "train.steps": "60000",
                                                  "data.seed": "2", "train.seed": "2"},
                                      "the three-pass natural run with a third seed (its training time includes "
                                      "about 8 minutes during which the process was paused)"),
    "e60-looped2x3-both-full": ("both_hop_full", THREE_PASSES,
                                "Finding 1's no-wait regime with three passes"),
    "e60-looped2x3-second-full": ("second_hop_full", THREE_PASSES,
                                  "Finding 2's fake-grokking regime with three passes"),
    "e60-looped2x3-first-full": ("first_hop_full", THREE_PASSES,
                                 "the first-hop-full regime (one version of the paper's Figure 2C) with three passes"),
    "e60-trm2x2-second-full": ("second_hop_full", TRM,
                               "the paper's TRM (MLP token mixing, H2 x L2, no prefix) in the fake-grokking regime: "
                               "its first hop is not a plain atomic recall, as it is in a causal decoder"),
    "e60-trm2x2-both-full": ("both_hop_full", TRM, "the TRM in the no-wait regime: does it find the bridge at all?"),
    "e60-trm2x2-second-full-60k": ("second_hop_full", {**TRM, "train.steps": "60000"},
                                   "the TRM's second-hop-full run continued to 60k steps: the paper's reaches OOD "
                                   "0.5 only after about 3 times its fit"),
    "e60-trm2x2-both-full-60k": ("both_hop_full", {**TRM, "train.steps": "60000"},
                                 "the TRM's both-hop-full run continued to 60k steps: the paper's bridge appears "
                                 "long after its OOD answers"),
    "e60-trm2x2-60k": ("natural", {**TRM, "train.steps": "60000"}, "the TRM in the natural regime, 60k steps"),
    "e60-looped1x4-grokfast": ("natural", {**SMALL, **GROKFAST, "model.n_blocks": "1", "model.loops": "4"},
                               "one block applied 4 times with the filter: every lookup uses the same weights"),
    "e60-looped2x2-grokfast-l5": ("natural", {**SMALL, "train.grokfast_alpha": "0.98", "train.grokfast_lamb": "5.0",
                                              "train.grokfast_from": "6000"},
                                  "a stronger filter (lambda 5): the Grokfast OOD exact match plateaued near 0.45"),
}


def patching(run: gc.Run) -> dict:
    """Activation patching at the r1 slot of the final EMA model: the largest share of OOD and ID test answers
    that follow a donor query's bridge, over stages, and the stage where it peaks (`grokcircuit.paths`)."""
    cfg = run.cfg
    task = gc.build_task(cfg)
    model = gc.build_model(cfg.model, gc.data.vocab_size(task.entities, task.relations))
    model.load_state_dict(run.ema_state())
    tail_of = gc.make_dataset(cfg.data).graph.tail_of
    out = {}
    for short, split in (("ood", "test_inferred_ood"), ("iid", "test_inferred_iid")):
        q = gc.Queries.build(task.probes[split], layout_of(cfg.model.arch), task.entities, task.relations)
        profile = gc.patch_profile(model, q, tail_of, position=1)
        best = profile.loc[profile.followed.idxmax()]
        out[f"{short}_patch_followed"] = round(float(best.followed), 4)
        out[f"{short}_patch_stage"] = best.stage
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
    metrics = backfill(run, splits=("test_inferred_ood",))
    CURVES.mkdir(parents=True, exist_ok=True)
    metrics[~metrics.metric.str.startswith("bridge@")].to_csv(CURVES / f"{name}.csv", index=False)
    seconds = run.load_checkpoint()["seconds"]
    row = {"name": name, "regime": regime, "overrides": json.dumps(overrides), "why": why, "run_id": run.id,
           "config": json.dumps(gc.config.to_dict(cfg), sort_keys=True),
           "status": run.status(), "train_seconds": round(seconds, 1),
           "wall_seconds_this_call": round(time.perf_counter() - t0, 1),
           **summarize_pretrain(metrics, regime, bridge_metric(cfg.model.arch)), **patching(run)}
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
