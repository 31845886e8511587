"""Train every run the book needs and summarize the findings: `grokcircuit reproduce --preset cpu`.

For each seed: the pretraining regimes, then finetuning on new knowledge from each of them and the
from-scratch control. Runs go through the run store (resumable, reused). Writes
`results/<preset>/summary.csv`: one row per (finding, regime, seed) with the run's training time, T_fit,
T_bridge, T_ood, the final metrics and `holds_<criterion>` columns (empty where a criterion does not apply),
every run's metrics as `results/<preset>/metrics/<run_id>.csv`, and its final EMA weights in fp16 (with a few
snapshots for the first seed's pretraining runs of the regimes followed along training) under
`results/<preset>/weights/` with a checksummed manifest (`grokcircuit.weights`), so the book analyses trained
models without training them.

Rows are merged into an existing summary (a row is replaced by the newer one of the same finding, regime and
seed), so a long reproduction can be done in parts. `stored_only` summarizes the finished runs already in the
store and trains nothing. `load_summary` and `load_metrics` read the committed files back.

Runs are independent except that a finetune starts from its base pretraining run, so `jobs > 1` trains up to
that many at a time in worker processes (one torch thread each), a finetune as soon as its base is finished.
Each run is deterministic given its config, so the results are those of the serial order. `cluster_executor`
sends the same runs to a Slurm cluster through submitit instead (the run store must be on a shared file
system). A killed sweep resumes where it stopped: finished runs are reused and partial ones continue from their
last checkpoint.
"""
from __future__ import annotations

import fcntl
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import submitit
import torch
from tqdm import tqdm

from .config import REGIMES, RunConfig, preset
from .experiments import backfill, finetune_config
from .findings import FINDING_OF, bridge_metric, judge_seeds, summarize_finetune, summarize_pretrain
from . import weights
from .runs import Run, open_run, results_dir, runs_root, upsert_csv
from .train import get_or_train

KEY = ["finding", "regime", "seed"]
SHIPPED_SNAPSHOTS = 4  # snapshots shipped per pretraining run of the first seed in SNAPSHOT_REGIMES
SNAPSHOT_REGIMES = ("natural", "both_hop_full", "second_hop_full")  # the regimes the chapters follow along training


def summary_path(name: str) -> Path:
    return results_dir(name) / "summary.csv"


def plan(name: str, seeds: tuple[int, ...], regimes: tuple[str, ...], finetune: bool,
         overrides: dict[str, Any]) -> list[tuple[str, str, int, RunConfig]]:
    """(finding, regime, seed, config) of every run, in the serial order: per seed the pretraining regimes, then
    finetuning from each of them and the from-scratch control. `finetune.*` overrides apply to finetunes only."""
    pre = {k: v for k, v in overrides.items() if not k.startswith("finetune.")}
    runs = []
    for seed in seeds:
        runs += [(FINDING_OF[r], r, seed, preset(name, regime=r, seed=seed, **pre)) for r in regimes]
        if finetune:
            runs += [("3", r, seed, finetune_config(name, r, seed, **overrides)) for r in (*regimes, "control")]
    return runs


