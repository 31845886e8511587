"""The two-hop knowledge graph, the five augmentation regimes and the `data` command.

The checks rebuild every lookup they need from the raw fact arrays (head, rel, tail, ood) instead of trusting
the package's own indexes, so a wrong generator shows up as a failed invariant.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import grokcircuit as gc
from conftest import isin
from grokcircuit.cli import main
from grokcircuit.data import round_half_up

PAPER = gc.DataConfig()  # 2000 entities, 200 relations, out-degree 20, phi 18
SMALL = gc.DataConfig(entities=200, relations=20, out_degree=10, ood_fraction=0.1, phi=5.0, id_test_prob=0.05,
                      probe_size=300, aug_k=6)

# regime -> (hop-1 ratio, hop-1 k, hop-2 ratio, hop-2 k) as the paper defines them, for aug_k = k
EXPECTED_REGIMES = {
    "natural": lambda k: (0.0, 0, 0.0, 0),
    "both_hop_full": lambda k: (1.0, k, 1.0, k),
    "both_hop_half": lambda k: (0.5, k // 2, 0.5, k // 2),
    "first_hop_full": lambda k: (1.0, k, 0.0, 0),
    "second_hop_full": lambda k: (0.0, 0, 1.0, k),
}


# ----------------------------------------------------------------------------- helpers

class Facts:
    """Independent dense lookups built from the raw fact arrays of a dataset's graph."""

    def __init__(self, ds: gc.KGDataset):
        g = ds.graph
        E, R = ds.cfg.entities, ds.cfg.relations
        self.E, self.R = E, R
        self.tail = np.full((E, R), -1, dtype=np.int64)
        self.tail[g.head, g.rel] = g.tail
        self.is_ood = np.zeros((E, R), dtype=bool)
        self.is_ood[g.head, g.rel] = g.ood
        self.head, self.rel, self.tail_arr, self.ood = g.head, g.rel, g.tail, g.ood

    def hop_ood(self, items: gc.Items) -> tuple[np.ndarray, np.ndarray]:
        return self.is_ood[items.h, items.r1], self.is_ood[items.b, items.r2]


def parts(ds: gc.KGDataset) -> dict[str, gc.Items]:
    """The training set cut into its documented blocks: atomics, base compositions, hop-1, hop-2 additions."""
    c = ds.counts
    bounds = np.cumsum([0, c["atomic"], c["train_inferred"], c["augmented_hop1"], c["augmented_hop2"]])
    assert bounds[-1] == len(ds.train)
    names = ("atomic", "base", "hop1", "hop2")
    return {n: ds.train.take(np.arange(bounds[i], bounds[i + 1])) for i, n in enumerate(names)}


def distinct(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.sort based: np.unique is much slower on large int64 arrays here)."""
    s = np.sort(a)
    return s[np.concatenate([[True], s[1:] != s[:-1]])] if len(s) else s


def same_items(a: gc.Items, b: gc.Items) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("h", "r1", "r2", "t", "b"))


def build(cfg: gc.DataConfig, **changes) -> gc.KGDataset:
    from dataclasses import replace
    return gc.make_dataset(replace(cfg, **changes))


@pytest.fixture(scope="module")
def paper():
    """All five regimes at the paper's size."""
    return {regime: build(PAPER, regime=regime) for regime in gc.REGIMES}


@pytest.fixture(scope="module")
def small():
    return {regime: build(SMALL, regime=regime) for regime in gc.REGIMES}


@pytest.fixture(params=["paper", "small"])
def datasets(request, paper, small):
    return paper if request.param == "paper" else small


# ----------------------------------------------------------------------------- the graph

