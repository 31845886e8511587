"""Inference paths: where a model represents the bridge and the answer, and whether it uses them (paper §7-8).

The paper compares models only by lens rates (§7). These functions make "the same reasoning path" (Finding 1)
measurable:
- `path_map(res)`: the rate at which the bridge (or the answer) is top-1 at each (stage, position) cell, and
  `first_stage(res)`: the first stage at which each query shows it anywhere.
- `total_variation(map_a, map_b)` and `agreement(res_a, res_b)`: how far two models' paths are apart.
- `patch_effect` / `patch_profile`: activation patching in the style of Wang et al. (2024, causal tracing).
  The state at one (stage, position) is replaced with that of a donor query with another bridge b'. If the
  prediction becomes t' = tail(b', r2), the model read the bridge from that state ("followed"); if it stays t
  it did not ("kept"). The TRM re-injects the input embedding at every L update, which would restore the clean
  token at the patched position; there the patch also swaps in the donor's input embedding at that position for
  every later L update (`model.INPUT`), so the donor's information persists through the recursion.
  `bridge_used(...)` gives the per-query verdict at the end of the first pass.

Entry points: `path_map`, `first_stage`, `first_stage_counts`, `total_variation`, `agreement`, `patch_effect`,
`patch_profile`, `bridge_used`, `bridge_rate_when_correct`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .encode import answer_position, entity_token
from .lens import LensResult, Queries, bridge_found, composition_cells, exact_match, run_lens
from .model import INPUT, autocast_for, stage_names

PATCH_BATCH = 512
R1_SLOT = 1  # the r1 token's slot in both layouts: where the bridge is decoded
FIRST_HOP = (0, 1)  # the slots of h and r1: a donor's there carry its bridge b' (alone, r1 would not)


# ----------------------------------------------------------------------------- lens paths

def _hits(res: LensResult, what: str) -> np.ndarray:
    """(S, N, T) booleans: the bridge (what="bridge") or the answer (what="target") is top-1."""
    if what == "bridge":
        return res.bridge_hits()
    if what == "target":
        return res.target_hits()
    raise ValueError(f"invalid what={what!r}: must be 'bridge' or 'target'")


def path_map(res: LensResult, what: str = "bridge") -> pd.DataFrame:
    """Tidy (stage, position, rate): the fraction of queries whose bridge/answer is top-1 at each cell."""
    rate = _hits(res, what).mean(axis=1)  # (S, T)
    S, T = rate.shape
    return pd.DataFrame({"stage": np.repeat(np.asarray(res.stages, dtype=object), T),
                         "position": np.tile(np.arange(T), S), "rate": rate.ravel()})


def _first_cell(res: LensResult, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Per query: (first stage index, lowest position at that stage); (-1, -1) when never top-1."""
    hits = _hits(res, what)
    any_pos = hits.any(axis=2)  # (S, N)
    found = any_pos.any(axis=0)
    stage = np.where(found, any_pos.argmax(axis=0), -1)
    at_stage = hits[np.maximum(stage, 0), np.arange(hits.shape[1])]  # (N, T)
    position = np.where(found, at_stage.argmax(axis=1), -1)
    return stage, position


def first_stage(res: LensResult, what: str = "bridge") -> np.ndarray:
    """Per query: index into `res.stages` of the first stage where it is top-1 at any position, -1 if never."""
    return _first_cell(res, what)[0]


def first_stage_counts(res: LensResult, what: str = "bridge") -> pd.DataFrame:
    """Distribution of `first_stage` as tidy (stage, count, fraction), in stage order, "never" last."""
    first = first_stage(res, what)
    counts = np.bincount(first + 1, minlength=len(res.stages) + 1)  # slot 0 = never
    n = max(len(first), 1)
    stages = list(res.stages) + ["never"]
    counts = np.concatenate([counts[1:], counts[:1]])
    return pd.DataFrame({"stage": stages, "count": counts, "fraction": counts / n})


