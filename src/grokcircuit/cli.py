"""Command line: `grokcircuit data|train|finetune|reproduce|runs|lens`, each calling one package function.

Any config field can be overridden with `--set section.field=value` (e.g. `--set train.lr=1e-3`). An expected
error (a bad value, a missing or corrupted run) is one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

import torch

from . import __version__
from .config import FINETUNE_PRESETS, REGIMES, ConfigError, DataConfig, RunConfig, override, preset
from .dataset import make_dataset
from .experiments import split_queries
from .lens import lens_metrics, run_lens
from .runs import RunCorrupted, list_runs, load_run
from .train import get_or_train


def _overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"invalid --set {pair!r}: use section.field=value")
        out[key.strip()] = value.strip()
    return out


def cmd_data(args: argparse.Namespace) -> int:
    cfg = DataConfig(entities=args.entities, relations=args.relations, out_degree=args.out_degree,
                     ood_fraction=args.ood_fraction, phi=args.phi, id_test_prob=args.id_test_prob,
                     regime=args.regime, aug_k=args.aug_k, seed=args.seed)
    cfg.validate()
    t0 = time.perf_counter()
    ds = make_dataset(cfg)
    stats = {**ds.counts, "seconds": round(time.perf_counter() - t0, 3)}
    print(json.dumps(stats if args.stats else {"config": cfg.__dict__, **stats}))
    return 0


def _run_config(args: argparse.Namespace, finetune: bool = False) -> RunConfig:
    if getattr(args, "base", None):
        base = load_run(args.base).cfg
        ft = replace(FINETUNE_PRESETS[args.preset], seed=base.train.seed, from_scratch=args.from_scratch)
        return override(replace(base, finetune=ft), **_overrides(args.set)).validate()
    return preset(args.preset, regime=args.regime, seed=args.seed, finetune=finetune,
                  from_scratch=getattr(args, "from_scratch", False), **_overrides(args.set))


def _summary(run) -> dict:
    m = run.metrics()
    last = m[m.step == m.step.max()]
    return {"run": run.id, "status": run.status(),
            **{f"{s}/{k}": round(v, 4) for s, k, v in zip(last.split, last.metric, last.value)
               if k in ("exact_match", "accuracy", "bridge_found", "loss")}}


def cmd_train(args: argparse.Namespace, finetune: bool = False) -> int:
    run = get_or_train(_run_config(args, finetune), progress=not args.quiet)
    print(json.dumps(_summary(run)))
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import cluster_executor, reproduce

    executor = None
    if args.executor != "local":
        executor = cluster_executor("slurm" if args.executor == "slurm" else "local", args.threads, args.partition,
                                    args.gpus_per_job, args.timeout_min)
    jobs = args.jobs or (1 if executor is None else 1000)
    frame = reproduce(args.preset, tuple(args.seeds), tuple(args.regimes), finetune=not args.no_finetune,
                      stored_only=args.stored_only, progress=not args.quiet, jobs=jobs, threads=args.threads,
                      executor=executor, overrides=_overrides(args.set))
    if frame.empty:
        print("no finished runs to summarize")
        return 1
    holds = [c for c in frame.columns if c.startswith("holds_")]
    print(frame[["finding", "regime", "seed", "T_fit", "T_bridge", "T_ood", *holds]].to_string(index=False))
    print(f"wall time: {frame.attrs['seconds']:.0f} s")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    frame = list_runs()
    print(frame.to_string(index=False) if len(frame) else "no runs yet")
    return 0


def cmd_lens(args: argparse.Namespace) -> int:
    run = load_run(args.run)
    cfg = run.cfg
    model = run.load_model(args.step)
    split = {"ood": "test_inferred_ood", "iid": "test_inferred_iid"}.get(args.split, args.split)
    try:
        q = split_queries(cfg, split)
    except ConfigError as err:
        raise ConfigError(f"invalid --split={args.split!r}: {err} (or ood, iid)") from None
    with torch.no_grad():
        metrics = lens_metrics(run_lens(model, q))
    for key, value in metrics.items():
        print(f"{key:32s} {value:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="grokcircuit", description="Reproduce 'Is Grokking Worthwhile?' at any scale.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="build a dataset and print its counts as JSON")
    d.add_argument("--entities", type=int, default=2000)
    d.add_argument("--relations", type=int, default=200)
    d.add_argument("--out-degree", type=int, default=20)
    d.add_argument("--ood-fraction", type=float, default=0.05)
    d.add_argument("--phi", type=float, default=18.0)
    d.add_argument("--id-test-prob", type=float, default=0.005)
    d.add_argument("--regime", default="natural")
    d.add_argument("--aug-k", type=int, default=18)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--stats", action="store_true", help="print only the counts")
    d.set_defaults(func=cmd_data)

    for name, helptext in (("train", "pretrain one regime (reused if finished)"),
                           ("finetune", "finetune a pretrained regime on new atomic facts")):
        t = sub.add_parser(name, help=helptext)
        t.add_argument("--preset", default="cpu", help="ci, cpu or paper")
        t.add_argument("--regime", default="natural")
        t.add_argument("--seed", type=int, default=0)
        t.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
        t.add_argument("--quiet", action="store_true", help="no progress bar")
        if name == "finetune":
            t.add_argument("--base", default=None, metavar="RUN", help="finetune this pretraining run (its config)")
            t.add_argument("--from-scratch", action="store_true", help="the control group")
        t.set_defaults(func=lambda a, ft=(name == "finetune"): cmd_train(a, finetune=ft))

    rep = sub.add_parser("reproduce", help="train every run the book needs; write results/<preset>/summary.csv")
    rep.add_argument("--preset", default="cpu")
    rep.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    rep.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES)
    rep.add_argument("--no-finetune", action="store_true")
    rep.add_argument("--stored-only", action="store_true",
                     help="summarize the finished runs already in the store; train nothing")
    rep.add_argument("--quiet", action="store_true")
    rep.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                     help="override a config field of every run")
    rep.add_argument("--jobs", type=int, default=None,
                     help="runs trained at a time (default: 1 locally, every ready run on a cluster)")
    rep.add_argument("--threads", type=int, default=1, help="torch threads per run when runs train in parallel")
    rep.add_argument("--executor", choices=("local", "slurm", "submitit-local"), default="local",
                     help="local processes, Slurm jobs through submitit, or submitit's local executor")
    rep.add_argument("--partition", default=None, help="Slurm partition")
    rep.add_argument("--gpus-per-job", type=int, default=0, help="GPUs per Slurm job")
    rep.add_argument("--timeout-min", type=int, default=24 * 60, help="time limit of a Slurm job")
    rep.set_defaults(func=cmd_reproduce)

    r = sub.add_parser("runs", help="list the run store")
    r.set_defaults(func=cmd_runs)

    lens = sub.add_parser("lens", help="logit-lens rates of a run's EMA weights")
    lens.add_argument("run", help="run id (see `grokcircuit runs`)")
    lens.add_argument("--split", default="ood")
    lens.add_argument("--step", type=int, default=None, help="an evaluation step with a snapshot")
    lens.set_defaults(func=cmd_lens)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ValueError, RunCorrupted, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
