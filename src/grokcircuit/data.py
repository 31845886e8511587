"""The two-hop knowledge graph (paper §2; reference code §1.1-1.3).

`grokcircuit.dataset.make_dataset(cfg)` builds entities, relations and atomic facts (h, r) -> t, splits the facts
into ID and OOD at the fact level, enumerates every two-hop chain (h, r1, r2) -> t through its bridge b,
downsamples the training compositions to phi times the ID atomic count, adds the regime's augmentation
(`augment.py`) and draws the probe sets. Everything is numpy and vectorized; one seed drives everything
through independent streams, so the base graph is the same in every regime.

Deviations from the reference code:
- Seeded (the reference notebook is not) and one base dataset for every regime (it reseeds mid-way).
- Counts round half up (`int(x + 0.5)`), not Python's banker's rounding.
As in the reference, the `train_inferred` probe is sampled from the augmented training compositions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import ConfigError, DataConfig

PROBES = ("id_atomic", "ood_atomic", "train_inferred", "test_inferred_iid", "test_inferred_ood")
SPECIALS = ("<mask>", "<sep>", "<a>", "</a>", "<q>", "</q>")

# independent random streams under one seed
_GRAPH, _SPLIT, _PATHS, _DOWNSAMPLE, AUGMENT_STREAM, _PROBES, _TRAIN_PROBE = range(7)


def stream(seed: int, name: int) -> np.random.Generator:
    return np.random.default_rng([seed, name])


def round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


@dataclass
class Items:
    """A set of atomic (r2 = b = -1) or two-hop queries as parallel int64 arrays."""

    h: np.ndarray
    r1: np.ndarray
    r2: np.ndarray
    t: np.ndarray
    b: np.ndarray

    def __len__(self) -> int:
        return len(self.h)

    @property
    def is_inferred(self) -> np.ndarray:
        return self.r2 >= 0

    def take(self, idx: np.ndarray) -> "Items":
        return Items(self.h[idx], self.r1[idx], self.r2[idx], self.t[idx], self.b[idx])

    def keys(self) -> np.ndarray:
        """One int64 key per query: (h, r1, r2) packed; atomics use r2 = -1."""
        return (self.h * 1_000_003 + self.r1) * 1_000_003 + (self.r2 + 1)

    @staticmethod
    def concat(parts: list["Items"]) -> "Items":
        return Items(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("h", "r1", "r2", "t", "b")))

    @staticmethod
    def atomic(h: np.ndarray, r: np.ndarray, t: np.ndarray) -> "Items":
        neg = np.full(len(h), -1, dtype=np.int64)
        return Items(h.astype(np.int64), r.astype(np.int64), neg, t.astype(np.int64), neg.copy())

    @staticmethod
    def empty() -> "Items":
        z = np.zeros(0, dtype=np.int64)
        return Items(z, z, z, z, z)


@dataclass
class Graph:
    """Atomic facts as arrays indexed by fact id f = h * out_degree + j, plus dense (E, R) lookups."""

    entities: int
    relations: int
    head: np.ndarray  # (F,)
    rel: np.ndarray  # (F,)
    tail: np.ndarray  # (F,)
    ood: np.ndarray  # (F,) bool: fact-level OOD split
    tail_of: np.ndarray  # (E, R) tail entity, -1 where (h, r) has no fact
    fact_of: np.ndarray  # (E, R) fact id, -1 where none

    @property
    def out_degree(self) -> int:
        return len(self.head) // self.entities

    def facts(self, idx: np.ndarray | None = None) -> Items:
        idx = np.arange(len(self.head)) if idx is None else idx
        return Items.atomic(self.head[idx], self.rel[idx], self.tail[idx])


@dataclass
class KGDataset:
    """Training items and probe sets of one regime, plus the graph they come from."""

    cfg: DataConfig
    graph: Graph
    train: Items  # all atomic facts, then downsampled inferred, then augmented inferred
    probes: dict[str, Items]
    test_ood_all: Items  # every both-hops-OOD query (the probe may be a sample)
    test_iid_all: Items
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        return vocab_size(self.cfg.entities, self.cfg.relations)

    @property
    def augmented_share(self) -> float:
        """The training rows the regime's augmentation adds, as a share of the rows without it (about 3% in the
        paper's second-hop-full)."""
        added = self.counts["augmented_hop1"] + self.counts["augmented_hop2"]
        return added / (self.counts["train_items"] - added)


