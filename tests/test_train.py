"""Training (`train`, `get_or_train`): what a trained run holds, determinism, resuming, the gradient filter and
finetuning. Everything trains the `ci` preset into temporary run stores."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import grokcircuit as gc
from grokcircuit.data import vocab_size
from grokcircuit.train import build_task, eval_queries

PROBES = ("id_atomic", "ood_atomic", "train_inferred", "test_inferred_iid", "test_inferred_ood")
SHORT = {"train.steps": "60", "train.eval_every": "30"}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROKCIRCUIT_RUNS", str(path))
        yield path


@pytest.fixture(scope="module")
def base(root):
    return gc.get_or_train(gc.preset("ci"), progress=False, root=root)


def value(m: pd.DataFrame, split: str, metric: str, step: int | None = None) -> float:
    rows = m[(m.split == split) & (m.metric == metric)]
    step = rows.step.max() if step is None else step
    rows = rows[rows.step == step]
    assert len(rows) == 1, (split, metric, step)
    return float(rows.value.iloc[0])


def subprocess_env(root: Path) -> dict[str, str]:
    return {**os.environ, "GROKCIRCUIT_RUNS": str(root), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ----------------------------------------------------------------------------- a trained run

def test_ci_preset_learns(base):
    m = base.metrics()
    start, final = value(m, "train", "accuracy", 0), value(m, "train", "accuracy")
    assert final > 0.1, final
    assert final > start + 0.08 and final > 3 * start, (start, final)
    assert value(m, "train", "loss", 400) < value(m, "train", "loss", 100)
    assert base.status() == "finished"


def test_metrics_frame_is_tidy(base):
    m = base.metrics()
    assert list(m.columns) == ["step", "split", "metric", "value"]
    assert not m.duplicated(["step", "split", "metric"]).any()
    assert sorted(m.step.unique()) == [0, 100, 200, 300, 400]
    for step in (0, 100, 200, 300, 400):
        for split in PROBES:
            assert 0 <= value(m, split, "exact_match", step) <= 1
        ems = [value(m, s, "exact_match", step) for s in ("id_atomic", "ood_atomic", "train_inferred")]
        assert value(m, "train", "accuracy", step) == pytest.approx(np.mean(ems))
        for split in ("test_inferred_ood", "test_inferred_iid"):
            for metric in ("bridge_found", "bridge_found_post_init", "target_found", "bridge@loop1_block1"):
                assert 0 <= value(m, split, metric, step) <= 1
        assert value(m, "train", "epoch", step) > 0 or step == 0
    assert m[(m.metric == "loss")].step.min() == 100  # no loss before the first step
    # metrics.csv on disk says the same as the checkpoint
    on_disk = pd.read_csv(base.dir / "metrics.csv")
    pd.testing.assert_frame_equal(on_disk, m.reset_index(drop=True), check_dtype=False)
    status = json.loads((base.dir / "status.json").read_text())
    assert status["finished"] is True and status["step"] == 400


def test_checkpoint_loads_weights_only_and_ema_differs(base):
    state = torch.load(base.dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 400 and state["finished"] is True and state["run_id"] == base.id
    assert state["model"].keys() == state["ema"].keys()
    assert any(not torch.equal(state["model"][k], state["ema"][k]) for k in state["model"])
    assert base.snapshot_steps() == [0, 100, 200, 300, 400]
    last = torch.load(base.dir / "ema_00000400.pt", map_location="cpu", weights_only=True)
    first = torch.load(base.dir / "ema_00000000.pt", map_location="cpu", weights_only=True)
    assert all(torch.equal(last[k], state["ema"][k]) for k in last)
    assert any(not torch.equal(first[k], last[k]) for k in last)
    assert all(torch.equal(v, state["ema"][k]) for k, v in base.ema_state().items())
    with pytest.raises(FileNotFoundError):
        base.ema_state(step=123)


def test_logged_metrics_match_the_stored_ema_weights(base):
    """Re-evaluating the final EMA weights gives the logged exact match and bridge-found rates."""
    cfg = base.cfg
    task = build_task(cfg)
    model = gc.build_model(cfg.model, vocab_size(task.entities, task.relations))
    model.load_state_dict(base.ema_state())
    queries = eval_queries(task, cfg, torch.device("cpu"))
    m = base.metrics()
    for split in PROBES:
        assert gc.exact_match(model, queries[split]).mean() == pytest.approx(value(m, split, "exact_match"))
    rates = gc.lens_metrics(gc.run_lens(model, queries["test_inferred_ood"]))
    assert rates["bridge_found"] == pytest.approx(value(m, "test_inferred_ood", "bridge_found"))


def test_get_or_train_reuses_a_finished_run(base, root):
    mtime = (base.dir / "checkpoint.pt").stat().st_mtime_ns
    again = gc.get_or_train(gc.preset("ci"), progress=False, root=root)
    assert again.id == base.id and (base.dir / "checkpoint.pt").stat().st_mtime_ns == mtime
    listed = gc.list_runs(root)
    assert base.id in set(listed.run_id)
    assert listed.set_index("run_id").loc[base.id, "status"] == "finished"


def test_finished_checkpoint_repairs_a_lost_status(base, root):
    """A kill between the final checkpoint and its status file must not leave the run 'partial' for good."""
    status = base.dir / "status.json"
    saved = status.read_text()
    status.write_text('{"finished": false, "step": 0, "seconds": 0}')
    assert base.status() == "partial"
    before = (base.dir / "checkpoint.pt").stat().st_mtime_ns
    gc.get_or_train(base.cfg, progress=False, root=root)
    assert base.status() == "finished"
    assert (base.dir / "checkpoint.pt").stat().st_mtime_ns == before  # nothing retrained
    status.write_text(saved)


# ----------------------------------------------------------------------------- determinism and resume

def test_same_config_same_metrics_in_different_roots(tmp_path):
    cfg = gc.override(gc.preset("ci"), **SHORT)
    a = gc.get_or_train(cfg, progress=False, root=tmp_path / "a")
    b = gc.get_or_train(cfg, progress=False, root=tmp_path / "b")
    assert a.dir != b.dir
    pd.testing.assert_frame_equal(a.metrics(), b.metrics())
    ea, eb = a.ema_state(), b.ema_state()
    assert all(torch.equal(ea[k], eb[k]) for k in ea)
    other = gc.get_or_train(gc.override(cfg, **{"train.seed": "1"}), progress=False, root=tmp_path / "c")
    assert other.id != a.id
    assert not a.metrics().value.equals(other.metrics().value)


def test_longer_run_continues_a_shorter_one(tmp_path):
    """A run with more steps starts from the stored shorter run and ends exactly where training from scratch does."""
    short = gc.override(gc.preset("ci"), **SHORT)
    long = gc.override(short, **{"train.steps": "90"})
    gc.get_or_train(short, progress=False, root=tmp_path / "a")
    assert gc.Run(long, tmp_path / "a").prefix().id == short.run_id
    continued = gc.get_or_train(long, progress=False, root=tmp_path / "a")
    scratch = gc.get_or_train(long, progress=False, root=tmp_path / "b")
    assert gc.Run(long, tmp_path / "b").prefix() is None
    pd.testing.assert_frame_equal(continued.metrics().drop(columns="value"), scratch.metrics().drop(columns="value"))
    np.testing.assert_allclose(continued.metrics().value, scratch.metrics().value, rtol=0, atol=0)
    a, b = continued.ema_state(), scratch.ema_state()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = gc.override(long, **{"train.lr": "2e-3"})
    assert gc.Run(other, tmp_path / "a").prefix() is None


def test_grokfast_run_resumes_exactly_and_changes_training(tmp_path):
    """The filter's state is checkpointed: a Grokfast run continued from a shorter one matches one from scratch."""
    plain = gc.override(gc.preset("ci"), **SHORT)
    short = gc.override(plain, **{"train.grokfast_alpha": "0.9", "train.grokfast_from": "20"})
    long = gc.override(short, **{"train.steps": "90"})
    assert plain.run_id == gc.override(plain, **{"train.grokfast_lamb": "2.0"}).run_id
    gc.get_or_train(short, progress=False, root=tmp_path / "a")
    continued = gc.get_or_train(long, progress=False, root=tmp_path / "a")
    scratch = gc.get_or_train(long, progress=False, root=tmp_path / "b")
    np.testing.assert_allclose(continued.metrics().value, scratch.metrics().value, rtol=0, atol=0)
    base = gc.get_or_train(plain, progress=False, root=tmp_path / "c").metrics()
    filtered = gc.Run(short, tmp_path / "a").metrics()
    assert base[base.step == 0].value.equals(filtered[filtered.step == 0].value)
    assert not base[base.step == 60].value.equals(filtered[filtered.step == 60].value)


