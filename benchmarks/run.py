"""Training and logit-lens throughput of the package's models, with FLOPs, a measured matmul peak and MFU.

    python benchmarks/run.py --quick                       # about 1-2 minutes on a 2-core CPU
    python benchmarks/run.py --quick --out results.csv     # also write the table as CSV
    python benchmarks/run.py --configs cpu,matched-official --variants baseline,foreach,fused --threads 2
    python benchmarks/run.py --configs cpu --profile       # torch.profiler: phases and top operators

One row per (configuration, variant, device). Configurations: the `ci`, `cpu` and `paper` presets and
`matched-official`, the setting in which the official TRM code was timed on the 2-core machine (D=64, 2 blocks,
H2 x L2, 16 prefix slots, 5 tokens, vocabulary 222 + PAD, batch 256, fp32, stablemax + AdamW).

The timed step is the training loop's own: batch indexing through `grokcircuit.train.Batches`, the LR of
`lr_at`, and `grokcircuit.train.train_step` (forward, loss, backward, the gradient filter when the preset has one,
the AdamW step of `make_optimizer`, the EMA update); a few steps are run first as warm-up. Variants change one
thing each and are measured the same way (see VARIANTS). The lens and bridge-probe timings run
`grokcircuit.lens.run_lens` and `grokcircuit.probe.probe_stages` on the EMA model. Each row runs in a fresh
process (spawn) so that its peak RSS is its own; `--no-isolate` runs everything in this process.

Nothing here needs a GPU. When CUDA is available (and `--devices` asks for it) the same rows run on cuda with
bf16 autocast, as `grokcircuit.train` does there.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from grokcircuit.config import DataConfig, ModelConfig, RunConfig, TrainConfig, preset
from grokcircuit.data import Items, choose, vocab_size
from grokcircuit.dataset import make_dataset
from grokcircuit.encode import encode, layout_of
from grokcircuit.flops import train_flops_per_step
from grokcircuit.lens import Queries, run_lens
from grokcircuit.model import autocast_for, build_model, count_params, sequence_loss
from grokcircuit.probe import probe_stages
from grokcircuit.train import EMA, Batches, GradFilter, Schedule, lr_at, make_optimizer, train_step

COLUMNS = [
    "config", "variant", "device", "dtype", "threads", "batch", "params", "steps",
    "samples_per_s", "s_per_step", "cpu_s_per_step", "flops_per_step", "flops_source", "achieved_flops_per_s",
    "peak_matmul_flops_per_s", "mfu", "lens_queries", "lens_stages", "lens_query_stages_per_s",
    "lens_s_per_2000", "probe_s_per_2000", "compile_s", "peak_rss_mb", "cuda_peak_mb", "loadavg", "note",
]

CONFIGS = ("ci", "cpu", "paper", "matched-official")

# name -> what it changes relative to the training loop of grokcircuit.train
VARIANTS = {
    "baseline": "as grokcircuit.train: AdamW defaults (for-loop on CPU, foreach on CUDA)",
    "foreach": "AdamW with foreach=True (set on make_optimizer's parameter group)",
    "fused": "AdamW with fused=True (set on make_optimizer's parameter group)",
    "compile": "fwd = torch.compile(model) (forward only, as train.compile does on cuda)",
    "mm-high": 'torch.set_float32_matmul_precision("high")',
    "mm-medium": 'torch.set_float32_matmul_precision("medium")',
    "sdpa-math": "forward under torch.nn.attention.sdpa_kernel(SDPBackend.MATH) (attention models only)",
    "threads-1": "torch.set_num_threads(1) around the step (for --compare)",
    "threads-2": "torch.set_num_threads(2) around the step (for --compare)",
    "omp-passive": "OMP_WAIT_POLICY=PASSIVE in the environment before torch starts (needs process isolation)",
}
ENV = {"omp-passive": {"OMP_WAIT_POLICY": "PASSIVE"}}  # set in the row's fresh process


@dataclass(frozen=True)
class Plan:
    """How long to measure one configuration."""

    warmup: int
    steps: int
    lens_queries: int
    batch: int | None = None  # None: the preset's batch size


def plans(quick: bool, device: str, paper_batch: int | None) -> dict[str, Plan]:
    if device == "cuda":
        return {"ci": Plan(5, 30, 2000), "cpu": Plan(5, 30, 2000), "paper": Plan(3, 10, 2000, paper_batch),
                "matched-official": Plan(5, 30, 2000)}
    if quick:
        return {"ci": Plan(3, 10, 2000), "cpu": Plan(3, 8, 2000), "paper": Plan(1, 2, 8, paper_batch or 4),
                "matched-official": Plan(1, 3, 2000)}
    return {"ci": Plan(5, 40, 2000), "cpu": Plan(5, 20, 2000), "paper": Plan(1, 3, 32, paper_batch or 8),
            "matched-official": Plan(2, 8, 2000)}


def matched_official() -> RunConfig:
    """The official TRM code's timed setting. Vocabulary 1 + 200 + 16 + 6 = 223 = 222 tokens + PAD; both SwiGLU
    inner widths are 256 (token mixing: round(4 * 21 * 2/3) = 56 -> 256; channels: round(4 * 64 * 2/3) = 171 -> 256).
    Two-hop data E=200, R=16, out-degree 10 (only the vocabulary size matters for the timing)."""
    return RunConfig(
        data=DataConfig(entities=200, relations=16, out_degree=10, ood_fraction=0.1, phi=7.2, id_test_prob=0.02,
                        probe_size=300, aug_k=10),
        model=ModelConfig(arch="trm", d_model=64, n_blocks=2, h_cycles=2, l_cycles=2, prefix_len=16, mixer="mlp",
                          loss="stablemax", expansion=4.0, mlp_multiple=256, q_halt_weight=0.5),
        train=TrainConfig(lr=1e-3, weight_decay=1.0, batch_size=256, warmup_steps=200, steps=10_000),
    ).validate()


def run_config(name: str) -> RunConfig:
    return matched_official() if name == "matched-official" else preset(name)


# ----------------------------------------------------------------------------------------------- measurements

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int | None = None, repeats: int = 15) -> float:
    """FLOP/s of an n x n @ n x n matmul (n=1024 on CPU, 8192 on cuda), median of `repeats` timings."""
    n = n or (8192 if device.type == "cuda" else 1024)
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times)


def count_flops(model: torch.nn.Module, cfg: RunConfig, tokens: torch.Tensor, labels: torch.Tensor,
                batch: int, autocast: Any) -> float:
    """Matmul FLOPs of forward + backward counted by FlopCounterMode on a small batch, scaled to `batch`
    (every counted product is linear in the batch)."""
    from torch.utils.flop_counter import FlopCounterMode

    n = min(batch, 4)
    counter = FlopCounterMode(display=False)
    with counter:
        with autocast:
            out = model(tokens[:n])
        sequence_loss(out, labels[:n], cfg.model).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() * batch / n


def flops_per_step(model: torch.nn.Module, cfg: RunConfig, vocab: int, tokens: torch.Tensor,
                   labels: torch.Tensor, batch: int, autocast: Any, source: str) -> tuple[float, str]:
    """(FLOPs of one training step, where the number comes from). `source`: analytic or counter."""
    if source == "analytic":
        return float(train_flops_per_step(cfg.model, batch, vocab)), "grokcircuit.flops"
    return count_flops(model, cfg, tokens, labels, batch, autocast), "FlopCounterMode"


def lens_queries(task_items: Items, n: int, cfg: RunConfig, device: torch.device) -> Queries:
    """`n` queries of `task_items` (repeated when the set is smaller)."""
    rng = np.random.default_rng([cfg.train.seed, 77])
    idx = np.sort(choose(rng, len(task_items), n))
    if len(idx) < n:
        idx = np.resize(idx, n)
    return Queries.build(task_items.take(idx), layout_of(cfg.model.arch), cfg.data.entities, cfg.data.relations,
                         str(device))


class Setup:
    """One configuration ready to train: data on the device, model, EMA copy, AdamW and the variant's settings.

    `step(i)` is one optimizer step of the training loop; run it inside `settings()`, which applies the variant's
    global torch settings (matmul precision, thread count, attention backend) and restores them afterwards.
    """

    def __init__(self, name: str, variant: str, dev: torch.device, batch: int | None = None):
        if variant not in VARIANTS:
            raise ValueError(f"invalid variant={variant!r}: must be one of {', '.join(VARIANTS)}")
        for key, value in ENV.get(variant, {}).items():
            if os.environ.get(key) != value:
                raise RuntimeError(f"variant {variant} needs {key}={value} in the environment before torch starts")
        self.name, self.variant, self.dev = name, variant, dev
        self.cfg = cfg = run_config(name)
        self.batch = batch or cfg.train.batch_size
        self.autocast = autocast_for(dev)
        self.data = make_dataset(cfg.data)
        self.tokens, self.labels = (torch.as_tensor(a, device=dev) for a in encode(
            self.data.train, layout_of(cfg.model.arch), cfg.data.entities, cfg.data.relations))
        self.vocab = vocab_size(cfg.data.entities, cfg.data.relations)
        self.sched = Schedule(cfg.train.lr, cfg.train.warmup_steps, 10 ** 9, 10 ** 9)
        self.batches = Batches(len(self.data.train), self.batch, cfg.train.seed, dev)
        torch.manual_seed(cfg.train.seed)
        self.model = build_model(cfg.model, self.vocab).to(dev)
        self.ema = EMA(self.model, cfg.train.ema_decay)
        self.opt = make_optimizer(self.model, cfg, cfg.train.lr)
        if variant in ("foreach", "fused"):
            self.opt.param_groups[0][variant] = True
        self.fwd = torch.compile(self.model) if variant == "compile" else self.model
        t = cfg.train  # the gradient filter, when the preset has one, as it runs after `grokfast_from`
        self.grad_filter = GradFilter(self.model, t.grokfast_alpha, t.grokfast_lamb, t.grokfast_init) if t.grokfast_alpha > 0 else None
        self.model.train()

    @contextlib.contextmanager
    def settings(self):
        precision, threads = torch.get_float32_matmul_precision(), torch.get_num_threads()
        with contextlib.ExitStack() as stack:
            if self.variant.startswith("mm-"):
                torch.set_float32_matmul_precision(self.variant[3:])
            if self.variant.startswith("threads-"):
                torch.set_num_threads(int(self.variant[8:]))
            if self.variant == "sdpa-math":
                from torch.nn.attention import SDPBackend, sdpa_kernel

                stack.enter_context(sdpa_kernel([SDPBackend.MATH]))
            try:
                yield
            finally:
                torch.set_float32_matmul_precision(precision)
                torch.set_num_threads(threads)

    def step(self, i: int, fwd: Any = None) -> None:
        """One step of grokcircuit.train's loop (`fwd`: a stand-in for the forward, e.g. one that labels it)."""
        idx = self.batches.indices(i)
        train_step(self.model, fwd or self.fwd, self.opt, self.ema, self.tokens[idx], self.labels[idx], self.cfg,
                   lr_at(i, self.sched), self.autocast, self.grad_filter)

    def timed(self, start: int, n: int) -> tuple[list[float], list[float]]:
        """(wall seconds, process CPU seconds) of steps start .. start + n - 1, each synchronised.
        The CPU seconds of all threads, spin-waiting included; with one thread they leave out the time the
        process spent waiting for a core on a shared machine."""
        wall, cpu = [], []
        with self.settings():
            for i in range(start, start + n):
                t, c = time.perf_counter(), time.process_time()
                self.step(i)
                sync(self.dev)
                wall.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
        return wall, cpu