@pytest.mark.parametrize("size", ["paper", "small"])
def test_atomic_facts_are_a_function_with_out_degree_relations_per_head(size, paper, small):
    ds = (paper if size == "paper" else small)["natural"]
    cfg, g = ds.cfg, ds.graph
    assert len(g.head) == cfg.entities * cfg.out_degree
    keys = g.head * cfg.relations + g.rel
    assert len(distinct(keys)) == len(keys), "some (h, r) has two tails"
    # every head has exactly out_degree distinct relations
    per_head = np.bincount(g.head, minlength=cfg.entities)
    assert (per_head == cfg.out_degree).all()
    assert ((0 <= g.rel) & (g.rel < cfg.relations)).all()
    assert ((0 <= g.tail) & (g.tail < cfg.entities)).all()
    # the OOD split is fact-level with round_half_up(fraction * facts) facts
    assert g.ood.sum() == round_half_up(cfg.ood_fraction * len(g.head))
    # the training set starts with every atomic fact exactly once
    atoms = parts(ds)["atomic"]
    assert (atoms.r2 == -1).all() and (atoms.b == -1).all()
    assert np.array_equal(np.sort(atoms.keys()), np.sort(g.facts().keys()))
    f = Facts(ds)
    assert np.array_equal(f.tail[atoms.h, atoms.r1], atoms.t)
    assert (ds.train.take(np.arange(len(atoms), len(ds.train))).r2 >= 0).all()


def test_tails_are_spread_over_entities(paper):
    """Tails are uniform over all entities (self-loops allowed), not e.g. restricted to a range."""
    g = paper["natural"].graph
    counts = np.bincount(g.tail, minlength=2000)
    assert (counts > 0).mean() > 0.99  # Poisson(20): practically every entity is some fact's tail
    assert abs(counts.mean() - 20) < 1e-9 and counts.std() < 2 * np.sqrt(20)


def test_relations_per_head_are_random(paper):
    g = paper["natural"].graph
    rels = g.rel.reshape(2000, 20)
    assert len({tuple(sorted(r)) for r in rels[:200]}) > 190
    assert np.bincount(g.rel, minlength=200).min() > 100  # expected 200 uses per relation


# ----------------------------------------------------------------------------- compositions and tests

def test_hop_status_of_tests_and_training_compositions(datasets):
    ds = datasets["natural"]
    f = Facts(ds)
    o1, o2 = f.hop_ood(ds.test_ood_all)
    assert len(ds.test_ood_all) > 0 and (o1 & o2).all(), "an OOD test query has an ID hop"
    o1, o2 = f.hop_ood(ds.test_iid_all)
    assert len(ds.test_iid_all) > 0 and not (o1 | o2).any(), "an ID test query has an OOD hop"
    base = parts(ds)["base"]
    o1, o2 = f.hop_ood(base)
    assert len(base) > 0 and not (o1 | o2).any(), "a training composition has an OOD hop"
    for name in ("test_inferred_iid", "test_inferred_ood"):
        o1, o2 = f.hop_ood(ds.probes[name])
        assert (o1 & o2).all() if name.endswith("ood") else not (o1 | o2).any()


def test_test_sets_are_complete(datasets):
    """Every both-OOD path is an OOD test query; ID-ID paths split into the iid test set and the train pool."""
    ds = datasets["natural"]
    f = Facts(ds)
    ood_heads = np.bincount(f.head[f.ood], minlength=f.E)
    id_heads = np.bincount(f.head[~f.ood], minlength=f.E)
    n_both_ood = int(ood_heads[f.tail_arr[f.ood]].sum())
    n_both_id = int(id_heads[f.tail_arr[~f.ood]].sum())
    assert len(ds.test_ood_all) == n_both_ood
    assert len(distinct(ds.test_ood_all.keys())) == n_both_ood
    assert len(ds.test_iid_all) + ds.counts["train_pool"] == n_both_id
    p, n = ds.cfg.id_test_prob, n_both_id
    assert abs(len(ds.test_iid_all) - p * n) < 5 * np.sqrt(n * p * (1 - p)) + 1
    assert ds.counts["train_inferred"] == round_half_up(ds.cfg.phi * (~f.ood).sum())


def test_bridges_are_consistent(datasets):
    """tail(h, r1) = b and tail(b, r2) = t for every two-hop item, train and test, in every regime."""
    for regime, ds in datasets.items():
        f = Facts(ds)
        sets = {"train": ds.train.take(np.flatnonzero(ds.train.is_inferred)), "ood": ds.test_ood_all,
                "iid": ds.test_iid_all, **{f"probe {k}": v for k, v in ds.probes.items() if "inferred" in k}}
        for name, items in sets.items():
            assert len(items) > 0, (regime, name)
            assert np.array_equal(f.tail[items.h, items.r1], items.b), (regime, name, "hop 1")
            assert np.array_equal(f.tail[items.b, items.r2], items.t), (regime, name, "hop 2")
        for name in ("id_atomic", "ood_atomic"):
            items = ds.probes[name]
            assert np.array_equal(f.tail[items.h, items.r1], items.t), (regime, name)