def total_variation(map_a: pd.DataFrame, map_b: pd.DataFrame) -> float:
    """Total variation distance between two path maps, each normalised to a distribution over its cells.

    Each map's rates are divided by their sum, so the distance compares *where* the bridge shows up, not how
    often (two models with the same layout at different overall rates are at distance 0). Cells are matched by
    (stage, position); a cell missing from one map counts as 0 there. TV = 1/2 sum |p - q|, in [0, 1].
    A map with no mass at all has no distribution: the result is then NaN.
    """
    a = map_a.groupby(["stage", "position"])["rate"].sum()
    b = map_b.groupby(["stage", "position"])["rate"].sum()
    a, b = a.align(b, fill_value=0.0)
    if a.sum() <= 0 or b.sum() <= 0:
        return float("nan")
    return float(0.5 * (a / a.sum() - b / b.sum()).abs().sum())


def agreement(res_a: LensResult, res_b: LensResult, what: str = "bridge") -> dict[str, float]:
    """Per-query agreement of two models on the same queries.

    same_found: same found / not-found status. same_first_stage: same first stage (by name; "never" for both
    counts as agreeing). same_first_cell: same first (stage, lowest position). both_found: found by both.
    """
    if res_a.top1.shape[1] != res_b.top1.shape[1]:
        raise ValueError(f"agreement needs the same queries: {res_a.top1.shape[1]} vs {res_b.top1.shape[1]}")
    names = []
    for res in (res_a, res_b):
        stage, position = _first_cell(res, what)
        label = np.asarray(list(res.stages) + ["never"], dtype=object)[stage]  # index -1 -> "never"
        names.append((label, position))
    (sa, pa), (sb, pb) = names
    found_a, found_b = sa != "never", sb != "never"
    return {"n": len(sa), "same_found": float((found_a == found_b).mean()),
            "same_first_stage": float((sa == sb).mean()),
            "same_first_cell": float(((sa == sb) & (pa == pb)).mean()),
            "both_found": float((found_a & found_b).mean())}


# ----------------------------------------------------------------------------- activation patching



def donor_targets(q: Queries, tail_of: np.ndarray, donor: np.ndarray) -> np.ndarray:
    """Per query: t' = tail(b', r2) under donor j's bridge b' (entity id), -1 when the donor is not valid.

    Valid: both are two-hop queries, b' != b, (b', r2) is a fact, and t' != t.
    """
    it = q.items
    ok = (donor >= 0) & it.is_inferred
    j = np.where(ok, donor, 0)
    ok &= it.is_inferred[j] & (it.b[j] != it.b)
    t_new = np.where(ok, tail_of[np.maximum(it.b[j], 0), np.maximum(it.r2, 0)], -1)
    ok &= (t_new >= 0) & (t_new != it.t)
    return np.where(ok, t_new, -1)


def draw_donors(q: Queries, tail_of: np.ndarray, seed: int = 0, chunk: int = 1024) -> np.ndarray:
    """Per query: a donor index drawn uniformly among the valid donors in `q`, -1 when there is none."""
    it, rng = q.items, np.random.default_rng(seed)
    n = len(it)
    donor = np.full(n, -1, dtype=np.int64)
    inferred = it.is_inferred
    b, r2 = np.maximum(it.b, 0), np.maximum(it.r2, 0)
    for lo in range(0, n, chunk):  # rows x all candidates, chunked to bound memory
        rows = np.arange(lo, min(lo + chunk, n))
        t_new = tail_of[b[None, :], r2[rows, None]]  # (rows, n): t' for query row with donor column
        valid = (inferred[None, :] & inferred[rows, None] & (it.b[None, :] != it.b[rows, None])
                 & (t_new >= 0) & (t_new != it.t[rows, None]))
        keys = np.where(valid, rng.random(valid.shape), -1.0)  # argmax of random keys = uniform choice
        donor[rows] = np.where(valid.any(axis=1), keys.argmax(axis=1), -1)
    return donor


def _layout(q: Queries) -> str:
    return "trm" if q.tokens.shape[1] == 5 else "causal"


def _positions(position: int | tuple[int, ...], width: int) -> list[int]:
    positions = [position] if isinstance(position, int) else list(position)
    if not positions or any(not 0 <= p < width for p in positions):
        raise ValueError(f"invalid position={position}: must be in [0, {width})")
    return positions


