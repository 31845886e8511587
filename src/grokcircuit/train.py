"""Training and evaluation (reference code §3.3-3.4), resumable through the run store.

`train(cfg, run)` builds the task (pretraining data of one regime, or the finetuning set), the model and AdamW
(betas 0.9/0.95, linear warm-up then constant LR), then loops over epochs of shuffled permutations (the
permutation of epoch e is a pure function of the seed and e, so a resumed run sees the same batches). With
`train.grokfast_alpha > 0`, pretraining filters each gradient (`GradFilter`) from step `grokfast_from` on. The EMA
weights are evaluated every `eval_every` steps and at the end, and each evaluation is a checkpoint.

Each evaluation logs tidy rows: train loss and epoch; exact match on every probe split; "training accuracy" =
the mean over id_atomic, ood_atomic and train_inferred (the paper's); the logit lens rates (bridge found,
target found, per stage, entity-restricted) on the two-hop test splits; and, in pretraining, the bridge probe
(`probe`) fit on train_inferred and scored on both two-hop test splits, and the share of their answers that
follow a bridge patched into the first-hop slots (`paths.bridge_used`). Step 0 evaluates the untrained model: its
rows are every readout's chance level. Finetuning starts from the base run's final EMA weights
(trained first when missing) with its own LR, warm-up and length; the control group starts from scratch.
A longer version of a stored pretraining run continues it (`Run.prefix`).

Deviation from the reference: the last partial batch is dropped at the end of every epoch, not of every
5-epoch block, so the paper preset evaluates every 7,180 steps where the reference did every 7,182.
A run resumes only on the device type it was trained on (bf16 on CUDA, fp32 on the CPU).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .config import RunConfig
from .data import Items, choose, vocab_size
from .dataset import make_dataset
from .encode import encode, layout_of
from .finetune import build_finetune_set
from .lens import Queries, exact_match, lens_metrics, run_lens
from .model import autocast_for, build_model, sequence_loss
from .paths import bridge_used
from .probe import bridge_probe, probe_stages
from .runs import Run, open_run

TRAIN_ACC_SPLITS = ("id_atomic", "ood_atomic", "train_inferred")
LENS_SPLITS = ("test_inferred_iid", "test_inferred_ood", "new_old", "old_new", "new_new")
PROBE_TRAIN, PROBE_SPLITS = "train_inferred", ("test_inferred_iid", "test_inferred_ood")


@dataclass
class Task:
    """What a run trains on and is evaluated on."""

    train: Items
    probes: dict[str, Items]
    entities: int
    relations: int
    tail_of: np.ndarray | None = None  # (E, R) the pretraining graph, for patching; None when finetuning


@dataclass
class Schedule:
    """Optimisation settings after choosing between pretraining and finetuning."""

    lr: float
    warmup_steps: int
    steps: int
    eval_every: int


def build_task(cfg: RunConfig) -> Task:
    ds = make_dataset(cfg.data)
    if cfg.finetune is None:
        return Task(ds.train, ds.probes, cfg.data.entities, cfg.data.relations, ds.graph.tail_of)
    fs = build_finetune_set(ds, cfg.finetune)
    return Task(fs.train, fs.probes, cfg.data.entities, cfg.data.relations)


def schedule_of(cfg: RunConfig, n_train: int) -> Schedule:
    """The run's LR, warm-up, length and evaluation cadence (pretraining lengths may be given in epochs)."""
    t, f = cfg.train, cfg.finetune
    if f is None:
        per_epoch = n_train // t.batch_size
        steps = int(t.epochs * n_train // t.batch_size) if t.epochs else t.steps
        every = max(1, round(t.eval_every_epochs * per_epoch)) if t.eval_every_epochs else t.eval_every
        return Schedule(t.lr, t.warmup_steps, steps, every)
    if f.from_scratch:  # the control group uses the pretraining recipe on the finetuning data
        return Schedule(t.lr, t.warmup_steps, f.steps, f.eval_every)
    return Schedule(f.lr, f.warmup_steps, f.steps, f.eval_every)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("invalid train.device='cuda': no CUDA device is available")
    return torch.device(name)


def lr_at(step: int, s: Schedule) -> float:
    """Linear warm-up to `lr` over `warmup_steps`, then constant."""
    return s.lr * min(1.0, (step + 1) / s.warmup_steps) if s.warmup_steps else s.lr


class Batches:
    """Batch b of epoch e = slice b of a permutation seeded by (seed, e); the last partial batch is dropped.
    The permutation moves to the device once per epoch, so a step never waits on a host-to-device copy."""

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device | str = "cpu"):
        if batch_size > n:
            raise ValueError(f"invalid train.batch_size={batch_size}: the training set has only {n} items")
        self.n, self.batch_size, self.seed, self.device = n, batch_size, seed, device
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, torch.zeros(0, dtype=torch.long)

    def indices(self, step: int) -> torch.Tensor:
        epoch, b = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            perm = np.random.default_rng([self.seed, 99, epoch]).permutation(self.n)
            self._epoch, self._perm = epoch, torch.as_tensor(perm, device=self.device)
        return self._perm[b * self.batch_size:(b + 1) * self.batch_size]