def vocab_size(entities: int, relations: int) -> int:
    """PAD (0), entities, relations, then the six special tokens of the reference vocabulary."""
    return 1 + entities + relations + len(SPECIALS)


def make_graph(cfg: DataConfig) -> Graph:
    """k distinct out-relations per head, uniform tails, and a fact-level OOD split."""
    E, R, k = cfg.entities, cfg.relations, cfg.out_degree
    rng = stream(cfg.seed, _GRAPH)
    rel = np.argsort(rng.random((E, R)), axis=1)[:, :k].astype(np.int64).ravel()
    head = np.repeat(np.arange(E, dtype=np.int64), k)
    tail = rng.integers(0, E, size=E * k, dtype=np.int64)
    n_ood = round_half_up(cfg.ood_fraction * E * k)
    ood = np.zeros(E * k, dtype=bool)
    ood[stream(cfg.seed, _SPLIT).choice(E * k, size=n_ood, replace=False)] = True
    tail_of = np.full((E, R), -1, dtype=np.int64)
    fact_of = np.full((E, R), -1, dtype=np.int64)
    tail_of[head, rel] = tail
    fact_of[head, rel] = np.arange(E * k)
    return Graph(E, R, head, rel, tail, ood, tail_of, fact_of)


def two_hop_paths(g: Graph) -> tuple[np.ndarray, np.ndarray]:
    """Every chain as (hop-1 fact id, hop-2 fact id): hop 2 starts at the tail of hop 1."""
    k = g.out_degree
    f1 = np.repeat(np.arange(len(g.head)), k)
    f2 = g.tail[f1] * k + np.tile(np.arange(k), len(g.head))
    return f1, f2


def paths_to_items(g: Graph, f1: np.ndarray, f2: np.ndarray) -> Items:
    return Items(g.head[f1], g.rel[f1], g.rel[f2], g.tail[f2], g.tail[f1])


def choose(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Indices of a random subset of `size` out of n (all of them, shuffled, when size >= n)."""
    return rng.permutation(n)[: min(size, n)]


def split_paths(cfg: DataConfig, g: Graph) -> tuple[Items, Items, Items]:
    """(train pool, test_inferred_iid, test_inferred_ood); chains with exactly one OOD hop are dropped."""
    f1, f2 = two_hop_paths(g)
    o1, o2 = g.ood[f1], g.ood[f2]
    both_id = ~o1 & ~o2
    to_test = stream(cfg.seed, _PATHS).random(len(f1)) < cfg.id_test_prob
    pool = both_id & ~to_test
    iid = both_id & to_test
    ood = o1 & o2
    return (paths_to_items(g, f1[pool], f2[pool]), paths_to_items(g, f1[iid], f2[iid]),
            paths_to_items(g, f1[ood], f2[ood]))


def downsample_inferred(cfg: DataConfig, g: Graph, pool: Items) -> Items:
    """round(phi * |ID atomic|) compositions drawn from the ID-ID pool."""
    n_id_atomic = int((~g.ood).sum())
    want = round_half_up(cfg.phi * n_id_atomic)
    if want > len(pool):
        raise ConfigError(f"invalid data.phi={cfg.phi}: this graph has only {len(pool)} ID-ID chains, "
                         f"phi <= {len(pool) / n_id_atomic:.3f}")
    idx = stream(cfg.seed, _DOWNSAMPLE).choice(len(pool), size=want, replace=False)
    return pool.take(np.sort(idx))


def token_names(entities: int, relations: int) -> list[str]:
    """Token id -> string, in the reference vocabulary's order after PAD."""
    return (["<pad>"] + [f"<e_{i}>" for i in range(entities)] + [f"<r_{j}>" for j in range(relations)]
            + list(SPECIALS))
