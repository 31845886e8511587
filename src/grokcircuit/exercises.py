"""Self-checks for the exercises at the end of the chapters, one `check_*` per exercise (ARENA style).

Each check takes the learner's answer, a value or a function, and either prints one line starting "Correct" or
raises `AssertionError` with a hint that names the mistake without giving the answer. Nothing here imports torch
at import time; `check_bridge_found_metric` builds its small lens results on demand.

The checks appear in chapter order (01 to 05), each chapter's under its own heading comment.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from .augment import REGIME_SPECS
from .config import normalize_regime
from .data import KGDataset, paths_to_items, two_hop_paths
from .findings import ANSWERS, CIRCUIT_BASES, FAKE_BRIDGE, FAKE_OOD
from .flops import gpu_hours


def _expect(ok: Any, hint: str) -> None:
    if not ok:  # an explicit raise: unlike `assert`, it also runs under `python -O`
        raise AssertionError(hint)


def _call(fn: Callable, *args: Any, hint: str = "", none_ok: bool = False, **kw: Any) -> Any:
    try:
        out = fn(*args, **kw)
    except Exception as err:  # noqa: BLE001 -- the learner's code failed: report it as a hint
        raise AssertionError(f"your function raised {type(err).__name__}: {err}. {hint}".strip()) from None
    _expect(none_ok or out is not None, "your function returned None: replace the placeholder, run again")
    return out


def _close(a: Any, b: float) -> bool:
    return isinstance(a, numbers.Real) and math.isclose(float(a), b, rel_tol=1e-6, abs_tol=1e-12)


# chapter 01: the task and its data
def check_bridge(ds: KGDataset, query_index: int, answer: int) -> None:
    """The bridge entity of the two-hop training item `ds.train` row `query_index`, found by hand."""
    _expect(answer is not None, "no answer yet: replace the placeholder, run again")
    x, i = ds.train, query_index
    _expect(x.is_inferred[i], f"row {query_index} is an atomic fact; pick a two-hop row (ds.train.is_inferred)")
    b, t, h, answer = int(x.b[i]), int(x.t[i]), int(x.h[i]), int(answer)
    if answer == b:
        return print(f"Correct: the first hop (e{h}, r{x.r1[i]}) lands on the bridge e{b}.")
    _expect(answer != t, "that is the answer t, where the second hop lands; the bridge is where the first lands")
    _expect(answer != b + 1, "that is a token id; entity e has token id 1 + e, so give the entity index")
    raise AssertionError("not the bridge: follow the first hop (h, r1); ds.graph.tail_of is indexed [entity, relation]")


def check_ood_status(fn: Callable, ds: KGDataset) -> None:
    """`fn(graph, items) -> bool array`: True where a two-hop query is an OOD test query (both hops OOD)."""
    g = ds.graph
    items = paths_to_items(g, *two_hop_paths(g))
    hop1, hop2 = g.ood[g.fact_of[items.h, items.r1]], g.ood[g.fact_of[items.b, items.r2]]
    got = _call(fn, g, items)
    got = np.asarray(got, dtype=bool)
    _expect(got.shape == (len(items),), f"return one boolean per query: shape ({len(items)},), not {got.shape}")
    if np.array_equal(got, hop1 & hop2):
        return print(f"Correct: {int(got.sum()):,} of {len(items):,} two-hop chains have both hops OOD.")
    _expect(not np.array_equal(got, hop1), "you checked only the first hop (h, r1); the second hop (b, r2) counts too")
    _expect(not np.array_equal(got, hop2), "you checked only the second hop (b, r2); the first hop (h, r1) counts too")
    _expect(not np.array_equal(got, hop1 | hop2), "a chain with one OOD hop is not a test query: both hops must be OOD")
    raise AssertionError("wrong for some chains: look up each hop's fact id with graph.fact_of, then graph.ood")


def check_augmented_count(regime: str, prediction: tuple[bool, bool]) -> None:
    """Prediction (adds hop-1 items, adds hop-2 items) for one regime."""
    _expect(prediction is not None, "no prediction yet: replace the placeholder, run again")
    ratio1, _, ratio2, _ = REGIME_SPECS[regime := normalize_regime(regime)]
    for hop, want, got in ((1, ratio1 > 0, prediction[0]), (2, ratio2 > 0, prediction[1])):
        _expect(bool(got) == want, f"{regime}, hop {hop}: a hop-{hop} item carries an OOD fact as hop {hop}; "
                                   "which hop positions does this regime expose? (see the regime table)")
    print(f"Correct: {regime} adds hop-1 items: {ratio1 > 0}, hop-2 items: {ratio2 > 0}.")


# chapter 02: identical paths
def check_bridge_found_metric(fn: Callable) -> None:
    """`fn(res, exclude_init=False) -> bool array (N,)`: the bridge is top-1 at any stage and any position."""
    from .lens import LensResult  # imports torch, so only here
    rank = np.ones((4, 5, 3), dtype=np.int64)  # (S, N, T); rank 0 = top-1, rank 1 = a near miss
    rank[0, 0, 0] = rank[1, 1, 2] = rank[3, 3, 1] = 0  # query 0: Init only; 1: a middle stage; 3: the last stage
    rank[2, 4, 0] = rank[2, 4, 1] = 0  # query 4: two positions of one stage; query 2: never found
    target = np.ones_like(rank)
    target[:, 2] = 0  # the answer is top-1 everywhere for query 2, whose bridge is never found
    res = LensResult(["init", "h0_l0", "h0_l1", "h0_commit"], np.zeros_like(rank), rank, target)
    for exclude_init, want in ((False, [1, 1, 0, 1, 1]), (True, [0, 1, 0, 1, 1])):
        got = _call(fn, res, exclude_init=exclude_init)
        got = np.asarray(got, dtype=bool)
        _expect(got.shape == (5,), f"return one boolean per query, shape (N,), not {got.shape}")
        _expect(not got[2], "query 2 never has the bridge at rank 0; reading target_rank, or counting rank 1 as a hit?")
        _expect(got[0] != exclude_init, "query 0 is found at Init only: the paper's rule counts Init, "
                                        "and exclude_init=True must leave the first stage out")
        _expect(got[1] and got[3], "queries 1 and 3 are found at one stage and position only; look at all of them")
        bad = np.flatnonzero(got != np.array(want, dtype=bool)).tolist()
        _expect(not bad, f"wrong for queries {bad} (exclude_init={exclude_init})")
    print("Correct: any stage and any position; Init counts only when it is not excluded.")


def check_first_stage(fn: Callable) -> None:
    """`fn(path_map) -> str | None`: the first stage, in the map's row order, where the rate is above 0."""
    stages, z = ["init", "h0_l0", "h0_l1", "h0_commit"], [0, 0, 0]
    tidy = lambda rates: pd.DataFrame(  # noqa: E731
        {"stage": np.repeat(stages, 3), "position": np.tile(np.arange(3), 4), "rate": np.ravel(rates)})
    cases = [([z, [0, .1, 0], [0, .9, .2], z], "h0_l0", "the first stage with a hit, not the strongest"),
             ([z, z, [0, 0, .3], [.5, 0, 0]], "h0_l1", "rows are in computation order; do not sort stage names"),
             ([[0, 0, .2], z, z, z], "init", "a hit at the first stage counts"),
             ([z] * 4, None, "when no cell has a rate above 0, return None")]
    for rates, want, hint in cases:
        got = _call(fn, tidy(rates), hint=hint if want is None else "", none_ok=True)
        _expect(not isinstance(got, (int, np.integer)), "return the stage's name (a str), not its index")
        _expect(got == want, hint)
    print("Correct: the first stage in computation order at which the bridge shows up anywhere.")