def eval_queries(task: Task, cfg: RunConfig, device: torch.device) -> dict[str, Queries]:
    """Every probe split, capped at `eval_size` queries by a fixed random subset."""
    layout, out = layout_of(cfg.model.arch), {}
    for i, (name, items) in enumerate(task.probes.items()):
        rng = np.random.default_rng([cfg.train.seed, 21, i])
        items = items.take(np.sort(choose(rng, len(items), cfg.train.eval_size)))
        out[name] = Queries.build(items, layout, task.entities, task.relations, str(device))
    return out


def evaluate(model: torch.nn.Module, queries: dict[str, Queries], tail_of: np.ndarray | None = None
             ) -> dict[tuple[str, str], float]:
    """{(split, metric): value} for one evaluation of `model`; given the graph's `tail_of`, also the share of
    two-hop test answers that follow a bridge patched into the first-hop slots (`paths.bridge_used`), and the bridge
    probe (`probe`); both only in pretraining, whose graph `tail_of` is."""
    out: dict[tuple[str, str], float] = {}
    for name, q in queries.items():
        if len(q):
            out[(name, "exact_match")] = float(exact_match(model, q).mean())
        if name in LENS_SPLITS and len(q):
            for metric, value in lens_metrics(run_lens(model, q)).items():
                out[(name, metric)] = value
    if tail_of is not None:  # pretraining
        frame = probe_stages(model, queries[PROBE_TRAIN], {s: queries[s] for s in PROBE_SPLITS})
        for split, value in bridge_probe(frame).items():
            out[(split, "bridge_probe")] = value
        for split in PROBE_SPLITS:
            out[(split, "bridge_used")] = float(bridge_used(model, queries[split], tail_of).mean())
    train_acc = [out[(s, "exact_match")] for s in TRAIN_ACC_SPLITS if (s, "exact_match") in out]
    if train_acc:
        out[("train", "accuracy")] = float(np.mean(train_acc))
    return out


