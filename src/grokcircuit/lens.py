"""Exact match and the batched logit lens (paper §7; reference code §4).

`run_lens(model, queries)` decodes every recorded stage at every token position through the model's own
`decode` (the TRM's head directly, as the reference; the looped model's final LayerNorm + head), for thousands of
queries per batched pass, and keeps the top-1 token and the ranks of the bridge and the target.
"Bridge found" is the paper's rule: the bridge is top-1 at any stage and any position. Because the TRM's Init
stage shows the same token at every position, it is also reported with Init excluded, and with both Init and the
last stage excluded ("intermediate"). In a causal model the last stage at the r1 slot is the atomic fact's own
answer, i.e. the bridge, so there only the intermediate rate says something about composition.

The any-cell rule has a high chance level (0.20 for an untrained TRM with 60 entities: 75 cells each get a
1-in-60 draw). The entity-restricted lens ranks the bridge among entity tokens only, per (stage, position) cell,
and `bridge_entity_lens` reports the best *composition cell* (`composition_cells`): every cell of the TRM, and in
the causal model the answer slot before the last stage, where the bridge is not the atomic query's own answer.
Its chance level is the same number on the untrained model (a run's step-0 evaluation).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .data import Items
from .encode import bridge_token, encode, entity_token
from .model import autocast_for

EVAL_BATCH = 2048


@dataclass
class Queries:
    """Items encoded for one model, with their bridge and target tokens."""

    items: Items
    tokens: torch.Tensor  # (N, T)
    labels: torch.Tensor  # (N, T)
    bridge: torch.Tensor  # (N,) PAD for atomic queries
    target: torch.Tensor  # (N,)
    entities: int  # entity tokens are 1..entities

    @staticmethod
    def build(items: Items, layout: str, entities: int, relations: int, device: str = "cpu") -> "Queries":
        tokens, labels = encode(items, layout, entities, relations)
        as_t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
        return Queries(items, as_t(tokens), as_t(labels), as_t(bridge_token(items, entities)),
                       as_t(entity_token(items.t)), entities)

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class LensResult:
    stages: list[str]
    top1: np.ndarray  # (S, N, T) top-1 token per stage and position
    bridge_rank: np.ndarray  # (S, N, T) 0 = the bridge is top-1
    target_rank: np.ndarray  # (S, N, T)
    bridge_entity_rank: np.ndarray | None = None  # (S, N, T) the bridge's rank among entity tokens only

    def bridge_hits(self) -> np.ndarray:
        return self.bridge_rank == 0

    def bridge_entity_hits(self) -> np.ndarray:
        if self.bridge_entity_rank is None:
            raise ValueError("this lens result has no entity-restricted ranks")
        return self.bridge_entity_rank == 0

    def target_hits(self) -> np.ndarray:
        return self.target_rank == 0


@torch.no_grad()
def exact_match(model: torch.nn.Module, q: Queries) -> np.ndarray:
    """Per query: every labelled slot is predicted exactly (the reference's rule)."""
    model.eval()
    out = []
    for i in range(0, len(q), EVAL_BATCH):
        tokens, labels = q.tokens[i:i + EVAL_BATCH], q.labels[i:i + EVAL_BATCH]
        with autocast_for(tokens.device):
            pred = model(tokens).logits.argmax(-1)
        out.append(((pred == labels) | (labels == 0)).all(-1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=bool)


def _rank(logits: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
    """(B, T, V), (B,) -> (B, T): how many tokens score strictly above `token`."""
    ref = logits.gather(-1, token.view(-1, 1, 1).expand(-1, logits.shape[1], 1))
    return (logits > ref).sum(-1)


@torch.no_grad()
def run_lens(model: torch.nn.Module, q: Queries) -> LensResult:
    """Top-1 and bridge/target ranks at every stage and position, batched."""
    model.eval()
    top1, b_rank, t_rank, e_rank, stages = [], [], [], [], None
    entities = slice(1, 1 + q.entities)
    for i in range(0, len(q), EVAL_BATCH):
        sl = slice(i, i + EVAL_BATCH)
        with autocast_for(q.tokens.device):
            trace = model(q.tokens[sl], trace=True).trace
        stages = list(trace)
        z = torch.stack(list(trace.values())).float()  # (S, B, T, D)
        with torch.autocast(z.device.type, enabled=False):  # fp32 decode: no bf16 ties at the top
            logits = model.decode(z)  # (S, B, T, V)
        S, B, T, V = logits.shape
        flat = logits.reshape(S * B, T, V)
        top1.append(logits.argmax(-1).cpu())
        b_rank.append(_rank(flat, q.bridge[sl].repeat(S)).view(S, B, T).cpu())
        t_rank.append(_rank(flat, q.target[sl].repeat(S)).view(S, B, T).cpu())
        bridge_entity = (q.bridge[sl] - 1).clamp(min=0).repeat(S)  # entity index; atomic queries rank entity 0
        e_rank.append(_rank(flat[..., entities], bridge_entity).view(S, B, T).cpu())
    cat = lambda xs: torch.cat(xs, dim=1).numpy()  # noqa: E731
    return LensResult(stages or [], cat(top1), cat(b_rank), cat(t_rank), cat(e_rank))


def composition_cells(stages: list[str], width: int) -> np.ndarray:
    """(S, T) booleans: the cells where a decoded bridge can only come from composing the two hops.

    TRM (5 slots): every cell. Causal (3 slots): the answer slot (the last) at every stage but the last; the r1
    slot holds the atomic query (h, r1), whose own answer is the bridge, and the last stage is the output."""
    cells = np.ones((len(stages), width), dtype=bool)
    if width == 3:
        cells[:] = False
        cells[:-1, -1] = True
    return cells


def bridge_entity_lens(res: LensResult) -> float:
    """The best composition cell's rate of queries whose bridge is the top-1 entity there."""
    rate = res.bridge_entity_hits().mean(axis=1)  # (S, T)
    cells = composition_cells(res.stages, rate.shape[1])
    return float(rate[cells].max()) if rate.size else float("nan")


def bridge_found(res: LensResult, exclude_init: bool = False, exclude_final: bool = False) -> np.ndarray:
    """Per query: the bridge is top-1 at any stage and position (the paper's "Bridge Found"), optionally
    leaving out the first stage (Init / embedding) and the last one (the output state)."""
    hits = res.bridge_hits()
    hits = hits[int(exclude_init): len(hits) - int(exclude_final)]
    return hits.any(axis=(0, 2))


def target_found(res: LensResult) -> np.ndarray:
    """Per query: the answer is top-1 at any stage and position (the reference's "Final Answer" curve)."""
    return res.target_hits().any(axis=(0, 2))


def lens_metrics(res: LensResult) -> dict[str, float]:
    """Rates for one query set: found anywhere, found after Init, and per stage (any position)."""
    out = {
        "bridge_found": float(bridge_found(res).mean()),
        "bridge_found_post_init": float(bridge_found(res, exclude_init=True).mean()),
        "bridge_found_intermediate": float(bridge_found(res, exclude_init=True, exclude_final=True).mean()),
        "target_found": float(target_found(res).mean()),
        "bridge_entity_lens": bridge_entity_lens(res),
    }
    per_stage = res.bridge_hits().any(axis=2).mean(axis=1)
    out.update({f"bridge@{s}": float(v) for s, v in zip(res.stages, per_stage)})
    return out


def lens_frame(res: LensResult) -> pd.DataFrame:
    """Tidy frame: one row per (query, stage, position) with the top-1 token and bridge/target hits."""
    s, q, p = np.indices(res.top1.shape)  # (S, N, T) grids of stage, query and position
    return pd.DataFrame({
        "query": q.ravel(), "stage": np.asarray(res.stages)[s.ravel()], "position": p.ravel(),
        "top1": res.top1.ravel(), "is_bridge": res.bridge_hits().ravel(), "is_target": res.target_hits().ravel(),
    })
