"""The command line (`cli`): train, list and lens a run; every expected error is one line on stderr."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import grokcircuit as gc
from grokcircuit.cli import main

ARGS = ["train", "--preset", "ci", "--quiet", "--set", "train.steps=20", "--set", "train.eval_every=10"]
CFG = gc.preset("ci", **{"train.steps": "20", "train.eval_every": "10"})


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("GROKCIRCUIT_RUNS", str(tmp_path))
    return tmp_path


def one_error_line(capsys, needle: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err


def test_cli_train_runs_and_lens(store, capsys):
    assert main(ARGS) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    summary = json.loads(out[0])
    assert summary["run"] == CFG.run_id and summary["status"] == "finished"
    assert "train/accuracy" in summary and "test_inferred_ood/bridge_found" in summary
    assert (store / CFG.run_id / "checkpoint.pt").exists()

    assert main(["runs"]) == 0
    listing = capsys.readouterr().out
    assert CFG.run_id in listing and "finished" in listing

    assert main(["lens", CFG.run_id, "--split", "ood"]) == 0
    lines = dict(line.split() for line in capsys.readouterr().out.strip().splitlines())
    assert "bridge_found" in lines and "bridge@loop1_block1" in lines
    m = gc.Run(CFG, store).metrics()
    logged = m[(m.step == 20) & (m.split == "test_inferred_ood") & (m.metric == "bridge_found")].value.item()
    assert float(lines["bridge_found"]) == pytest.approx(logged, abs=1e-4)
    assert main(["lens", CFG.run_id, "--split", "iid", "--step", "10"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("args, needle", [
    (["train", "--preset", "ci", "--set", "train.nope=1"], "train.nope"),
    (["train", "--preset", "ci", "--set", "train.steps"], "invalid --set"),
    (["train", "--preset", "ci", "--set", "train.lr=-1"], "train.lr"),
    (["train", "--preset", "ci", "--set", "train.lr=fast"], "train.lr"),
    (["train", "--preset", "ci", "--regime", "sideways"], "data.regime"),
    (["train", "--preset", "nope"], "preset"),
    (["lens", "ffffffffffff"], "no run 'ffffffffffff'"),
    (["finetune", "--preset", "ci", "--base", "ffffffffffff"], "no run 'ffffffffffff'"),
])
def test_bad_values_and_missing_runs_are_one_line(store, capsys, args, needle):
    assert main(args) == 2
    one_error_line(capsys, needle)
    assert not any(store.iterdir())  # nothing was trained


def test_corrupted_run_is_one_line(store, capsys):
    assert main(ARGS) == 0
    capsys.readouterr()
    checkpoint = store / CFG.run_id / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    assert main(["lens", CFG.run_id]) == 2
    one_error_line(capsys, "unreadable checkpoint.pt")
    assert main(ARGS) == 2
    one_error_line(capsys, "unreadable checkpoint.pt")
    snapshot = store / CFG.run_id / "ema_00000010.pt"
    snapshot.write_bytes(b"")
    assert main(["lens", CFG.run_id, "--step", "10"]) == 2
    one_error_line(capsys, "ema_00000010.pt")


def test_the_installed_command_prints_no_traceback(store):
    """The same through a real process: stderr is the one line, the exit status non-zero."""
    result = subprocess.run([sys.executable, "-m", "grokcircuit.cli", "lens", "ffffffffffff"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
