"""Inference paths (lens maps, total variation, agreement), activation patching and the bridge rate of correct
answers.

Patching is checked on two hand-built models whose answer is known: one reads the bridge from the state at the
r1 slot (patching must make it follow the donor), one ignores that state (patching must change nothing).
`bridge_rate_when_correct` is checked on a scripted model whose answers and lens hits are known.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import grokcircuit as gc
from grokcircuit import paths
from grokcircuit.lens import LensResult
from grokcircuit.model import Output

CI = gc.preset("ci")
SMALL_TRM = gc.ModelConfig(arch="trm", d_model=32, n_blocks=1, h_cycles=2, l_cycles=2, prefix_len=0,
                           q_halt_weight=0, mlp_multiple=16)


@pytest.fixture(scope="module")
def ds() -> gc.KGDataset:
    return gc.make_dataset(CI.data)


def lens_result(bridge_hits: np.ndarray, target_hits: np.ndarray | None = None) -> LensResult:
    """A LensResult from (S, N, T) hit masks: rank 0 where hit, 5 elsewhere."""
    S, N, T = bridge_hits.shape
    target_hits = np.zeros_like(bridge_hits) if target_hits is None else target_hits
    rank = lambda hits: np.where(hits, 0, 5)  # noqa: E731
    return LensResult([f"s{i}" for i in range(S)], np.zeros((S, N, T), dtype=np.int64), rank(bridge_hits),
                      rank(target_hits))


# ----------------------------------------------------------------------------- lens paths

# 3 stages x 4 queries x 2 positions. Query 0: s0/p1 and s2/p0; query 1: s1/p0 and s1/p1; query 2: s2/p1;
# query 3: never.
HITS = np.zeros((3, 4, 2), dtype=bool)
HITS[0, 0, 1] = HITS[2, 0, 0] = HITS[1, 1, 0] = HITS[1, 1, 1] = HITS[2, 2, 1] = True


def test_path_map_rates_are_exact():
    res = lens_result(HITS, target_hits=~HITS)
    got = paths.path_map(res)
    assert list(got.columns) == ["stage", "position", "rate"]
    expected = {("s0", 0): 0, ("s0", 1): 1, ("s1", 0): 1, ("s1", 1): 1, ("s2", 0): 1, ("s2", 1): 1}
    assert {(r.stage, r.position): r.rate for r in got.itertuples()} == {k: v / 4 for k, v in expected.items()}
    target = paths.path_map(res, what="target")
    np.testing.assert_allclose(target["rate"], 1 - got["rate"])
    with pytest.raises(ValueError, match="what"):
        paths.path_map(res, what="answer")


def test_first_stage_and_its_distribution():
    res = lens_result(HITS)
    np.testing.assert_array_equal(paths.first_stage(res), [0, 1, 2, -1])
    counts = paths.first_stage_counts(res)
    assert list(counts["stage"]) == ["s0", "s1", "s2", "never"]
    assert list(counts["count"]) == [1, 1, 1, 1] and counts["fraction"].sum() == pytest.approx(1)


def map_of(cells: dict[tuple[str, int], float]) -> pd.DataFrame:
    return pd.DataFrame([(s, p, r) for (s, p), r in cells.items()], columns=["stage", "position", "rate"])


def test_total_variation_bounds_and_normalisation():
    m = paths.path_map(lens_result(HITS))
    assert paths.total_variation(m, m) == 0
    assert paths.total_variation(m, m.assign(rate=m["rate"] / 3)) == pytest.approx(0)  # normalised: shape only
    a, b = map_of({("s0", 0): 0.4, ("s0", 1): 0.0}), map_of({("s0", 0): 0.0, ("s0", 1): 0.9})
    assert paths.total_variation(a, b) == pytest.approx(1)
    assert paths.total_variation(a, map_of({("s1", 0): 0.2})) == pytest.approx(1)  # missing cells are 0
    c = map_of({("s0", 0): 0.5, ("s0", 1): 0.5})
    assert paths.total_variation(a, c) == pytest.approx(0.5)
    assert np.isnan(paths.total_variation(a, map_of({("s0", 0): 0.0})))


def test_agreement_of_a_result_with_itself_and_with_another():
    res = lens_result(HITS)
    assert paths.agreement(res, res) == {"n": 4, "same_found": 1.0, "same_first_stage": 1.0,
                                         "same_first_cell": 1.0, "both_found": 0.75}
    other = HITS.copy()
    other[0, 0] = [True, False]  # query 0: first at s0 still, but at position 0
    other[:, 2] = False  # query 2: never found
    got = paths.agreement(res, lens_result(other))
    assert got == {"n": 4, "same_found": 0.75, "same_first_stage": 0.75, "same_first_cell": 0.5, "both_found": 0.5}


# ----------------------------------------------------------------------------- patching

class ToyComposer(torch.nn.Module):
    """Answer = tail(b, r2), with b read from the argmax of the state at the r1 slot when `reads_r1`.

    Stage "mid" holds one-hot(bridge token) at the r1 slot; stage "out" is the output logits.
    """

    def __init__(self, tail_of: np.ndarray, reads_r1: bool):
        super().__init__()
        self.register_buffer("tail_of", torch.as_tensor(tail_of))
        self.E, self.R = tail_of.shape
        self.V, self.reads_r1 = gc.data.vocab_size(self.E, self.R), reads_r1

    def forward(self, tokens: torch.Tensor, trace: bool = False, patch=None) -> Output:
        patch, states = patch or {}, {}
        B, T = tokens.shape
        rows = torch.arange(B)
        h, r1, r2 = tokens[:, 0] - 1, tokens[:, 1] - 1 - self.E, (tokens[:, 2] - 1 - self.E).clamp(min=0)
        b = self.tail_of[h, r1]
        z = torch.zeros(B, T, self.V)
        z[rows, 1, b + 1] = 1.0
        for stage in ("mid", "out"):
            if stage == "out":
                b_hat = z[:, 1].argmax(-1) - 1 if self.reads_r1 else b
                z = torch.zeros(B, T, self.V)
                z[rows, 3 if T == 5 else 2, self.tail_of[b_hat, r2] + 1] = 1.0
            z = patch[stage](z, stage) if stage in patch else z
            states[stage] = z
        return Output(z, states if trace else None)


@pytest.mark.parametrize("layout", ["causal", "trm"])
def test_patching_follows_only_a_model_that_reads_the_r1_state(ds, layout):
    q = gc.Queries.build(ds.probes["train_inferred"], layout, CI.data.entities, CI.data.relations)
    reader, ignorer = ToyComposer(ds.graph.tail_of, True), ToyComposer(ds.graph.tail_of, False)
    got = paths.patch_effect(reader, q, ds.graph.tail_of, "mid", position=1)
    assert got["n"] > 0.9 * len(q) and got["clean"] == 1.0
    assert got["followed"] == 1.0 and got["kept"] == 0.0 and got["other"] == 0.0
    got = paths.patch_effect(ignorer, q, ds.graph.tail_of, "mid", position=1)
    assert got["followed"] == 0.0 and got["kept"] == 1.0
    got = paths.patch_effect(reader, q, ds.graph.tail_of, "mid", position=0)  # the bridge is not stored there
    assert got["followed"] == 0.0 and got["kept"] == 1.0
    profile = paths.patch_profile(reader, q, ds.graph.tail_of)
    assert list(profile["stage"]) == ["mid"] and profile["followed"].item() == 1.0


def test_donors_are_valid_and_invalid_ones_are_skipped(ds):
    q = gc.Queries.build(ds.probes["train_inferred"], "causal", CI.data.entities, CI.data.relations)
    it, tail_of = q.items, ds.graph.tail_of
    donor = paths.draw_donors(q, tail_of, seed=1)
    ok = donor >= 0
    j = donor[ok]
    t_new = tail_of[it.b[j], it.r2[ok]]
    assert ok.mean() > 0.9
    assert (it.b[j] != it.b[ok]).all() and (t_new >= 0).all() and (t_new != it.t[ok]).all()
    np.testing.assert_array_equal(paths.donor_targets(q, tail_of, donor)[ok], t_new)
    same_bridge = np.where(ok, np.arange(len(q)), -1)  # each query as its own donor: never valid
    reader = ToyComposer(tail_of, True)
    assert paths.patch_effect(reader, q, tail_of, "mid", donor_perm=same_bridge)["n"] == 0
    half = donor.copy()
    half[::2] = -1
    assert paths.patch_effect(reader, q, tail_of, "mid", donor_perm=half)["n"] == int((half >= 0).sum())


@pytest.mark.parametrize("model_cfg", [CI.model, SMALL_TRM], ids=["looped", "trm"])
def test_patching_runs_on_real_models(ds, model_cfg):
    torch.manual_seed(0)
    model = gc.build_model(model_cfg, ds.vocab_size)
    layout = "trm" if model_cfg.arch == "trm" else "causal"
    q = gc.Queries.build(ds.probes["test_inferred_ood"], layout, CI.data.entities, CI.data.relations)
    stages = gc.stage_names(model_cfg)
    one = paths.patch_effect(model, q, ds.graph.tail_of, stages[1])
    assert one["n"] > 0 and 0 <= one["followed"] <= 1 and 0 <= one["kept"] <= 1
    assert one["followed"] + one["kept"] + one["other"] == pytest.approx(1)
    profile = paths.patch_profile(model, q, ds.graph.tail_of)
    assert list(profile["stage"]) == stages[:-1]
    rates = profile[["followed", "kept", "other"]]
    assert ((rates >= 0) & (rates <= 1)).all().all()
    np.testing.assert_allclose(rates.sum(axis=1), 1)
    assert profile.loc[1, "followed"] == pytest.approx(one["followed"])  # same donors (same seed)


# ----------------------------------------------------------------------------- bridge rate of correct answers

class Scripted(torch.nn.Module):
    """Shows the bridge at the r1 slot of stage "mid" when h is even; answers right when h % 3 == 0.

    A wrong answer is a relation token, so no stage ever shows a bridge by accident.
    """

    def __init__(self, tail_of: np.ndarray, always_right: bool = False):
        super().__init__()
        self.register_buffer("tail_of", torch.as_tensor(tail_of))
        self.E, self.R = tail_of.shape
        self.V, self.always_right = gc.data.vocab_size(self.E, self.R), always_right

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def blank(self, B: int, T: int) -> torch.Tensor:
        """PAD on top everywhere (the lens counts ties as top-1, so nothing else may tie with it)."""
        z = torch.zeros(B, T, self.V)
        z[..., 0] = 0.5
        return z

    def forward(self, tokens: torch.Tensor, trace: bool = False, patch=None) -> Output:
        B, T = tokens.shape
        rows = torch.arange(B)
        h, r1, r2 = tokens[:, 0] - 1, tokens[:, 1] - 1 - self.E, tokens[:, 2] - 1 - self.E
        b = self.tail_of[h, r1]
        mid = self.blank(B, T)
        mid[rows, 1, torch.where(h % 2 == 0, b + 1, 0)] = 1.0
        right = torch.ones_like(h, dtype=torch.bool) if self.always_right else h % 3 == 0
        out = self.blank(B, T)
        out[rows, 2, torch.where(right, self.tail_of[b, r2] + 1, 1 + self.E)] = 1.0
        return Output(out, {"mid": mid, "out": out} if trace else None)


def queries() -> tuple[gc.Queries, np.ndarray]:
    ds = gc.make_dataset(CI.data)
    items = ds.probes["train_inferred"]
    items = items.take(np.flatnonzero(items.t != items.b))  # the answer must not double as the bridge
    return gc.Queries.build(items, "causal", CI.data.entities, CI.data.relations), ds.graph.tail_of


def test_rates_split_by_correctness_are_exact():
    q, tail_of = queries()
    got = paths.bridge_rate_when_correct(Scripted(tail_of), q)
    right, shown = q.items.h % 3 == 0, q.items.h % 2 == 0
    assert right.any() and (~right).any()
    assert got["n"] == len(q)
    assert got["correct"] == right.mean()
    assert got["bridge_when_correct"] == shown[right].mean()
    assert got["bridge_when_wrong"] == shown[~right].mean()


def test_an_empty_group_gives_nan():
    q, tail_of = queries()
    got = paths.bridge_rate_when_correct(Scripted(tail_of, always_right=True), q)
    assert got["correct"] == 1.0
    assert got["bridge_when_correct"] == (q.items.h % 2 == 0).mean()
    assert math.isnan(got["bridge_when_wrong"])
