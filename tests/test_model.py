"""The TRM and the looped causal transformer: shapes, named stages, gradient cut, sharing, causality, patching."""
from __future__ import annotations

from dataclasses import replace

import math
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import grokcircuit as gc
from grokcircuit.data import vocab_size
from grokcircuit.encode import encode
from grokcircuit.model import count_params, sequence_loss, stablemax_log_probs

E, R = 10, 4
V = vocab_size(E, R)
TRM = gc.ModelConfig(arch="trm", d_model=32, n_blocks=2, h_cycles=2, l_cycles=6, n_heads=4, mlp_multiple=16,
                     prefix_len=4, q_halt_weight=0.5)
TRM_ATTN = replace(TRM, mixer="attn")
LOOPED = gc.ModelConfig(arch="looped", d_model=32, n_blocks=2, loops=2, n_heads=4, prefix_len=0, q_halt_weight=0.0)
LOOPED_ROPE = replace(LOOPED, positions="rope")
CONFIGS = {"trm": TRM, "trm_attn": TRM_ATTN, "looped": LOOPED, "looped_rope": LOOPED_ROPE}


def make(cfg: gc.ModelConfig, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return gc.build_model(cfg, V)


def batch(cfg: gc.ModelConfig, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    h, t, b = rng.integers(0, E, n), rng.integers(0, E, n), rng.integers(0, E, n)
    r1, r2 = rng.integers(0, R, n), rng.integers(0, R, n)
    r2[: n // 3] = -1  # some atomic facts
    b[: n // 3] = -1
    items = gc.Items(h, r1, r2, t, b)
    layout = "trm" if cfg.arch == "trm" else "causal"
    tokens, labels = encode(items, layout, E, R)
    return torch.as_tensor(tokens), torch.as_tensor(labels)


# ----------------------------------------------------------------------------- shapes and stages

@pytest.mark.parametrize("name", list(CONFIGS))
def test_shapes(name):
    cfg = CONFIGS[name]
    model = make(cfg)
    tokens, _ = batch(cfg)
    T = 5 if cfg.arch == "trm" else 3
    assert tokens.shape == (6, T)
    out = model(tokens, trace=True)
    assert out.logits.shape == (6, T, V)
    assert out.trace is not None
    for stage, z in out.trace.items():
        assert z.shape == (6, T, cfg.d_model), stage
    if cfg.arch == "trm":
        assert out.q_halt.shape == (6,)
    else:
        assert out.q_halt is None
    assert model(tokens).trace is None


def test_stage_names_paper():
    names = gc.stage_names(gc.ModelConfig())
    assert len(names) == 15
    assert names == (["init"] + [f"h0_l{i}" for i in range(6)] + ["h0_commit"]
                     + [f"h1_l{i}" for i in range(6)] + ["h1_commit"])
    assert gc.stage_names(LOOPED) == ["embed", "loop0_block0", "loop0_block1", "loop1_block0", "loop1_block1"]
    assert gc.stage_names(replace(LOOPED, loops=1, n_blocks=4)) == ["embed"] + [f"loop0_block{j}" for j in range(4)]
    assert [gc.stage_label(s) for s in ("init", "h0_l0", "h0_l2", "h0_commit", "h1_l5", "h1_commit")] == \
        ["Init", "H0_L1_Thinking", "H0_L3_Thinking", "H0_Commit", "H1_L6_Thinking", "H1_Commit"]


@pytest.mark.parametrize("cfg", [TRM, TRM_ATTN, LOOPED, replace(TRM, h_cycles=1, l_cycles=1),
                                 replace(TRM, h_cycles=3, l_cycles=2, prefix_len=0, q_halt_weight=0.0),
                                 replace(LOOPED, loops=3, n_blocks=1)],
                         ids=["trm", "trm_attn", "looped", "trm_h1l1", "trm_h3l2", "looped_3x1"])
def test_trace_keys_are_the_stage_names_in_order(cfg):
    model = make(cfg)
    tokens, _ = batch(cfg)
    out = model(tokens, trace=True)
    assert list(out.trace) == gc.stage_names(cfg)
    expected = 1 + cfg.h_cycles * (cfg.l_cycles + 1) if cfg.arch == "trm" else 1 + cfg.loops * cfg.n_blocks
    assert len(out.trace) == expected


@pytest.mark.parametrize("name", list(CONFIGS))
def test_decoding_the_last_stage_gives_the_logits(name):
    cfg = CONFIGS[name]
    model = make(cfg).eval()
    tokens, _ = batch(cfg)
    with torch.no_grad():
        out = model(tokens, trace=True)
        last = "h1_commit" if cfg.arch == "trm" else "loop1_block1"
        assert torch.allclose(model.decode(out.trace[last]), out.logits, atol=1e-5)
        # and an earlier stage does not (the stages really are different states)
        first_inner = "h0_l0" if cfg.arch == "trm" else "loop0_block0"
        assert not torch.allclose(model.decode(out.trace[first_inner]), out.logits, atol=1e-3)


# ----------------------------------------------------------------------------- gradient cut (TRM)

def param_grads(model, tokens, labels, cfg, patch=None) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    sequence_loss(model(tokens, patch=patch), labels, cfg).backward()
    return {n: (p.grad.clone() if p.grad is not None else None) for n, p in model.named_parameters()}


@pytest.mark.parametrize("cfg", [TRM, TRM_ATTN, replace(TRM, h_cycles=3, l_cycles=2)], ids=["mlp", "attn", "h3l2"])
def test_gradient_flows_only_through_the_last_h_cycle(cfg):
    model = make(cfg).train()
    tokens, labels = batch(cfg)
    last = cfg.h_cycles - 1
    full = param_grads(model, tokens, labels, cfg)
    assert all(g is not None for g in full.values()), [n for n, g in full.items() if g is None]
    assert full["embed.weight"].abs().sum() > 0 and full["blocks.0.mlp.down.weight"].abs().sum() > 0
    # cutting the graph where the last H cycle starts changes nothing: no gradient crossed it anyway
    cut = {f"h{last - 1}_l{cfg.l_cycles - 1}": lambda z, s: z.detach(),
           f"h{last - 1}_commit": lambda z, s: z.detach()}
    detached = param_grads(model, tokens, labels, cfg, patch=cut)
    for n in full:
        assert (full[n] is None) == (detached[n] is None), n
        if full[n] is not None:
            assert torch.equal(full[n], detached[n]), f"gradient of {n} flows through an early H cycle"
    # the same cut inside the last cycle does change the gradients (the check has teeth)
    inside = param_grads(model, tokens, labels, cfg, patch={f"h{last}_l0": lambda z, s: z.detach()})
    assert any(full[n] is not None and not torch.equal(full[n], inside[n]) for n in full)


def test_patched_leaf_gets_gradient_only_in_the_last_h_cycle():
    cfg = TRM
    model = make(cfg).train()
    tokens, labels = batch(cfg)

    def leaf_at(stage: str) -> torch.Tensor:
        holder = {}

        def patch(z, s):
            holder["leaf"] = z.detach().clone().requires_grad_(True)
            return holder["leaf"]

        sequence_loss(model(tokens, patch={stage: patch}), labels, cfg).backward()
        return holder["leaf"]

    for stage in ("h1_l0", "h1_l5"):
        leaf = leaf_at(stage)
        assert leaf.grad is not None and leaf.grad.abs().sum() > 0, stage
    for stage in ("init", "h0_l0", "h0_l3"):
        leaf = leaf_at(stage)
        assert leaf.grad is None, f"gradient reached {stage} in the first H cycle"


def test_no_grad_mode_is_respected():
    model = make(TRM)
    tokens, _ = batch(TRM)
    with torch.no_grad():
        assert not model(tokens).logits.requires_grad
    assert model(tokens).logits.requires_grad


def test_initial_states_are_fixed_buffers():
    model = make(TRM)
    names = dict(model.named_buffers())
    assert "h_init" in names and "l_init" in names
    assert all("init" not in n for n, _ in model.named_parameters())


# ----------------------------------------------------------------------------- parameter sharing

def test_trm_shares_one_module_across_recursion():
    counts = {(h, l): count_params(make(replace(TRM, h_cycles=h, l_cycles=l))) for h, l in ((1, 1), (2, 6), (3, 2))}
    assert len(set(counts.values())) == 1, counts
    assert count_params(make(replace(TRM, n_blocks=3))) > counts[(2, 6)]
    assert count_params(make(replace(TRM_ATTN, h_cycles=1))) == count_params(make(replace(TRM_ATTN, h_cycles=4)))


def test_looped_shares_blocks_across_loops_and_standard_has_more():
    counts = [count_params(make(replace(LOOPED, loops=k))) for k in (1, 2, 4)]
    assert len(set(counts)) == 1, counts
    standard = count_params(make(replace(LOOPED, loops=1, n_blocks=4)))
    looped = count_params(make(replace(LOOPED, loops=2, n_blocks=2)))
    assert standard > looped
    # same depth of computation: 4 block applications each
    assert len(gc.stage_names(replace(LOOPED, loops=1, n_blocks=4))) == len(gc.stage_names(LOOPED))


def test_rotary_positions_replace_learned_ones():
    learned, rope = make(LOOPED), make(LOOPED_ROPE)
    assert rope.pos_emb is None
    assert count_params(learned) == count_params(rope) + 3 * LOOPED.d_model
    # with rotary positions the embed stage carries no position: equal tokens give equal states
    tokens = torch.full((1, 3), E + 1)
    with torch.no_grad():
        z = rope(tokens, trace=True).trace["embed"]
    assert torch.equal(z[0, 0], z[0, 2])
    with pytest.raises(gc.ConfigError, match="positions"):
        replace(LOOPED, positions="sinusoid").validate()


def test_tied_embeddings():
    model = make(LOOPED)
    assert model.head.weight is model.embed.weight
    untied = make(replace(LOOPED, tie_embeddings=False))
    assert count_params(untied) == count_params(model) + V * LOOPED.d_model


def test_paper_preset_parameter_count():
    cfg = gc.preset("paper")
    torch.manual_seed(0)
    model = gc.build_model(cfg.model, vocab_size(cfg.data.entities, cfg.data.relations))
    n = count_params(model)
    assert abs(n - 44.56e6) < 0.01e6, n
    assert len(gc.stage_names(cfg.model)) == 15
    # 75 MB of block weights: on a CPU a chunk needs 220 samples (ceil(18.9M / (21 * 4096))) to outweigh them
    assert model.cpu_chunk == 220


# ----------------------------------------------------------------------------- causality

@pytest.mark.parametrize("cfg", [LOOPED, LOOPED_ROPE, replace(LOOPED, loops=1, n_blocks=4)],
                         ids=["learned", "rope", "standard"])
def test_looped_model_is_causal(cfg):
    model = make(cfg).eval()
    tokens, _ = batch(cfg)
    last = gc.stage_names(cfg)[-1]
    changed = tokens.clone()
    changed[:, 2] = torch.where(changed[:, 2] == E + 1, E + 2, E + 1)  # another relation at position 2
    with torch.no_grad():
        a, b = model(tokens, trace=True), model(changed, trace=True)
    for stage in a.trace:
        assert torch.allclose(a.trace[stage][:, :2], b.trace[stage][:, :2], atol=1e-6), stage
        assert not torch.allclose(a.trace[stage][:, 2], b.trace[stage][:, 2]), stage
    assert torch.allclose(a.logits[:, :2], b.logits[:, :2], atol=1e-6)
    changed[:, 1] = torch.where(changed[:, 1] == E + 1, E + 2, E + 1)
    with torch.no_grad():
        c = model(changed, trace=True)
    assert torch.allclose(a.trace[last][:, 0], c.trace[last][:, 0], atol=1e-6)
    assert not torch.allclose(a.trace[last][:, 1], c.trace[last][:, 1])


def test_trm_mixes_all_positions():
    """The TRM reads the whole sequence: a change at position 2 reaches position 0 (unlike the causal model)."""
    model = make(TRM).eval()
    tokens, _ = batch(TRM)
    changed = tokens.clone()
    changed[:, 2] = torch.where(changed[:, 2] == E + 1, E + 2, E + 1)
    with torch.no_grad():
        a, b = model(tokens, trace=True), model(changed, trace=True)
    assert torch.equal(a.trace["init"], b.trace["init"])
    assert not torch.allclose(a.trace["h0_l0"][:, 0], b.trace["h0_l0"][:, 0])


# ----------------------------------------------------------------------------- patching

@pytest.mark.parametrize("name,stage", [("trm", "h1_l5"), ("trm", "h0_commit"), ("trm_attn", "h1_l0"),
                                        ("looped", "loop0_block1"), ("looped", "embed"),
                                        ("looped_rope", "loop1_block0")])
def test_patch_replaces_a_state(name, stage):
    cfg = CONFIGS[name]
    model = make(cfg).eval()
    tokens, _ = batch(cfg)
    seen = []

    def zeros(z, s):
        seen.append((s, tuple(z.shape)))
        return torch.zeros_like(z)

    with torch.no_grad():
        base = model(tokens, trace=True)
        same = model(tokens, trace=True, patch={stage: lambda z, s: z})
        patched = model(tokens, trace=True, patch={stage: zeros})
    T = tokens.shape[1]
    assert seen == [(stage, (6, T, cfg.d_model))]
    assert torch.equal(same.logits, base.logits)
    assert torch.equal(patched.trace[stage], torch.zeros(6, T, cfg.d_model))
    assert not torch.allclose(patched.logits, base.logits, atol=1e-4)
    # stages before the patch are untouched
    names = gc.stage_names(cfg)
    for earlier in names[: names.index(stage)]:
        assert torch.equal(patched.trace[earlier], base.trace[earlier]), earlier


# ----------------------------------------------------------------------------- losses

def test_stablemax_log_probs_formula_and_normalisation():
    x = torch.tensor([[-1.0, 0.0, 1.0], [-3.0, 2.5, -0.5]])
    s = [[0.5, 1.0, 2.0], [0.25, 3.5, 1 / 1.5]]
    expected = torch.tensor([[v / sum(row) for v in row] for row in s]).log()
    assert torch.allclose(stablemax_log_probs(x), expected, atol=1e-6)
    logits = torch.randn(4, 5, 50) * 5
    lp = stablemax_log_probs(logits)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(4, 5), atol=1e-5)
    assert torch.equal(lp.argmax(-1), logits.argmax(-1))  # monotone
    assert not torch.allclose(lp, F.log_softmax(logits, -1), atol=1e-3)


def test_sequence_loss_masks_unlabelled_slots():
    logits = torch.randn(3, 5, 12)
    labels = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 3, 4, 0], [0, 0, 7, 0, 0]])
    for loss_name in ("softmax", "stablemax"):
        cfg = replace(LOOPED, loss=loss_name)
        lp = F.log_softmax(logits, -1) if loss_name == "softmax" else stablemax_log_probs(logits)
        per_seq = []
        for i in range(3):
            mask = labels[i] != 0
            per_seq.append(-lp[i, mask.nonzero().squeeze(-1), labels[i][mask]].mean())
        got = sequence_loss(gc.model.Output(logits), labels, cfg)
        assert torch.allclose(got, torch.stack(per_seq).mean(), atol=1e-5), loss_name