def test_no_test_query_in_training_and_no_duplicates(datasets):
    for regime, ds in datasets.items():
        train_keys = ds.train.keys()
        assert len(distinct(train_keys)) == len(train_keys), f"{regime}: duplicate training items"
        for name, items in (("ood", ds.test_ood_all), ("iid", ds.test_iid_all),
                            ("probe ood", ds.probes["test_inferred_ood"]),
                            ("probe iid", ds.probes["test_inferred_iid"])):
            assert not isin(items.keys(), train_keys).any(), f"{regime}: a {name} test query is trained"
        assert not isin(ds.test_ood_all.keys(), ds.test_iid_all.keys()).any()


def test_keys_identify_queries():
    """Items.keys() separates atomic and two-hop queries and different (h, r1, r2)."""
    items = gc.Items(np.array([1, 1, 1, 2]), np.array([3, 3, 4, 3]), np.array([-1, 0, 0, -1]),
                     np.array([5, 5, 5, 5]), np.array([-1, 7, 7, -1]))
    assert len(distinct(items.keys())) == 4


# ----------------------------------------------------------------------------- augmentation

@pytest.mark.parametrize("regime", gc.REGIMES)
def test_augmented_items_have_exactly_one_ood_hop(regime, paper, small):
    for ds in (paper[regime], small[regime]):
        f = Facts(ds)
        p = parts(ds)
        ratio1, k1, ratio2, k2 = EXPECTED_REGIMES[regime](ds.cfg.aug_k)
        test_keys = np.concatenate([ds.test_ood_all.keys(), ds.test_iid_all.keys()])
        for hop, items, ratio, k in (("hop1", p["hop1"], ratio1, k1), ("hop2", p["hop2"], ratio2, k2)):
            o1, o2 = f.hop_ood(items)
            if ratio == 0:
                assert len(items) == 0, f"{regime} adds {hop} items"
                continue
            assert len(items) > 0
            if hop == "hop1":
                assert (o1 & ~o2).all(), f"{regime}: a hop-1 item without OOD hop 1 / ID hop 2"
            else:
                assert (~o1 & o2).all(), f"{regime}: a hop-2 item without ID hop 1 / OOD hop 2"
            assert not isin(items.keys(), test_keys).any()
        # the same split, found without the counts: items with exactly one OOD hop, by position
        inferred = ds.train.take(np.flatnonzero(ds.train.is_inferred))
        o1, o2 = f.hop_ood(inferred)
        assert (o1 & ~o2).sum() == ds.counts["augmented_hop1"]
        assert (~o1 & o2).sum() == ds.counts["augmented_hop2"]
        assert not (o1 & o2).any()


@pytest.mark.parametrize("regime", [r for r in gc.REGIMES if r != "natural"])
def test_augmentation_exposes_test_facts_with_up_to_k_compositions(regime, paper, small):
    """Exposed facts come from the OOD test queries, round_half_up(ratio * universe) of them, each composed
    with min(k, available) ID facts."""
    for ds in (paper[regime], small[regime]):
        f = Facts(ds)
        p = parts(ds)
        ratio1, k1, ratio2, k2 = EXPECTED_REGIMES[regime](ds.cfg.aug_k)
        test = ds.test_ood_all
        fact_id = lambda h, r: h * f.R + r  # noqa: E731
        id_out = np.bincount(f.head[~f.ood], minlength=f.E)  # ID continuations from an entity
        id_in = np.bincount(f.tail_arr[~f.ood], minlength=f.E)  # ID predecessors into an entity
        checks = (("hop1", ratio1, k1, fact_id(test.h, test.r1), p["hop1"], lambda it: (it.h, it.r1, it.b)),
                  ("hop2", ratio2, k2, fact_id(test.b, test.r2), p["hop2"], lambda it: (it.b, it.r2, it.b)))
        for hop, ratio, k, universe, items, pick in checks:
            if ratio == 0:
                continue
            universe = distinct(universe)
            h, r, b = pick(items)
            exposed, per_fact = np.unique(fact_id(h, r), return_counts=True)
            assert isin(exposed, universe).all(), f"{regime}: a {hop} fact outside the OOD test facts"
            assert len(exposed) == round_half_up(ratio * len(universe)), (regime, hop)
            available = (id_out if hop == "hop1" else id_in)[b]
            # one `available` per item; per fact they are all equal, take the first of each fact
            _, first = np.unique(fact_id(h, r), return_index=True)
            assert np.array_equal(per_fact, np.minimum(k, available[first])), (regime, hop)


