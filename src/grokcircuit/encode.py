"""Token layouts for the two model families (reference code §1.7; Wang et al. 2024).

Token ids: PAD 0, entity e -> 1 + e, relation r -> 1 + E + r, then the six special tokens (`</a>` among them).
- "trm": 5 slots, non-autoregressive. Two-hop inputs [h, r1, r2, PAD, PAD] -> labels [h, r1, r2, t, </a>];
  atomic [h, r, PAD, PAD, PAD] -> [h, r, t, </a>, PAD]. Label 0 is ignored, so exact match compares the prompt
  copy, the answer and </a>, as the reference evaluation does.
- "causal": 3 slots read left to right. [h, r1, r2] or [h, r, PAD]; the only label is t at the last input
  token (position 2 for two-hop queries, 1 for atomic ones).
"""
from __future__ import annotations

import numpy as np

from .data import SPECIALS, Items

PAD = 0
LAYOUTS = ("trm", "causal")


def entity_token(e: np.ndarray | int) -> np.ndarray | int:
    return e + 1


def relation_token(r: np.ndarray | int, entities: int) -> np.ndarray | int:
    return r + 1 + entities


def end_token(entities: int, relations: int) -> int:
    return 1 + entities + relations + SPECIALS.index("</a>")


def layout_of(arch: str) -> str:
    return "trm" if arch == "trm" else "causal"


def answer_position(items: Items, layout: str) -> np.ndarray:
    """Slot whose label is the answer entity t."""
    base = 3 if layout == "trm" else 2
    return np.where(items.is_inferred, base, base - 1)


def encode(items: Items, layout: str, entities: int, relations: int) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, labels), int64 arrays of shape (N, 5) for "trm" and (N, 3) for "causal"."""
    if layout not in LAYOUTS:
        raise ValueError(f"invalid layout={layout!r}: must be one of {LAYOUTS}")
    n, inf = len(items), items.is_inferred
    h = entity_token(items.h)
    r1 = relation_token(items.r1, entities)
    r2 = np.where(inf, relation_token(items.r2, entities), PAD)
    t = entity_token(items.t)
    width = 5 if layout == "trm" else 3
    tokens = np.zeros((n, width), dtype=np.int64)
    tokens[:, 0], tokens[:, 1], tokens[:, 2] = h, r1, r2
    labels = np.zeros((n, width), dtype=np.int64)
    if layout == "trm":
        labels[:, :3] = tokens[:, :3]  # the prompt copy first: an atomic answer sits in slot 2
    rows, pos = np.arange(n), answer_position(items, layout)
    labels[rows, pos] = t
    if layout == "trm":
        labels[rows, pos + 1] = end_token(entities, relations)
    return tokens, labels


def bridge_token(items: Items, entities: int) -> np.ndarray:
    """Token id of each query's bridge (PAD for atomic queries)."""
    return np.where(items.is_inferred, entity_token(items.b), PAD)