def test_sequence_loss_adds_q_halt_term():
    logits = torch.randn(2, 5, 12)
    labels = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 3, 4, 0]])
    q = torch.tensor([0.3, -1.0])
    cfg = replace(TRM, loss="softmax", q_halt_weight=0.5)
    plain = sequence_loss(gc.model.Output(logits), labels, cfg)
    with_q = sequence_loss(gc.model.Output(logits, None, q), labels, cfg)
    correct = ((logits.argmax(-1) == labels) | (labels == 0)).all(-1).float()
    assert torch.allclose(with_q - plain, 0.5 * F.binary_cross_entropy_with_logits(q, correct), atol=1e-6)


def test_trm_linear_init_matches_the_reference():
    """Truncated LeCun normal (std 1/sqrt(fan_in)) as the reference's CastedLinear; the Q head starts at zero."""
    torch.manual_seed(0)
    model = gc.build_model(replace(TRM, d_model=256), 60)
    w = model.blocks[0].mlp.gate_up.weight
    assert abs(w.std().item() * math.sqrt(w.shape[1]) - 0.88) < 0.05  # std of a normal truncated at 2 sigma
    assert w.abs().max().item() <= 2 / math.sqrt(w.shape[1]) + 1e-6
    assert torch.count_nonzero(model.q_head.weight) == 0


