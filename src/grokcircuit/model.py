"""The two model families, with named stages for the logit lens and patch points.

- `RecursiveTransformer`: the paper's Tiny Recursive Model (paper §5.1; reference code §3.2). One shared module
  of `n_blocks` post-norm blocks; token mixing by a SwiGLU across positions (`mlp_t`) or self-attention;
  H_cycles x L_cycles recursion over z_L / z_H from fixed random initial states; only the last H cycle gets
  gradients; optional prefix slots; non-autoregressive read-out of the 5 label slots from z_H.
  Stages: `init` (z_H), `h{i}_l{j}` (z_L after an L update), `h{i}_commit` (z_H after an H update).
- `LoopedTransformer`: the parameter-sharing causal transformer of Wang et al. 2024 (App. E.2): `n_blocks`
  distinct pre-LN blocks applied `loops` times, learned positions (or rotary ones, an option: with relative
  positions the second hop can reuse the atomic lookup shifted by one slot), answer read at the last input token.
  With `loops=1` it is the standard transformer. Stages: `embed`, `loop{i}_block{j}` (residual stream).

`model(tokens, trace=True, patch={stage: fn})` returns an `Output`; `fn(z, stage) -> z` replaces a state at its
stage boundary. The TRM re-injects the input embedding at every L update, which would wash out a patched state;
the key `f"{stage}.input"` patches that re-injected embedding too, so a patch can persist through the recursion. `model.decode(z)` maps any stage to logits (the lens): the TRM applies its head directly (block
outputs are already RMS-normalised), the looped model applies its final LayerNorm first.

Deviations from the reference: the prefix embedding is trained by AdamW, not SignSGD; the attention mixer of
the TRM adds learned positions (without them attention cannot tell r1 from r2); loss in float32.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig

Patch = dict[str, Callable[[torch.Tensor, str], torch.Tensor]]
INPUT = ".input"  # TRM patch key suffix: `h0_l1.input` replaces the input embedding re-injected at that L update

# TRM on a CPU: a batch chunk holds about this many token-mixer rows (sample, channel); at D=64 that is 16 samples
# and a 1 MB gate or up product at the reference's inner width 256, the fastest measured on the 2-core machine.
CPU_CHUNK_ROWS = 1024


@dataclass
class Output:
    logits: torch.Tensor  # (B, T, V), token positions only
    trace: dict[str, torch.Tensor] | None = None  # stage -> (B, T, D), token positions only
    q_halt: torch.Tensor | None = None  # (B,) TRM halting logit


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA; full precision on the CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def stage_names(cfg: ModelConfig) -> list[str]:
    """Stage ids in the order they are computed (15 for the paper's H2 x L6)."""
    if cfg.arch == "trm":
        names = ["init"]
        for h in range(cfg.h_cycles):
            names += [f"h{h}_l{l}" for l in range(cfg.l_cycles)] + [f"h{h}_commit"]
        return names
    return ["embed"] + [f"loop{i}_block{j}" for i in range(cfg.loops) for j in range(cfg.n_blocks)]


def stage_label(stage: str) -> str:
    """The paper's plot label of a stage id (e.g. h0_l2 -> H0_L3_Thinking)."""
    if stage == "init":
        return "Init"
    if stage.endswith("_commit"):
        return f"H{stage[1:].split('_')[0]}_Commit"
    if stage.startswith("h"):
        h, l = stage[1:].split("_l")
        return f"H{h}_L{int(l) + 1}_Thinking"
    return stage


def rms_norm(x: torch.Tensor, dim: int = -1, eps: float = 1e-5) -> torch.Tensor:
    """RMSNorm without a learnable scale (the TRM's)."""
    return x * torch.rsqrt(x.pow(2).mean(dim, keepdim=True) + eps)


def swiglu_width(d: int, expansion: float, multiple: int) -> int:
    return multiple * math.ceil(round(expansion * d * 2 / 3) / multiple)


class SwiGLU(nn.Module):
    """W_down(silu(W_gate x) * W_up x), bias-free; `gate_up` stacks W_gate over W_up (the reference's layout).

    The gate and up products are two matmuls on halves of `gate_up.weight`, so neither the (rows, 2·hidden)
    product nor, in the backward, its concatenated gradient is materialised. Without autograd the activation
    runs in place."""

    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.gate_up = nn.Linear(d, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d, bias=False)

    def _act(self, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return F.silu(gate) * up
        return F.silu(gate, inplace=True).mul_(up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., d), features last."""
        w, h = self.gate_up.weight, self.hidden
        return self.down(self._act(F.linear(x, w[:h]), F.linear(x, w[h:])))

    def forward_columns(self, x: torch.Tensor) -> torch.Tensor:
        """x: (d, n), features first: the same function applied to each of the n columns, as left products
        W @ x (faster than x^T @ W^T for the token mixer's d = 21 on a CPU)."""
        w, h = self.gate_up.weight, self.hidden
        return self.down.weight @ self._act(w[:h] @ x, w[h:] @ x)


def rotate(x: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of (B, nh, T, hs) queries or keys: pairs of channels turn by angle t * w."""
    T, hs = x.shape[-2], x.shape[-1]
    freq = 10000.0 ** (-torch.arange(0, hs, 2, device=x.device, dtype=torch.float32) / hs)
    angle = torch.arange(T, device=x.device, dtype=torch.float32)[:, None] * freq  # (T, hs/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


class SelfAttention(nn.Module):
    def __init__(self, d: int, n_heads: int, causal: bool, rope: bool = False):
        super().__init__()
        self.n_heads, self.causal, self.rope = n_heads, causal, rope
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        if self.rope:  # scores then depend on the offset between positions only
            q, k = rotate(q), rotate(k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)  # (B, nh, T, hs)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class RecursiveBlock(nn.Module):
    """Post-norm: z = norm(z + mix(z)); z = norm(z + SwiGLU(z)). The MLP mixer normalises over positions.

    Works on position-major states (T, B, D): the token mixer then reads (T, B·D) and the channel MLP
    (T·B, D) without a transpose."""

    def __init__(self, cfg: ModelConfig, seq_len: int):
        super().__init__()
        self.mixer = cfg.mixer
        if cfg.mixer == "mlp":
            self.mix = SwiGLU(seq_len, swiglu_width(seq_len, cfg.expansion, cfg.mlp_multiple))
        else:
            self.mix = SelfAttention(cfg.d_model, cfg.n_heads, causal=False)
        self.mlp = SwiGLU(cfg.d_model, swiglu_width(cfg.d_model, cfg.expansion, cfg.mlp_multiple))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (T, B, D) -> (T, B, D), contiguous."""
        T, B, D = z.shape
        if self.mixer == "mlp":
            x = z.reshape(T, B * D)
            z = rms_norm(x + self.mix.forward_columns(x), dim=0).view(T, B, D)  # norm over positions
        else:
            y = z.transpose(0, 1)
            z = rms_norm(y + self.mix(y)).transpose(0, 1).contiguous()
        return rms_norm(z + self.mlp(z))


class RecursiveTransformer(nn.Module):
    """The TRM: one shared module f(z, injection) = blocks(z + injection), recursed over z_L and z_H."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, n_tokens: int = 5):
        super().__init__()
        self.cfg, self.n_tokens, self.prefix = cfg, n_tokens, cfg.prefix_len
        D, T = cfg.d_model, cfg.prefix_len + n_tokens
        self.embed = nn.Embedding(vocab_size, D)
        nn.init.trunc_normal_(self.embed.weight, std=1 / math.sqrt(D), a=-2 / math.sqrt(D), b=2 / math.sqrt(D))
        self.prefix_emb = nn.Parameter(torch.zeros(D)) if cfg.prefix_len else None  # slot 0; others stay zero
        self.pos_emb = nn.Parameter(torch.zeros(T, D)) if cfg.mixer == "attn" else None
        self.blocks = nn.ModuleList(RecursiveBlock(cfg, T) for _ in range(cfg.n_blocks))
        self.head = nn.Linear(D, vocab_size, bias=False)
        self.q_head = nn.Linear(D, 1) if cfg.q_halt_weight > 0 else None
        if self.q_head is not None:
            nn.init.zeros_(self.q_head.weight)
            nn.init.constant_(self.q_head.bias, -5.0)
        for m in self.modules():  # the reference's truncated LeCun normal (std 1/sqrt(fan_in)), not torch's default
            if isinstance(m, nn.Linear) and m is not self.q_head:
                std = 1 / math.sqrt(m.in_features)
                nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
        self.register_buffer("h_init", nn.init.trunc_normal_(torch.empty(D), std=1.0, a=-2, b=2))
        self.register_buffer("l_init", nn.init.trunc_normal_(torch.empty(D), std=1.0, a=-2, b=2))
        # Samples per chunk on a CPU (see `module`): CPU_CHUNK_ROWS token-mixer rows, but at least enough that a
        # chunk's channel-MLP hidden state outweighs the block weights that every chunk reads again (at the
        # paper's D=1536 no chunking: its 75 MB of block weights would be re-read per sample).
        block_weights = sum(p.numel() for p in self.blocks[0].parameters())
        hidden = T * swiglu_width(D, cfg.expansion, cfg.mlp_multiple)
        self.cpu_chunk = max(1, CPU_CHUNK_ROWS // D, math.ceil(block_weights / hidden))

    def input_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        e = self.embed(tokens)  # (B, T, D)
        if self.prefix:
            pre = e.new_zeros(e.shape[0], self.prefix, e.shape[2])
            pre[:, 0] = self.prefix_emb
            e = torch.cat([pre, e], dim=1)
        if self.pos_emb is not None:
            e = e + self.pos_emb
        return e * math.sqrt(self.cfg.d_model)

    def module(self, z: torch.Tensor, injection: torch.Tensor) -> torch.Tensor:
        """blocks(z + injection) on (B, T, D) states. Every sample is independent, so on a CPU the batch runs
        in chunks of `cpu_chunk` samples whose hidden states stay in cache; same values up to rounding."""
        z = z + injection
        chunk = self.cpu_chunk if z.device.type == "cpu" else z.shape[0]
        outs = []
        for part in z.split(chunk):
            x = part.transpose(0, 1)  # (T, b, D)
            for block in self.blocks:
                x = block(x)
            outs.append(x.transpose(0, 1))
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of a (B, T, D) state, token positions only."""
        return self.head(z)

    def forward(self, tokens: torch.Tensor, trace: bool = False, patch: Patch | None = None) -> Output:
        cfg, patch = self.cfg, patch or {}
        e = self.input_embedding(tokens)
        z_h = self.h_init.expand_as(e)
        z_l = self.l_init.expand_as(e)
        states: dict[str, torch.Tensor] = {}

        def visit(stage: str, z: torch.Tensor) -> torch.Tensor:
            if stage in patch:
                z = torch.cat([z[:, :self.prefix], patch[stage](z[:, self.prefix:], stage)], dim=1)
            if trace:
                states[stage] = z[:, self.prefix:]
            return z

        def inject(stage: str) -> torch.Tensor:
            """The input embedding re-injected by the L update that computes `stage`."""
            key = f"{stage}{INPUT}"
            if key not in patch:
                return e
            return torch.cat([e[:, :self.prefix], patch[key](e[:, self.prefix:], key)], dim=1)

        z_h = visit("init", z_h)
        for h in range(cfg.h_cycles):
            with torch.set_grad_enabled(torch.is_grad_enabled() and h == cfg.h_cycles - 1):
                for l in range(cfg.l_cycles):
                    stage = f"h{h}_l{l}"
                    z_l = visit(stage, self.module(z_l, z_h + inject(stage)))
                z_h = visit(f"h{h}_commit", self.module(z_h, z_l))
        logits = self.decode(z_h[:, self.prefix:])
        q_halt = self.q_head(z_h[:, 0]).squeeze(-1) if self.q_head is not None else None
        return Output(logits, states if trace else None, q_halt)


class CausalBlock(nn.Module):
    """GPT-2 block: pre-LN causal attention and GELU MLP."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        D = cfg.d_model
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.attn = SelfAttention(D, cfg.n_heads, causal=True, rope=cfg.positions == "rope")
        hidden = int(cfg.expansion * D)
        self.mlp = nn.Sequential(nn.Linear(D, hidden), nn.GELU(), nn.Linear(hidden, D))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class LoopedTransformer(nn.Module):
    """`n_blocks` distinct causal blocks applied `loops` times (Wang et al. 2024, App. E.2)."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, n_tokens: int = 3):
        super().__init__()
        self.cfg = cfg
        D = cfg.d_model
        self.embed = nn.Embedding(vocab_size, D)
        self.pos_emb = nn.Parameter(torch.zeros(n_tokens, D)) if cfg.positions == "learned" else None
        self.blocks = nn.ModuleList(CausalBlock(cfg) for _ in range(cfg.n_blocks))
        self.ln_f = nn.LayerNorm(D)
        self.head = nn.Linear(D, vocab_size, bias=False)
        self.apply(self._init)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.ln_f(z))

    def forward(self, tokens: torch.Tensor, trace: bool = False, patch: Patch | None = None) -> Output:
        patch = patch or {}
        states: dict[str, torch.Tensor] = {}

        def visit(stage: str, z: torch.Tensor) -> torch.Tensor:
            if stage in patch:
                z = patch[stage](z, stage)
            if trace:
                states[stage] = z
            return z

        x = self.embed(tokens)
        if self.pos_emb is not None:
            x = x + self.pos_emb[: tokens.shape[1]]
        x = visit("embed", x)
        for i in range(self.cfg.loops):
            for j, block in enumerate(self.blocks):
                x = visit(f"loop{i}_block{j}", block(x))
        return Output(self.decode(x), states if trace else None)


def build_model(cfg: ModelConfig, vocab_size: int) -> nn.Module:
    if cfg.arch == "trm":
        return RecursiveTransformer(cfg, vocab_size)
    return LoopedTransformer(cfg, vocab_size)


def stablemax_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log of s(x) / sum s(x), with s(x) = 1/(1-x) for x < 0 and x + 1 otherwise (Prieto et al. 2025)."""
    s = torch.where(logits < 0, 1 / (1 - logits), logits + 1)
    return torch.log(s) - torch.log(s.sum(-1, keepdim=True))


def sequence_loss(out: Output, labels: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """Mean over sequences of the mean cross-entropy over labelled slots (+ the TRM's Q-halt BCE)."""
    logits = out.logits.float()
    logp = stablemax_log_probs(logits) if cfg.loss == "stablemax" else F.log_softmax(logits, -1)
    mask = labels != 0
    nll = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1) * mask
    per_seq = nll.sum(-1) / mask.sum(-1).clamp(min=1)
    loss = per_seq.mean()
    if out.q_halt is not None and cfg.q_halt_weight > 0:
        correct = ((logits.argmax(-1) == labels) | ~mask).all(-1).float()
        loss = loss + cfg.q_halt_weight * F.binary_cross_entropy_with_logits(out.q_halt.float(), correct)
    return loss


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
