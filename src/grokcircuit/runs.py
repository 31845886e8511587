"""The run store: the only module that knows where files live.

A run lives in `<root>/<run_id>/`, where run_id is the hash of its config (`config.run_id`) and root is
`$GROKCIRCUIT_RUNS`, else `runs/` at the repository root (or the working directory when installed elsewhere).
- `config.json`   the full config; a folder whose config does not match its name is refused.
- `checkpoint.pt` model, EMA, optimizer, step, RNG states and every metric row so far; rewritten at each
                  evaluation with a temp file + rename, so a kill leaves the previous one intact.
- `metrics.csv`   tidy rows (step, split, metric, value), rewritten from the checkpoint.
- `ema_<step>.pt` EMA weights at each evaluation (when snapshots are on), for analyses along the run.
- `status.json`   {"finished": bool, "step": int}.
A new pretraining run whose config differs from a stored run only by a larger `train.steps` starts from that
run's last checkpoint (`Run.prefix`): the LR is constant after warm-up and batches depend only on (seed, epoch),
so the longer run is the shorter one continued, step for step.
Checkpoints load with `weights_only=True`. A truncated or mismatched file raises `RunCorrupted`.

Committed results (summaries, metric curves, search tables) live in `results/<preset>/` (`results_dir`), and
every table there is merged through `upsert_csv`. Shipped weights (`results/<preset>/weights/`, written by
`grokcircuit reproduce` through `grokcircuit.weights`) make a run that is not in the store count as finished:
`Run.ema_state` and `Run.load_model` then read them, and `Run.metrics` the committed curves.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from . import weights
from .weights import atomic_write
from .config import RunConfig, from_dict, to_dict
from .data import vocab_size
from .model import build_model

COLUMNS = ["step", "split", "metric", "value"]


class RunCorrupted(RuntimeError):
    """A run folder whose files are unreadable or do not belong to its config."""


def _home(folder: str, env: str) -> Path:
    """`$env` when set, else `folder` at the repository root (or the working directory when installed elsewhere)."""
    if os.environ.get(env):
        return Path(os.environ[env])
    repo = Path(__file__).resolve().parents[2]
    return repo / folder if (repo / "pyproject.toml").exists() else Path.cwd() / folder


def runs_root() -> Path:
    return _home("runs", "GROKCIRCUIT_RUNS")


def results_root() -> Path:
    """The committed results: `results/` (`$GROKCIRCUIT_RESULTS` when set)."""
    return _home("results", "GROKCIRCUIT_RESULTS")


def benchmarks_dir() -> Path:
    """The committed benchmark tables: `benchmarks/` at the repository root."""
    return _home("benchmarks", "GROKCIRCUIT_BENCHMARKS")


def results_dir(preset: str) -> Path:
    """The committed results of a preset: `results/<preset>`."""
    return results_root() / preset


def weights_dir(preset: str) -> Path:
    """The shipped weights of a preset's committed runs (`grokcircuit.weights`)."""
    return results_dir(preset) / "weights"


def shipped_dirs() -> list[Path]:
    """Every preset's shipped weights folder."""
    return sorted(p.parent for p in results_root().glob(f"*/weights/{weights.MANIFEST}"))


def upsert_csv(path: Path, rows: pd.DataFrame, key: list[str], sort: bool = False) -> pd.DataFrame:
    """Merge `rows` into the CSV table at `path`, write it atomically and return it. A row whose key is already
    in the table replaces that row where it stands; new keys are appended, or the table is sorted by key."""
    if rows.empty and not path.exists():
        return rows
    if not path.exists():
        table = rows
    elif rows.empty:
        return pd.read_csv(path)
    else:
        old = pd.read_csv(path, dtype={k: rows[k].dtype for k in key})
        columns = list(dict.fromkeys([*old.columns, *rows.columns]))
        old, new = old.set_index(key), rows.set_index(key)
        order = old.index.append(new.index[~new.index.isin(old.index)])
        table = pd.concat([old[~old.index.isin(new.index)], new]).reindex(order).reset_index()[columns]
    if sort:
        table = table.sort_values(key, ignore_index=True)
    if len(table):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda p: table.to_csv(p, index=False))
    return table


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


