"""New knowledge: the finetuning set of Finding 3 (paper §5; reference code §2).

`build_finetune_set(ds, cfg)` adds `new_atomic` new facts on unused (head, relation) pairs of the existing
graph, built as chained pairs (a, r1, b), (b, r2, t) so new->new chains exist, keeps a retained slice of the
old training data, and builds the test categories:
- `atomic_new`: the new facts;
- `new_old`: new first hop, old ID second hop;  `old_new`: old ID first hop, new second hop;
- `new_new`: both hops new.
No composition involving a new fact is trained: transfer is tested zero-shot.

Keep policies: "code" keeps `keep_old` items in total, walking shuffled atomic keys and adding each with every
training composition that uses it (closed under dependency, as the reference code); "paper" keeps `keep_old`
atomic facts plus every training composition both of whose hops are kept (the paper's wording).

Deviation: the mixed categories use every old ID fact, not only those in the id_atomic probe, so they hold
hundreds of queries instead of the reference's 16-36.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import FinetuneConfig
from .data import PROBES, Items, KGDataset, choose

CATEGORIES = ("atomic_new", "new_old", "old_new", "new_new")


@dataclass
class FinetuneSet:
    train: Items  # kept old items, then the new atomic facts
    new_facts: Items
    kept_atomic: np.ndarray  # fact ids of the kept old atomic facts
    kept_inferred: Items
    probes: dict[str, Items]  # the four categories, then the old probes (forgetting)
    counts: dict[str, int]


def compose(first: Items, second: Items) -> Items:
    """Every two-hop query whose first hop is in `first` and second hop in `second` (atomic sets)."""
    order = np.argsort(second.h, kind="stable")
    heads = second.h[order]
    lo = np.searchsorted(heads, first.t, side="left")
    n = np.searchsorted(heads, first.t, side="right") - lo
    i1 = np.repeat(np.arange(len(first)), n)
    i2 = order[np.repeat(lo, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)]
    return Items(first.h[i1], first.r1[i1], second.r1[i2], second.t[i2], first.t[i1])


def _dependents(ds: KGDataset, inferred: Items) -> tuple[np.ndarray, np.ndarray]:
    """CSR (starts, items) from atomic fact id to the training compositions using it as either hop."""
    g = ds.graph
    key1 = g.fact_of[inferred.h, inferred.r1]
    key2 = g.fact_of[inferred.b, inferred.r2]
    idx = np.arange(len(inferred))
    pairs = np.unique(np.stack([np.concatenate([key1, key2]), np.concatenate([idx, idx])], 1), axis=0)
    starts = np.searchsorted(pairs[:, 0], np.arange(len(g.head) + 1))
    return starts, pairs[:, 1]


def keep_code(ds: KGDataset, inferred: Items, keep: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Greedy closure under dependency to exactly `keep` items (atomic fact ids, inferred indices)."""
    starts, items = _dependents(ds, inferred)
    n_facts = len(starts) - 1
    taken = np.zeros(len(inferred), dtype=bool)
    chosen: list[int] = []
    total = 0

    def cost(key: int) -> tuple[int, np.ndarray]:
        dep = items[starts[key]:starts[key + 1]]
        new = dep[~taken[dep]]
        return 1 + len(new), new

    def walk(keys: np.ndarray) -> None:
        nonlocal total
        for key in keys:
            if total == keep:
                return
            c, new = cost(key)
            if total + c <= keep:
                chosen.append(int(key))
                taken[new] = True
                total += c

    keys = rng.permutation(n_facts)
    walk(keys)  # first pass: shuffled order
    if total < keep:  # second pass: cheapest remaining keys first
        rest = np.setdiff1d(keys, chosen)
        walk(rest[np.argsort([cost(k)[0] for k in rest], kind="stable")])
    return np.sort(np.array(chosen, dtype=np.int64)), np.flatnonzero(taken)