# chapter 03: fake grokking
def check_bridge_when_correct(fn: Callable) -> None:
    """`fn(correct, found) -> (bridge rate among correct, bridge rate among wrong)`; NaN for an empty group."""
    correct = np.array([1, 1, 1, 0, 0, 0, 0], dtype=bool)
    found = np.array([1, 1, 0, 1, 1, 1, 0], dtype=bool)
    got = _call(fn, correct, found)
    _expect(not (_close(got[0], 3 / 4) and _close(got[1], 2 / 3)), "the two rates are swapped: correct answers first")
    _expect(not _close(got[0], 2 / 5), "that is P(correct | bridge found); the exercise asks P(bridge found | correct)")
    _expect(not _close(got[0], 5 / 7), "that is the bridge rate over all queries; keep only the correct ones")
    _expect(_close(got[0], 2 / 3) and _close(got[1], 3 / 4), "wrong rates: average `found` within each group")
    edge = _call(fn, np.ones(3, dtype=bool), np.array([1, 0, 1], dtype=bool), hint="An empty group gives NaN.")
    _expect(_close(edge[0], 2 / 3) and edge[1] is not None and np.isnan(edge[1]),
            "with no wrong answer the second rate is undefined: return NaN (np.nan), not 0 and not an error")
    print("Correct: both conditional rates, and NaN for an empty group.")


