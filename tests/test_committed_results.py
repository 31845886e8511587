"""The committed search results must still come out of the code: rerun the start of one committed run."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import grokcircuit as gc
from grokcircuit.config import from_dict

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
