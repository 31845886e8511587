"""`paths.bridge_rate_when_correct`, checked on a hand-built model whose answers and lens hits are known."""
from __future__ import annotations

import math

import numpy as np
import torch

import grokcircuit as gc
from grokcircuit import paths
from grokcircuit.model import Output

CI = gc.preset("ci")


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