def _replace(at: list[int], value: torch.Tensor):
    """A patch function that writes `value[:, at]` into a (B, T, D) state."""
    def put(z: torch.Tensor, _: str) -> torch.Tensor:
        z = z.clone()
        z[:, at] = value[:, at].to(z.dtype)
        return z
    return put


def _patch(model: torch.nn.Module, stages: list[str], stage: str, at: list[int], donor_trace: dict,
           donor_input: torch.Tensor | None) -> dict:
    """The patch dict for (stage, positions): the donor's state there, and for the TRM the donor's re-injected
    input at those positions in every L update after `stage`."""
    patch = {stage: _replace(at, donor_trace[stage])}
    if donor_input is not None:
        later = stages[stages.index(stage) + 1:]
        patch.update({f"{s}{INPUT}": _replace(at, donor_input) for s in later if "_l" in s})
    return patch


@torch.no_grad()
def _patch_rates(model: torch.nn.Module, q: Queries, tail_of: np.ndarray, stages: list[str],
                 position: int | tuple[int, ...], donor: np.ndarray | None, seed: int,
                 per_query: bool = False) -> pd.DataFrame | np.ndarray:
    """Shared core: donors drawn once, donor states traced once per chunk, then one patched run per stage.
    With `per_query`, returns (S, N) booleans "followed" instead (False where a query has no valid donor)."""
    model.eval()
    at = _positions(position, q.tokens.shape[1])
    donor = draw_donors(q, tail_of, seed) if donor is None else np.asarray(donor, dtype=np.int64)
    if donor.shape != (len(q),):
        raise ValueError(f"donor_perm must have shape ({len(q)},), got {donor.shape}")
    t_new = donor_targets(q, tail_of, donor)
    keep = np.flatnonzero(t_new >= 0)
    slot = answer_position(q.items, _layout(q))
    device = q.tokens.device
    counts = np.zeros((len(stages), 2), dtype=np.int64)  # (followed, kept) per stage
    followed = np.zeros((len(stages), len(q)), dtype=bool)
    clean_hits = 0
    for lo in range(0, len(keep), PATCH_BATCH):
        idx = keep[lo:lo + PATCH_BATCH]
        rows = torch.as_tensor(idx, device=device)
        answer = (torch.arange(len(idx), device=device), torch.as_tensor(slot[idx], device=device))
        t_old = q.target[rows]
        t_alt = torch.as_tensor(entity_token(t_new[idx]), device=device)
        donor_tokens = q.tokens[torch.as_tensor(donor[idx], device=device)]
        with autocast_for(device):
            donor_trace = model(donor_tokens, trace=True).trace
            clean = model(q.tokens[rows]).logits[answer].argmax(-1)
            donor_input = (model.input_embedding(donor_tokens)[:, model.prefix:]
                           if hasattr(model, "input_embedding") else None)
        clean_hits += int((clean == t_old).sum())
        order = list(donor_trace)
        for s, stage in enumerate(stages):
            if stage not in donor_trace:
                raise ValueError(f"invalid stage={stage!r}: the model has {order}")
            with autocast_for(device):
                patch = _patch(model, order, stage, at, donor_trace, donor_input)
                pred = model(q.tokens[rows], patch=patch).logits[answer].argmax(-1)
            hit = (pred == t_alt).cpu().numpy()
            followed[s, idx] = hit
            counts[s] += [int(hit.sum()), int((pred == t_old).sum())]
    if per_query:
        return followed
    n = len(keep)
    frame = pd.DataFrame({"stage": stages, "followed": counts[:, 0] / max(n, 1), "kept": counts[:, 1] / max(n, 1),
                          "other": (n - counts.sum(axis=1)) / max(n, 1), "n": n, "clean": clean_hits / max(n, 1)})
    return frame


