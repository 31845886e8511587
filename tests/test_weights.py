"""Shipped weights: fp16 files with a checksummed manifest, found by run id, refused when altered."""
import pytest
import torch

import grokcircuit as gc
from grokcircuit import weights


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("GROKCIRCUIT_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"w": torch.randn(4, 3), "steps": torch.tensor([7])}


def test_exported_weights_load_back_at_fp16_precision(results):
    path = weights.export("abc123", state(), results / "cpu" / "weights")
    assert path.name == "abc123.pt" and weights.find("abc123") == path
    back = weights.load("abc123")
    assert back["w"].dtype == torch.float32 and torch.equal(back["steps"], torch.tensor([7]))
    torch.testing.assert_close(back["w"], state()["w"].half().float())
    assert weights.total_bytes() == path.stat().st_size


def test_snapshots_are_separate_files(results):
    folder = results / "cpu" / "weights"
    weights.export("abc123", state(), folder)
    weights.export("abc123", state(), folder, step=500)
    assert sorted(weights.read_manifest(folder)) == ["abc123.pt", "abc123_500.pt"]
    assert weights.find("abc123", 1000) is None
    with pytest.raises(FileNotFoundError, match="at step 1000"):
        weights.load("abc123", 1000)


def test_an_altered_file_is_refused(results):
    path = weights.export("abc123", state(), results / "cpu" / "weights")
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(gc.RunCorrupted, match="do not match"):
        weights.load("abc123")