class Run:
    """One run folder."""

    def __init__(self, cfg: RunConfig, root: Path | None = None):
        self.cfg = cfg
        self.id = cfg.run_id
        self.dir = (root or runs_root()) / self.id

    def __repr__(self) -> str:
        return f"Run({self.id}, {self.cfg.data.regime}, {self.status()})"

    # -- identity
    def create(self) -> "Run":
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "config.json"
        if path.exists():
            self.check_config()
        else:
            _write_text(path, json.dumps(to_dict(self.cfg), indent=2, sort_keys=True))
        return self

    def check_config(self) -> None:
        try:
            stored = from_dict(json.loads((self.dir / "config.json").read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise RunCorrupted(f"run {self.id}: unreadable config.json ({exc}); delete {self.dir} to retrain") from None
        if stored.run_id != self.id:
            raise RunCorrupted(f"run {self.id}: config.json describes run {stored.run_id}; delete {self.dir}")

    # -- state
    def status(self) -> str:
        """'new', 'partial' or 'finished' (also a run that is not in the store but has shipped weights)."""
        path = self.dir / "status.json"
        if not path.exists():
            return "finished" if self.shipped() is not None else "new"
        try:
            return "finished" if json.loads(path.read_text())["finished"] else "partial"
        except (ValueError, KeyError):
            return "partial"

    def save_checkpoint(self, state: dict[str, Any], finished: bool) -> None:
        """Atomically store the training state, then the metrics and status derived from it."""
        state = {**state, "run_id": self.id, "finished": finished}
        atomic_write(self.dir / "checkpoint.pt", lambda p: torch.save(state, p))
        frame = pd.DataFrame(state["rows"], columns=COLUMNS)
        atomic_write(self.dir / "metrics.csv", lambda p: frame.to_csv(p, index=False))
        self.save_status(finished, state["step"], state.get("seconds", 0.0))

    def save_status(self, finished: bool, step: int, seconds: float) -> None:
        _write_text(self.dir / "status.json", json.dumps({"finished": finished, "step": step,
                                                          "seconds": round(seconds, 1)}))

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last saved state, None for a new run; raises `RunCorrupted` when unusable."""
        path = self.dir / "checkpoint.pt"
        if not path.exists():
            if (self.dir / "status.json").exists():
                raise RunCorrupted(f"run {self.id}: status.json present but checkpoint.pt missing; delete {self.dir}")
            return None
        self.check_config()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated zip, bad pickle, ...
            raise RunCorrupted(f"run {self.id}: unreadable checkpoint.pt ({type(exc).__name__}); "
                               f"delete {self.dir} to retrain") from None
        if state.get("run_id") != self.id:
            raise RunCorrupted(f"run {self.id}: checkpoint.pt belongs to run {state.get('run_id')}; delete {self.dir}")
        return state

    def save_snapshot(self, step: int, ema_state: dict[str, torch.Tensor]) -> None:
        atomic_write(self.dir / f"ema_{step:08d}.pt", lambda p: torch.save(ema_state, p))

    def snapshot_steps(self) -> list[int]:
        """The evaluation steps whose EMA weights can be loaded: snapshots in the store and shipped ones."""
        stored = {int(p.stem[4:]) for p in self.dir.glob("ema_*.pt")}
        return sorted(stored | set(weights.steps(shipped_dirs(), self.id)))

    # -- results
    def metrics(self) -> pd.DataFrame:
        """Tidy metrics (step, split, metric, value), from the checkpoint so they match the weights; for a run
        known only by its shipped weights, its committed curves."""
        state = self.load_checkpoint()
        if state is None:
            committed = next(iter(results_root().glob(f"*/metrics/{self.id}.csv")), None)
            return pd.read_csv(committed) if committed else pd.DataFrame(columns=COLUMNS)
        return pd.DataFrame(state["rows"], columns=COLUMNS)

    def shipped(self, step: int | None = None) -> Path | None:
        """The shipped weights file of this run at `step` (the final weights when None), if any."""
        return weights.find(shipped_dirs(), self.id, step)

    def _shipped_state(self, step: int | None) -> dict[str, torch.Tensor] | None:
        path = self.shipped(step)
        if path is None:
            return None
        try:
            return weights.load(path)
        except weights.WeightsMismatch as exc:
            raise RunCorrupted(f"run {self.id}: {exc}; regenerate them with `grokcircuit reproduce`") from None

    def ema_state(self, step: int | None = None) -> dict[str, torch.Tensor]:
        """EMA weights at the end (step None) or at an evaluation step that has a snapshot; from the store, else
        from the shipped weights (fp16 precision)."""
        if step is None:
            state = self.load_checkpoint()
            if state is not None:
                return state["ema"]
            if (shipped := self._shipped_state(None)) is not None:
                return shipped
            raise FileNotFoundError(f"run {self.id} has no checkpoint yet")
        path = self.dir / f"ema_{step:08d}.pt"
        if not path.exists():
            if (shipped := self._shipped_state(step)) is not None:
                return shipped
            raise FileNotFoundError(f"run {self.id} has no snapshot at step {step}; have {self.snapshot_steps()}")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise RunCorrupted(f"run {self.id}: unreadable {path.name} ({type(exc).__name__})") from None

    def load_model(self, step: int | None = None) -> torch.nn.Module:
        """The run's EMA model at `step` (the final one when None), on the CPU, in eval mode."""
        model = build_model(self.cfg.model, vocab_size(self.cfg.data.entities, self.cfg.data.relations))
        model.load_state_dict(self.ema_state(step))
        return model.eval()

    def prefix(self) -> "Run | None":
        """The stored run that this (new) pretraining run continues: same config but fewer `train.steps`, the
        furthest along; None when there is none or lengths are given in epochs."""
        t = self.cfg.train
        if self.cfg.finetune is not None or t.epochs or t.eval_every_epochs:
            return None
        best, best_step = None, 0
        for cfg_path in self.dir.parent.glob("*/config.json"):
            try:
                other = from_dict(json.loads(cfg_path.read_text()))
            except (ValueError, TypeError, OSError):
                continue
            if other.train.steps >= t.steps or other.finetune is not None:
                continue
            if dataclasses.replace(other, train=dataclasses.replace(other.train, steps=t.steps)).run_id != self.id:
                continue
            candidate = Run(other, self.dir.parent)
            step = json.loads((candidate.dir / "status.json").read_text()).get("step", 0) \
                if (candidate.dir / "status.json").exists() else 0
            if step > best_step and step % t.eval_every == 0:
                best, best_step = candidate, step
        return best

    def adopt(self, prefix: "Run") -> dict[str, Any]:
        """Copy `prefix`'s snapshots here and return its last state as this run's starting state."""
        state = prefix.load_checkpoint()
        for path in prefix.dir.glob("ema_*.pt"):
            if not (self.dir / path.name).exists():
                shutil.copyfile(path, self.dir / path.name)
        return {**state, "run_id": self.id, "finished": False}

    def delete(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def load_run(run_id: str, root: Path | None = None) -> Run:
    """The stored run `run_id`; FileNotFoundError when there is none, `RunCorrupted` when its config is unusable."""
    root = root or runs_root()
    path = root / run_id / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"no run {run_id!r} under {root} (see `grokcircuit runs`)")
    try:
        cfg = from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise RunCorrupted(f"run {run_id}: unreadable config.json ({exc}); delete {path.parent}") from None
    if cfg.run_id != run_id:
        raise RunCorrupted(f"run {run_id}: config.json describes run {cfg.run_id}; delete {path.parent}")
    return Run(cfg, root)


def open_run(cfg: RunConfig, root: Path | None = None) -> Run:
    return Run(cfg.validate(), root).create()


def list_runs(root: Path | None = None) -> pd.DataFrame:
    """One row per run folder: id, status, regime, arch, finetune, last step."""
    root = root or runs_root()
    rows = []
    for cfg_path in sorted(root.glob("*/config.json")) if root.exists() else []:
        try:
            cfg = from_dict(json.loads(cfg_path.read_text()))
            run = Run(cfg, root)
            status = json.loads((run.dir / "status.json").read_text()) if (run.dir / "status.json").exists() else {}
            rows.append({"run_id": run.id, "status": run.status(), "regime": cfg.data.regime,
                         "arch": cfg.model.arch, "finetune": cfg.finetune is not None,
                         "seed": cfg.train.seed, "step": status.get("step", 0)})
        except (ValueError, TypeError, OSError) as exc:
            rows.append({"run_id": cfg_path.parent.name, "status": f"corrupted: {exc}"})
    return pd.DataFrame(rows)

