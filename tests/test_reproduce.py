"""`grokcircuit reproduce`: the summary table, merging partial reproductions, reading committed results, and
parallel sweeps (worker processes, submitit) that give the serial results bit for bit."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from grokcircuit import reproduce as rep
from grokcircuit import weights
from grokcircuit.runs import Run

FAST = {"train.steps": 40, "train.eval_every": 20, "train.eval_size": 100,
        "finetune.steps": 20, "finetune.eval_every": 10}


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("GROKCIRCUIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GROKCIRCUIT_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def test_partial_reproductions_merge_into_one_summary(results):
    first = rep.reproduce("ci", seeds=(0,), regimes=("natural",), finetune=False, progress=False)
    assert list(first.regime) == ["natural"] and first.holds_grokking_order.notna().all()
    # stored_only trains nothing: the missing both-hop-full run and the finetunes are left out
    again = rep.reproduce("ci", seeds=(0,), regimes=("natural", "both_hop_full"), stored_only=True, progress=False)
    assert list(again.regime) == ["natural"]
    rep.reproduce("ci", seeds=(0,), regimes=("both_hop_full",), finetune=False, progress=False)
    summary = rep.load_summary("ci")
    assert sorted(summary.regime) == ["both_hop_full", "natural"]
    assert summary.duplicated(rep.KEY).sum() == 0
    curves = rep.load_metrics("ci")
    assert set(curves.regime) == {"both_hop_full", "natural"}
    for row in summary.itertuples():
        logged = pd.read_csv(results / "ci" / "metrics" / f"{row.run_id}.csv")
        assert len(curves[curves.run_id == row.run_id]) == len(logged) > 0


def test_missing_summary_reads_empty(results):
    assert rep.load_summary("cpu").empty
    assert rep.load_metrics("cpu", "finetune").empty


def test_plan_orders_finetunes_after_their_bases():
    runs = rep.plan("ci", (0, 1), ("natural", "both_hop_full"), True, FAST)
    assert [(f, r, s) for f, r, s, _ in runs[:5]] == [
        ("1", "natural", 0), ("1", "both_hop_full", 0), ("3", "natural", 0), ("3", "both_hop_full", 0),
        ("3", "control", 0)]
    pretrain = {cfg.run_id for f, *_, cfg in runs if f != "3"}
    assert all(cfg.base.run_id in pretrain for f, r, _, cfg in runs if f == "3" and r != "control")
    assert all(cfg.train.steps == 40 for *_, cfg in runs) and runs[2][3].finetune.steps == 20


REGIMES = ("natural",)  # with its finetune and the control: the finetune waits for its base


def sweep(store, **kwargs) -> pd.DataFrame:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROKCIRCUIT_RUNS", str(store))
        return rep.reproduce("ci", seeds=(0,), regimes=REGIMES, progress=False, out=store / "summary.csv",
                             overrides=FAST, **kwargs)


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    store = tmp_path_factory.mktemp("serial")
    return store, sweep(store)


def assert_same_runs(rows: pd.DataFrame, store, serial) -> None:
    """The runs of `rows` trained in `store` equal the serial ones bit for bit, and so do their summary rows."""
    serial_store, serial_rows = serial
    expected = serial_rows[serial_rows.run_id.isin(rows.run_id)].reset_index(drop=True)
    assert len(rows) and list(rows.run_id) == list(expected.run_id)
    for *_, cfg in rep.plan("ci", (0,), REGIMES, True, FAST):
        if cfg.run_id in set(rows.run_id):
            a, b = Run(cfg, serial_store).ema_state(), Run(cfg, store).ema_state()
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    measured = [c for c in rows.columns if c != "train_seconds"]
    records = lambda f: f[measured].astype(object).where(f[measured].notna(), None).to_dict("records")  # noqa: E731
    assert records(rows) == records(expected)


def test_two_jobs_match_the_serial_sweep(serial, tmp_path):
    rows = sweep(tmp_path, jobs=2)
    assert len(rows) == 3  # the pretraining run, its finetune and the control
    assert_same_runs(rows, tmp_path, serial)


def test_submitit_jobs_match_the_serial_sweep(serial, tmp_path):
    with pytest.MonkeyPatch.context() as mp:  # the executor keeps its logs in the run store
        mp.setenv("GROKCIRCUIT_RUNS", str(tmp_path))
        executor = rep.cluster_executor("local")
    assert_same_runs(sweep(tmp_path, executor=executor, finetune=False), tmp_path, serial)
    assert (tmp_path / "submitit").is_dir()


def test_cli_overrides_reach_every_run(serial, tmp_path, monkeypatch, capsys):
    from grokcircuit.cli import main

    store, rows = serial
    monkeypatch.setenv("GROKCIRCUIT_RUNS", str(store))
    monkeypatch.setenv("GROKCIRCUIT_RESULTS", str(tmp_path))
    sets = [arg for key, value in FAST.items() for arg in ("--set", f"{key}={value}")]
    assert main(["reproduce", "--preset", "ci", "--seeds", "0", "--regimes", "natural", "--stored-only", *sets]) == 0
    assert len(rep.load_summary("ci")) == len(rows) == 3  # found in the store: same configs, same run ids


def test_a_run_in_training_is_locked(tmp_path, monkeypatch):
    import fcntl

    monkeypatch.setenv("GROKCIRCUIT_RUNS", str(tmp_path))
    run = Run(rep.plan("ci", (0,), REGIMES, False, FAST)[0][3]).create()
    with rep.training_lock(run), open(run.dir / "train.lock") as other:
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_the_sweep_ships_every_run_s_weights(serial):
    store, rows = serial
    manifest = weights.read_manifest(store / "weights")
    assert {e["run_id"] for e in manifest.values() if e["step"] is None} == set(rows.run_id)
    pretrain = rows[rows.finding != "3"].run_id.iloc[0]
    snapshots = [e["step"] for e in manifest.values() if e["run_id"] == pretrain and e["step"] is not None]
    assert 0 < len(snapshots) <= rep.SHIPPED_SNAPSHOTS
    followed = set(rows[(rows.finding != "3") & rows.regime.isin(rep.SNAPSHOT_REGIMES)].run_id)
    with_snapshots = {e["run_id"] for e in manifest.values() if e["step"] is not None}
    assert with_snapshots == followed  # pretraining runs of the followed regimes only, no finetune
    shipped = weights.load(store / "weights" / weights.file_name(pretrain))
    trained = Run(next(cfg for *_, cfg in rep.plan("ci", (0,), REGIMES, True, FAST) if cfg.run_id == pretrain),
                  store).ema_state()
    assert all(torch.equal(shipped[k], trained[k].half().float()) for k in trained)


def test_a_sweep_starts_the_longest_runs_first():
    runs = [cfg for *_, cfg in rep.plan("cpu", (0, 1), ("natural", "both_hop_full"), True, {})]
    order = sorted(runs, key=lambda c: -rep.run_cost(c))
    assert [c.data.regime for c in order[:2]] == ["natural", "natural"] and order[0].train.seed == 0
    assert all(c.finetune is not None for c in order[-6:])  # the short finetunes come last