def test_regime_count_relationships(paper, small):
    for ds_by_regime in (paper, small):
        c = {r: ds.counts for r, ds in ds_by_regime.items()}
        assert c["natural"]["augmented_hop1"] == c["natural"]["augmented_hop2"] == 0
        assert c["first_hop_full"]["augmented_hop1"] > 0 and c["first_hop_full"]["augmented_hop2"] == 0
        assert c["second_hop_full"]["augmented_hop1"] == 0 and c["second_hop_full"]["augmented_hop2"] > 0
        for hop in ("augmented_hop1", "augmented_hop2"):
            assert 0 < c["both_hop_half"][hop] < c["both_hop_full"][hop]
            assert c["both_hop_half"][hop] < c["both_hop_full"][hop] / 2  # half the facts, half the k
        for r, cr in c.items():
            assert cr["train_items"] == (cr["atomic"] + cr["train_inferred"] + cr["augmented_hop1"]
                                         + cr["augmented_hop2"])
        p_full, p_first, p_second = (parts(ds_by_regime[r]) for r in
                                     ("both_hop_full", "first_hop_full", "second_hop_full"))
        assert same_items(p_second["hop2"], p_full["hop2"])
        assert same_items(p_first["hop1"], p_full["hop1"])


def test_augmented_share_counts_the_rows_augmentation_adds(paper, small):
    assert paper["natural"].augmented_share == small["natural"].augmented_share == 0
    assert 0.02 < paper["second_hop_full"].augmented_share < 0.04  # the paper: second hop full adds about 3%
    c = small["both_hop_full"].counts
    added = c["augmented_hop1"] + c["augmented_hop2"]
    assert small["both_hop_full"].augmented_share == added / (c["atomic"] + c["train_inferred"])


def test_paper_regime_sizes_match_the_reference_run(paper):
    """Within a few percent of the printed reference counts (22,697 / 21,492 full; 5,724 / 5,778 half)."""
    c = {r: ds.counts for r, ds in paper.items()}
    for regime, hop, ref in (("both_hop_full", "augmented_hop1", 22697), ("both_hop_full", "augmented_hop2", 21492),
                             ("both_hop_half", "augmented_hop1", 5724), ("both_hop_half", "augmented_hop2", 5778)):
        assert abs(c[regime][hop] - ref) < 0.05 * ref, (regime, hop, c[regime][hop])


def test_base_data_identical_across_regimes(paper, small):
    for ds_by_regime in (paper, small):
        ref = ds_by_regime["natural"]
        ref_parts = parts(ref)
        for regime, ds in ds_by_regime.items():
            p = parts(ds)
            assert same_items(p["atomic"], ref_parts["atomic"]), regime
            assert same_items(p["base"], ref_parts["base"]), regime
            assert np.array_equal(ds.graph.ood, ref.graph.ood)
            assert same_items(ds.test_ood_all, ref.test_ood_all)
            assert same_items(ds.test_iid_all, ref.test_iid_all)
            for name in ("id_atomic", "ood_atomic", "test_inferred_iid", "test_inferred_ood"):
                assert same_items(ds.probes[name], ref.probes[name]), (regime, name)


def test_dashed_regime_names_are_accepted():
    a = build(SMALL, regime="both-hop-half")
    b = build(SMALL, regime="both_hop_half")
    assert same_items(a.train, b.train) and a.counts == b.counts