def labelled(fwd: Any) -> Any:
    """`fwd` under the torch.profiler label "forward"."""
    def forward(tokens: torch.Tensor) -> Any:
        with torch.profiler.record_function("forward"):
            return fwd(tokens)
    return forward


def bench(name: str, variant: str = "baseline", device: str = "cpu", plan: Plan | None = None,
          threads: int | None = None, flops_source: str = "analytic", profile: int = 0,
          quick: bool = True) -> dict[str, Any]:
    """Measure one row. `profile` > 0: also run that many steps under torch.profiler and print the results."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    on_cuda = dev.type == "cuda"
    plan = plan or plans(quick, dev.type, None)[name]
    su = Setup(name, variant, dev, plan.batch)
    cfg, batch = su.cfg, su.batch
    dtype = "bf16-autocast" if on_cuda else "fp32"
    with su.settings():
        peak = matmul_peak(dev, torch.bfloat16 if on_cuda else torch.float32)
        flops, source = flops_per_step(su.model, cfg, su.vocab, su.tokens, su.labels, batch, su.autocast,
                                       flops_source)
        threads_used = torch.get_num_threads()
    warm, _ = su.timed(0, plan.warmup)
    wall, cpu = su.timed(plan.warmup, plan.steps)
    s_step, cpu_step = statistics.median(wall), statistics.median(cpu)
    if profile:
        with su.settings():
            print_profile(name, variant, dev, lambda i: su.step(i, labelled(su.fwd)), plan.warmup + plan.steps,
                          profile)
    with su.settings():
        q = lens_queries(su.data.train, plan.lens_queries, cfg, dev)
        run_lens(su.ema.model, lens_queries(su.data.train, 8, cfg, dev))  # warm-up
        sync(dev)
        t = time.perf_counter()
        res = run_lens(su.ema.model, q)
        sync(dev)
        lens_s = time.perf_counter() - t
        two_hop = lens_queries(su.data.probes["train_inferred"], plan.lens_queries, cfg, dev)
        t = time.perf_counter()
        probe_stages(su.ema.model, two_hop, {"train_inferred": two_hop})  # fit on the queries, then score them
        probe_s = time.perf_counter() - t
    first = warm[0] if warm else None

    notes = []
    if batch != cfg.train.batch_size:
        notes.append(f"batch {batch} of the preset's {cfg.train.batch_size}")
    if plan.lens_queries != 2000:
        notes.append(f"lens on {plan.lens_queries} queries, s/2000 extrapolated")
    if variant != "baseline":
        notes.append(VARIANTS[variant])
    achieved = flops / s_step
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return {
        "config": name, "variant": variant, "device": dev.type, "dtype": dtype, "threads": threads_used,
        "batch": batch, "params": count_params(su.model), "steps": plan.steps,
        "samples_per_s": batch / s_step, "s_per_step": s_step, "cpu_s_per_step": cpu_step,
        "flops_per_step": flops, "flops_source": source,
        "achieved_flops_per_s": achieved, "peak_matmul_flops_per_s": peak, "mfu": achieved / peak,
        "lens_queries": plan.lens_queries, "lens_stages": len(res.stages),
        "lens_query_stages_per_s": plan.lens_queries * len(res.stages) / lens_s,
        "lens_s_per_2000": lens_s * 2000 / plan.lens_queries,
        "probe_s_per_2000": probe_s * 2000 / plan.lens_queries,
        "compile_s": (first - s_step) if variant == "compile" and first is not None else "",
        "peak_rss_mb": rss_mb,
        "cuda_peak_mb": torch.cuda.max_memory_allocated(dev) / 2 ** 20 if on_cuda else "",
        "loadavg": "/".join(f"{x:.2f}" for x in os.getloadavg()), "note": "; ".join(notes),
    }


def print_profile(name: str, variant: str, dev: torch.device, step, start: int, n: int, top: int = 15) -> None:
    """Run `n` steps under torch.profiler; print the time per phase and the top operators by self time."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for i in range(start, start + n):
            with torch.profiler.record_function("step"):
                step(i)
            sync(dev)
    avg = prof.key_averages()
    key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    times = {e.key: e.cpu_time_total for e in avg}
    total = times["step"]
    phases = {"forward": times["forward"], "optimizer": times.get("Optimizer.step#AdamW.step", 0.0)}
    phases["loss, backward, filter, EMA"] = total - sum(phases.values())
    print(f"\n== profile: {name} [{variant}] on {dev.type}, {n} steps, loadavg {os.getloadavg()[0]:.2f} ==")
    print(f"step {total / n / 1e3:.1f} ms; phases (wall time inside each, share of the step): " + ", ".join(
        f"{k} {v / n / 1e3:.1f} ms ({v / total:.0%})" for k, v in phases.items()))
    print(avg.table(sort_by=key, row_limit=top, max_name_column_width=50))


