"""scripts/gpu_check.py on a CPU with its tiny configuration: the code path the GPU run takes, end to end."""
import subprocess
import sys
from pathlib import Path

import pandas as pd

from grokcircuit import weights

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_trains_and_summarizes_on_a_cpu(tmp_path):
    name = "trm-e200-second-full"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--tiny", "--minutes", "0.6",
                           "--out", str(tmp_path), "--only", name], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary.name.tolist() == [name]
    row = summary.iloc[0]
    assert row.steps >= 20 and 0 <= row.chance_bridge_probe <= 1 and 0 <= row.chance_bridge_entity_lens <= 1
    for file in ("metrics.csv", "patch.csv", "probe.csv", "analysis.json", "manifest.json"):
        assert (tmp_path / name / file).stat().st_size > 0
    assert [e["step"] for e in weights.read_manifest(tmp_path / name).values()] == [None]


def test_gpu_check_refuses_an_unknown_experiment(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--tiny", "--out", str(tmp_path),
                           "--only", "nope"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "unknown experiment" in done.stderr