# ----------------------------------------------------------------------------- paper size

def test_paper_size_counts(paper):
    ds = paper["natural"]
    c = ds.counts
    assert c["atomic"] == 40_000 and len(ds.graph.head) == 40_000
    assert c["ood_atomic"] == 2_000 and ds.graph.ood.sum() == 2_000
    assert c["id_atomic"] == 38_000
    assert c["train_inferred"] == 684_000
    assert c["train_items"] == 724_000 and len(ds.train) == 724_000
    assert abs(c["test_inferred_ood"] - 2000) <= 150
    sizes = {name: len(items) for name, items in ds.probes.items()}
    assert sizes == {"id_atomic": 3000, "ood_atomic": 2000, "train_inferred": 3000, "test_inferred_iid": 3000,
                     "test_inferred_ood": c["test_inferred_ood"]}
    assert list(ds.probes) == list(gc.PROBES)
    assert ds.vocab_size == 1 + 2000 + 200 + 6


@pytest.mark.parametrize("regime", ["natural", "both_hop_full"])
def test_probes_are_distinct_and_well_typed(regime, paper):
    ds = paper[regime]
    f = Facts(ds)
    for name, items in ds.probes.items():
        assert len(distinct(items.keys())) == len(items), name
    assert not f.is_ood[ds.probes["id_atomic"].h, ds.probes["id_atomic"].r1].any()
    assert f.is_ood[ds.probes["ood_atomic"].h, ds.probes["ood_atomic"].r1].all()
    train_inferred_keys = ds.train.keys()[ds.train.is_inferred]
    assert isin(ds.probes["train_inferred"].keys(), train_inferred_keys).all()
    if regime != "natural":  # sampled from the augmented list, so it sees augmented items too
        o1, o2 = f.hop_ood(ds.probes["train_inferred"])
        assert (o1 | o2).any()


# ----------------------------------------------------------------------------- seeds and rounding

def test_same_seed_same_arrays_other_seed_different():
    cfg = gc.DataConfig(entities=200, relations=20, out_degree=10, ood_fraction=0.1, phi=5.0, id_test_prob=0.05,
                        probe_size=300, regime="both_hop_half", aug_k=6, seed=3)
    a, b = gc.make_dataset(cfg), gc.make_dataset(cfg)
    assert same_items(a.train, b.train)
    for name in gc.PROBES:
        assert same_items(a.probes[name], b.probes[name])
    assert np.array_equal(a.graph.tail, b.graph.tail) and np.array_equal(a.graph.ood, b.graph.ood)
    assert a.counts == b.counts
    c = build(cfg, seed=4)
    assert not np.array_equal(a.graph.tail, c.graph.tail)
    assert not np.array_equal(a.graph.ood, c.graph.ood)
    assert not np.array_equal(a.train.keys()[:2000], c.train.keys()[:2000])
    assert not isin(a.test_ood_all.keys(), c.test_ood_all.keys()).all()


def test_round_half_up():
    assert [round_half_up(x) for x in (0.5, 1.5, 2.5, 3.5, 2.49, 2.51, 0.0, 7.0)] == [1, 2, 3, 4, 2, 3, 0, 7]
    assert round(2.5) == 2  # Python's rounding differs, which is why the package has its own


def test_counts_round_half_up():
    """50 facts * 0.25 = 12.5 OOD facts -> 13 (banker's rounding: 12); 37 ID * phi 0.5 = 18.5 -> 19 (not 18)."""
    ds = gc.make_dataset(gc.DataConfig(entities=10, relations=5, out_degree=5, ood_fraction=0.25, phi=0.5,
                                       id_test_prob=0.0, probe_size=10))
    assert ds.counts["ood_atomic"] == 13 and ds.counts["id_atomic"] == 37
    assert ds.counts["train_inferred"] == 19


# ----------------------------------------------------------------------------- bad input

