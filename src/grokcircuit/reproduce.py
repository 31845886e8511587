"""Train every run the book needs and summarize the findings: `grokcircuit reproduce --preset cpu`.

For each seed: the pretraining regimes, then finetuning on new knowledge from each of them and the
from-scratch control. Runs go through the run store (resumable, reused). Writes
`results/<preset>/summary.csv`: one row per (finding, regime, seed) with the run's training time, T_fit,
T_bridge, T_ood, the final metrics and `holds_<criterion>` columns (empty where a criterion does not apply),
and every run's metrics as `results/<preset>/metrics/<run_id>.csv`, so the book's figures need no checkpoints.

Rows are merged into an existing summary (a row is replaced by the newer one of the same finding, regime and
seed), so a long reproduction can be done in parts. `stored_only` summarizes the finished runs already in the
store and trains nothing. `load_summary` and `load_metrics` read the committed files back.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from .config import REGIMES, preset
from .experiments import backfill, finetune_config
from .findings import FINDING_OF, bridge_metric, judge_seeds, summarize_finetune, summarize_pretrain
from .runs import Run, get_or_train, results_dir, upsert_csv

KEY = ["finding", "regime", "seed"]


def summary_path(name: str) -> Path:
    return results_dir(name) / "summary.csv"


def reproduce(name: str = "cpu", seeds: tuple[int, ...] = (0, 1, 2), regimes: tuple[str, ...] = REGIMES,
              finetune: bool = True, stored_only: bool = False, progress: bool = True,
              out: Path | None = None) -> pd.DataFrame:
    """Train (or reuse) every run, merge its rows into the summary table and write it; returns the new rows."""
    out = out or summary_path(name)
    curves = out.parent / "metrics"
    curves.mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.perf_counter()

    def finished(cfg) -> Run | None:
        if not stored_only:
            return get_or_train(cfg, progress=progress)
        run = Run(cfg)
        return run if run.status() == "finished" else None

    def keep(run: Run) -> pd.DataFrame:
        metrics = backfill(run)
        metrics.to_csv(curves / f"{run.id}.csv", index=False)
        return metrics

    def cost(run: Run) -> dict:
        return {"run_id": run.id, "train_seconds": round(run.load_checkpoint()["seconds"], 1)}

    for seed in seeds:
        for regime in regimes:
            if (run := finished(preset(name, regime=regime, seed=seed))) is None:
                continue
            rows.append({"finding": FINDING_OF[regime], "regime": regime, "seed": seed, **cost(run),
                         **summarize_pretrain(keep(run), regime, bridge_metric(run.cfg.model.arch))})
        if not finetune:
            continue
        for regime in (*regimes, "control"):
            if stored_only and regime != "control" and Run(preset(name, regime=regime, seed=seed)).status() != "finished":
                continue  # a finetune would train its missing base
            if (run := finished(finetune_config(name, regime, seed))) is None:
                continue
            rows.append({"finding": "3", "regime": regime, "seed": seed, **cost(run),
                         **summarize_finetune(keep(run), regime, bridge_metric(run.cfg.model.arch))})
    frame = pd.DataFrame(rows)
    frame.attrs["seconds"] = time.perf_counter() - t0
    table = upsert_csv(out, frame, KEY, sort=True)
    if len(table):
        upsert_csv(out, judge_seeds(table), KEY, sort=True)  # the criteria that compare the runs of one seed
    return frame


def load_summary(name: str = "cpu") -> pd.DataFrame:
    """The committed summary of a preset (empty when there is none)."""
    path = summary_path(name)
    return pd.read_csv(path, dtype={"finding": str}) if path.exists() else pd.DataFrame(columns=[*KEY, "run_id"])


def load_metrics(name: str = "cpu", finding: str = "pretrain") -> pd.DataFrame:
    """The committed metric curves of a preset, tidy, with regime (pretraining) or base (finetuning), seed and
    run_id columns: the frames `experiments.pretrain_metrics` / `finetune_metrics` return, without weights."""
    summary = load_summary(name)
    summary = summary[summary.finding == "3"] if finding == "finetune" else summary[summary.finding != "3"]
    column = "base" if finding == "finetune" else "regime"
    frames = [pd.read_csv(results_dir(name) / "metrics" / f"{row.run_id}.csv")
              .assign(**{column: row.regime, "seed": int(row.seed), "run_id": row.run_id})
              for row in summary.itertuples()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
