"""`grokcircuit reproduce`: the summary table, merging partial reproductions, and reading committed results."""
from __future__ import annotations

import pandas as pd
import pytest

from grokcircuit import reproduce as rep


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("GROKCIRCUIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(rep, "RESULTS", tmp_path / "results")
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
