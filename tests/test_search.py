"""The search's readout tables (`grokcircuit.search`) on hand-made rows and curves whose verdict is known."""
import json

import pandas as pd
import pytest

import grokcircuit as gc
from grokcircuit import findings, search
from grokcircuit.experiments import finetune_config
from grokcircuit.runs import results_dir

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


def train_curve(name: str, accuracy: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"name": name, "step": range(0, 500 * len(accuracy), 500), "split": "train",
                         "metric": "accuracy", "value": accuracy})


def config(**train: object) -> str:
    cfg = gc.preset("ci", **{f"train.{k}": str(v) for k, v in train.items()})
    return json.dumps(gc.config.to_dict(cfg))


def test_the_collapse_is_measured_on_the_curves_of_seeded_and_zero_start_runs():
    seeded = config(grokfast_alpha=0.98, grokfast_from=6000, grokfast_init="gradient")
    cand = pd.DataFrame({"name": ["a", "b", "c", "plain"],
                         "config": [seeded, seeded, config(grokfast_alpha=0.98, grokfast_init="zero"),
                                    config(grokfast_alpha=0.0)]})
    curves = pd.concat([train_curve("a", [0.5, 0.95, 0.1, 0.97]), train_curve("b", [0.5, 0.8, 0.92, 0.9]),
                        train_curve("c", [0.2, 0.91, 0.88]), train_curve("plain", [0.95, 0.1])])
    summary = pd.DataFrame({"finding": ["1", "1", "3"], "train_fall_after_fit": [0.03, 0.01, float("nan")]})
    text = search.collapse_text(cand, curves, summary)
    assert text.startswith("training accuracy fell after first reaching 0.9 by up to 0.85 in the 2 search candidates "
                           "that reached it with the filter switched on at a later step and its average seeded (by "
                           "more than 0.1 in 1 of them: a)")
    assert "; by at most 0.03 in the 1 whose average starts at zero;" in text  # the plain run's fall is not counted
    assert text.endswith("by at most 0.03 in the 2 pretraining runs of the committed reproduction")
    assert search.collapse_text(cand.iloc[:0], curves, summary.iloc[:0]).startswith("no committed run")


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


def test_every_candidate_states_how_its_filter_starts():
    """So a candidate keeps its recipe, and its run id, when the preset's filter start moves."""
    for name, (_, overrides, _) in {**search.CANDIDATES, **search.FINETUNE_CANDIDATES}.items():
        assert overrides.get("train.grokfast_init") in ("gradient", "zero"), name


def committed(name: str) -> pd.DataFrame:
    path = results_dir("cpu") / f"{name}.csv"
    if not path.exists():
        pytest.skip(f"no committed {name}.csv")
    return pd.read_csv(path)


def test_committed_rows_carry_their_candidates_overrides_and_run_ids():
    """Each committed row's overrides are its candidate's, and the cpu preset with them trains the row's run."""
    for table, candidates, make in (
            ("search", search.CANDIDATES, lambda base, o: gc.preset("cpu", regime=base, **o)),
            ("search_finetune", search.FINETUNE_CANDIDATES, lambda base, o: finetune_config("cpu", base, 0, **o))):
        for row in committed(table).to_dict("records"):
            base, overrides, _ = candidates[row["name"]]
            assert json.loads(row["overrides"]) == overrides, row["name"]
            assert row.get("regime", row.get("base")) == base, row["name"]
            assert make(base, overrides).run_id == row["run_id"], f"{row['name']}: the candidate trains another run"


def test_hypotheses_name_committed_candidates_and_registered_criteria():
    for h in search.HYPOTHESES:
        names = search.FINETUNE_CANDIDATES if h.finetune else search.CANDIDATES
        assert set(h.runs) | set(h.against) <= set(names) and h.criterion in findings.CRITERIA, h.name


def test_the_hypothesis_table_has_one_row_per_hypothesis():
    table = search.hypothesis_table(committed("search"), committed("search_finetune"))
    assert table.hypothesis.tolist() == [h.name for h in search.HYPOTHESES]
    assert set(table.verdict) <= {"supported", "not supported", "not run"}
    runs = {h.name: bool(h.runs) for h in search.HYPOTHESES}
    assert all((v == "not run") != runs[h] for h, v in zip(table.hypothesis, table.verdict))
    found, h1 = committed("search"), search.HYPOTHESES[0]  # its verdict is read from its rows' values
    mine = found.name.isin(h1.runs)
    assert h1.verdict(found.assign(fake_evaluations=found.fake_evaluations.mask(mine, 3))) == "supported"
    assert h1.verdict(found.assign(fake_evaluations=found.fake_evaluations.mask(mine, 0))) == "not supported"
    assert h1.verdict(found[~mine]) == "not run"


def hypothesis_rows(fake: list[int]) -> pd.DataFrame:
    rows = [{**row(f"u{i}", "untied", bridge_used_at_best=0.3), "T_fit": 500.0, "bridge_metric": "bridge_used",
             "fake_evaluations": n} for i, n in enumerate(fake)]
    return pd.DataFrame(rows)


def test_a_hypothesis_verdict_follows_its_rows():
    h = search.Hypothesis("H", "untied fakes?", "fake_grokking", ("u0", "u1"), ("tied",))
    both = hypothesis_rows([2, 0])
    assert h.verdict(both) == "not supported"
    assert h.verdict(both.assign(fake_evaluations=[2, 1])) == "supported"  # a row's value flips it
    assert h.verdict(both.iloc[:0]) == "not run" and search.measured_text(h, both.iloc[:0]) == "not run"
    assert h.verdict(pd.DataFrame()) == "not run"  # no search table committed at all
    text = search.measured_text(h, both)
    assert text.startswith("u0: best OOD exact match 0.95, with lens 0.50 (chance 0.02), probe 0.50 (chance 0.02), "
                           "patching 0.30 (chance 0.02); fake grokking by patching at 2 evaluations; u1:")
    table = search.hypothesis_table(both, pd.DataFrame(), (h,))
    assert table.loc[0, "runs"] == "u0, u1 (beside tied)" and table.loc[0, "verdict"] == "not supported"


def test_a_finetuning_hypothesis_reads_its_criterion_quantities():
    h = search.Hypothesis("H", "deeper composes?", "new_old_composes", ("deep",), ("preset",), finetune=True)
    rows = pd.DataFrame({"name": ["preset", "deep"], "final_new_old_exact_match": [0.3, 0.95]})
    assert h.verdict(rows) == "supported" and h.verdict(rows.assign(final_new_old_exact_match=0.8)) == "not supported"
    assert search.measured_text(h, rows) == ("deep: final new+old exact match 0.95. Beside preset: final new+old "
                                             "exact match 0.30")


def test_verdicts_text_groups_the_hypotheses_by_verdict():
    table = pd.DataFrame({"hypothesis": ["H1", "H2", "H3", "H4"],
                          "verdict": ["not supported", "supported", "not supported", "not supported"]})
    assert search.verdicts_text(table) == "not supported: H1, H3 and H4; supported: H2"
    assert search.verdicts_text(table.iloc[:0]) == "no hypothesis is registered"