def train_cmd(steps: int = 200) -> list[str]:
    return [sys.executable, "-m", "grokcircuit.cli", "train", "--preset", "ci", "--quiet",
            "--set", f"train.steps={steps}", "--set", "train.eval_every=50"]


def test_resume_after_kill_gives_identical_metrics(tmp_path):
    cfg = gc.preset("ci", **{"train.steps": "200", "train.eval_every": "50"})
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"
    run_dir = killed_root / cfg.run_id
    log = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(train_cmd(), env=subprocess_env(killed_root), stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 240
    try:
        while True:
            assert proc.poll() is None, f"training exited early: {(tmp_path / 'stderr.txt').read_text()}"
            assert time.monotonic() < deadline, "no evaluation at step >= 100 within the deadline"
            status_file = run_dir / "status.json"  # written last, after the checkpoint and metrics.csv
            try:
                if json.loads(status_file.read_text())["step"] >= 100:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["finished"] is False and 100 <= status["step"] < 200
    assert gc.Run(cfg, killed_root).status() == "partial"
    step0_snapshot = (run_dir / "ema_00000000.pt").stat().st_mtime_ns

    resumed = subprocess.run(train_cmd(), env=subprocess_env(killed_root), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "finished"
    clean = subprocess.run(train_cmd(), env=subprocess_env(clean_root), capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr

    # resumed, not restarted: the step-0 evaluation was not redone
    assert (run_dir / "ema_00000000.pt").stat().st_mtime_ns == step0_snapshot
    killed_metrics = pd.read_csv(run_dir / "metrics.csv")
    clean_metrics = pd.read_csv(clean_root / cfg.run_id / "metrics.csv")
    assert sorted(clean_metrics.step.unique()) == [0, 50, 100, 150, 200]
    pd.testing.assert_frame_equal(killed_metrics, clean_metrics)
    a = gc.Run(cfg, killed_root).ema_state()
    b = gc.Run(cfg, clean_root).ema_state()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- finetuning

def test_finetuning_starts_from_the_base_run_and_learns_new_facts(base, root):
    base_mtime = (base.dir / "checkpoint.pt").stat().st_mtime_ns
    cfg = gc.preset("ci", finetune=True)
    assert cfg.base.run_id == base.id
    run = gc.get_or_train(cfg, progress=False, root=root)
    assert run.id != base.id and run.status() == "finished"
    assert (base.dir / "checkpoint.pt").stat().st_mtime_ns == base_mtime  # the base was reused, not retrained
    m, mb = run.metrics(), base.metrics()
    assert sorted(m.step.unique()) == [0, 50, 100, 150, 200]
    assert value(m, "id_atomic", "exact_match", 0) == value(mb, "id_atomic", "exact_match")
    assert value(m, "id_atomic", "exact_match", 0) > 0.1
    assert value(m, "atomic_new", "exact_match", 0) < 0.1
    assert value(m, "atomic_new", "exact_match") > 0.5
    for split in ("new_old", "old_new", "new_new"):
        assert 0 <= value(m, split, "exact_match") <= 1
        assert 0 <= value(m, split, "bridge_found") <= 1


def test_control_group_starts_from_scratch(tmp_path):
    cfg = gc.preset("ci", from_scratch=True, **{"finetune.steps": "50", "finetune.eval_every": "50"})
    assert cfg.finetune.from_scratch
    run = gc.get_or_train(cfg, progress=False, root=tmp_path)
    m = run.metrics()
    chance = 1 / vocab_size(cfg.data.entities, cfg.data.relations)
    assert value(m, "id_atomic", "exact_match", 0) < 3 * chance
    assert value(m, "atomic_new", "exact_match", 0) < 3 * chance
    assert value(m, "train", "accuracy", 0) < 3 * chance
    # no base run was trained for it
    assert [p.parent.name for p in tmp_path.glob("*/config.json")] == [run.id]
