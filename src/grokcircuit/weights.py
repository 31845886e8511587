"""Shipped weights: the EMA weights of committed runs, compact and checksummed, so the book analyses trained models
without training them.

`results/<preset>/weights/` holds one fp16 state dict per (run, step), `<run_id>.pt` for the final weights and
`<run_id>_<step>.pt` for a snapshot, and `manifest.json`: per file its run id, step, SHA-256 and size.
`export(run, folder)` writes them (`grokcircuit reproduce` does, for every run it summarizes); `load(run_id, step)`
finds a run's file in any preset's folder, checks its digest and returns float32 weights, loaded with
`weights_only=True`. A file whose digest does not match is refused.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .runs import RunCorrupted, _atomic_write, results_dir

MANIFEST = "manifest.json"


def file_name(run_id: str, step: int | None = None) -> str:
    return f"{run_id}.pt" if step is None else f"{run_id}_{step}.pt"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(folder: Path) -> dict[str, dict]:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def export(run_id: str, state: dict[str, torch.Tensor], folder: Path, step: int | None = None) -> Path:
    """Write `state` as fp16 (`<run_id>[_<step>].pt`) into `folder` and record it in the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    name = file_name(run_id, step)
    half = {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu() for k, v in state.items()}
    _atomic_write(folder / name, lambda p: torch.save(half, p))
    manifest = read_manifest(folder)
    manifest[name] = {"run_id": run_id, "step": step, "sha256": _digest(folder / name),
                      "bytes": (folder / name).stat().st_size}
    _atomic_write(folder / MANIFEST, lambda p: p.write_text(json.dumps(dict(sorted(manifest.items())), indent=1)))
    return folder / name


def folders() -> list[Path]:
    """Every preset's weights folder in the results tree."""
    return sorted(p for p in results_dir("cpu").parent.glob("*/weights") if (p / MANIFEST).exists())


def find(run_id: str, step: int | None = None) -> Path | None:
    """The shipped file of (run, step), or None."""
    name = file_name(run_id, step)
    return next((f / name for f in folders() if name in read_manifest(f)), None)


def load(run_id: str, step: int | None = None) -> dict[str, torch.Tensor]:
    """The shipped float32 weights of (run, step), checked against the manifest's digest."""
    path = find(run_id, step)
    if path is None:
        raise FileNotFoundError(f"no shipped weights for run {run_id}" + (f" at step {step}" if step is not None else ""))
    if _digest(path) != read_manifest(path.parent)[path.name]["sha256"]:
        raise RunCorrupted(f"shipped weights {path} do not match their manifest; regenerate them with "
                           "`grokcircuit reproduce`")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def total_bytes() -> int:
    return sum(e["bytes"] for f in folders() for e in read_manifest(f).values())
