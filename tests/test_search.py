"""The search's readout tables (`grokcircuit.search`) on hand-made rows and curves whose verdict is known."""
import json

import pandas as pd

from grokcircuit import findings, search

STEPS = [0, 1000, 2000, 3000]


def row(name: str, head: str, **values: float) -> dict:
    overrides = {"model.tie_embeddings": "false"} if head == "untied" else {}
    base = {"name": name, "regime": "second_hop_full", "overrides": json.dumps(overrides), "max_ood_exact_match": 0.95,
            "ood_entity_lens_when_correct": 0.1, "ood_used_when_correct": 0.9}
    for value, chance in search.READOUT_COLUMNS.values():
        base[value], base[chance] = values.get(value, 0.5), 0.02
    return base


def curves(name: str, probe: list[float], used: list[float]) -> pd.DataFrame:
    series = {"exact_match": [0.0, 0.5, 0.9, 0.95], "bridge_found": [0.2, 1.0, 1.0, 1.0], "bridge_probe": probe,
              "bridge_used": used}
    return pd.DataFrame([(name, step, "test_inferred_ood", metric, v) for metric, values in series.items()
                         for step, v in zip(STEPS, values)], columns=["name", "step", "split", "metric", "value"])


def test_a_probe_that_misses_a_bridge_patching_finds_is_said_so():
    rows = pd.DataFrame([row("tied", "tied"), row("untied", "untied", bridge_probe_at_best=0.1)])
    table = search.readout_table(rows)
    assert table["head"].tolist() == ["tied", "untied"] and table["probe"].tolist() == ["0.50 (0.02)", "0.10 (0.02)"]
    runs = pd.concat([curves("tied", [0.0, 0.4, 0.8, 0.8], [0.0, 0.5, 0.9, 0.9]),
                      curves("untied", [0.0, 0.1, 0.2, 0.2], [0.0, 0.5, 0.9, 0.9])])
    fakes = search.fake_table(rows, runs).set_index("candidate")
    assert fakes.loc["untied"].tolist() == [0, 2, 0] and fakes.loc["tied"].tolist() == [0, 0, 0]
    text = search.fake_text(table, fakes.reset_index())
    assert "by the probe at 2 evaluations" in text and text.endswith("in untied the probe misses a bridge that "
                                                                     "patching shows the answers use")


def test_a_readout_at_chance_never_makes_grokking_fake():
    rows = pd.DataFrame([row("blind", "untied")])
    blind = curves("blind", [0.3, 0.3, 0.35, 0.3], [0.0, 0.5, 0.9, 0.9])
    assert search.fake_table(rows, blind).loc[0, "the probe"] == 0  # never CHANCE_MARGIN above step 0
    assert findings.CHANCE_MARGIN > 0.05


def test_without_rows_that_log_every_readout_the_tables_are_empty():
    old = pd.DataFrame([{"name": "old", "regime": "natural", "overrides": "{}"}])
    assert search.readout_table(old).empty and search.fake_table(old, pd.DataFrame()).empty
    assert search.fake_text(search.readout_table(old), search.fake_table(old, pd.DataFrame())).startswith("no ")


def test_the_collapse_is_compared_between_committed_runs_and_zero_start_candidates():
    summary = pd.DataFrame({"finding": ["1", "1", "3"], "train_fall_after_fit": [0.9, 0.8, float("nan")]})
    cand = pd.DataFrame({"overrides": [json.dumps({"train.grokfast_init": "zero"}), "{}"],
                         "train_fall_after_fit": [0.02, 0.7]})
    text = search.collapse_text(summary, cand)
    assert text.startswith("in the committed pretraining runs, training accuracy fell by up to 0.90")
    assert "(median 0.85, 2 runs)" in text and text.endswith("whose average starts at zero, by at most 0.02")
    assert "zero" not in search.collapse_text(summary, cand.drop(columns="train_fall_after_fit"))


def test_the_zero_start_is_compared_with_the_committed_recipe():
    rows = pd.DataFrame([{"name": n, "max_ood_exact_match": best, "steps": 60000, "T_ood": t_ood,
                          "train_fall_after_fit": fall}
                         for n, best, t_ood, fall in (("e60-looped2x2-grokfast-60k", 0.52, 58000, 0.01),
                                                      ("zero-natural", 0.10, float("nan"), 0.0),
                                                      ("zero-from0-natural", 0.12, float("nan"), 0.02))])
    text = search.zero_start_text(rows)
    assert text.startswith("with its average started at zero, the natural run's best OOD exact match was 0.12 in "
                           "60,000 steps with the filter from 0 (never reaching 0.5")
    assert text.endswith("reached 0.52 in 60,000 steps (reaching 0.5 at step 58,000)")
    assert "lacks" in search.zero_start_text(rows.iloc[:2])
