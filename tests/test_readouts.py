"""Readouts that can fail: the entity-restricted lens, the bridge probe and TRM patching, each checked on a case
whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import grokcircuit as gc
from grokcircuit import lens, paths, probe
from grokcircuit.model import INPUT, Output, build_model

CI = gc.preset("ci")
TRM = gc.preset("ci", **{"model.arch": "trm", "model.h_cycles": 2, "model.l_cycles": 2, "model.d_model": 32})


def ci_queries(split: str, layout: str = "causal", cfg=CI) -> tuple[gc.Queries, np.ndarray]:
    ds = gc.make_dataset(cfg.data)
    return gc.Queries.build(ds.probes[split], layout, cfg.data.entities, cfg.data.relations), ds.graph.tail_of


# ----------------------------------------------------------------------------- entity-restricted lens

def test_composition_cells_leave_out_what_atomic_recall_explains():
    causal = lens.composition_cells(["embed", "a", "b"], 3)
    assert causal.tolist() == [[False, False, True], [False, False, True], [False, False, False]]
    assert lens.composition_cells(["init", "h0_l0", "h0_commit"], 5).all()


def test_entity_lens_is_the_best_composition_cell():
    S, N, T = 3, 4, 3
    rank = np.ones((S, N, T), dtype=np.int64)
    rank[2, :, 1] = 0  # the r1 slot at the last stage: atomic recall, not a composition cell
    rank[1, :3, 2] = 0  # 3 of 4 queries at the answer slot of stage 1
    res = lens.LensResult(["embed", "mid", "out"], rank, rank, rank, rank)
    assert lens.bridge_entity_lens(res) == 0.75


def test_entity_lens_of_an_untrained_model_is_near_one_in_E():
    q, _ = ci_queries("test_inferred_ood")
    torch.manual_seed(0)
    model = build_model(CI.model, gc.data.vocab_size(CI.data.entities, CI.data.relations))
    rate = lens.bridge_entity_lens(lens.run_lens(model, q))
    assert rate < 5 / CI.data.entities  # the paper's any-cell rule would be far above this


# ----------------------------------------------------------------------------- probe

class Replay(torch.nn.Module):
    """Returns the given traces, one per call: {"noise": random, "bridge": one-hot code of the bridge}."""

    def __init__(self, *traces: dict[str, np.ndarray]):
        super().__init__()
        self.traces = list(traces)

    def forward(self, tokens: torch.Tensor, trace: bool = False, patch=None) -> Output:
        return Output(torch.zeros(1), {k: torch.as_tensor(v) for k, v in self.traces.pop(0).items()})


def states(q: gc.Queries, entities: int, seed: int) -> dict[str, np.ndarray]:
    code = np.zeros((len(q), 3, entities), dtype=np.float32)
    code[np.arange(len(q)), :, q.items.b] = 1.0
    noise = np.random.default_rng(seed).standard_normal(code.shape).astype(np.float32)
    return {"noise": noise, "bridge": code, "out": code}


def test_probe_reads_a_bridge_that_is_there_and_not_one_that_is_not():
    (train, _), (ood, _) = ci_queries("train_inferred"), ci_queries("test_inferred_ood")
    E = CI.data.entities
    frame = probe.probe_stages(Replay(states(train, E, 0), states(ood, E, 1)), train, {"ood": ood})
    acc = frame.set_index("stage")["accuracy"]
    seen = np.isin(ood.items.b, train.items.b).mean()
    assert acc["bridge"] == pytest.approx(seen)  # every bridge that is a class is read
    assert acc["noise"] < 3 / E
    assert "out" not in acc  # the output stage of the causal model is no composition cell
    assert probe.bridge_probe(frame)["ood"] == acc["bridge"]


# ----------------------------------------------------------------------------- TRM patching

def trm_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(TRM.model, gc.data.vocab_size(TRM.data.entities, TRM.data.relations)).eval()


def test_trm_patch_of_the_whole_input_runs_the_donor():
    """Patching every slot at Init with the donor's state and re-injected input reproduces the donor's run; without
    the re-injected input the clean input would take over again."""
    q, _ = ci_queries("test_inferred_ood", "trm", TRM)
    model = trm_model()
    clean, donor = q.tokens[:8], q.tokens[8:16]
    with torch.no_grad():
        trace = model(donor, trace=True).trace
        e = model.input_embedding(donor)[:, model.prefix:]
        every = list(range(clean.shape[1]))
        patched = model(clean, patch=paths._patch(model, list(trace), "init", every, trace, e)).logits
        state_only = model(clean, patch={"init": paths._replace(every, trace["init"])}).logits
        assert torch.allclose(patched, model(donor).logits, atol=1e-5)
        assert not torch.allclose(state_only, model(donor).logits, atol=1e-3)


def test_trm_patch_of_an_empty_slot_changes_nothing():
    """The last slot is PAD in both runs and Init is input-free: a patch there at Init is the identity."""
    q, _ = ci_queries("test_inferred_ood", "trm", TRM)
    model = trm_model()
    clean, donor = q.tokens[:8], q.tokens[8:16]
    with torch.no_grad():
        trace = model(donor, trace=True).trace
        e = model.input_embedding(donor)[:, model.prefix:]
        patched = model(clean, patch=paths._patch(model, list(trace), "init", [4], trace, e)).logits
        assert torch.allclose(patched, model(clean).logits, atol=1e-6)


def test_trm_patch_reaches_every_later_l_update():
    model = trm_model()
    stages = gc.stage_names(TRM.model)
    patch = paths._patch(model, stages, "h0_l1", [1], {"h0_l1": torch.zeros(1, 5, 32)}, torch.zeros(1, 5, 32))
    assert set(patch) == {"h0_l1", f"h1_l0{INPUT}", f"h1_l1{INPUT}"}


def test_bridge_used_is_false_without_a_donor():
    q, tail_of = ci_queries("train_inferred")
    torch.manual_seed(0)
    model = build_model(CI.model, gc.data.vocab_size(CI.data.entities, CI.data.relations))
    used = paths.bridge_used(model, q, tail_of)
    assert used.shape == (len(q),) and used.dtype == bool
    assert not used[~q.items.is_inferred].any()