def patch_effect(model: torch.nn.Module, q: Queries, tail_of: np.ndarray, stage: str, position: int = R1_SLOT,
                 donor_perm: np.ndarray | None = None, seed: int = 0) -> dict[str, float]:
    """Patch the state at (stage, position) with a donor's; rates of following the donor's bridge.

    Args:
        tail_of: (E, R) tail entity of each (head, relation), -1 where none (`KGDataset.graph.tail_of`).
        donor_perm: optional (N,) donor index per query; entries that are -1 or not valid donors are skipped.
            Default: drawn with `seed` uniformly among the valid donors (`draw_donors`).
    Returns {followed, kept, other, n, clean}: the answer slot predicts t' = tail(b', r2), still t, or
    anything else; n queries with a valid donor; clean = fraction of those answered t without a patch.
    """
    row = _patch_rates(model, q, tail_of, [stage], position, donor_perm, seed).iloc[0]
    return {k: (int(row[k]) if k == "n" else float(row[k])) for k in ("followed", "kept", "other", "n", "clean")}


def patch_profile(model: torch.nn.Module, q: Queries, tail_of: np.ndarray, position: int = R1_SLOT,
                  include_final: bool = False, seed: int = 0) -> pd.DataFrame:
    """`patch_effect` at every stage with the same donors: tidy (stage, followed, kept, other, n, clean).

    The final stage is left out by default: it is the state the head decodes slot by slot, so a patch there
    can only change the patched slot itself. At the first stage, patching the first-hop slots (`FIRST_HOP`) swaps
    the donor's h and r1 into the input: any model that answers the donor's query follows there.
    """
    with torch.no_grad(), autocast_for(q.tokens.device):
        stages = list(model(q.tokens[:1], trace=True).trace)
    if not include_final:
        stages = stages[:-1]
    return _patch_rates(model, q, tail_of, stages, position, None, seed)


def bridge_used(model: torch.nn.Module, q: Queries, tail_of: np.ndarray, stage: str | None = None,
                seed: int = 0) -> np.ndarray:
    """Per query: patching the first-hop slots (h, r1) with a donor's at `stage` makes the answer the donor's
    t' = tail(b', r2), i.e. the answer is read from what those slots hold at that stage (False where the query has
    no valid donor). Default stage: the end of the first pass (`loop0_block{last}`; the TRM's `h0_commit`)."""
    stages = [stage or _middle_stage(model)]
    return _patch_rates(model, q, tail_of, stages, FIRST_HOP, None, seed, per_query=True)[0]


def _middle_stage(model: torch.nn.Module) -> str:
    return [s for s in stage_names(model.cfg) if s.startswith(("loop0_", "h0_"))][-1]


# ----------------------------------------------------------------------------- real vs fake grokking

def bridge_rate_when_correct(model: torch.nn.Module, q: Queries, tail_of: np.ndarray | None = None
                             ) -> dict[str, float]:
    """Does a correct answer come with a recovered bridge? (Finding 2, "fake grokking").

    Returns n, correct (fraction answered exactly), and among the correctly answered queries and among the
    others: the paper's lens rule (`bridge_when_correct`), the entity-restricted lens at the best composition cell
    (`entity_lens_when_correct`) and, given `tail_of`, the share whose answer follows a patched bridge
    (`used_when_correct`, `bridge_used`). NaN for an empty group.
    """
    correct = exact_match(model, q)
    res = run_lens(model, q)
    hits = res.bridge_entity_hits()  # (S, N, T)
    rate = np.where(composition_cells(res.stages, hits.shape[2]), hits.mean(axis=1), -1.0)
    s, t = np.unravel_index(rate.argmax(), rate.shape)  # the best composition cell (`lens.bridge_entity_lens`)
    readouts = {"bridge": bridge_found(res), "entity_lens": hits[s, :, t]}
    if tail_of is not None:
        readouts["used"] = bridge_used(model, q, tail_of)
    rate = lambda x, sel: float(x[sel].mean()) if sel.any() else float("nan")  # noqa: E731
    out = {"n": len(correct), "correct": float(correct.mean()) if len(correct) else float("nan")}
    for name, hit in readouts.items():
        out[f"{name}_when_correct"], out[f"{name}_when_wrong"] = rate(hit, correct), rate(hit, ~correct)
    return out
