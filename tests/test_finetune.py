"""The finetuning set of Finding 3: new facts, retained old items (two keep policies) and test categories."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

import grokcircuit as gc
from conftest import isin
from grokcircuit.finetune import build_finetune_set

CPU_FT = gc.FinetuneConfig(new_atomic=200, keep_old=2000, mix_cap=1000)


def n_distinct(a: np.ndarray) -> int:
    s = np.sort(a)
    return int(len(s) and 1 + (s[1:] != s[:-1]).sum())


def same_items(a: gc.Items, b: gc.Items) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("h", "r1", "r2", "t", "b"))


class Lookup:
    """Old facts and new facts as dense (E, R) tables, built from the raw arrays."""

    def __init__(self, ds: gc.KGDataset, new: gc.Items):
        E, R = ds.cfg.entities, ds.cfg.relations
        g = ds.graph
        self.old_tail = np.full((E, R), -1, dtype=np.int64)
        self.old_tail[g.head, g.rel] = g.tail
        self.old_id = np.zeros((E, R), dtype=bool)
        self.old_id[g.head, g.rel] = ~g.ood
        self.new_tail = np.full((E, R), -1, dtype=np.int64)
        self.new_tail[new.h, new.r1] = new.t
        self.is_new = self.new_tail >= 0
        self.R = R


def fact_keys(h: np.ndarray, r: np.ndarray, R: int) -> np.ndarray:
    return h * R + r


def base_inferred(ds: gc.KGDataset) -> gc.Items:
    return ds.train.take(np.flatnonzero(ds.train.is_inferred))


@pytest.fixture(scope="module")
def cpu_ds():
    return gc.make_dataset(gc.preset("cpu").data)


@pytest.fixture(scope="module")
def cpu_code(cpu_ds):
    return build_finetune_set(cpu_ds, CPU_FT)


@pytest.fixture(scope="module")
def cpu_paper_policy(cpu_ds):
    # keep_old=2000 would be every atomic of the cpu graph; 1200 leaves something out
    return build_finetune_set(cpu_ds, replace(CPU_FT, keep_policy="paper", keep_old=1200))


# ----------------------------------------------------------------------------- new facts

@pytest.mark.parametrize("which", ["code", "paper"])
def test_new_facts_use_unused_pairs(which, cpu_ds, cpu_code, cpu_paper_policy):
    fs = cpu_code if which == "code" else cpu_paper_policy
    new, g = fs.new_facts, cpu_ds.graph
    E, R = cpu_ds.cfg.entities, cpu_ds.cfg.relations
    assert len(new) == 200
    assert (new.r2 == -1).all()
    assert ((0 <= new.h) & (new.h < E) & (0 <= new.t) & (new.t < E)).all()
    assert ((0 <= new.r1) & (new.r1 < R)).all()
    new_keys = fact_keys(new.h, new.r1, R)
    assert n_distinct(new_keys) == len(new), "some (h, r) twice among the new facts"
    assert not isin(new_keys, fact_keys(g.head, g.rel, R)).any(), "a new fact collides with an old (h, r)"
    # new facts are in the finetune training set, after the kept old items
    assert same_items(fs.train.take(np.arange(len(fs.train) - len(new), len(fs.train))), new)
    assert same_items(fs.probes["atomic_new"], new)


def test_new_facts_contain_chained_pairs(cpu_code):
    new = cpu_code.new_facts
    # pairs (i, j) with tail(i) = head(j): at least new_atomic // 2 of them
    heads = np.sort(new.h)
    chains = np.searchsorted(heads, new.t, side="right") - np.searchsorted(heads, new.t, side="left")
    assert chains.sum() >= len(new) // 2
    assert cpu_code.counts["all_new_new"] == chains.sum()
    assert len(cpu_code.probes["new_new"]) > 0


def test_odd_number_of_new_facts(cpu_ds):
    fs = build_finetune_set(cpu_ds, replace(CPU_FT, new_atomic=7, keep_old=50))
    assert len(fs.new_facts) == 7
    assert n_distinct(fact_keys(fs.new_facts.h, fs.new_facts.r1, cpu_ds.cfg.relations)) == 7


def test_too_many_new_facts_raises(cpu_ds):
    unused = cpu_ds.cfg.entities * (cpu_ds.cfg.relations - cpu_ds.cfg.out_degree)  # e.g. 60 * 4 = 240
    fs = build_finetune_set(cpu_ds, replace(CPU_FT, new_atomic=unused, keep_old=10))  # every free pair: fine
    assert len(fs.new_facts) == unused
    with pytest.raises(ValueError, match=rf"new_atomic={unused + 1}.*{unused} unused"):
        build_finetune_set(cpu_ds, replace(CPU_FT, new_atomic=unused + 1))
    with pytest.raises(gc.ConfigError, match="finetune.new_atomic"):
        gc.preset("cpu", finetune=True, **{"finetune.new_atomic": str(unused + 1)})


def test_bad_finetune_config(cpu_ds):
    with pytest.raises(ValueError, match="keep_old"):
        build_finetune_set(cpu_ds, replace(CPU_FT, keep_old=len(cpu_ds.train) + 1))
    for kwargs, name in ((dict(keep_policy="all"), "keep_policy"), (dict(new_atomic=1), "new_atomic"),
                         (dict(keep_old=-1), "keep_old"), (dict(mix_cap=0), "mix_cap")):
        with pytest.raises(gc.ConfigError, match=name):
            build_finetune_set(cpu_ds, replace(CPU_FT, **kwargs))


# ----------------------------------------------------------------------------- keep policies

def check_code_policy(ds: gc.KGDataset, fs, keep_old: int) -> None:
    R = ds.cfg.relations
    inferred = base_inferred(ds)
    assert len(fs.kept_atomic) + len(fs.kept_inferred) == keep_old
    assert len(fs.train) == keep_old + len(fs.new_facts)
    assert n_distinct(fs.kept_atomic) == len(fs.kept_atomic)
    kept_inf_keys = fs.kept_inferred.keys()
    assert n_distinct(kept_inf_keys) == len(kept_inf_keys)
    assert isin(kept_inf_keys, inferred.keys()).all(), "a kept composition is not an old training item"
    # closure: every training composition that uses a kept atomic fact as either hop is kept
    g = ds.graph
    kept_fact_keys = fact_keys(g.head[fs.kept_atomic], g.rel[fs.kept_atomic], R)
    uses = isin(fact_keys(inferred.h, inferred.r1, R), kept_fact_keys) | \
        isin(fact_keys(inferred.b, inferred.r2, R), kept_fact_keys)
    assert uses.sum() > 0
    assert isin(inferred.keys()[uses], kept_inf_keys).all(), "closure violated"
    # the train set holds exactly those old atomics and compositions, then the new facts
    old = fs.train.take(np.arange(keep_old))
    assert np.array_equal(np.sort(old.keys()),
                          np.sort(np.concatenate([g.facts(fs.kept_atomic).keys(), kept_inf_keys])))


def test_code_policy_exact_count_and_closure(cpu_ds, cpu_code):
    check_code_policy(cpu_ds, cpu_code, 2000)
    # the closure pulls in compositions: most kept items are compositions, not atomics
    assert len(cpu_code.kept_inferred) > len(cpu_code.kept_atomic)


def test_paper_policy_keeps_atomics_and_their_compositions(cpu_ds, cpu_paper_policy):
    fs, ds = cpu_paper_policy, cpu_ds
    R, g = ds.cfg.relations, ds.graph
    inferred = base_inferred(ds)
    assert len(fs.kept_atomic) == 1200 and n_distinct(fs.kept_atomic) == 1200
    kept_keys = fact_keys(g.head[fs.kept_atomic], g.rel[fs.kept_atomic], R)
    k = fs.kept_inferred
    assert (isin(fact_keys(k.h, k.r1, R), kept_keys) & isin(fact_keys(k.b, k.r2, R), kept_keys)).all()
    both = isin(fact_keys(inferred.h, inferred.r1, R), kept_keys) & \
        isin(fact_keys(inferred.b, inferred.r2, R), kept_keys)
    assert both.sum() == len(k) > 0
    assert np.array_equal(np.sort(inferred.keys()[both]), np.sort(k.keys()))
    assert len(fs.train) == 1200 + len(k) + len(fs.new_facts)


def test_paper_policy_keeping_everything(cpu_ds):
    n_atomic = len(cpu_ds.graph.head)
    fs = build_finetune_set(cpu_ds, replace(CPU_FT, keep_policy="paper", keep_old=n_atomic))  # all atomics
    assert len(fs.kept_atomic) == n_atomic
    assert len(fs.kept_inferred) == int(cpu_ds.train.is_inferred.sum())


# ----------------------------------------------------------------------------- test categories

def check_categories(ds: gc.KGDataset, fs, at_least: int) -> None:
    look = Lookup(ds, fs.new_facts)
    expected = {"new_old": (True, False), "old_new": (False, True), "new_new": (True, True)}
    train_keys = fs.train.keys()
    for name, (new1, new2) in expected.items():
        q = fs.probes[name]
        assert len(q) >= at_least, (name, len(q))
        assert (q.r2 >= 0).all()
        assert n_distinct(q.keys()) == len(q), name
        for hop, is_new, h, r, tail in ((1, new1, q.h, q.r1, q.b), (2, new2, q.b, q.r2, q.t)):
            if is_new:
                assert look.is_new[h, r].all(), (name, hop)
                assert np.array_equal(look.new_tail[h, r], tail), (name, hop)
            else:
                assert (~look.is_new[h, r] & look.old_id[h, r]).all(), (name, hop, "not an old ID fact")
                assert np.array_equal(look.old_tail[h, r], tail), (name, hop)
        # transfer is zero-shot: no such composition is trained, before or during finetuning
        assert not isin(q.keys(), train_keys).any()
        assert not isin(q.keys(), ds.train.keys()).any()
    # no trained composition involves a new fact
    inf = fs.train.take(np.flatnonzero(fs.train.is_inferred))
    assert not (look.is_new[inf.h, inf.r1] | look.is_new[inf.b, inf.r2]).any()
    assert list(fs.probes)[:4] == list(gc.CATEGORIES)
    for name in ("id_atomic", "ood_atomic", "test_inferred_iid", "test_inferred_ood"):
        assert same_items(fs.probes[name], ds.probes[name])


def test_categories_cpu(cpu_ds, cpu_code, cpu_paper_policy):
    for fs in (cpu_code, cpu_paper_policy):
        check_categories(cpu_ds, fs, 200)
        for name in ("new_old", "old_new"):
            assert len(fs.probes[name]) == 1000  # capped at mix_cap
        assert fs.counts["all_new_old"] > 1000


def test_mixed_categories_are_complete(cpu_ds, cpu_code):
    """all_new_old counts every (new fact, old ID fact) chain, computed here by brute force."""
    look = Lookup(cpu_ds, cpu_code.new_facts)
    new = cpu_code.new_facts
    n_old_id_from = look.old_id.sum(axis=1)  # old ID facts per head
    n_old_id_into = np.bincount(look.old_tail[look.old_id], minlength=cpu_ds.cfg.entities)
    assert cpu_code.counts["all_new_old"] == n_old_id_from[new.t].sum()
    assert cpu_code.counts["all_old_new"] == n_old_id_into[new.h].sum()


def test_same_seed_deterministic_other_seed_different(cpu_ds, cpu_code):
    again = build_finetune_set(cpu_ds, CPU_FT)
    assert same_items(again.train, cpu_code.train)
    for name in cpu_code.probes:
        assert same_items(again.probes[name], cpu_code.probes[name])
    other = build_finetune_set(cpu_ds, replace(CPU_FT, seed=1))
    assert not np.array_equal(other.new_facts.keys(), cpu_code.new_facts.keys())
    assert not np.array_equal(other.kept_atomic, cpu_code.kept_atomic)


# ----------------------------------------------------------------------------- paper size

@pytest.fixture(scope="module")
def paper_ds():
    return gc.make_dataset(gc.DataConfig())


def test_paper_size_code_policy(paper_ds):
    t0 = time.perf_counter()
    fs = build_finetune_set(paper_ds, gc.FinetuneConfig())
    print(f"paper-size finetuning set built in {time.perf_counter() - t0:.2f} s")
    assert len(fs.train) == 10_000
    assert len(fs.kept_atomic) + len(fs.kept_inferred) == 8_000
    assert len(fs.new_facts) == 2_000
    assert fs.counts["train_items"] == 10_000
    check_code_policy(paper_ds, fs, 8000)
    check_categories(paper_ds, fs, 200)
    # the printed reference run: 220 atomics + 7780 inferred
    assert 150 <= len(fs.kept_atomic) <= 300
    assert len(fs.probes["new_new"]) >= 1000