def keep_paper(ds: KGDataset, inferred: Items, keep: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`keep` random atomic facts plus every training composition whose both hops are among them."""
    g = ds.graph
    facts = np.sort(rng.choice(len(g.head), size=min(keep, len(g.head)), replace=False))
    kept = np.zeros(len(g.head), dtype=bool)
    kept[facts] = True
    both = kept[g.fact_of[inferred.h, inferred.r1]] & kept[g.fact_of[inferred.b, inferred.r2]]
    return facts, np.flatnonzero(both)


def new_atomic_facts(ds: KGDataset, n: int, rng: np.random.Generator) -> Items:
    """n new facts on unused (head, relation) pairs: n // 2 chained pairs, then single facts."""
    E = ds.graph.entities
    unused = ds.graph.tail_of < 0
    if n > unused.sum():
        raise ValueError(f"invalid finetune.new_atomic={n}: the graph has only {int(unused.sum())} unused "
                         "(head, relation) pairs")
    facts: list[tuple[int, int, int]] = []

    def draw_relation(h: int) -> int:
        """A random relation still unused at head h (the caller checks there is one)."""
        r = int(rng.choice(np.flatnonzero(unused[h])))
        unused[h, r] = False  # marked at once, so a == b cannot give one (h, r) two tails
        return r

    for _ in range(n // 2):
        for _attempt in range(100):
            a, b, t = (int(x) for x in rng.integers(0, E, size=3))
            if unused[a].any() and unused[b].sum() > (a == b):
                break
        else:
            break
        r1 = draw_relation(a)
        r2 = draw_relation(b)
        facts += [(a, r1, b), (b, r2, t)]
    while len(facts) < n:
        heads = np.flatnonzero(unused.any(axis=1))
        h = int(rng.choice(heads))
        facts.append((h, draw_relation(h), int(rng.integers(0, E))))
    arr = np.array(facts, dtype=np.int64).reshape(-1, 3)
    return Items.atomic(arr[:, 0], arr[:, 1], arr[:, 2])


def build_finetune_set(ds: KGDataset, cfg: FinetuneConfig) -> FinetuneSet:
    """New facts, retained old items and the four test categories."""
    cfg.validate()
    rng_keep, rng_new, rng_probe = (np.random.default_rng([cfg.seed, 11, i]) for i in range(3))
    is_inf = ds.train.is_inferred
    inferred = ds.train.take(np.flatnonzero(is_inf))
    if cfg.keep_old > len(ds.train):
        raise ValueError(f"invalid finetune.keep_old={cfg.keep_old}: the base training set has {len(ds.train)} items")
    keep = keep_code if cfg.keep_policy == "code" else keep_paper
    kept_atomic, kept_idx = keep(ds, inferred, cfg.keep_old, rng_keep)
    kept_inferred = inferred.take(kept_idx)
    new = new_atomic_facts(ds, cfg.new_atomic, rng_new)  # the same new facts under either keep policy
    old_id = ds.graph.facts(np.flatnonzero(~ds.graph.ood))
    two_hop = {"new_old": compose(new, old_id), "old_new": compose(old_id, new), "new_new": compose(new, new)}
    probes = {"atomic_new": new}
    for name, items in two_hop.items():
        probes[name] = items.take(np.sort(choose(rng_probe, len(items), cfg.mix_cap)))
    for name in PROBES:  # the whole old test set, as the reference: forgetting is measurable
        probes[name] = ds.probes[name]
    train = Items.concat([ds.graph.facts(kept_atomic), kept_inferred, new])
    counts = {"new_atomic": len(new), "kept_atomic": len(kept_atomic), "kept_inferred": len(kept_inferred),
              "train_items": len(train), **{f"all_{k}": len(v) for k, v in two_hop.items()},
              **{f"probe_{k}": len(probes[k]) for k in CATEGORIES}}
    return FinetuneSet(train, new, kept_atomic, kept_inferred, probes, counts)