@contextmanager
def training_lock(run: Run) -> Iterator[None]:
    """Held while a process trains `run`, so a sweep restarted beside a survivor of a killed one waits for it
    instead of training the same run twice. The OS releases it when the process dies."""
    with open(run.dir / "train.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def train_run(cfg: RunConfig, threads: int | None = None, progress: bool = False) -> str:
    """Train (or reuse) one run, with `threads` torch threads (None: unchanged); returns its id."""
    if threads:
        torch.set_num_threads(threads)
    run = open_run(cfg)
    with training_lock(run):
        get_or_train(cfg, progress=progress)
    return run.id


def cluster_executor(cluster: str = "slurm", threads: int = 1, partition: str | None = None, gpus_per_job: int = 0,
                     timeout_min: int = 24 * 60) -> submitit.AutoExecutor:
    """Runs as submitit jobs on a Slurm cluster (`cluster="local"`: the same jobs as local processes, to try the
    cluster path without one). Job logs go to `<run store>/submitit`."""
    executor = submitit.AutoExecutor(folder=runs_root() / "submitit", cluster=cluster)
    executor.update_parameters(name="grokcircuit", timeout_min=timeout_min, cpus_per_task=threads,
                               gpus_per_node=gpus_per_job, **({"slurm_partition": partition} if partition else {}))
    return executor


def run_cost(cfg: RunConfig) -> float:
    """A run's relative length, so that a sweep starts the longest first: steps times passes through the blocks."""
    m = cfg.model
    steps = cfg.finetune.steps if cfg.finetune is not None else cfg.train.steps
    return float(steps * (m.h_cycles * m.l_cycles if m.arch == "trm" else m.loops))


def train_all(configs: list[RunConfig], executor: Any, jobs: int, threads: int = 1, progress: bool = True) -> None:
    """Train every config through `executor` (`submit(fn, *args)` returns a job with `done()` and `result()`),
    at most `jobs` at a time, the longest first, a finetune once its base run is finished; one progress bar over
    the runs."""
    todo = {c.run_id: c for c in sorted(configs, key=lambda c: -run_cost(c)) if Run(c).status() != "finished"}
    running: dict[str, Any] = {}
    with tqdm(total=len(todo), desc=f"runs ({jobs} at a time)", disable=not progress) as bar:
        while todo or running:
            for rid, cfg in list(todo.items()):
                waits = cfg.finetune is not None and not cfg.finetune.from_scratch and (
                    cfg.base.run_id in todo or cfg.base.run_id in running)
                if len(running) < jobs and not waits:
                    running[rid] = executor.submit(train_run, todo.pop(rid), threads)
            for rid, job in list(running.items()):
                if job.done():
                    job.result()  # a failed run stops the sweep with its error
                    del running[rid]
                    bar.update()
            bar.set_postfix(running=len(running), refresh=False)
            time.sleep(0.1)


def reproduce(name: str = "cpu", seeds: tuple[int, ...] = (0, 1, 2), regimes: tuple[str, ...] = REGIMES,
              finetune: bool = True, stored_only: bool = False, progress: bool = True,
              out: Path | None = None, jobs: int = 1, threads: int = 1, executor: Any = None,
              overrides: dict[str, Any] | None = None) -> pd.DataFrame:
    """Train (or reuse) every run, merge its rows into the summary table and write it; returns the new rows.

    `jobs` > 1 or an `executor` (e.g. `cluster_executor()`): up to `jobs` runs at a time, `threads` torch threads
    each; else in this process, one after another. `overrides`: dotted config overrides for every run."""
    out = out or summary_path(name)
    curves = out.parent / "metrics"
    curves.mkdir(parents=True, exist_ok=True)
    runs, t0 = plan(name, seeds, regimes, finetune, overrides or {}), time.perf_counter()
    configs = [cfg for *_, cfg in runs]
    if not stored_only and (executor is not None or jobs > 1):
        pool = nullcontext(executor) if executor else ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"))
        with pool as ex:
            train_all(configs, ex, jobs, threads, progress)
    elif not stored_only:
        for cfg in configs:
            train_run(cfg, progress=progress)

    rows = []
    for finding, regime, seed, cfg in runs:
        if (run := Run(cfg)).status() != "finished" or run.load_checkpoint() is None:
            continue  # not trained here: a shipped run keeps its committed row
        metrics = backfill(run)
        metrics.to_csv(curves / f"{run.id}.csv", index=False)
        ship(run, out.parent / "weights", snapshots=finding != "3" and seed == seeds[0] and regime in SNAPSHOT_REGIMES)
        summarize = summarize_finetune if finding == "3" else summarize_pretrain
        rows.append({"finding": finding, "regime": regime, "seed": seed, "run_id": run.id,
                     "train_seconds": round(run.load_checkpoint()["seconds"], 1),
                     **summarize(metrics, regime, bridge_metric(cfg.model.arch, metrics))})
    frame = pd.DataFrame(rows)
    frame.attrs["seconds"] = time.perf_counter() - t0
    table = upsert_csv(out, frame, KEY, sort=True)
    if len(table):
        upsert_csv(out, judge_seeds(table), KEY, sort=True)  # the criteria that compare the runs of one seed
    return frame


def ship(run: Run, folder: Path, snapshots: bool) -> None:
    """Export the run's final EMA weights (fp16, `grokcircuit.weights`) and, with `snapshots`, those of
    SHIPPED_SNAPSHOTS evaluations spread over the run, for the figures along training."""
    weights.export(run.ema_state(), folder, run.id)
    steps = run.snapshot_steps() if snapshots else []
    for step in steps[:: max(1, len(steps) // SHIPPED_SNAPSHOTS)][:SHIPPED_SNAPSHOTS]:
        weights.export(run.ema_state(step), folder, run.id, step)


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
