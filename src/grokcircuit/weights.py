"""Shipped weights: compact, checksummed EMA weights of committed runs, so the book analyses trained models without
training them.

A weights folder (`results/<preset>/weights/`, located by `runs`) holds one fp16 state dict per (run, step),
`<run_id>.pt` for the final weights and `<run_id>_<step>.pt` for a snapshot, and `manifest.json`: per file its
run id, step, SHA-256 and size. `export` writes a file and its manifest entry; `load` checks the digest and
returns float32 weights, loaded with `weights_only=True`; a file that does not match its manifest is refused.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

MANIFEST = "manifest.json"


class WeightsMismatch(ValueError):
    """A shipped weights file whose digest differs from its manifest entry."""


def file_name(run_id: str, step: int | None = None) -> str:
    return f"{run_id}.pt" if step is None else f"{run_id}_{step}.pt"


def read_manifest(folder: Path) -> dict[str, dict]:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def atomic_write(path: Path, write) -> None:
    """`write(tmp)` then rename onto `path`, so a kill leaves the previous file intact."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def export(state: dict[str, torch.Tensor], folder: Path, run_id: str, step: int | None = None) -> Path:
    """Write `state` in fp16 into `folder` and record it in the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name(run_id, step)
    half = {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu() for k, v in state.items()}
    atomic_write(path, lambda p: torch.save(half, p))
    manifest = read_manifest(folder)
    manifest[path.name] = {"run_id": run_id, "step": step, "sha256": _digest(path), "bytes": path.stat().st_size}
    atomic_write(folder / MANIFEST, lambda p: p.write_text(json.dumps(dict(sorted(manifest.items())), indent=1)))
    return path


def find(folders: list[Path], run_id: str, step: int | None = None) -> Path | None:
    """The file of (run, step) in the first of `folders` whose manifest lists it, or None."""
    name = file_name(run_id, step)
    return next((f / name for f in folders if name in read_manifest(f)), None)


def steps(folders: list[Path], run_id: str) -> list[int]:
    """The snapshot steps of `run_id` listed in the manifests of `folders`."""
    return sorted({e["step"] for f in folders for e in read_manifest(f).values()
                   if e["run_id"] == run_id and e["step"] is not None})


def load(path: Path) -> dict[str, torch.Tensor]:
    """The float32 weights of a shipped file, checked against its manifest."""
    if _digest(path) != read_manifest(path.parent)[path.name]["sha256"]:
        raise WeightsMismatch(f"shipped weights {path} do not match their manifest")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def total_bytes(folders: list[Path]) -> int:
    return sum(entry["bytes"] for f in folders for entry in read_manifest(f).values())
