"""The GPU check: the paper's recursive model at a scale where the lens can fail, in one short run.

On one GPU, in parallel processes, for `--minutes` in all:
the TRM with the paper's recursion (2 blocks, H_cycles 2 x L_cycles 6, MLP token mixing, d=256) on a graph of
200 entities (the lens's chance level per cell is 1/200 instead of 1/60), in the natural, both-hop-full,
second-hop-full and first-hop-full regimes, the two decisive ones at two seeds. Every run uses the `cpu` recipe
(AdamW, lr 1e-3, weight decay 0.5) at batch 512 with the gradient filter on from step 0. Each run first trains `CALIBRATE` steps,
measures its own throughput (with the others running beside it), then continues to the step count that fits
the budget (`Run.prefix`: the longer run is the shorter one continued). Each evaluation logs exact match, the
paper's lens rule, the entity-restricted lens and the bridge probe; step 0 is the untrained model's chance
level. At the end each run is patched (`paths.bridge_used`, `paths.patch_profile` on the first-hop slots) and
probed per stage.

Writes to --out: `summary.csv` (one row per run), and per run `<name>/metrics.csv`, `patch.csv`, `probe.csv`,
`analysis.json` and the fp16 EMA weights with their manifest (`grokcircuit.weights`).

    python scripts/gpu_check.py --minutes 7 --out results/gpu     # on a machine with CUDA
    python scripts/gpu_check.py --tiny --out /tmp/gpu-check        # the same code path on a CPU, in seconds
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

import grokcircuit as gc
from grokcircuit import paths, probe, weights
from grokcircuit.findings import FIT, curve, first_step, readout_columns
from grokcircuit.runs import Run
from grokcircuit.train import build_task, eval_queries, train

TRM = {"data.entities": 200, "data.relations": 40, "data.ood_fraction": 0.05, "data.phi": 18.0,
       "model.arch": "trm", "model.d_model": 256, "model.h_cycles": 2, "model.l_cycles": 6, "model.prefix_len": 0,
       "model.q_halt_weight": 0, "model.mlp_multiple": 64, "train.batch_size": 512, "train.warmup_steps": 500}
COMMON = {"train.grokfast_from": 0, "train.grokfast_init": "zero", "train.eval_size": 1000, "train.snapshots": False}
EVAL_EVERY = 1000  # steps between evaluations
CALIBRATE = 1000  # steps trained before the throughput is measured

# name -> (regime, seed, overrides of the cpu preset)
EXPERIMENTS = {
    "trm-e200-natural": ("natural", 0, TRM),
    "trm-e200-both-full": ("both_hop_full", 0, TRM),
    "trm-e200-second-full": ("second_hop_full", 0, TRM),
    "trm-e200-first-full": ("first_hop_full", 0, TRM),
    "trm-e200-second-full-s1": ("second_hop_full", 1, TRM),
    "trm-e200-both-full-s1": ("both_hop_full", 1, TRM),
}
TINY = {"data.entities": 60, "data.relations": 24, "model.d_model": 32, "model.l_cycles": 2, "model.mlp_multiple": 16,
        "data.probe_size": 300, "train.eval_size": 300}


def configure(name: str, steps: int, tiny: bool) -> gc.RunConfig:
    regime, seed, base = EXPERIMENTS[name]
    over = {**base, **COMMON, **(TINY if tiny else {}), "train.steps": steps,
            "train.eval_every": 10 if tiny else EVAL_EVERY, "train.device": "cpu" if tiny else "cuda"}
    return gc.preset("cpu", regime=regime, seed=seed, **over)


def worker(name: str, budget: float, out: Path, root: Path, tiny: bool) -> None:
    """Train one experiment within `budget` seconds (from its start), then analyse its final EMA model."""
    t0 = time.perf_counter()
    first = configure(name, 20 if tiny else CALIBRATE, tiny)
    calibration = train(first, Run(first, root).create(), progress=False)
    rate = first.train.steps / calibration.load_checkpoint()["seconds"]  # steps per second, evaluations included
    every = first.train.eval_every
    remaining = budget - (time.perf_counter() - t0) - (10 if tiny else 60)  # leave time for the analysis
    steps = max(first.train.steps, first.train.steps + int(rate * remaining) // every * every)
    cfg = configure(name, steps, tiny)
    run = train(cfg, Run(cfg, root).create(), progress=False)

    device = torch.device(cfg.train.device)
    task = build_task(cfg)
    queries = eval_queries(task, cfg, device)
    model, tail_of = run.load_model().to(device), task.tail_of
    ood = queries["test_inferred_ood"]
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    run.metrics().to_csv(folder / "metrics.csv", index=False)
    paths.patch_profile(model, ood, tail_of, position=paths.FIRST_HOP).to_csv(folder / "patch.csv", index=False)
    probe.probe_stages(model, queries["train_inferred"], {s: queries[s] for s in ("test_inferred_iid",
                       "test_inferred_ood")}).to_csv(folder / "probe.csv", index=False)
    analysis = {"name": name, "run_id": run.id, "steps": steps, "steps_per_second": rate,
                "config": gc.config.to_dict(cfg), **paths.bridge_rate_when_correct(model, ood, tail_of)}
    (folder / "analysis.json").write_text(json.dumps(analysis, indent=1))
    weights.export(run.ema_state(), folder, run.id)


def summarize(out: Path) -> pd.DataFrame:
    """One row per run: the milestones, the chance level (step 0) and the best value of each readout."""
    rows = []
    for folder in sorted(p for p in out.iterdir() if (p / "analysis.json").exists()):
        a, m = json.loads((folder / "analysis.json").read_text()), pd.read_csv(folder / "metrics.csv")
        row = {"name": a["name"], "regime": a["config"]["data"]["regime"], "seed": a["config"]["train"]["seed"],
               "steps": a["steps"], "steps_per_second": round(a["steps_per_second"], 1),
               "T_fit": first_step(m, "train", "accuracy", FIT),
               "best_ood_exact_match": curve(m, "test_inferred_ood", "exact_match").max(), **readout_columns(m)}
        row.update({k: a[k] for k in a if k.endswith(("_when_correct", "_when_wrong"))})
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(out / "summary.csv", index=False)
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=7.0, help="wall-clock budget of the whole check")
    ap.add_argument("--out", type=Path, default=Path("results/gpu"))
    ap.add_argument("--tiny", action="store_true", help="tiny configurations on the CPU (tests the code path)")
    ap.add_argument("--only", nargs="*", default=None, help="run only these experiments")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--budget", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = Path(os.environ.get("GROKCIRCUIT_RUNS", args.out / "runs"))
    if args.worker:
        worker(args.worker, args.budget, args.out, root, args.tiny)
        return
    if not args.tiny and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device (use --tiny for the CPU check)")
    names = args.only or list(EXPERIMENTS)
    unknown = set(names) - set(EXPERIMENTS)
    if unknown:
        sys.exit(f"gpu_check: unknown experiment(s) {sorted(unknown)}; choose from {list(EXPERIMENTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    budget = args.minutes * 60 - 30  # leave time for the summary
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // len(names))), "TQDM_DISABLE": "1"}
    procs = {n: subprocess.Popen([sys.executable, __file__, "--worker", n, "--budget", str(budget), "--out",
                                  str(args.out)] + (["--tiny"] if args.tiny else []), env=env) for n in names}
    failed = [n for n, p in procs.items() if p.wait() != 0]
    print(summarize(args.out).to_string(index=False))
    if failed:
        sys.exit(f"gpu_check: failed: {failed}")


if __name__ == "__main__":
    main()