# ----------------------------------------------------------------------------- the TRM's fast path

def reference_trm(model: torch.nn.Module, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The TRM written out plainly, batch-major, as in the reference: (logits, q_halt) from `model`'s weights."""
    cfg = model.cfg

    def rms(x, dim=-1):
        return x * torch.rsqrt(x.pow(2).mean(dim, keepdim=True) + 1e-5)

    def swiglu(m, x):
        gate, up = F.linear(x, m.gate_up.weight).chunk(2, dim=-1)
        return F.linear(F.silu(gate) * up, m.down.weight)

    def block(b, z):  # (B, T, D)
        if cfg.mixer == "mlp":
            y = z.transpose(1, 2)
            z = rms(y + swiglu(b.mix, y)).transpose(1, 2)
        else:
            z = rms(z + b.mix(z))
        return rms(z + swiglu(b.mlp, z))

    def f(z, injection):
        z = z + injection
        for b in model.blocks:
            z = block(b, z)
        return z

    e = model.input_embedding(tokens)
    z_h, z_l = model.h_init.expand_as(e), model.l_init.expand_as(e)
    for h in range(cfg.h_cycles):
        with torch.set_grad_enabled(torch.is_grad_enabled() and h == cfg.h_cycles - 1):
            for _ in range(cfg.l_cycles):
                z_l = f(z_l, z_h + e)
            z_h = f(z_h, z_l)
    return model.head(z_h[:, cfg.prefix_len:]), model.q_head(z_h[:, 0]).squeeze(-1)


@pytest.mark.parametrize("name", ["trm", "trm_attn"])
def test_trm_matches_the_plain_reference_in_values_and_gradients(name):
    """Position-major blocks, split gate/up products and (on a CPU) batch chunks of 3 samples: same logits,
    Q-halt logits and parameter gradients as the plain batch-major computation, up to float rounding."""
    cfg = replace(CONFIGS[name], h_cycles=2, l_cycles=2)
    model = make(cfg)
    model.cpu_chunk = 3  # 7 samples -> chunks of 3, 3, 1
    tokens, labels = batch(cfg, n=7)
    grads = []
    for forward in (lambda t: (lambda o: (o.logits, o.q_halt))(model(t)), lambda t: reference_trm(model, t)):
        logits, q = forward(tokens)
        out = gc.model.Output(logits, None, q)
        model.zero_grad(set_to_none=True)
        sequence_loss(out, labels, cfg).backward()
        grads.append(((logits.detach(), q.detach()), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (fast, fast_grads), (ref, ref_grads) = grads
    assert torch.allclose(fast[0], ref[0], atol=1e-5) and torch.allclose(fast[1], ref[1], atol=1e-6)
    assert fast_grads.keys() == ref_grads.keys()
    for n in ref_grads:
        assert torch.allclose(fast_grads[n], ref_grads[n], atol=1e-6, rtol=1e-4), n


def test_trm_cpu_chunk_size():
    """About CPU_CHUNK_ROWS token-mixer rows per chunk when the block weights are small (the matched-official
    setting: 16 samples); the paper's setting is checked in test_paper_preset_parameter_count."""
    model = gc.build_model(replace(TRM, d_model=64, prefix_len=16, mlp_multiple=256, l_cycles=2), 223)
    assert model.cpu_chunk == gc.model.CPU_CHUNK_ROWS // 64 == 16


def test_trm_chunking_and_no_grad_path_leave_the_outputs_unchanged():
    """One sample per chunk, one chunk for all, with and without autograd (the in-place activation): same
    logits and trace up to rounding."""
    model = make(TRM)
    tokens, _ = batch(TRM, n=7)
    outs = []
    for chunk, grad in ((1, True), (7, True), (1, False), (7, False)):
        model.cpu_chunk = chunk
        with torch.set_grad_enabled(grad):
            outs.append(model(tokens, trace=True))
    for out in outs[1:]:
        assert torch.allclose(out.logits, outs[0].logits, atol=1e-5)
        for stage, z in outs[0].trace.items():
            assert torch.allclose(out.trace[stage], z, atol=1e-5), stage