def check_fake_verdict(fn: Callable) -> None:
    """`fn(ood_exact_match, bridge_found) -> "real" | "fake" | "not grokked"` (the paper's thresholds FAKE_OOD and
    FAKE_BRIDGE)."""
    cases = [((0.95, 0.99), "real", "high OOD accuracy with the bridge found is real grokking"),
             ((0.95, 0.20), "fake", "high OOD accuracy without the bridge is what the paper calls fake"),
             ((0.30, 0.99), "not grokked", "a model that fails the OOD queries has not grokked, whatever its bridge"),
             ((FAKE_OOD, FAKE_BRIDGE), "fake",
              f"both thresholds are inclusive: exact match >= {FAKE_OOD}, bridge found <= {FAKE_BRIDGE}"),
             ((FAKE_OOD - 0.01, 0.10), "not grokked",
              f"both thresholds are inclusive: exact match >= {FAKE_OOD} is needed")]
    for (em, bridge), want, hint in cases:
        got = _call(fn, em, bridge)
        _expect(got == want, f"exact match {em}, bridge {bridge}: {hint}")
    print("Correct: behaviour first (OOD exact match), then the mechanism (bridge found).")


# chapter 04: limited transfer
def check_category(fn: Callable) -> None:
    """`fn(new, h, r1, b, r2)`: "new_old", "old_new", "new_new" or "old_old"; `new` holds new (head, relation) pairs."""
    new = {(5, 0), (7, 1)}  # new facts (5, r0) -> 7 and (7, r1) -> ...
    cases = [((5, 0, 7, 2), "new_old"), ((3, 2, 5, 0), "old_new"), ((5, 0, 7, 1), "new_new"), ((3, 2, 4, 1), "old_old"),
             ((7, 0, 5, 1), "old_old")]
    for (h, r1, b, r2), want in cases:
        got = _call(fn, new, h, r1, b, r2)
        _expect(got == want, f"query (e{h}, r{r1}, r{r2}) via e{b}: the first hop is the pair (h, r1), the second "
                             "(b, r2); a hop is new when its (head, relation) pair is in `new`; first hop first")
    print("Correct: the category names which hop is a new fact, first hop first.")


def check_hop_asymmetry(prediction: dict[str, bool]) -> None:
    """Prediction, per category, of whether the paper's circuit bases answer it (exact match >= `ANSWERS`)."""
    from .paper import FIGURE4
    _expect(prediction is not None, "no prediction yet: replace the placeholder, run again")
    em, cats = FIGURE4.set_index("base").loc[list(CIRCUIT_BASES)], ("new_old", "old_new", "new_new")
    _expect(set(prediction) == set(cats), f"give one True/False for each of {cats}")
    _expect(all(isinstance(v, (bool, np.bool_)) for v in prediction.values()), "give True or False, not None")
    for cat in cats:
        want = bool(em[f"{cat}_em"].mean() >= ANSWERS)
        _expect(bool(prediction[cat]) == want, f"{cat}: re-read the quote at the top of the chapter; which hop can a "
                                               "new fact fill when the circuit composes it?")
    print("Correct: a new fact works as the first hop, not as the second (and so not in new+new).")


# chapter 05: is grokking worthwhile?
def check_wait_flops(answer: float, natural_t_ood: float, full_t_ood: float, flops_per_step: float) -> None:
    """The FLOPs of the grokking wait: natural's T_ood minus both hop full's T_ood, times FLOPs per step."""
    _expect(answer is not None, "no answer yet: replace the placeholder, run again")
    steps = natural_t_ood - full_t_ood
    if _close(answer, steps * flops_per_step):
        return print(f"Correct: the wait costs {answer:.3g} FLOPs per run.")
    _expect(not _close(answer, steps), "that is the wait in steps; convert it with the FLOPs of one step")
    _expect(not _close(answer, -steps * flops_per_step), "the sign is reversed: the natural run is the slower one")
    _expect(not _close(answer, natural_t_ood * flops_per_step), "that is the natural run up to T_ood, not the extra")
    raise AssertionError("not the wait: subtract the two T_ood steps, then multiply by the FLOPs of one step")


def check_h100_hours(answer: float, flops: float, mfu: float, peak: float) -> None:
    """H100 hours for `flops` at utilisation `mfu` of a peak of `peak` FLOP/s."""
    _expect(answer is not None, "no answer yet: replace the placeholder, run again")
    want = gpu_hours(flops, mfu, peak)
    if _close(answer, want):
        return print(f"Correct: {answer:.3g} H100 hours.")
    _expect(not _close(answer, want * 3600), "that is in seconds; an hour has 3,600 of them")
    _expect(not _close(answer, want * 60), "that is in minutes; divide by 60 once more")
    _expect(not _close(answer, want * mfu), "the GPU runs at only a fraction mfu of its peak: slower, not faster")
    raise AssertionError("not right: FLOPs over the achieved rate (mfu times the peak) gives seconds")
