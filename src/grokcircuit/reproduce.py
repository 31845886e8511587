"""Train every run the book needs and summarize the findings: `grokcircuit reproduce --preset cpu`.

For each seed: the five pretraining regimes, then finetuning on new knowledge from each of them and the
from-scratch control. Runs go through the run store (resumable, reused). Writes
`results/<preset>/summary.csv`: one row per (finding, regime, seed) with T_fit, T_bridge, T_ood, the final
metrics and `holds_<criterion>` columns (empty where a criterion does not apply), and every run's metrics as
`results/<preset>/metrics/<run_id>.csv`, so the book's figures need no checkpoints.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from .config import REGIMES, preset
from .experiments import backfill
from .findings import bridge_metric, summarize_finetune, summarize_pretrain
from .runs import get_or_train

RESULTS = Path(__file__).resolve().parents[2] / "results"
FINDING_OF = {"natural": "1", "both_hop_full": "1", "second_hop_full": "2",
              "both_hop_half": "2", "first_hop_full": "2"}


def reproduce(name: str = "cpu", seeds: tuple[int, ...] = (0, 1, 2), regimes: tuple[str, ...] = REGIMES,
              finetune: bool = True, progress: bool = True, out: Path | None = None) -> pd.DataFrame:
    """Train (or reuse) every run and write the summary table; returns it."""
    out = out or RESULTS / name / "summary.csv"
    curves = out.parent / "metrics"
    curves.mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.perf_counter()

    def keep(run) -> pd.DataFrame:
        metrics = backfill(run)
        metrics.to_csv(curves / f"{run.id}.csv", index=False)
        return metrics

    for seed in seeds:
        for regime in regimes:
            run = get_or_train(preset(name, regime=regime, seed=seed), progress=progress)
            rows.append({"finding": FINDING_OF[regime], "regime": regime, "seed": seed, "run_id": run.id,
                         **summarize_pretrain(keep(run), regime, bridge_metric(run.cfg.model.arch))})
        if not finetune:
            continue
        for regime in (*regimes, "control"):
            scratch = regime == "control"
            cfg = preset(name, regime="natural" if scratch else regime, seed=seed, finetune=True,
                         from_scratch=scratch)
            run = get_or_train(cfg, progress=progress)
            rows.append({"finding": "3", "regime": regime, "seed": seed, "run_id": run.id,
                         **summarize_finetune(keep(run), regime, bridge_metric(run.cfg.model.arch))})
    frame = pd.DataFrame(rows)
    frame.attrs["seconds"] = time.perf_counter() - t0
    frame.to_csv(out, index=False)
    return frame
