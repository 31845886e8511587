"""Shipped weights: fp16 files with a checksummed manifest; a run known only by them counts as finished."""
import pytest
import torch

import grokcircuit as gc
from grokcircuit import weights


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("GROKCIRCUIT_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("GROKCIRCUIT_RUNS", str(tmp_path / "runs"))
    return tmp_path / "results"


def state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"w": torch.randn(4, 3), "steps": torch.tensor([7])}


def test_exported_weights_load_back_at_fp16_precision(tmp_path):
    path = weights.export(state(), tmp_path, "abc123")
    assert path.name == "abc123.pt" and weights.find([tmp_path], "abc123") == path
    back = weights.load(path)
    assert back["w"].dtype == torch.float32 and torch.equal(back["steps"], torch.tensor([7]))
    torch.testing.assert_close(back["w"], state()["w"].half().float())
    assert weights.total_bytes([tmp_path]) == path.stat().st_size
    weights.export(state(), tmp_path, "abc123", step=500)
    assert sorted(weights.read_manifest(tmp_path)) == ["abc123.pt", "abc123_500.pt"]
    assert weights.find([tmp_path], "abc123", 1000) is None
    assert weights.steps([tmp_path], "abc123") == [500] and weights.steps([tmp_path], "other") == []


def test_a_run_with_shipped_weights_is_finished_and_never_retrained(results):
    cfg = gc.preset("ci", **{"train.steps": "20", "train.eval_every": "10"})
    trained = gc.get_or_train(cfg, progress=False, root=results.parent / "elsewhere")
    folder = gc.runs.weights_dir("ci")
    weights.export(trained.ema_state(), folder, trained.id)
    weights.export(trained.ema_state(10), folder, trained.id, step=10)
    (gc.runs.results_dir("ci") / "metrics").mkdir()
    trained.metrics().to_csv(gc.runs.results_dir("ci") / "metrics" / f"{trained.id}.csv", index=False)

    run = gc.Run(cfg)  # the default store is empty
    assert run.status() == "finished" and run.load_checkpoint() is None
    assert gc.get_or_train(cfg, progress=False).load_checkpoint() is None  # nothing was trained
    assert run.metrics().value.tolist() == trained.metrics().value.tolist()
    assert run.snapshot_steps() == [10]  # the shipped snapshot, though the store has none
    model, again = run.load_model(), trained.load_model()
    q = gc.Queries.build(gc.make_dataset(cfg.data).probes["id_atomic"], "causal", 60, 12)
    torch.testing.assert_close(model(q.tokens).logits, again(q.tokens).logits, atol=0.05, rtol=0)
    torch.testing.assert_close(run.ema_state(10)["head.weight"], trained.ema_state(10)["head.weight"], atol=1e-3,
                               rtol=0)


def test_an_altered_file_is_refused(results):
    cfg = gc.preset("ci")
    path = weights.export(state(), gc.runs.weights_dir("ci"), cfg.run_id)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(gc.RunCorrupted, match="do not match"):
        gc.Run(cfg).ema_state()


def test_a_committed_run_is_found_by_preset_regime_and_seed_and_a_missing_one_named(results):
    cfg = gc.pretrain_config("ci", "natural", 0)
    with pytest.raises(FileNotFoundError, match="grokcircuit reproduce --preset ci"):
        gc.committed_run("ci", "natural", 0)
    weights.export(state(), gc.runs.weights_dir("ci"), cfg.run_id)
    assert gc.committed_run("ci", "natural", 0).id == cfg.run_id
    with pytest.raises(FileNotFoundError, match="finetuning from natural"):
        gc.committed_run("ci", "natural", 0, finetune=True)


def test_test_queries_are_every_two_hop_test_query_of_the_run():
    cfg = gc.preset("ci")
    qs, probes = gc.test_queries(cfg), gc.make_dataset(cfg.data).probes
    assert list(qs) == ["OOD", "ID"]
    assert len(qs["OOD"]) == len(probes["test_inferred_ood"]) and len(qs["ID"]) == len(probes["test_inferred_iid"])
    assert qs["OOD"].items.is_inferred.all()
