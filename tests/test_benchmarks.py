"""benchmarks/run.py: one tiny row of the ci preset, the CSV it writes, FlopCounterMode against grokcircuit.flops,
and the timed step being train's own."""
from __future__ import annotations

import copy
import csv
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmarks_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_ci_row_and_csv(bench, tmp_path):
    out = tmp_path / "bench.csv"
    threads = torch.get_num_threads()
    rows = bench.main(["--configs", "ci", "--devices", "cpu", "--steps", "3", "--warmup", "1",
                       "--lens-queries", "100", "--threads", "1", "--no-isolate", "--profile", "1", "--out", str(out)])
    assert torch.get_num_threads() == threads  # restored after the row
    (row,) = rows
    assert row["config"] == "ci" and row["device"] == "cpu" and row["threads"] == 1
    assert row["samples_per_s"] > 0 and row["s_per_step"] > 0
    assert row["flops_per_step"] > 0
    assert row["peak_matmul_flops_per_s"] > 0 and 0 < row["mfu"]
    assert row["lens_queries"] == 100 and row["lens_stages"] == 5  # embed + 2 loops x 2 blocks
    assert row["lens_query_stages_per_s"] > 0 and row["probe_s_per_2000"] > 0 and row["peak_rss_mb"] > 0
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == bench.COLUMNS
        (line,) = list(reader)
    assert line["config"] == "ci" and float(line["samples_per_s"]) > 0 and float(line["mfu"]) > 0
    for column in ("s_per_step", "flops_per_step", "achieved_flops_per_s", "peak_matmul_flops_per_s",
                   "lens_s_per_2000", "probe_s_per_2000", "loadavg"):
        assert line[column]


@pytest.mark.parametrize("name", ["ci", "matched-official"])
def test_flop_counter_matches_the_formula(bench, name):
    su = bench.Setup(name, "baseline", torch.device("cpu"), batch=8)
    counted, source = bench.flops_per_step(su.model, su.cfg, su.vocab, su.tokens, su.labels, 8, su.autocast,
                                           "counter")
    assert source == "FlopCounterMode" and counted > 0
    analytic, source = bench.flops_per_step(su.model, su.cfg, su.vocab, su.tokens, su.labels, 8, su.autocast,
                                            "analytic")
    assert source == "grokcircuit.flops" and counted == pytest.approx(analytic, rel=0.05)


def test_timed_step_is_the_training_step(bench):
    """Two steps of the benchmark leave the same weights as the same steps run through train_step directly."""
    from grokcircuit.train import EMA, lr_at, make_optimizer, train_step

    su = bench.Setup("ci", "baseline", torch.device("cpu"), batch=32)
    model = copy.deepcopy(su.model)
    ema, opt = EMA(model, su.cfg.train.ema_decay), make_optimizer(model, su.cfg, su.cfg.train.lr)
    for i in range(2):
        su.step(i)
        idx = su.batches.indices(i)
        train_step(model, model, opt, ema, su.tokens[idx], su.labels[idx], su.cfg, lr_at(i, su.sched), su.autocast)
    for (name, a), b in zip(su.model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name


def test_chapter_table_keeps_the_chapters_measured_so_far(tmp_path):
    spec = importlib.util.spec_from_file_location("benchmarks_chapters", ROOT / "benchmarks" / "chapters.py")
    chapters = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chapters)
    out = tmp_path / "chapters.csv"
    times = {"01_task": {"first_run_s": 8.6, "runs_in_store_s": 8.5}, "02_paths": {"first_run_s": 24.7}, "03": {}}
    chapters.write_table(out, times, {"preset": "ci"})
    rows = list(csv.DictReader(out.open()))
    assert [r["chapter"] for r in rows] == ["01_task", "02_paths"]  # a chapter not yet run has no row
    assert rows[1]["first_run_s"] == "24.7" and rows[1]["runs_in_store_s"] == "" and rows[1]["preset"] == "ci"
