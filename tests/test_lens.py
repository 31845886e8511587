"""The logit lens (`lens`) on planted models whose answers are known, and exact match."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import grokcircuit as gc
from grokcircuit import lens
from grokcircuit.data import vocab_size
from grokcircuit.model import Output


class Planted(torch.nn.Module):
    """Two stages whose states are one-hot vectors over the vocabulary; decode is the identity map.

    Every state points at a relation token (never a bridge) except at the planted (query, stage, position)
    cells, which point at the query's bridge entity.
    """

    def __init__(self, ds: gc.KGDataset, plant: dict[str, set], pos: int = 1):
        super().__init__()
        E, R = ds.cfg.entities, ds.cfg.relations
        self.V, self.E, self.pos, self.plant = vocab_size(E, R), E, pos, plant
        self.tail = torch.as_tensor(ds.graph.tail_of)
        self.head = torch.nn.Linear(self.V, self.V, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(self.V))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(z)

    def forward(self, tokens: torch.Tensor, trace: bool = False, patch=None) -> Output:
        B, T = tokens.shape
        h, r1 = tokens[:, 0] - 1, tokens[:, 1] - 1 - self.E
        bridge = self.tail[h, r1] + 1
        keys = [tuple(row) for row in tokens[:, :3].tolist()]
        states = {}
        for stage in ("s0", "s1"):
            z = torch.zeros(B, T, self.V)
            z[:, :, 1 + self.E] = 1.0  # relation 0 everywhere
            rows = torch.tensor([k in self.plant.get(stage, set()) for k in keys])
            z[rows, self.pos] = 0.0
            z[rows, self.pos, bridge[rows]] = 1.0
            states[stage] = z
        return Output(self.decode(states["s1"]), states if trace else None)


@pytest.fixture(scope="module")
def ci_data():
    return gc.make_dataset(gc.preset("ci").data)


def test_lens_finds_a_planted_bridge(ci_data, monkeypatch):
    monkeypatch.setattr(lens, "EVAL_BATCH", 16)  # several batches, so their order matters
    cfg = gc.preset("ci")
    items = ci_data.test_iid_all
    q = gc.Queries.build(items, "causal", cfg.data.entities, cfg.data.relations)
    tokens = [tuple(r) for r in q.tokens[:, :3].tolist()]
    assert len(q) > 100
    mask = np.random.default_rng(0).random(len(q)) < 0.4

    planted = {k for k, m in zip(tokens, mask) if m}
    res = gc.run_lens(Planted(ci_data, {"s1": planted}), q)
    assert res.stages == ["s0", "s1"]
    assert res.top1.shape == res.bridge_rank.shape == (2, len(q), 3)
    assert np.array_equal(gc.bridge_found(res), mask)
    rates = gc.lens_metrics(res)
    assert rates["bridge_found"] == pytest.approx(mask.mean())
    assert rates["bridge@s1"] == pytest.approx(mask.mean()) and rates["bridge@s0"] == 0.0
    # the only target hits are planted bridges that happen to equal the answer (b == t)
    assert rates["target_found"] == pytest.approx((mask & (items.b == items.t)).mean())
    top1 = res.top1[1, mask, 1]
    assert np.array_equal(top1, q.bridge.numpy()[mask])

    everything = gc.run_lens(Planted(ci_data, {"s1": set(tokens)}), q)
    assert gc.lens_metrics(everything)["bridge_found"] == 1.0
    nothing = gc.run_lens(Planted(ci_data, {}), q)
    assert gc.lens_metrics(nothing)["bridge_found"] == 0.0
    # a bridge planted only at the first stage is not counted once Init is excluded
    first_only = gc.run_lens(Planted(ci_data, {"s0": planted}), q)
    assert np.array_equal(gc.bridge_found(first_only), mask)
    assert not gc.bridge_found(first_only, exclude_init=True).any()

    frame = gc.lens_frame(res)
    assert len(frame) == 2 * len(q) * 3
    assert frame.is_bridge.sum() == mask.sum()
    hits = frame[frame.is_bridge]
    assert set(hits.stage) == {"s1"} and set(hits.position) == {1}
    assert np.array_equal(np.sort(hits["query"].to_numpy()), np.flatnonzero(mask))


def test_exact_match_counts_whole_sequences(ci_data):
    """A model that predicts every label gets 1.0; breaking one labelled slot of some queries lowers it."""
    cfg = gc.preset("ci")
    q = gc.Queries.build(ci_data.probes["test_inferred_ood"], "causal", cfg.data.entities, cfg.data.relations)
    V = vocab_size(cfg.data.entities, cfg.data.relations)

    class Oracle(torch.nn.Module):
        def __init__(self, wrong: int = 0):
            super().__init__()
            self.wrong = wrong

        def forward(self, tokens, trace=False, patch=None):
            assert torch.equal(tokens, q.tokens)  # one batch
            logits = torch.nn.functional.one_hot(q.labels, V).float()
            logits[: self.wrong, 2] = torch.nn.functional.one_hot(torch.tensor(0), V).float()
            return Output(logits)

    assert gc.exact_match(Oracle(), q).mean() == 1.0
    assert gc.exact_match(Oracle(wrong=5), q).sum() == len(q) - 5
