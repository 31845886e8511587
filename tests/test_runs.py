"""The run store (`runs`): corrupted runs are refused, stored runs are found by id, result tables merge."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

import grokcircuit as gc
from grokcircuit.config import to_dict
from grokcircuit.runs import load_run, results_dir, upsert_csv


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A short `ci` run with snapshots at steps 0, 30 and 60."""
    cfg = gc.preset("ci", **{"train.steps": "60", "train.eval_every": "30"})
    return gc.get_or_train(cfg, progress=False, root=tmp_path_factory.mktemp("runs"))


# ----------------------------------------------------------------------------- corrupted runs

def copy_run(run: gc.Run, root: Path) -> gc.Run:
    shutil.copytree(run.dir, root / run.id)
    return gc.Run(run.cfg, root)


def test_truncated_checkpoint_is_detected(base, tmp_path):
    run = copy_run(base, tmp_path)
    path = run.dir / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(gc.RunCorrupted, match="checkpoint.pt"):
        run.metrics()
    with pytest.raises(gc.RunCorrupted):
        gc.get_or_train(base.cfg, progress=False, root=tmp_path)
    with pytest.raises(gc.RunCorrupted):
        run.ema_state()


def test_truncated_snapshot_is_detected(base, tmp_path):
    run = copy_run(base, tmp_path)
    path = run.dir / "ema_00000030.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(gc.RunCorrupted, match="ema_00000030.pt"):
        run.ema_state(step=30)


def test_edited_config_is_detected(base, tmp_path):
    run = copy_run(base, tmp_path)
    other = gc.override(base.cfg, **{"train.seed": "1"})
    (run.dir / "config.json").write_text(json.dumps(to_dict(other)))
    with pytest.raises(gc.RunCorrupted, match=other.run_id):
        run.metrics()
    with pytest.raises(gc.RunCorrupted):
        gc.get_or_train(base.cfg, progress=False, root=tmp_path)
    with pytest.raises(gc.RunCorrupted):
        gc.open_run(base.cfg, tmp_path)
    (run.dir / "config.json").write_text("{not json")
    with pytest.raises(gc.RunCorrupted, match="config.json"):
        run.metrics()
    listed = gc.list_runs(tmp_path)
    assert listed.status.iloc[0].startswith("corrupted")


def test_checkpoint_of_another_run_is_detected(base, tmp_path):
    run = copy_run(base, tmp_path)
    state = torch.load(run.dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    state["run_id"] = "0123456789ab"
    torch.save(state, run.dir / "checkpoint.pt")
    with pytest.raises(gc.RunCorrupted, match="0123456789ab"):
        run.metrics()


def test_missing_checkpoint_with_status_is_detected(base, tmp_path):
    run = copy_run(base, tmp_path)
    (run.dir / "checkpoint.pt").unlink()
    with pytest.raises(gc.RunCorrupted, match="checkpoint.pt missing"):
        run.metrics()


# ----------------------------------------------------------------------------- locations

def test_load_run_finds_a_stored_run_by_id(base, tmp_path):
    assert load_run(base.id, base.dir.parent).cfg == base.cfg
    with pytest.raises(FileNotFoundError, match="no run"):
        load_run("ffffffffffff", base.dir.parent)
    run = copy_run(base, tmp_path)
    (run.dir / "config.json").write_text("{not json")
    with pytest.raises(gc.RunCorrupted, match="config.json"):
        load_run(base.id, tmp_path)
    shutil.move(tmp_path / base.id, tmp_path / "0123456789ab")
    (tmp_path / "0123456789ab" / "config.json").write_text(json.dumps(to_dict(base.cfg)))
    with pytest.raises(gc.RunCorrupted, match=base.id):
        load_run("0123456789ab", tmp_path)


def test_results_live_in_the_repository_unless_redirected(monkeypatch, tmp_path):
    monkeypatch.delenv("GROKCIRCUIT_RESULTS", raising=False)
    assert results_dir("cpu") == Path(gc.__file__).resolve().parents[2] / "results" / "cpu"
    monkeypatch.setenv("GROKCIRCUIT_RESULTS", str(tmp_path))
    assert results_dir("ci") == tmp_path / "ci"


def test_upsert_replaces_rows_in_place_and_appends_new_keys(tmp_path):
    path = tmp_path / "table.csv"
    first = pd.DataFrame({"finding": ["1", "1", "3"], "seed": [0, 1, 0], "x": [1.0, 2.0, 3.0]})
    pd.testing.assert_frame_equal(upsert_csv(path, first, ["finding", "seed"]), first)
    newer = pd.DataFrame({"finding": ["1", "2"], "seed": [1, 0], "x": [None, 5.0], "y": ["a", "b"]})
    table = upsert_csv(path, newer, ["finding", "seed"])
    assert list(zip(table.finding, table.seed)) == [("1", 0), ("1", 1), ("3", 0), ("2", 0)]
    assert table.x.isna().tolist() == [False, True, False, False] and table.y.tolist()[1] == "a"
    on_disk = pd.read_csv(path, dtype={"finding": str})
    pd.testing.assert_frame_equal(on_disk, table)
    assert not list(tmp_path.glob(".*tmp*"))  # written through a temporary file, renamed
    sorted_table = upsert_csv(path, pd.DataFrame({"finding": ["0"], "seed": [9], "x": [0.0]}), ["finding", "seed"],
                              sort=True)
    assert list(sorted_table.finding) == ["0", "1", "1", "2", "3"]
    assert upsert_csv(path, pd.DataFrame(), ["finding", "seed"]).shape == sorted_table.shape


def test_upsert_of_no_rows_into_no_table_writes_nothing(tmp_path):
    path = tmp_path / "table.csv"
    assert upsert_csv(path, pd.DataFrame(), ["finding", "seed"], sort=True).empty  # e.g. nothing finished yet
    assert not path.exists()