class EMA:
    """Exponential moving average of a model's parameters, kept as a second copy of the model (`.model`).
    The parameter lists are built once, so an update is one fused lerp on the training step."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model = copy.deepcopy(model).requires_grad_(False)
        self.decay = decay
        self._pairs = (list(self.model.parameters()), list(model.parameters()))

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(*self._pairs, 1 - self.decay)


class GradFilter:
    """Grokfast-EMA (Lee et al. 2024): g <- g + lamb * EMA_alpha(g), amplifying the slow part of the gradient
    before the optimizer sees it. Its state (one buffer per parameter) is part of the checkpoint.

    `init="zero"` starts the average at zero, so the amplification grows in over about 1 / (1 - alpha) steps.
    `init="gradient"` (the committed `cpu` runs) seeds it with the first gradient, so the first filtered gradient
    is 1 + lamb times the raw one, a jump that AdamW's second moment lags behind: switched on at step 6,000 it
    knocked training accuracy from 0.9 to 0.1."""

    def __init__(self, model: torch.nn.Module, alpha: float, lamb: float, init: str = "gradient"):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.alpha, self.lamb, self.init = alpha, lamb, init
        self.slow: list[torch.Tensor] | None = None

    @torch.no_grad()
    def apply(self) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        if self.slow is None:  # lerp(g, g) = g: a gradient start is its first average
            self.slow = [g.clone() if self.init == "gradient" else torch.zeros_like(g) for g in grads]
        torch._foreach_lerp_(self.slow, grads, 1 - self.alpha)
        torch._foreach_add_(grads, self.slow, alpha=self.lamb)
        for p, g in zip(self.params, grads):
            p.grad = g

    def state_dict(self) -> list[torch.Tensor] | None:
        return self.slow

    def load_state_dict(self, slow: list[torch.Tensor] | None) -> None:
        self.slow = slow


def make_optimizer(model: torch.nn.Module, cfg: RunConfig, lr: float) -> torch.optim.AdamW:
    """AdamW with the reference's betas (0.9, 0.95); `train_step` sets each step's LR."""
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), eps=1e-8,
                             weight_decay=cfg.train.weight_decay)


def train_step(model: torch.nn.Module, fwd: torch.nn.Module, opt: torch.optim.Optimizer, ema: EMA,
               tokens: torch.Tensor, labels: torch.Tensor, cfg: RunConfig, lr: float, autocast,
               grad_filter: GradFilter | None = None) -> torch.Tensor:
    """One AdamW step on one batch (its gradient filtered when `grad_filter` is given), then the EMA update;
    returns the detached loss. `fwd` is `model` or its compiled version."""
    for group in opt.param_groups:
        group["lr"] = lr
    with autocast:
        out = fwd(tokens)
    loss = sequence_loss(out, labels, cfg.model)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_filter is not None:
        grad_filter.apply()
    opt.step()
    ema.update()
    return loss.detach()


def train(cfg: RunConfig, run: Run, progress: bool = True) -> Run:
    """Train or resume `run`; returns it finished."""
    device = resolve_device(cfg.train.device)
    state = run.load_checkpoint()
    if state is None and (prefix := run.prefix()) is not None:
        state = run.adopt(prefix)
    if state is not None and state["finished"]:
        run.save_status(finished=True, step=state["step"], seconds=state["seconds"])  # in case a kill lost it
        return run
    if state is not None and state.get("device", device.type) != device.type:
        raise ValueError(f"run {run.id} was trained on {state['device']}; resume it there "
                         f"(--set train.device={state['device']}) or delete {run.dir}")
    task = build_task(cfg)
    sched = schedule_of(cfg, len(task.train))
    layout = layout_of(cfg.model.arch)
    tokens, labels = (torch.as_tensor(a, device=device)
                      for a in encode(task.train, layout, task.entities, task.relations))
    queries = eval_queries(task, cfg, device)
    batches = Batches(len(task.train), cfg.train.batch_size, cfg.train.seed, device)

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, vocab_size(task.entities, task.relations)).to(device)
    if state is None and cfg.finetune is not None and not cfg.finetune.from_scratch:
        model.load_state_dict(get_or_train(cfg.base, progress=progress, root=run.dir.parent).ema_state())
    ema = EMA(model, cfg.train.ema_decay)
    opt = make_optimizer(model, cfg, sched.lr)
    grad_filter = (GradFilter(model, cfg.train.grokfast_alpha, cfg.train.grokfast_lamb, cfg.train.grokfast_init)
                   if cfg.train.grokfast_alpha > 0 and cfg.finetune is None else None)
    step, rows, seconds = 0, [], 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        ema.model.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        step, rows, seconds = state["step"], [list(r) for r in state["rows"]], state["seconds"]
        if grad_filter is not None:
            grad_filter.load_state_dict(state.get("grad_filter"))
    fwd = torch.compile(model) if cfg.train.compile else model
    autocast = autocast_for(device)

    def checkpoint(step: int, loss_mean: float | None) -> None:
        metrics = evaluate(ema.model, queries, task.tail_of)
        if loss_mean is not None:
            metrics[("train", "loss")] = loss_mean
        metrics[("train", "epoch")] = step / batches.per_epoch
        rows.extend([step, split, metric, value] for (split, metric), value in sorted(metrics.items()))
        if cfg.train.snapshots:
            run.save_snapshot(step, ema.model.state_dict())
        run.save_checkpoint({"step": step, "model": model.state_dict(), "ema": ema.model.state_dict(),
                             "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(), "rows": rows,
                             "grad_filter": grad_filter.state_dict() if grad_filter is not None else None,
                             "device": device.type,
                             "seconds": seconds + time.perf_counter() - t0}, finished=step >= sched.steps)
        bar.set_postfix(train=f"{metrics.get(('train', 'accuracy'), 0):.3f}",
                        ood=f"{metrics.get(('test_inferred_ood', 'exact_match'), 0):.3f}",
                        bridge=f"{metrics.get(('test_inferred_ood', 'bridge_found'), 0):.3f}", refresh=False)

    t0 = time.perf_counter()
    bar = tqdm(total=sched.steps, initial=step, desc=f"{run.id} {cfg.data.regime}", disable=not progress,
               dynamic_ncols=True)
    if step == 0:
        checkpoint(0, None)
    loss_sum, loss_n = torch.zeros((), device=device), 0
    model.train()
    while step < sched.steps:
        idx = batches.indices(step)
        filt = grad_filter if grad_filter is not None and step >= cfg.train.grokfast_from else None
        loss_sum += train_step(model, fwd, opt, ema, tokens[idx], labels[idx], cfg, lr_at(step, sched), autocast,
                               filt)
        loss_n += 1
        step += 1
        bar.update(1)
        if step % sched.eval_every == 0 or step == sched.steps:
            checkpoint(step, float(loss_sum) / loss_n)
            loss_sum.zero_()
            loss_n = 0
            model.train()
    bar.close()
    return run


def get_or_train(cfg: RunConfig, progress: bool = True, root: Path | None = None) -> Run:
    """A finished run for `cfg`: reused when present, else trained (resuming a partial run)."""
    run = open_run(cfg, root)
    if run.status() != "finished":  # a run known by its shipped weights counts as finished
        train(cfg, run, progress=progress)
    run.ema_state()  # refuses a corrupted run, stored or shipped
    return run
