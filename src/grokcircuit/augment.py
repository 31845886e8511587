"""Fact-level augmentation: the five regimes of the paper (§3-4; reference code §1.4).

A regime exposes a fraction (`ratio`) of the OOD facts that the OOD test queries use, each composed with up to
`k` ID facts in one hop position:
- hop-1 injection: an OOD first hop (h, r1, b) followed by ID second hops (b, r2, t);
- hop-2 injection: ID first hops (h, r1, b) followed by an OOD second hop (b, r2, t).
Every added composition has exactly one OOD hop, so it can be neither a training composition (both ID) nor
an OOD test query (both OOD). Hop 1 and hop 2 draw from separate random streams, so the hop-2 items of
`second_hop_full` equal those of `both_hop_full`.
"""
from __future__ import annotations

import numpy as np

from .config import DataConfig
from .data import AUGMENT_STREAM, Graph, Items, round_half_up

# regime -> (hop-1 ratio, hop-1 uses k, hop-2 ratio, hop-2 uses k); "half" regimes use k // 2
REGIME_SPECS: dict[str, tuple[float, bool, float, bool]] = {
    "natural": (0.0, False, 0.0, False),
    "both_hop_full": (1.0, True, 1.0, True),
    "both_hop_half": (0.5, True, 0.5, True),
    "first_hop_full": (1.0, True, 0.0, False),
    "second_hop_full": (0.0, False, 1.0, True),
}


def regime_params(regime: str, aug_k: int) -> tuple[float, int, float, int]:
    """(hop1_ratio, hop1_k, hop2_ratio, hop2_k) of a named regime."""
    r1, use1, r2, use2 = REGIME_SPECS[regime]
    k = aug_k // 2 if regime.endswith("_half") else aug_k
    return r1, k if use1 else 0, r2, k if use2 else 0


def sample_per_group(group: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of up to k uniformly chosen rows of every group label."""
    order = np.lexsort((rng.random(len(group)), group))
    first = np.searchsorted(group[order], group[order], side="left")
    return np.sort(order[np.arange(len(order)) - first < k])


def test_universes(g: Graph, test_ood: Items) -> tuple[np.ndarray, np.ndarray]:
    """Sorted fact ids of the OOD hop-1 and hop-2 facts used by the OOD test queries."""
    return np.unique(g.fact_of[test_ood.h, test_ood.r1]), np.unique(g.fact_of[test_ood.b, test_ood.r2])


def inject_hop1(g: Graph, facts: np.ndarray, k: int, rng: np.random.Generator) -> Items:
    """For each OOD fact (h, r1, b): up to k compositions with ID second hops (b, r2, t)."""
    deg = g.out_degree
    first = np.repeat(facts, deg)
    second = g.tail[first] * deg + np.tile(np.arange(deg), len(facts))
    keep = ~g.ood[second]
    first, second = first[keep], second[keep]
    pick = sample_per_group(first, k, rng)
    first, second = first[pick], second[pick]
    return Items(g.head[first], g.rel[first], g.rel[second], g.tail[second], g.tail[first])


def inject_hop2(g: Graph, facts: np.ndarray, k: int, rng: np.random.Generator) -> Items:
    """For each OOD fact (b, r2, t): up to k compositions with ID first hops (h, r1, b)."""
    id_facts = np.flatnonzero(~g.ood)
    by_tail = id_facts[np.argsort(g.tail[id_facts], kind="stable")]
    counts = np.bincount(g.tail[id_facts], minlength=g.entities)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    bridge = g.head[facts]
    n = counts[bridge]
    second = np.repeat(facts, n)
    offset = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    first = by_tail[np.repeat(starts[bridge], n) + offset]
    pick = sample_per_group(second, k, rng)
    first, second = first[pick], second[pick]
    return Items(g.head[first], g.rel[first], g.rel[second], g.tail[second], g.tail[first])


def augment(g: Graph, test_ood: Items, cfg: DataConfig) -> tuple[Items, Items]:
    """The (hop-1, hop-2) compositions that `cfg.regime` adds to the training set."""
    ratio1, k1, ratio2, k2 = regime_params(cfg.regime, cfg.aug_k)
    universe1, universe2 = test_universes(g, test_ood)
    out = []
    for hop, (ratio, k, universe, inject) in enumerate(
            [(ratio1, k1, universe1, inject_hop1), (ratio2, k2, universe2, inject_hop2)], start=1):
        if ratio <= 0 or k <= 0:
            out.append(Items.empty())
            continue
        rng = np.random.default_rng([cfg.seed, AUGMENT_STREAM, hop])
        chosen = np.sort(rng.choice(universe, size=round_half_up(ratio * len(universe)), replace=False))
        out.append(inject(g, chosen, k, rng))
    return out[0], out[1]
