"""Each exercise check accepts the solution shown in its chapter and rejects typical mistakes with a hint."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import grokcircuit as gc
from grokcircuit import exercises as ex


@pytest.fixture(scope="module")
def ds():
    return gc.make_dataset(gc.DataConfig(entities=40, relations=8, out_degree=4, phi=2.0, probe_size=50))


def rejects(check, *args, match: str) -> None:
    with pytest.raises(AssertionError, match=match):
        check(*args)


def test_check_bridge(ds, capsys):
    i = int(np.flatnonzero(ds.train.is_inferred)[0])
    x = ds.train
    ex.check_bridge(ds, i, ds.graph.tail_of[x.h[i], x.r1[i]])
    assert capsys.readouterr().out.startswith("Correct")
    rejects(ex.check_bridge, ds, i, None, match="no answer yet")
    if x.t[i] != x.b[i]:
        rejects(ex.check_bridge, ds, i, x.t[i], match="answer t")
    rejects(ex.check_bridge, ds, i, x.b[i] + 1, match="token id")
    rejects(ex.check_bridge, ds, int(np.flatnonzero(~x.is_inferred)[0]), 0, match="atomic fact")


def test_check_ood_status(ds, capsys):
    def solution(graph, items):
        return graph.ood[graph.fact_of[items.h, items.r1]] & graph.ood[graph.fact_of[items.b, items.r2]]
    ex.check_ood_status(solution, ds)
    assert capsys.readouterr().out.startswith("Correct")
    rejects(ex.check_ood_status, lambda g, it: g.ood[g.fact_of[it.h, it.r1]], ds, match="only the first hop")
    rejects(ex.check_ood_status, lambda g, it: g.ood[g.fact_of[it.b, it.r2]], ds, match="only the second hop")
    rejects(ex.check_ood_status, lambda g, it: g.ood[g.fact_of[it.h, it.r1]] | g.ood[g.fact_of[it.b, it.r2]], ds,
            match="both hops must be OOD")
    rejects(ex.check_ood_status, lambda g, it: None, ds, match="returned None")
    rejects(ex.check_ood_status, lambda g, it: np.ones(3, dtype=bool), ds, match="one boolean per query")


def test_check_augmented_count(capsys):
    truth = {"natural": (False, False), "both_hop_full": (True, True), "both_hop_half": (True, True),
             "first_hop_full": (True, False), "second_hop_full": (False, True)}
    for regime, prediction in truth.items():
        ex.check_augmented_count(regime, prediction)
    assert capsys.readouterr().out.count("Correct") == 5
    rejects(ex.check_augmented_count, "second_hop_full", (True, False), match="hop 1")
    rejects(ex.check_augmented_count, "first-hop-full", (True, True), match="hop 2")


def bridge_found(res, exclude_init=False):
    hits = res.bridge_rank == 0  # (S, N, T)
    return hits[int(exclude_init):].any(axis=(0, 2))


def test_check_bridge_found_metric(capsys):
    ex.check_bridge_found_metric(bridge_found)
    ex.check_bridge_found_metric(lambda res, exclude_init=False: gc.bridge_found(res, exclude_init=exclude_init))
    assert capsys.readouterr().out.count("Correct") == 2
    rejects(ex.check_bridge_found_metric, lambda res, exclude_init=False: (res.bridge_rank <= 1).any(axis=(0, 2)),
            match="rank 1")
    rejects(ex.check_bridge_found_metric, lambda res, exclude_init=False: (res.target_rank == 0).any(axis=(0, 2)),
            match="target_rank")
    rejects(ex.check_bridge_found_metric, lambda res, exclude_init=False: (res.bridge_rank == 0).any(axis=(0, 2)),
            match="exclude_init=True")
    rejects(ex.check_bridge_found_metric, lambda res, exclude_init=False: (res.bridge_rank[1:] == 0).any(axis=(0, 2)),
            match="counts Init")
    rejects(ex.check_bridge_found_metric, lambda res, exclude_init=False: (res.bridge_rank == 0).any(axis=0),
            match="one boolean per query")
    rejects(ex.check_bridge_found_metric, lambda res, exclude_init=False: (res.bridge_rank[-1] == 0).any(axis=1),
            match="counts Init|one stage")


def first_stage(path_map):
    hit = path_map[path_map.rate > 0]
    return None if hit.empty else hit.stage.iloc[0]


def test_check_first_stage(capsys):
    ex.check_first_stage(first_stage)
    assert capsys.readouterr().out.startswith("Correct")
    rejects(ex.check_first_stage, lambda m: m.loc[m.rate.idxmax(), "stage"], match="not the strongest")
    rejects(ex.check_first_stage, lambda m: min(m[m.rate > 0].stage, default=None), match="do not sort")
    rejects(ex.check_first_stage, lambda m: m[m.rate > 0].stage.iloc[0], match="IndexError.*return None")
    rejects(ex.check_first_stage, lambda m: int(np.flatnonzero(m.rate > 0)[0] // 3) if (m.rate > 0).any() else None,
            match="not its index")


def test_first_stage_solution_matches_the_package():
    rank = np.ones((3, 4, 2), dtype=np.int64)
    rank[1, 0, 1] = rank[2, 2, 0] = 0
    res = gc.lens.LensResult(["init", "a", "b"], np.zeros_like(rank), rank, rank)
    assert first_stage(gc.path_map(res)) == "a" == res.stages[gc.first_stage(res)[0]]


def test_check_bridge_when_correct(capsys):
    def solution(correct, found):
        rate = lambda group: found[group].mean() if group.any() else np.nan  # noqa: E731
        return rate(correct), rate(~correct)
    ex.check_bridge_when_correct(solution)
    assert capsys.readouterr().out.startswith("Correct")
    rejects(ex.check_bridge_when_correct, lambda c, f: solution(c, f)[::-1], match="swapped")
    rejects(ex.check_bridge_when_correct, lambda c, f: (c[f].mean(), 0.0), match="P\\(correct")
    rejects(ex.check_bridge_when_correct, lambda c, f: (f.mean(), f.mean()), match="over all queries")
    rejects(ex.check_bridge_when_correct,
            lambda c, f: (f[c].mean(), f[~c].mean() if (~c).any() else 0.0), match="NaN")


def fake_verdict(ood_exact_match, bridge_found):
    if ood_exact_match < 0.8:
        return "not grokked"
    return "fake" if bridge_found <= 0.5 else "real"


def test_check_fake_verdict(capsys):
    ex.check_fake_verdict(fake_verdict)
    assert capsys.readouterr().out.startswith("Correct")
    rejects(ex.check_fake_verdict, lambda em, b: "fake" if b <= 0.5 else "real", match="has not grokked")
    rejects(ex.check_fake_verdict, lambda em, b: "not grokked" if em <= 0.8 else ("fake" if b < 0.5 else "real"),
            match="inclusive")
    rejects(ex.check_fake_verdict, lambda em, b: "grokked", match="exact match 0.95, bridge 0.99")


def category(new, h, r1, b, r2):
    first, second = (h, r1) in new, (b, r2) in new
    return f"{'new' if first else 'old'}_{'new' if second else 'old'}"


def test_check_category(capsys):
    ex.check_category(category)
    assert capsys.readouterr().out.startswith("Correct")
    rejects(ex.check_category, lambda new, h, r1, b, r2: category(new, b, r2, h, r1), match="first hop first")
    def by_entity(new, h, r1, b, r2):  # looks at entities only, not at (head, relation) pairs
        heads = {k for k, _ in new}
        return f"{'new' if h in heads else 'old'}_{'new' if b in heads else 'old'}"
    rejects(ex.check_category, by_entity, match="head, relation")


def test_check_hop_asymmetry(capsys):
    ex.check_hop_asymmetry({"new_old": True, "old_new": False, "new_new": False})
    assert capsys.readouterr().out.startswith("Correct")
    rejects(ex.check_hop_asymmetry, {"new_old": False, "old_new": True, "new_new": False}, match="new_old")
    rejects(ex.check_hop_asymmetry, {"new_old": True, "old_new": False, "new_new": True}, match="new_new")
    rejects(ex.check_hop_asymmetry, {"new_old": True}, match="each of")
    rejects(ex.check_hop_asymmetry, {"new_old": None, "old_new": None, "new_new": None}, match="not None")


def test_check_wait_flops(capsys):
    ex.check_wait_flops((396_000 - 37_500) * 2e9, 396_000, 37_500, 2e9)
    assert capsys.readouterr().out.startswith("Correct")
    rejects(ex.check_wait_flops, 396_000 - 37_500, 396_000, 37_500, 2e9, match="in steps")
    rejects(ex.check_wait_flops, (37_500 - 396_000) * 2e9, 396_000, 37_500, 2e9, match="sign")
    rejects(ex.check_wait_flops, 396_000 * 2e9, 396_000, 37_500, 2e9, match="up to T_ood")
    rejects(ex.check_wait_flops, None, 396_000, 37_500, 2e9, match="no answer yet")
    rejects(ex.check_wait_flops, "a lot", 396_000, 37_500, 2e9, match="not the wait")


def test_check_h100_hours(capsys):
    flops, mfu, peak = 7.2e17, 0.4, 989e12
    ex.check_h100_hours(flops / (mfu * peak) / 3600, flops, mfu, peak)
    assert capsys.readouterr().out.startswith("Correct")
    rejects(ex.check_h100_hours, flops / (mfu * peak), flops, mfu, peak, match="seconds")
    rejects(ex.check_h100_hours, flops / (mfu * peak) / 60, flops, mfu, peak, match="minutes")
    rejects(ex.check_h100_hours, flops / peak / 3600, flops, mfu, peak, match="fraction mfu")
    rejects(ex.check_h100_hours, flops * mfu / peak / 3600, flops, mfu, peak, match="not right")


@pytest.mark.parametrize("module", ["exercises", "augment", "config", "data"])
def test_exercises_import_no_torch_at_module_level(module):
    """exercises.py and what it imports at module level stay free of torch (the lens is imported on demand)."""
    tree = ast.parse((Path(gc.__file__).parent / f"{module}.py").read_text())
    names = [n.module or "" for n in tree.body if isinstance(n, ast.ImportFrom)]
    names += [a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in names if m.split(".")[0] in {"torch", "lens", "model", "paths", "train", "runs"}], names


def test_placeholders_get_a_hint_not_an_error(ds):
    def placeholder(*args, **kwargs):
        raise NotImplementedError("your code here")
    for check in (ex.check_ood_status, ex.check_bridge_found_metric, ex.check_first_stage,
                  ex.check_bridge_when_correct, ex.check_fake_verdict, ex.check_category):
        args = (placeholder, ds) if check is ex.check_ood_status else (placeholder,)
        rejects(check, *args, match="NotImplementedError: your code here.$")
    rejects(ex.check_hop_asymmetry, None, match="no prediction yet")
    rejects(ex.check_h100_hours, None, 1.0, 0.5, 1.0, match="no answer yet")


def test_checks_do_not_rely_on_assert_statements():
    """Hints are raised explicitly, so they also appear under `python -O`."""
    tree = ast.parse(Path(ex.__file__).read_text())
    assert not [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)]
