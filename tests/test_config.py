"""Config: presets, overrides, validation, run ids and epoch-based schedules."""
import dataclasses
import hashlib
import json

import pytest

import grokcircuit as gc
from grokcircuit.config import ConfigError, config_hash, from_dict, to_dict
from grokcircuit.train import schedule_of


def test_round_trip_and_stable_hash():
    cfg = gc.preset("cpu", regime="second-hop-full", seed=2, finetune=True)
    assert from_dict(to_dict(cfg)) == cfg
    assert config_hash(from_dict(to_dict(cfg))) == cfg.run_id
    assert gc.preset("cpu", seed=1).run_id != gc.preset("cpu", seed=2).run_id
    assert gc.preset("cpu", regime="natural").run_id != gc.preset("cpu", regime="both_hop_full").run_id


def test_data_config_spells_its_regime_once():
    """The CLI's hyphens become underscores in the config itself, so the run id cannot tell them apart."""
    assert gc.DataConfig(regime="second-hop-full").regime == "second_hop_full"
    hyphen = gc.preset("cpu", regime="second-hop-full")
    assert hyphen.data.regime == "second_hop_full"
    assert hyphen.run_id == gc.preset("cpu", regime="second_hop_full").run_id
    assert gc.override(hyphen, **{"data.regime": "both-hop-half"}).data.regime == "both_hop_half"
    assert from_dict(json.loads(json.dumps({**to_dict(hyphen), "data": {**to_dict(hyphen)["data"],
                                                                        "regime": "second-hop-full"}}))) == hyphen
    with pytest.raises(ConfigError, match="data.regime"):
        gc.DataConfig(regime="sideways").validate()


def test_non_semantic_fields_do_not_change_the_run_id():
    cfg = gc.preset("ci")
    for key, value in {"train.device": "cpu", "train.compile": "true", "train.snapshots": "false"}.items():
        assert gc.override(cfg, **{key: value}).run_id == cfg.run_id


def test_fields_added_later_keep_earlier_ids_while_at_their_default():
    cfg = gc.preset("ci")  # every field added later at its default
    legacy = to_dict(cfg)
    for section, name in gc.config.ADDED_LATER:
        legacy[section].pop(name)
    blob = json.dumps({k: {f: v for f, v in d.items() if (k, f) not in gc.config.NON_SEMANTIC} if d else d
                       for k, d in legacy.items()}, sort_keys=True, separators=(",", ":"))
    assert cfg.run_id == hashlib.sha256(blob.encode()).hexdigest()[:12]
    assert gc.override(cfg, **{"model.positions": "rope"}).run_id != cfg.run_id
    assert gc.override(cfg, **{"train.grokfast_alpha": "0.98"}).run_id != cfg.run_id


@pytest.mark.parametrize("key, value, needle", [
    ("train.lr", "-1", "train.lr"), ("train.nope", "1", "train.nope"), ("model.arch", "rnn", "model.arch"),
    ("data.regime", "sideways", "regime"), ("model.positions", "sinus", "model.positions"),
    ("train.epochs", "-3", "train.epochs"), ("train.batch_size", "0", "train.batch_size"),
])
def test_bad_overrides_fail_with_one_line(key, value, needle):
    with pytest.raises(ConfigError) as err:
        gc.preset("ci", **{key: value})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="preset"):
        gc.preset("huge")


def test_paper_preset_is_the_papers_setting():
    cfg = gc.preset("paper")
    assert (cfg.data.entities, cfg.data.relations, cfg.data.out_degree, cfg.data.phi) == (2000, 200, 20, 18.0)
    m, t = cfg.model, cfg.train
    assert (m.arch, m.d_model, m.n_blocks, m.h_cycles, m.l_cycles, m.prefix_len, m.mixer) == \
        ("trm", 1536, 2, 2, 6, 16, "mlp")
    assert (t.lr, t.weight_decay, t.batch_size, t.warmup_steps, t.ema_decay, t.epochs, t.eval_every_epochs) == \
        (4e-5, 1.0, 512, 2000, 0.999, 1100, 5)
    ft = gc.preset("paper", finetune=True).finetune
    assert (ft.lr, ft.new_atomic, ft.keep_old) == (2e-5, 2000, 8000)


def test_epoch_based_schedule_follows_the_training_set():
    cfg = gc.preset("paper")
    sched = schedule_of(cfg, 724_000)  # the natural regime's training items
    assert sched.eval_every == 5 * (724_000 // 512) == 7070  # the paper's natural-run cadence
    assert sched.steps == 1100 * 724_000 // 512
    steps_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=0.0, eval_every_epochs=0.0))
    assert schedule_of(steps_cfg, 724_000).steps == cfg.train.steps


def test_run_length_and_optimizer_text_describe_the_presets():
    assert gc.config.run_length("ci") == "400 steps"
    assert gc.config.run_length("cpu") == "60,000 steps (natural regime), 20,000 steps (the others)"
    assert gc.config.run_length("cpu", **{"train.steps": "100"}) == "100 steps"
    assert "Grokfast" not in gc.config.optimizer_text(gc.preset("paper"))
    assert "Grokfast-EMA gradient filter (alpha 0.98, lambda 2) from step 6,000" in \
        gc.config.optimizer_text(gc.preset("cpu"))