COMPARE_COLUMNS = ["config", "variant", "device", "threads", "batch", "rounds", "steps_per_round", "s_per_step",
                   "s_per_step_min", "speedup_vs_baseline", "speedup_min", "speedup_max", "cpu_s_per_step",
                   "cpu_speedup_vs_baseline", "compile_s", "loadavg", "note"]


def compare(name: str, variants: list[str], device: str = "cpu", rounds: int = 5, steps: int | None = None,
            warmup: int = 2, threads: int | None = None) -> list[dict[str, Any]]:
    """A/B timing under load: every variant (and the baseline) is built in this process, then timed in
    `rounds` rounds of `steps` steps each, in an order that rotates every round, so slow periods of a shared
    machine hit every variant alike. speedup = baseline s/step / variant s/step, paired within each round
    (median, min and max over the rounds)."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    names = ["baseline"] + [v for v in variants if v != "baseline"]
    setups = {v: Setup(name, v, dev) for v in names}
    steps = steps or (1 if name in ("paper", "matched-official") else 3)
    first: dict[str, float] = {}
    for v, su in setups.items():
        first[v] = su.timed(0, warmup)[0][0] if warmup else float("nan")
    per_round: dict[str, list[float]] = {v: [] for v in names}
    cpu_round: dict[str, list[float]] = {v: [] for v in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for v in order:
            wall, cpu = setups[v].timed(warmup + r * steps, steps)
            per_round[v].append(statistics.median(wall))
            cpu_round[v].append(statistics.median(cpu))
    rows = []
    for v in names:
        ratios = [b / x for b, x in zip(per_round["baseline"], per_round[v])]
        cpu_ratios = [b / x for b, x in zip(cpu_round["baseline"], cpu_round[v])]
        s_step = statistics.median(per_round[v])
        with setups[v].settings():
            threads_used = torch.get_num_threads()
        rows.append({
            "config": name, "variant": v, "device": dev.type, "threads": threads_used,
            "batch": setups[v].batch, "rounds": rounds, "steps_per_round": steps, "s_per_step": s_step,
            "s_per_step_min": min(per_round[v]), "speedup_vs_baseline": statistics.median(ratios),
            "speedup_min": min(ratios), "speedup_max": max(ratios),
            "cpu_s_per_step": statistics.median(cpu_round[v]), "cpu_speedup_vs_baseline": statistics.median(cpu_ratios),
            "compile_s": first[v] - s_step if v == "compile" else "",
            "loadavg": "/".join(f"{x:.2f}" for x in os.getloadavg()), "note": VARIANTS[v],
        })
    return rows


# ------------------------------------------------------------------------------------------------- table, main

def _fmt(col: str, v: Any) -> str:
    if v == "" or v is None:
        return "-"
    if isinstance(v, float):
        if col in ("mfu", "speedup_vs_baseline", "speedup_min", "speedup_max", "cpu_speedup_vs_baseline"):
            return f"{v:.3f}"
        if col in ("flops_per_step", "achieved_flops_per_s", "peak_matmul_flops_per_s", "lens_query_stages_per_s"):
            return f"{v:.3g}"
        if col in ("s_per_step", "s_per_step_min", "cpu_s_per_step", "lens_s_per_2000", "probe_s_per_2000",
                   "compile_s"):
            return f"{v:.4g}"
        return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return str(v)


SHOWN = ["config", "variant", "device", "dtype", "threads", "batch", "params", "samples_per_s", "s_per_step",
         "cpu_s_per_step",
         "flops_per_step", "achieved_flops_per_s", "peak_matmul_flops_per_s", "mfu", "lens_query_stages_per_s",
         "lens_s_per_2000", "probe_s_per_2000", "compile_s", "peak_rss_mb", "cuda_peak_mb", "loadavg"]


def format_table(rows: list[dict[str, Any]], shown: list[str] | None = None) -> str:
    shown = shown or SHOWN
    cells = [[_fmt(c, r.get(c, "")) for c in shown] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(shown)]
    line = lambda xs: "  ".join(x.rjust(w) for x, w in zip(xs, widths))  # noqa: E731
    out = [line(shown), line(["-" * w for w in widths])] + [line(x) for x in cells]
    if shown is not SHOWN:
        return "\n".join(out)
    notes = [f"{r['config']} [{r['variant']}, {r['device']}]: {r['note']}" for r in rows if r.get("note")]
    sources = sorted({r["flops_source"] for r in rows})
    return "\n".join(out + [f"FLOPs/step from: {', '.join(sources)}"] + notes)


def write_csv(rows: list[dict[str, Any]], path: str, columns: list[str] | None = None) -> None:
    columns = columns or COLUMNS
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({c: (f"{r[c]:.6g}" if isinstance(r[c], float) else r[c]) for c in columns})


def _job(kwargs: dict[str, Any]) -> dict[str, Any]:
    threads = torch.get_num_threads()
    try:
        return bench(**kwargs)
    finally:
        torch.set_num_threads(threads)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few steps per row (about 1-2 min on a 2-core CPU)")
    p.add_argument("--out", help="write the table as CSV to this file")
    p.add_argument("--threads", default=None,
                   help="torch.set_num_threads; a comma-separated list gives one row per value (default: torch's)")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {', '.join(CONFIGS)}")
    p.add_argument("--variants", default="baseline", help=f"comma-separated subset of {', '.join(VARIANTS)}")
    p.add_argument("--devices", default="auto", help="cpu, cuda, or auto (cpu, plus cuda when available)")
    p.add_argument("--steps", type=int, help="timed steps per row (default: per configuration)")
    p.add_argument("--warmup", type=int, help="warm-up steps per row (default: per configuration)")
    p.add_argument("--lens-queries", type=int,
                   help="queries for the lens and probe timings (default 2000; fewer for paper)")
    p.add_argument("--paper-batch", type=int, help="batch of the paper row (default on CPU: 4 quick, 8 otherwise)")
    p.add_argument("--flops", choices=("analytic", "counter"), default="analytic",
                   help="FLOPs/step from grokcircuit.flops or counted by FlopCounterMode")
    p.add_argument("--profile", type=int, default=0, metavar="STEPS",
                   help="also profile STEPS steps of each row with torch.profiler and print the top costs")
    p.add_argument("--compare", metavar="VARIANTS",
                   help="A/B mode: time these variants against the baseline, interleaved in one process, for each "
                        "of --configs (--steps: steps per round)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of the --compare mode")
    p.add_argument("--no-isolate", action="store_true", help="run every row in this process (peak RSS is shared)")
    args = p.parse_args(argv)
    for c in args.configs.split(","):
        if c not in CONFIGS:
            p.error(f"unknown configuration {c!r}: choose from {', '.join(CONFIGS)}")
    for v in args.variants.split(",") + (args.compare.split(",") if args.compare else []):
        if v not in VARIANTS:
            p.error(f"unknown variant {v!r}: choose from {', '.join(VARIANTS)}")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    if args.devices == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = args.devices.split(",")
    threads_list = [int(t) for t in args.threads.split(",")] if args.threads else [None]
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, threads {args.threads or torch.get_num_threads()}, "
          f"loadavg {'/'.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    busy = os.getloadavg()[0] - 1 >= (os.cpu_count() or 1) / 2
    if busy and max(t or torch.get_num_threads() for t in threads_list) > 1:
        print("note: the machine is busy; with more than one thread per process, OpenMP spin-waiting can make "
              "steps several times slower (see benchmarks/README.md); --threads 1 is steadier", flush=True)
    if args.compare:
        rows = []
        for name in args.configs.split(","):
            for threads in threads_list:
                rows += compare(name, args.compare.split(","), devices[0], args.rounds, args.steps,
                                2 if args.warmup is None else args.warmup, threads)
        print(format_table(rows, COMPARE_COLUMNS[:-1]))
        if args.out:
            write_csv(rows, args.out, COMPARE_COLUMNS)
            print(f"wrote {args.out}")
        return rows
    jobs = []
    for device in devices:
        table = plans(args.quick, device, args.paper_batch)
        for name in args.configs.split(","):
            plan = table[name]
            plan = replace(plan, steps=args.steps or plan.steps,
                           warmup=plan.warmup if args.warmup is None else args.warmup,
                           lens_queries=args.lens_queries or plan.lens_queries)
            for variant in args.variants.split(","):
                for threads in threads_list:
                    jobs.append(dict(name=name, variant=variant, device=device, plan=plan, threads=threads,
                                     flops_source=args.flops, profile=args.profile, quick=args.quick))
    rows = []
    t0 = time.perf_counter()
    if args.no_isolate:
        rows = [_job(j) for j in jobs]
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")
        for j in jobs:  # one fresh process per row: its own peak RSS, its own global torch settings
            saved = dict(os.environ)
            os.environ.update(ENV.get(j["variant"], {}))  # the child reads its environment when it starts
            try:
                with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                    rows.append(pool.submit(_job, j).result())
            finally:
                os.environ.clear()
                os.environ.update(saved)
            print(f"  {j['name']} [{j['variant']}, {j['device']}] done at {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)
    print(format_table(rows))
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.out:
        write_csv(rows, args.out)
        print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
