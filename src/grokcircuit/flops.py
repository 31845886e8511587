"""Compute accounting: matmul FLOPs of one forward pass and of one training step, from the architecture alone.

Each matrix product of an (m, k) by a (k, n) matrix costs 2·m·k·n FLOPs. Counted: the token mixer (the TRM's
SwiGLU across positions, or attention: the q/k/v and output projections plus the score and value products over
the full T x T grid, as the kernels compute it even when a causal mask discards half), the SwiGLU / GELU MLPs and
the output head over the token positions. Not counted: embedding look-ups, norms, activations, residual adds and
the softmax, which are O(T·D) each and a fraction of a percent at these widths. This is the same convention as
`torch.utils.flop_counter.FlopCounterMode`, which the tests check these formulas against.

A training step is the forward pass plus a backward pass of about twice the forward FLOPs of the part that has
gradients (input and weight gradient, one matmul each). For the TRM that part is only the last H cycle, since
the first H-1 cycles run under no_grad (paper §5.1).

Entry points: `forward_flops_per_sample(cfg, vocab)`, `train_flops_per_step(cfg, batch_size, vocab)` (of a
run's config: `run_flops_per_step(cfg)`), and
`gpu_hours(flops, mfu)` to turn FLOPs into hours on an H100 at an assumed utilisation.
"""
from __future__ import annotations

from .config import ModelConfig, RunConfig
from .data import vocab_size
from .model import swiglu_width

TOKENS = {"trm": 5, "looped": 3}  # token slots of each layout (encode.py)
H100_PEAK = 989e12  # FLOP/s, bf16 dense tensor cores (NVIDIA's H100 SXM datasheet)


def block_flops(cfg: ModelConfig, seq_len: int) -> float:
    """Matmul FLOPs of one block application on one sample of `seq_len` positions."""
    D, T = cfg.d_model, seq_len
    if cfg.arch == "trm":
        h = swiglu_width(D, cfg.expansion, cfg.mlp_multiple)
        mlp = 6 * T * D * h  # gate_up (D -> 2h) and down (h -> D) at each position
        if cfg.mixer == "mlp":
            ht = swiglu_width(T, cfg.expansion, cfg.mlp_multiple)
            return 6 * D * T * ht + mlp  # the same SwiGLU, applied across positions for each of D channels
        return 8 * T * D * D + 4 * T * T * D + mlp  # qkv + proj, then scores and values
    hidden = int(cfg.expansion * D)
    return 8 * T * D * D + 4 * T * T * D + 4 * T * D * hidden


def head_flops(cfg: ModelConfig, vocab: int, n_tokens: int) -> float:
    """The output head over the token positions (prefix slots dropped), plus the TRM's Q-halt head."""
    q_halt = 2 * cfg.d_model if cfg.arch == "trm" and cfg.q_halt_weight > 0 else 0
    return 2 * n_tokens * cfg.d_model * vocab + q_halt


def _parts(cfg: ModelConfig, vocab: int) -> tuple[float, float, int]:
    """(FLOPs per block application, head FLOPs, block applications per forward) for one sample."""
    n = TOKENS[cfg.arch]
    if cfg.arch == "trm":
        per_block = block_flops(cfg, cfg.prefix_len + n)
        applications = cfg.h_cycles * (cfg.l_cycles + 1) * cfg.n_blocks
    else:
        per_block = block_flops(cfg, n)
        applications = cfg.loops * cfg.n_blocks
    return per_block, head_flops(cfg, vocab, n), applications


def forward_flops_per_sample(cfg: ModelConfig, vocab: int) -> float:
    """Matmul FLOPs of one forward pass on one query."""
    per_block, head, applications = _parts(cfg, vocab)
    return float(applications * per_block + head)


def train_flops_per_step(cfg: ModelConfig, batch_size: int, vocab: int) -> float:
    """FLOPs of one optimizer step: forward + backward (2x the forward of the part with gradients)."""
    per_block, head, applications = _parts(cfg, vocab)
    with_grad = applications
    if cfg.arch == "trm":  # only the last H cycle: l_cycles z_L updates and one z_H update
        with_grad = (cfg.l_cycles + 1) * cfg.n_blocks
    forward = applications * per_block + head
    backward = 2 * (with_grad * per_block + head)
    return float(batch_size * (forward + backward))


def run_flops_per_step(cfg: RunConfig) -> float:
    """`train_flops_per_step` of a run: its model, batch size and vocabulary."""
    return train_flops_per_step(cfg.model, cfg.train.batch_size, vocab_size(cfg.data.entities, cfg.data.relations))


def gpu_hours(flops: float, mfu: float, peak: float = H100_PEAK) -> float:
    """Hours to compute `flops` on a GPU that sustains the fraction `mfu` of its `peak` FLOP/s."""
    return flops / (mfu * peak) / 3600
