"""Collect the runs a notebook shows into tidy frames, training what is missing through the run store.

`pretrain_metrics(preset, regimes, seeds)` and `finetune_metrics(preset, bases, seeds)` return every logged row
with `regime` (or `base`), `seed` and `run_id` columns added, ready for `grokcircuit.plots`.
"""
from __future__ import annotations

from typing import Any, Iterable

import pandas as pd
import torch

from .config import ConfigError, RunConfig, preset as make_preset
from .data import vocab_size
from .encode import layout_of
from .lens import Queries
from .model import build_model
from .runs import Run
from .train import Task, build_task, eval_queries, evaluate, get_or_train


def as_list(value: Any) -> list:
    """A notebook parameter as a list: papermill's `-p seeds "[0, 1, 2]"` passes the string, `-y` the list."""
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value.replace("'", '"'))
        except ValueError:
            value = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def pretrain_config(preset: str, regime: str, seed: int, **overrides: Any) -> RunConfig:
    return make_preset(preset, regime=regime, seed=seed, **overrides)


def finetune_config(preset: str, base: str, seed: int, **overrides: Any) -> RunConfig:
    """`base` is a regime, or "control" for the from-scratch control group (natural regime's finetuning set)."""
    scratch = base == "control"
    return make_preset(preset, regime="natural" if scratch else base, seed=seed, finetune=True,
                       from_scratch=scratch, **overrides)


def committed_run(preset: str, regime: str, seed: int, finetune: bool = False) -> Run:
    """A committed run of `preset`: the pretraining run of `regime`, or with `finetune` the finetuning run from
    base `regime` ("control": the from-scratch control), whose weights are in the run store or shipped
    (`grokcircuit.weights`). Nothing trains; FileNotFoundError names the command that makes a missing run."""
    cfg = finetune_config(preset, regime, seed) if finetune else pretrain_config(preset, regime, seed)
    run = Run(cfg)
    if run.status() != "finished":
        kind = "finetuning from" if finetune else "pretraining run of"
        raise FileNotFoundError(f"the {kind} {regime} (preset {preset}, seed {seed}, run {run.id}) is neither "
                                f"shipped nor in the run store: `grokcircuit reproduce --preset {preset}` makes it")
    return run


def split_queries(cfg: RunConfig, split: str, task: Task | None = None) -> Queries:
    """The queries of one split of `cfg`'s task (a key of its probes, e.g. "test_inferred_ood"), laid out for
    its architecture; pass `task` (`build_task(cfg)`) to reuse one already built."""
    task = task or build_task(cfg)
    if split not in task.probes:
        raise ConfigError(f"no split {split!r}: one of {', '.join(task.probes)}")
    return Queries.build(task.probes[split], layout_of(cfg.model.arch), task.entities, task.relations)


def test_queries(cfg: RunConfig) -> dict[str, Queries]:
    """A pretraining run's two-hop test queries, all of them: "OOD" (test_inferred_ood) and "ID"
    (test_inferred_iid, compositions of ID facts never trained)."""
    task = build_task(cfg)
    return {name: split_queries(cfg, split, task) for name, split in (("OOD", "test_inferred_ood"),
                                                                       ("ID", "test_inferred_iid"))}


def _collect(configs: Iterable[tuple[str, str, int, RunConfig]], progress: bool) -> tuple[pd.DataFrame, dict]:
    frames, runs = [], {}
    for column, label, seed, cfg in configs:
        run = get_or_train(cfg, progress=progress)
        runs[(label, seed)] = run
        frames.append(backfill(run).assign(**{column: label, "seed": seed, "run_id": run.id}))
    return pd.concat(frames, ignore_index=True), runs


def pretrain_metrics(preset: str, regimes: Iterable[str], seeds: Iterable[int], progress: bool = True,
                     **overrides: Any) -> tuple[pd.DataFrame, dict[tuple[str, int], Run]]:
    """(tidy metrics with regime/seed/run_id, {(regime, seed): Run}) of the pretraining runs."""
    return _collect((("regime", r, s, pretrain_config(preset, r, s, **overrides))
                     for r in as_list(regimes) for s in map(int, as_list(seeds))), progress)


def finetune_metrics(preset: str, bases: Iterable[str], seeds: Iterable[int], progress: bool = True,
                     **overrides: Any) -> tuple[pd.DataFrame, dict[tuple[str, int], Run]]:
    """(tidy metrics with base/seed/run_id, {(base, seed): Run}) of the finetuning runs."""
    return _collect((("base", b, s, finetune_config(preset, b, s, **overrides))
                     for b in as_list(bases) for s in map(int, as_list(seeds))), progress)


def backfill(run: Run, metrics: tuple[str, ...] = ("bridge_found_intermediate",),
             splits: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The run's metrics, plus readouts it did not log at some evaluations (added to the package later),
    recomputed from the EMA snapshot of each evaluation on the same queries (default: every lens split)."""
    logged = run.metrics()
    if splits is None:
        splits = tuple(sorted(set(logged.split[logged.metric == "bridge_found"])))
    have = logged[logged.metric.isin(metrics) & logged.split.isin(splits)].groupby("step").size()
    steps = [s for s in run.snapshot_steps() if have.get(s, 0) < len(metrics) * len(splits)]
    if not steps:
        return logged
    task = build_task(run.cfg)
    queries = eval_queries(task, run.cfg, torch.device("cpu"))
    rows = []
    for step in steps:
        values = evaluate(run.load_model(step), queries, task.tail_of)
        rows += [(step, split, name, values[(split, name)]) for split in splits for name in metrics
                 if (split, name) in values]
    extra = pd.DataFrame(rows, columns=["step", "split", "metric", "value"])
    keep = ~(logged.step.isin(steps) & logged.metric.isin(metrics) & logged.split.isin(splits))
    return pd.concat([logged[keep], extra], ignore_index=True).sort_values(["step", "split", "metric"],
                                                                           ignore_index=True)


def untrained_model(cfg: RunConfig) -> torch.nn.Module:
    """The model of `cfg`'s run before its first step (same seed), in eval mode: what every chance level reads."""
    torch.manual_seed(cfg.train.seed)
    return build_model(cfg.model, vocab_size(cfg.data.entities, cfg.data.relations)).eval()


def readout_chance(cfg: RunConfig, split: str = "test_inferred_ood") -> dict[str, float]:
    """Every bridge readout of `split` on the untrained model of `cfg`: its run's step-0 evaluation, computed
    without training."""
    task = build_task(cfg)
    queries = eval_queries(task, cfg, torch.device("cpu"))
    return {metric: value for (s, metric), value in evaluate(untrained_model(cfg), queries, task.tail_of).items()
            if s == split and metric.startswith("bridge") and "@" not in metric}


def readout_chance_table(configs: dict[str, RunConfig]) -> pd.DataFrame:
    """`readout_chance` of each named configuration, one row each."""
    return pd.DataFrame({name: readout_chance(cfg) for name, cfg in configs.items()}).T