BAD = [
    ("phi", dict(phi=19.0)),  # above out_degree * (1 - ood) * (1 - id_test_prob) = 18.905
    ("phi", dict(phi=-1.0)),
    ("ood_fraction", dict(ood_fraction=0.0)),
    ("ood_fraction", dict(ood_fraction=1.0)),
    ("ood_fraction", dict(ood_fraction=-0.1)),
    ("ood_fraction", dict(ood_fraction=1.5)),
    ("id_test_prob", dict(id_test_prob=1.0)),
    ("id_test_prob", dict(id_test_prob=-0.01)),
    ("out_degree", dict(relations=10, out_degree=20)),
    ("out_degree", dict(out_degree=0)),
    ("entities", dict(entities=1)),
    ("relations", dict(relations=0, out_degree=0)),
    ("regime", dict(regime="both_hops_full")),
    ("regime", dict(regime="")),
    ("aug_k", dict(aug_k=-1)),
    ("probe_size", dict(probe_size=0)),
    ("seed", dict(seed=-1)),
]


@pytest.mark.parametrize("name,kwargs", BAD, ids=[f"{n}-{list(k.values())}" for n, k in BAD])
def test_invalid_parameters_raise_config_error(name, kwargs):
    cfg = gc.DataConfig(**kwargs)
    for call in (cfg.validate, lambda: gc.make_dataset(cfg)):
        with pytest.raises(gc.ConfigError) as info:
            call()
        msg = str(info.value)
        assert "\n" not in msg
        assert name in msg, msg
        assert msg.startswith("invalid")


def test_phi_too_large_for_the_realised_graph_is_a_config_error():
    """phi = max_phi passes validate() (an expectation) but this graph has fewer ID-ID chains."""
    cfg = gc.DataConfig(phi=gc.DataConfig().max_phi())
    cfg.validate()
    with pytest.raises(gc.ConfigError, match="phi"):
        gc.make_dataset(cfg)


def test_valid_edge_values_are_accepted():
    for kwargs in (dict(phi=0.0), dict(aug_k=0, regime="both_hop_full"), dict(id_test_prob=0.0),
                   dict(out_degree=20, relations=20, phi=5.0)):
        ds = build(SMALL, **kwargs)
        assert len(ds.train) >= ds.counts["atomic"]
    assert build(SMALL, phi=0.0).counts["train_inferred"] == 0
    assert build(SMALL, aug_k=0, regime="both_hop_full").counts["augmented_hop1"] == 0


# ----------------------------------------------------------------------------- command line

DATA_ARGS = ["data", "--entities", "200", "--relations", "20", "--out-degree", "10", "--phi", "5",
             "--regime", "both-hop-full"]


def test_cli_data_stats(capsys):
    assert main(DATA_ARGS + ["--stats"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 1
    stats = json.loads(lines[0])
    keys = {"atomic", "ood_atomic", "train_inferred", "augmented_hop1", "augmented_hop2", "train_items",
            "test_inferred_iid", "test_inferred_ood", "seconds"}
    assert keys <= set(stats)
    assert "config" not in stats
    ds = gc.make_dataset(gc.DataConfig(entities=200, relations=20, out_degree=10, phi=5.0, regime="both_hop_full"))
    for key in keys - {"seconds"}:
        assert stats[key] == ds.counts[key], key
    assert stats["atomic"] == 2000 and stats["augmented_hop1"] > 0 and stats["augmented_hop2"] > 0
    assert isinstance(stats["seconds"], float) and stats["seconds"] >= 0


def test_cli_data_without_stats_includes_config(capsys):
    assert main(DATA_ARGS) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["config"]["entities"] == 200 and stats["config"]["regime"] == "both_hop_full"


@pytest.mark.parametrize("flag,value,name", [("--phi", "100", "phi"), ("--regime", "bogus", "regime"),
                                             ("--out-degree", "30", "out_degree"),
                                             ("--ood-fraction", "1.5", "ood_fraction"),
                                             ("--aug-k", "-2", "aug_k")])
def test_cli_data_bad_value(capsys, flag, value, name):
    args = ["data", "--entities", "200", "--relations", "20", "--out-degree", "10", "--phi", "5", "--stats"]
    i = args.index(flag) if flag in args else None
    if i is not None:
        args[i + 1] = value
    else:
        args += [flag, value]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("error: invalid") and name in err and "\n" not in err
