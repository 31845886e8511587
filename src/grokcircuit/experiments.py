"""Collect the runs a notebook shows into tidy frames, training what is missing through the run store.

`pretrain_metrics(preset, regimes, seeds)` and `finetune_metrics(preset, bases, seeds)` return every logged row
with `regime` (or `base`), `seed` and `run_id` columns added, ready for `grokcircuit.plots`.
"""
from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

from .config import RunConfig, preset as make_preset
from .runs import Run, get_or_train


def pretrain_config(preset: str, regime: str, seed: int, **overrides: Any) -> RunConfig:
    return make_preset(preset, regime=regime, seed=seed, **overrides)


def finetune_config(preset: str, base: str, seed: int, **overrides: Any) -> RunConfig:
    """`base` is a regime, or "control" for the from-scratch control group (natural regime's finetuning set)."""
    scratch = base == "control"
    return make_preset(preset, regime="natural" if scratch else base, seed=seed, finetune=True,
                       from_scratch=scratch, **overrides)


def _collect(configs: Iterable[tuple[str, str, int, RunConfig]], progress: bool) -> tuple[pd.DataFrame, dict]:
    frames, runs = [], {}
    for column, label, seed, cfg in configs:
        run = get_or_train(cfg, progress=progress)
        runs[(label, seed)] = run
        frames.append(run.metrics().assign(**{column: label, "seed": seed, "run_id": run.id}))
    return pd.concat(frames, ignore_index=True), runs


def pretrain_metrics(preset: str, regimes: Iterable[str], seeds: Iterable[int], progress: bool = True,
                     **overrides: Any) -> tuple[pd.DataFrame, dict[tuple[str, int], Run]]:
    """(tidy metrics with regime/seed/run_id, {(regime, seed): Run}) of the pretraining runs."""
    return _collect((("regime", r, s, pretrain_config(preset, r, s, **overrides)) for r in regimes for s in seeds),
                    progress)


def finetune_metrics(preset: str, bases: Iterable[str], seeds: Iterable[int], progress: bool = True,
                     **overrides: Any) -> tuple[pd.DataFrame, dict[tuple[str, int], Run]]:
    """(tidy metrics with base/seed/run_id, {(base, seed): Run}) of the finetuning runs."""
    return _collect((("base", b, s, finetune_config(preset, b, s, **overrides)) for b in bases for s in seeds),
                    progress)
