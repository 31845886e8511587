"""The committed results (the search and the `cpu` summary) must still come out of the code: rerun the start of
one committed run of each, and recompute every summary row from its committed curves."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import grokcircuit as gc
from grokcircuit.config import from_dict
from grokcircuit.findings import bridge_metric, summarize_finetune, summarize_pretrain
from grokcircuit.reproduce import load_summary

REPO = Path(__file__).resolve().parents[1]
SEARCH = REPO / "results" / "cpu" / "search.csv"


def committed_runs() -> pd.DataFrame:
    if not SEARCH.exists():
        pytest.skip("no committed search results")
    frame = pd.read_csv(SEARCH)
    return frame[frame.steps > 0]


def test_search_table_is_complete():
    frame = committed_runs()
    assert len(frame) > 0
    for _, row in frame.iterrows():
        assert (SEARCH.parent / "search" / f"{row['name']}.csv").exists(), row["name"]
        cfg = from_dict(json.loads(row["config"]))
        assert cfg.run_id == row["run_id"], f"{row['name']}: its config no longer hashes to its run id"


def test_first_evaluation_of_a_committed_run_reproduces(tmp_path):
    row = committed_runs().iloc[0]
    cfg = from_dict(json.loads(row["config"]))
    first = cfg.train.eval_every
    short = gc.override(cfg, **{"train.steps": str(first)})
    run = gc.get_or_train(short, progress=False, root=tmp_path)
    ours = run.metrics()
    committed = pd.read_csv(SEARCH.parent / "search" / f"{row['name']}.csv")
    committed = committed[committed.step <= first]
    merged = committed.merge(ours, on=["step", "split", "metric"], suffixes=("_committed", "_ours"))
    assert len(merged) == len(committed) > 10
    # exact on the machine that wrote them; other CPUs may round matmuls differently
    np.testing.assert_allclose(merged.value_ours, merged.value_committed, atol=0.02, rtol=1e-3)


def committed_summary() -> pd.DataFrame:
    summary = load_summary("cpu")
    if summary.empty:
        pytest.skip("no committed cpu summary")
    return summary


def test_summary_rows_follow_from_their_committed_curves():
    """Every row names the run the current `cpu` preset trains, and its milestones and criteria recompute."""
    for row in committed_summary().to_dict("records"):
        seed, regime = int(row["seed"]), row["regime"]
        cfg = (gc.experiments.finetune_config("cpu", regime, seed) if row["finding"] == "3"
               else gc.preset("cpu", regime=regime, seed=seed))
        assert cfg.run_id == row["run_id"], f"{regime} seed {seed}: the cpu preset no longer trains this run"
        curves = pd.read_csv(SEARCH.parent / "metrics" / f"{row['run_id']}.csv")
        again = (summarize_finetune if row["finding"] == "3" else summarize_pretrain)(
            curves, regime, bridge_metric(cfg.model.arch))
        for key, value in again.items():
            if value is None or (isinstance(value, float) and np.isnan(value)):
                assert pd.isna(row[key]), key
            elif key.startswith("holds_") or isinstance(value, str):
                assert str(value) == str(row[key]), (regime, seed, key)
            else:
                assert value == pytest.approx(row[key]), (regime, seed, key)


def test_first_evaluations_of_a_summary_run_reproduce(tmp_path):
    summary = committed_summary()
    row = summary[(summary.finding != "3")].sort_values(["seed", "regime"]).iloc[-1]
    cfg = gc.preset("cpu", regime=row.regime, seed=int(row.seed))
    every = cfg.train.eval_every  # the first evaluation with the gradient filter on, when the preset uses one
    first = every * (cfg.train.grokfast_from // every + 1) if cfg.train.grokfast_alpha > 0 else every
    ours = gc.get_or_train(gc.override(cfg, **{"train.steps": str(first)}), progress=False, root=tmp_path).metrics()
    committed = pd.read_csv(SEARCH.parent / "metrics" / f"{row.run_id}.csv")
    committed = committed[(committed.step <= first) & committed.metric.isin(ours.metric.unique())]
    merged = committed.merge(ours, on=["step", "split", "metric"], suffixes=("_committed", "_ours"))
    assert len(merged) == len(committed) > 10
    np.testing.assert_allclose(merged.value_ours, merged.value_committed, atol=0.02, rtol=1e-3)


def test_finetune_search_rows_follow_from_their_committed_curves():
    """Each variant's config still hashes to its run, and its final metrics recompute from its curves."""
    path = SEARCH.parent / "search_finetune.csv"
    if not path.exists():
        pytest.skip("no committed finetuning search")
    frame = pd.read_csv(path)
    assert "preset" in set(frame.name)
    for row in frame.to_dict("records"):
        cfg = from_dict(json.loads(row["config"]))
        assert cfg.run_id == row["run_id"], f"{row['name']}: its config no longer hashes to its run id"
        again_cfg = gc.experiments.finetune_config("cpu", row["base"], int(row["seed"]), **json.loads(row["overrides"]))
        assert again_cfg.run_id == row["run_id"], f"{row['name']}: the cpu preset no longer finetunes this run"
        curves = pd.read_csv(SEARCH.parent / "search_finetune" / f"{row['name']}.csv")
        again = summarize_finetune(curves, row["base"], bridge_metric(cfg.model.arch))
        for key in ("final_new_atomic", "final_new_old_exact_match", "final_old_new_exact_match"):
            assert again[key] == pytest.approx(row[key]), (row["name"], key)
