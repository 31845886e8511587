"""The criteria registry (`grokcircuit.findings`), claim checks over a committed summary (`grokcircuit.claims`) and
the search's tables and sentences (`grokcircuit.search`)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import grokcircuit as gc
from grokcircuit import claims, findings, paper, search
from grokcircuit.lens import LensResult
from grokcircuit.reproduce import load_metrics, load_summary


def summary() -> pd.DataFrame:
    """Natural seed 0 (never generalizes), second hop full seeds 0-1 (through the bridge), one natural finetune;
    holds_ values as a CSV gives them back: bools in an object column, missing where a criterion does not apply."""
    nan = np.nan
    rows = [
        ("1", "natural", 0, 8500, nan, nan, 20000, 0.04, 0.50, False, False, nan, nan, nan),
        ("2", "second_hop_full", 0, 8500, 9000, 18500, 20000, 0.64, 0.97, nan, nan, False, nan, nan),
        ("2", "second_hop_full", 1, 8000, 16500, 18000, 20000, 0.71, 0.93, nan, nan, False, nan, nan),
        ("3", "natural", 0, nan, nan, nan, nan, nan, nan, nan, nan, nan, True, 0.95),
    ]
    frame = pd.DataFrame(rows, columns=["finding", "regime", "seed", "T_fit", "T_bridge", "T_ood", "steps",
                                        "final_ood_exact_match", "final_ood_bridge_found", "holds_grokking_order",
                                        "holds_grokking_delay", "holds_fake_grokking", "holds_new_old_composes",
                                        "final_new_old_exact_match"])
    return frame.assign(bridge_metric="bridge_found_intermediate", chance_ood_bridge_found=0.06)


def test_spread_is_median_and_range_over_the_seeds_that_reach_it():
    assert claims.spread(pd.Series([9000.0, 16500.0]), steps=True) == "12,750 [9,000–16,500]"
    assert claims.spread(pd.Series([0.5])) == "0.50"
    assert claims.spread(pd.Series([100.0, np.nan, 300.0]), steps=True) == "200 [100–300] in 2 of 3 seeds"
    assert claims.spread(pd.Series([np.nan, np.nan])) == "not reached"
    assert claims.spread(pd.Series(dtype=float)) == "no run"


def test_seeds_and_missing_runs_are_named():
    s = summary()
    assert claims.seeds_text(s, ["natural", "second_hop_full", "both_hop_full"]) == \
        "natural: 1 seed (0); second hop full: 2 seeds (0, 1); both hop full: no run yet"
    assert claims.seeds_text(s, ["natural", "control"], finetune=True) == "natural: 1 seed (0); control: no run yet"
    note = claims.missing_note(s, ["natural", "both_hop_full", "first_hop_full"])
    assert "no pretraining run of both hop full or first hop full yet" in note and "natural" not in note
    assert "from natural, second hop full or control yet" in claims.missing_note(
        s.iloc[:0], ["natural", "second_hop_full", "control"], finetune=True)
    assert "grokcircuit reproduce --preset cpu --seeds 0 1 2" in note and "trains them" in note
    assert claims.missing_note(s, ["natural", "second_hop_full"]) == ""
    assert "finetuning run from control" in claims.missing_note(s, ["control"], finetune=True)
    assert "no pretraining run" in claims.missing_note(pd.DataFrame(), ["natural"])


def test_median_milestones_skip_seeds_that_never_reach_and_regimes_without_rows():
    got = claims.median_milestones(summary(), ["natural", "second_hop_full", "both_hop_full"])
    assert got == {"natural": {"T_fit": 8500, "T_bridge": None, "T_ood": None},
                   "second_hop_full": {"T_fit": 8250, "T_bridge": 12750, "T_ood": 18250}}


def test_holds_text_counts_seeds_and_says_when_unmeasured():
    s = summary()
    assert claims.holds_text(s, "fake_grokking", "second_hop_full") == "holds in 0 of 2 seeds"
    assert claims.holds_text(s, "grokking_order", "natural") == "holds in 0 of 1 seed"
    assert claims.holds_text(s, "new_old_composes", "natural", finetune=True) == "holds in 1 of 1 seed"
    assert claims.holds_text(s, "fake_grokking", "natural") == "is not measured (no committed run)"


def test_claim_table_sets_the_papers_numbers_beside_ours():
    table = claims.claim_table(summary()).set_index(["regime", "criterion"])
    assert list(table.index) == [("natural", "grokking_order"), ("natural", "grokking_delay"),
                                 ("second hop full", "fake_grokking")]
    order = table.loc[("natural", "grokking_order")]
    fig2 = paper.FIGURE2.set_index("regime").loc["natural"]
    assert order.paper == f"{fig2.T_fit:,.0f}; {fig2.T_bridge:,.0f}; {fig2.T_ood:,.0f}"
    assert order.ours == "8,500; not reached; not reached"
    assert order.holds == "0 of 1 seed" and order.tests == "T_fit < T_bridge < T_ood"
    assert table.loc[("natural", "grokking_delay")].paper == f"{fig2.T_ood / fig2.T_fit:.2f}"
    fake = table.loc[("second hop full", "fake_grokking")]
    assert fake.ours == "0.68 [0.64–0.71]; 0.95 [0.93–0.97]; 0.06" and fake.holds == "0 of 2 seeds"
    assert fake.paper.endswith("; not in the paper") and fake["holds with the lens rule"] == ""


def test_claim_table_of_finetunes_and_of_nothing():
    table = claims.claim_table(summary(), finetune=True)
    assert table[["regime", "criterion", "ours", "holds"]].values.tolist() == \
        [["natural", "new_old_composes", "0.95", "1 of 1 seed"]]
    assert table.paper.iloc[0] == f"{paper.FIGURE4.set_index('base').loc['natural', 'new_old_em']:.2f}"
    assert claims.claim_table(summary(), regimes=["both_hop_full"]).empty
    assert claims.claim_table(pd.DataFrame(columns=["finding", "regime", "seed"])).empty


def test_readings_tell_no_generalization_from_generalization_through_the_bridge():
    s = summary()
    assert claims.readings_text(s, "natural") == \
        "in 1 of 1 seed, did not reach OOD exact match 0.5 within 20,000 steps"
    assert claims.readings_text(s, "second_hop_full") == \
        "in 2 of 2 seeds, reached OOD exact match 0.5 at or after finding the bridge (T_bridge ≤ T_ood)"
    fake = s.assign(holds_fake_grokking=[np.nan, True, False, np.nan])
    assert "fake grokking" in claims.readings_text(fake, "second_hop_full").split("; ")[0]
    early = s.assign(T_bridge=[np.nan, 19000, np.nan, np.nan])
    assert claims.readings_text(early, "second_hop_full").count("before the bridge was found") == 1
    assert claims.readings_text(s, "both_hop_full") == "has no committed run"


def test_milestone_table_counts_reached_seeds():
    table = claims.milestone_table(summary(), ["second_hop_full", "both_hop_full"]).set_index(["regime", "milestone"])
    assert set(table.index.get_level_values(0)) == {"second_hop_full"}
    row = table.loc[("second_hop_full", "T_bridge")]
    assert (row.seeds, row.reached, row["median"], row["min"], row["max"]) == (2, 2, 12750, 9000, 16500)
    assert row.steps == "12,750 [9,000–16,500]"


def curves(ood: list[float], bridge: list[float]) -> pd.DataFrame:
    return pd.DataFrame([(100 * i, "test_inferred_ood", m, v) for m, values in (("exact_match", ood), ("bf", bridge))
                         for i, v in enumerate(values)], columns=["step", "split", "metric", "value"])


def test_fake_grokking_check_counts_evaluations_and_reads_the_best_one():
    got = claims.fake_grokking_check(curves([0.1, 0.85, 0.9, 0.7], [0.2, 0.4, 0.6, 0.3]), bridge="bf")
    assert got == {"evaluations": 4, "fake_evaluations": 1, "best_ood_step": 200, "best_ood_exact_match": 0.9,
                   "bridge_at_best_ood": 0.6}
    assert claims.fake_grokking_check(curves([0.5], [0.9]), bridge="bf")["fake_evaluations"] == 0


def test_bridge_of_reads_the_single_metric():
    assert claims.bridge_of(summary()) == "bridge_found_intermediate"
    assert claims.bridge_of(pd.DataFrame()) == "bridge_found"
    with pytest.raises(ValueError, match="mixes"):
        claims.bridge_of(summary().assign(bridge_metric=["a", "b", "a", "a"]))


def test_spread_of_and_run_text_read_one_regime():
    s = summary()
    assert claims.spread_of(s, "natural", "final_new_old_exact_match", finetune=True) == "0.95"
    assert claims.spread_of(s, "control", "final_new_old_exact_match", finetune=True) == "no run"
    assert claims.spread_of(s, "natural", "no_such_column") == "no run"
    assert claims.run_text(s, "second_hop_full") == \
        ("T_fit 8,250 [8,000–8,500], T_bridge 12,750 [9,000–16,500], T_ood 18,250 [18,000–18,500]; in 2 of 2 "
         "seeds, reached OOD exact match 0.5 at or after finding the bridge (T_bridge ≤ T_ood)")
    assert claims.run_text(s, "both_hop_full") == "no committed run yet"
    assert claims.holds_text(s, "fake_grokking", ["natural", "second_hop_full"]) == "holds in 0 of 2 seeds"


def test_wait_text_names_why_it_cannot_be_measured():
    s = summary()
    assert claims.wait_text(s, 2.0) == ("the wait cannot be measured: natural did not reach T_ood and "
                                          "both hop full has no committed run")
    full = s.iloc[[1]].assign(regime="both_hop_full", finding="1", T_ood=1000)
    grokked = s.iloc[[0]].assign(T_ood=5000)
    assert claims.wait_text(pd.concat([grokked, full]), 2.0) == "the wait is 4,000 extra steps (8e+03 FLOPs)"


def test_fake_grokking_table_checks_each_seed():
    runs = pd.concat([curves([0.1, 0.85], [0.0, 0.3]).assign(regime="second_hop_full", seed=0),
                      curves([0.1, 0.7], [0.9, 0.95]).assign(regime="second_hop_full", seed=1),
                      curves([0.0, 0.0], [0.0, 0.0]).assign(regime="natural", seed=0)])
    table = claims.fake_grokking_table(runs, "bf", ["second_hop_full", "both_hop_full"])
    assert table[["seed", "fake_evaluations", "best_ood_exact_match", "holds"]].values.tolist() == \
        [[0, 1, 0.85, True], [1, 0, 0.7, False]]
    assert claims.fake_grokking_table(pd.DataFrame(), "bf", ["natural"]).empty


def test_sharing_table_pairs_each_regime_and_skips_missing_candidates():
    found = pd.DataFrame([
        {"name": "e60-looped2x2", "steps": 20000, "T_fit": 8500.0, "final_train_accuracy": 1.0,
         "final_iid_exact_match": 1.0, "max_ood_exact_match": 0.04, "final_ood_bridge_found": 0.5,
         "ood_patch_followed": 0.18, "iid_patch_followed": 0.9},
        {"name": "e60-standard4", "steps": 20000, "T_fit": np.nan, "final_train_accuracy": 0.7,
         "final_iid_exact_match": 0.2, "max_ood_exact_match": 0.01, "final_ood_bridge_found": 0.1,
         "ood_patch_followed": 0.02, "iid_patch_followed": 0.1},
    ])
    table = search.sharing_table(found)
    assert list(table["parameter sharing"]) == ["shared (looped)", "none (standard)"]
    assert list(table.regime) == ["natural", "natural"]
    assert table["training accuracy"].tolist() == [1.0, 0.7]
    assert search.sharing_table(pd.DataFrame()).empty
    text = search.sharing_text(table)
    assert "natural: best OOD exact match 0.04 with sharing against 0.01 without" in text
    assert "ID exact match 1.00 against 0.20" in text
    assert "only the shared model" in search.sharing_text(table.iloc[:1])
    assert "no run" in search.sharing_text(table.iloc[:0])


def test_filter_text_compares_the_filtered_and_plain_natural_runs():
    row = lambda name, steps, best, t_ood=np.nan: {  # noqa: E731
        "name": name, "steps": steps, "max_ood_exact_match": best, "final_ood_exact_match": best - 0.01,
        "T_ood": t_ood, "final_train_accuracy": 0.9}
    found = pd.DataFrame([row("e60-looped2x2", 20000, 0.04), row("e60-looped2x2-80k", 80000, 0.19),
                          row("e60-looped2x2-grokfast", 20000, 0.2),
                          row("e60-looped2x2-grokfast-60k", 60000, 0.52, 58000.0),
                          row("e60-looped2x2-grokfast-l5", 20000, 0.08)])
    text = search.filter_text(found)
    assert "0.04 after 20,000 steps and 0.19 after 80,000" in text
    assert "0.52 after 60,000 (first reaching 0.5 at step 58,000, final 0.51)" in text
    assert "lacks" in search.filter_text(found.iloc[:4])


def test_train_minutes_text_groups_the_runs():
    summary = pd.DataFrame({"finding": ["1", "1", "2", "3", "3"],
                            "regime": ["natural", "both_hop_full", "second_hop_full", "natural", "control"],
                            "train_seconds": [1800.0, 540.0, 600.0, 240.0, 300.0]})
    assert claims.train_minutes_text(summary) == ("natural pretraining 30 min over 1 run; other pretraining "
                                                  "10 min [9–10] over 2 runs; finetuning 4 min [4–5] over 2 runs")
    assert claims.train_minutes_text(summary.iloc[:0]) == "no committed runs"


def test_chapter_times_text_reads_both_passes():
    table = pd.DataFrame({"chapter": ["01_task", "02_paths"], "first_run_s": [13.2, 75.0],
                          "runs_in_store_s": [12.4, 40.6]})
    assert claims.chapter_times_text(table) == "01_task 12 s (13 s on a first run); 02_paths 41 s (75 s on a first run)"
    assert claims.chapter_times_text(table.iloc[:0]) == "not measured"
    table.loc[1, "runs_in_store_s"] = float("nan")
    assert claims.chapter_times_text(table).endswith("; 02_paths 75 s as a first run")


def test_finetune_search_names_the_best_composition_and_the_worst_forgetting():
    found = pd.DataFrame({"name": ["preset", "lr2e-3", "keep-paper", "deeper"], "why": ["a", "b", "c", "d"],
                          "base": ["natural"] * 4,
                          "overrides": ["{}", '{"finetune.lr": "2e-3"}', '{"finetune.keep_policy": "paper"}',
                                        '{"model.loops": "3"}'],
                          "train_seconds": [96.0, 84.0, 90.0, 120.0], "final_new_atomic": [1.0, 0.99, 1.0, 1.0],
                          "final_new_old_exact_match": [0.30, 0.15, 0.35, 0.8],
                          "final_new_old_bridge_found": [0.6, 0.5, 0.6, 1.0],
                          "final_old_new_exact_match": [0.24, 0.19, 0.39, 0.27],
                          "final_id_atomic": [0.9, 0.62, 1.0, 0.97]})
    text = search.finetune_search_text(found)
    assert "(at least 0.99)" in text and "0.35 (keep-paper) against the criterion's 0.9" in text
    assert "as low as 0.62 (lr2e-3); from other bases, deeper new+old 0.80 and old+new 0.27" in text
    assert "from other bases" not in search.finetune_search_text(found.iloc[:3])
    table = search.finetune_search_table(found)
    assert list(table.index) == ["preset", "lr2e-3", "keep-paper", "deeper"] and table.loc["preset", "minutes"] == 1.6
    assert search.finetune_search_text(found.iloc[:0]) == "no finetuning variants are committed"
    assert search.finetune_search_table(found.iloc[:0]).empty


def test_patch_follow_text_lists_the_candidates_of_a_regime():
    found = pd.DataFrame({"name": ["a", "b", "c"], "regime": ["second_hop_full", "natural", "second_hop_full"],
                          "ood_patch_followed": [0.739, 0.5, np.nan]})
    assert search.patch_follow_text(found, "second_hop_full") == "0.74 (a)"
    assert search.patch_follow_text(found, "both_hop_full") == "not measured"


def test_recurrence_text_lists_the_runs_by_passes():
    row = lambda name, best, t_ood: {  # noqa: E731
        "name": name, "max_ood_exact_match": best, "final_ood_exact_match": best, "T_fit": 9500.0,
        "T_bridge": 12000.0, "T_ood": t_ood, "ood_patch_followed": 0.7, "holds_grokking_order": t_ood > 0,
        "holds_grokking_delay": False}
    found = pd.DataFrame([row("e60-looped2x2-grokfast-60k", 0.52, 58000.0),
                          row("e60-looped2x3-grokfast-60k", 0.76, np.nan)])
    text = search.recurrence_text(found)
    assert text.startswith("with two passes, e60-looped2x2-grokfast-60k reached a best OOD exact match of 0.52")
    assert "T_ood 58,000; OOD patch-follow 0.70; the order criterion holds, the delay criterion fails" in text
    assert "with three passes, e60-looped2x3-grokfast-60k" in text and "T_ood never" in text
    assert "lacks" in search.recurrence_text(found.iloc[:0])


def test_trm_table_keeps_trm_runs_and_their_largest_bridge_rates():
    config = lambda arch: json.dumps({"model": {"arch": arch}})  # noqa: E731
    found = pd.DataFrame({"name": ["t", "l"], "regime": ["second_hop_full", "natural"],
                          "config": [config("trm"), config("looped")], "steps": [20000, 20000],
                          "T_fit": [3500.0, 9500.0], "T_ood": [np.nan, 58000.0],
                          "max_ood_exact_match": [0.08, 0.5], "final_ood_exact_match": [0.04, 0.5],
                          "ood_patch_followed": [0.05, 0.7], "holds_fake_grokking": [False, np.nan]})
    curves = pd.DataFrame({"name": ["t"] * 6 + ["l"], "step": [0, 3000, 3500] * 2 + [0],
                           "split": ["test_inferred_ood"] * 3 + ["test_inferred_iid"] * 3 + ["test_inferred_ood"],
                           "metric": ["bridge_found"] * 7, "value": [0.2, 0.3, 0.13, 0.05, 0.4, 0.11, 0.9]})
    table = search.trm_table(found, curves)
    assert table.candidate.tolist() == ["t"]
    row = table.iloc[0]
    assert (row["OOD bridge found at step 0"], row["most OOD bridge found"], row["most ID bridge found"]) == \
        (0.2, 0.13, 0.11)
    assert row["regime"] == "second hop full" and row["holds_fake_grokking"] == False  # noqa: E712
    text = search.trm_text(table)
    assert text.startswith("t (second hop full, 20,000 steps) fitted its training set at step 3,500")
    assert "at most 0.13 of OOD and 0.11 of ID test queries (0.20 of OOD queries before training)" in text
    assert search.trm_text(search.trm_table(found.iloc[:0], curves)) == "no TRM run is in the search table yet"


def test_every_criterion_states_its_thresholds_and_names_its_columns():
    for c in findings.CRITERIA.values():
        assert all(getattr(findings, name) == value for name, value in c.thresholds.items()), c.name
        assert "{" not in c.text and c.regimes and c.finding in {"1", "2", "3"}
        paper_table = paper.FIGURE4 if c.finetune else paper.FIGURE2
        assert all(col is None or col in paper_table or col in {"ood_over_fit", "circuit_new_old_em"}
                   for _, _, col in c.quantities), c.name
    fake = findings.CRITERIA["fake_base_fails"]
    assert fake.paper_value("second_hop_full") == [0.33, 1.0] and fake.paper_value("no_such_base") is None
    assert findings.FINDING_OF == {"natural": "1", "both_hop_full": "1", "second_hop_full": "2",
                                   "both_hop_half": "2", "first_hop_full": "2"}
    assert list(findings.criteria_table().criterion) == [f"holds_{n}" for n in findings.CRITERIA]


def test_the_readout_is_the_one_that_can_fail_where_a_run_logs_it():
    assert findings.bridge_metric("looped") == "bridge_found_intermediate"
    assert findings.bridge_metric("trm") == findings.LENS
    logged = pd.DataFrame({"step": [0, 0], "split": "test_inferred_ood", "metric": ["bridge_probe", "bridge_used"],
                           "value": 0.0})
    assert findings.bridge_metric("looped", logged) == "bridge_used"
    assert findings.bridge_metric("trm", logged) == "bridge_probe"
    assert findings.bridge_metric("trm", logged.iloc[1:]) == findings.LENS
    assert all(r in findings.BRIDGE_RULES for r in findings.READOUT.values())


def test_summaries_decide_each_bridge_criterion_with_the_readout_and_the_lens_rule():
    ood = [0.0, 0.3, 0.85, 0.9]
    lens = curves(ood, [0.1, 0.2, 0.95, 1.0]).query("metric == 'bf'").assign(metric=findings.LENS)
    runs = pd.concat([curves(ood, [0.05, 0.1, 0.3, 0.6]), lens])
    row = findings.summarize_pretrain(runs, "second_hop_full", "bf")
    assert (row["fake_evaluations"], row["chance_ood_bridge_found"]) == (1, 0.05)
    assert row["holds_fake_grokking"] is True and row["lens_fake_grokking"] is False
    blind = findings.summarize_pretrain(curves(ood, [0.3, 0.3, 0.35, 0.3]), "second_hop_full", "bf")
    assert blind["holds_fake_grokking"] is False  # never clearly above what the untrained model reads


def finetuned(seed: int, new_old: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"finding": "3", "regime": list(new_old), "seed": seed,
                         "final_new_old_exact_match": list(new_old.values())})


def test_fake_base_fails_compares_the_bases_of_the_same_seed():
    circuit = {"natural": 1.0, "both_hop_full": 0.95, "first_hop_full": 0.9}
    summary = pd.concat([finetuned(0, {**circuit, "second_hop_full": 0.4}),
                         finetuned(1, {**circuit, "second_hop_full": 0.8}),
                         finetuned(2, {"natural": 0.3, "second_hop_full": 0.1})], ignore_index=True)
    judged = findings.judge_seeds(summary).set_index(["regime", "seed"])
    assert judged.loc[("second_hop_full", 0), "circuit_new_old_exact_match"] == 0.9
    assert judged.holds_fake_base_fails.dropna().to_dict() == {("second_hop_full", 0): True,
                                                               ("second_hop_full", 1): False}
    live = findings.judge_seeds(summary.drop(columns="finding").rename(columns={"regime": "base"}))
    assert live.holds_fake_base_fails.tolist() == judged.holds_fake_base_fails.tolist()


def test_the_committed_summary_decides_the_criteria_across_bases_as_the_registry_does():
    summary = load_summary("cpu")
    if summary.empty:
        pytest.skip("no committed cpu summary")
    again = findings.judge_seeds(summary.drop(columns=["holds_fake_base_fails", "circuit_new_old_exact_match"]))
    assert again.holds_fake_base_fails.astype(str).tolist() == summary.holds_fake_base_fails.astype(str).tolist()
    pre = load_metrics("cpu")
    lens = [findings.summarize_pretrain(pre[pre.run_id == r.run_id], r.regime, r.bridge_metric).get(
        "lens_grokking_order") for r in summary[summary.regime == "natural"].query("finding == '1'").itertuples()]
    assert str(lens) == str(summary.query("finding == '1' and regime == 'natural'").lens_grokking_order.tolist())


def test_the_search_names_only_candidates_it_defines():
    named = [*sum(search.SHARING.values(), ()), *search.FILTER["plain"], *search.FILTER["filtered"],
             search.FILTER["strong"], *sum(search.RECURRENCE.values(), ())]
    assert set(named) <= set(search.CANDIDATES)
    assert all(base in (*findings.REGIMES, "control") for base, _, _ in search.FINETUNE_CANDIDATES.values())


def milestone_summary() -> pd.DataFrame:
    """Natural seeds 0-2 (2,000 to 4,000 steps; two reach T_ood, none T_bridge) and a natural finetune."""
    nan = np.nan
    return pd.DataFrame({"finding": ["1", "1", "1", "3"], "regime": "natural", "seed": [0, 1, 2, 0],
                         "T_fit": [100, 200, 300, nan], "T_bridge": nan, "T_ood": [1000, nan, 1500, nan],
                         "steps": [2000, 4000, 3000, 500]})


def test_milestone_text_reads_whatever_the_outcome():
    frame = milestone_summary()
    assert claims.milestone_text(frame, "natural", "T_fit") == "training accuracy reaches 0.99 at step 200 [100–300]"
    assert (claims.milestone_text(frame, "natural", "T_ood")
            == "OOD exact match reaches 0.5 at step 1,250 [1,000–1,500] in 2 of 3 seeds")
    assert (claims.milestone_text(frame, "natural", "T_bridge")
            == "the OOD bridge readout never reaches 0.9 in 4,000 steps")  # the longest run, finetunes left out
    assert claims.milestone_text(frame, "both_hop_full", "T_ood") == "OOD exact match is not measured (no run)"


def test_glue_values_state_every_criterion_and_threshold():
    values = claims.glue_values()
    assert {k for k in values if k.startswith("rule_")} == {f"rule_{name}" for name in findings.CRITERIA}
    assert values["rule_grokking_delay"] == f"T_ood ≥ {findings.DELAY} T_fit"
    assert values["FIT"] == findings.FIT and values["FAKE_BRIDGE"] == findings.FAKE_BRIDGE
    assert values["DELAY"] == float(findings.DELAY)
    assert all(isinstance(v, (str, float)) for v in values.values())


def test_differences_set_the_preset_beside_the_paper():
    table, values = claims.differences("ci", [0, 1])
    assert list(table.columns) == ["paper", "ci"]
    assert table.loc["entities", "paper"] == 2000 and table.loc["seeds", "ci"] == "0, 1"
    assert table.loc["seeds", "paper"] == "one run per regime"
    assert values["preset"] == "ci" and values["seed_list"] == "0, 1"
    assert values["ours_entities"] == table.loc["entities", "ci"]
    assert values["paper_architecture"] == "trm"
    assert values["ours_parameters"] == table.loc["parameters", "ci"]
    assert values["ours_optimizer"].startswith("AdamW") and values["paper_optimizer"].startswith("AdamW")
    wider = claims.differences("ci", [0], **{"model.d_model": "128"})[0]
    assert wider.loc["width", "ci"] == 128 and wider.loc["width", "paper"] == table.loc["width", "paper"]
    count = lambda t: int(t.loc["parameters", "ci"].replace(",", ""))  # noqa: E731
    assert count(wider) > count(table)


# --- chapters 2-3: committed evidence

def test_spread_of_equal_values_is_the_plain_value():
    assert claims.spread(pd.Series([8000.0, 8000.0]), steps=True) == "8,000"
    assert claims.spread(pd.Series([0.501, 0.499])) == "0.50"  # equal once formatted
    assert claims.spread(pd.Series([8000.0, 8000.0, np.nan]), steps=True) == "8,000 in 2 of 3 seeds"


def test_criterion_numbers_set_the_papers_beside_ours():
    fig2 = paper.FIGURE2.set_index("regime").loc["natural"]
    theirs, ours = claims.criterion_numbers(summary(), "grokking_order", "natural")
    assert theirs == f"T_fit {fig2.T_fit:,.0f}, T_bridge {fig2.T_bridge:,.0f}, T_ood {fig2.T_ood:,.0f}"
    assert ours == "T_fit 8,500, T_bridge not reached, T_ood not reached"
    theirs, ours = claims.criterion_numbers(summary(), "fake_grokking", "second_hop_full")
    assert "untrained" not in theirs and ours.endswith("untrained OOD bridge found 0.06")  # the paper has no chance
    assert claims.criterion_numbers(summary(), "no_wait", "both_hop_full")[1] == "T_ood / T_fit no run"


def two_regimes() -> pd.DataFrame:
    """Seeds 0-2 of natural and both hop full: seed 0 holds everything, seed 1 fails no_wait, seed 2 has no both
    hop full run."""
    rows = [("1", "natural", s, 1000, 2000, 4000, 8000, True, True) for s in range(3)]
    rows += [("1", "both_hop_full", s, 1000, 500, 500, 8000, ok, True) for s, ok in ((0, True), (1, False))]
    frame = pd.DataFrame(rows, columns=["finding", "regime", "seed", "T_fit", "T_bridge", "T_ood", "steps", "x", "y"])
    return frame.assign(holds_grokking_order=np.where(frame.regime == "natural", True, None),
                        holds_no_wait=np.where(frame.regime == "both_hop_full", frame.x, None),
                        bridge_metric="bridge_used").drop(columns=["x", "y"])


def test_verdict_values_count_the_seeds_in_which_every_check_holds():
    checks = [("grokking_order", "natural"), ("no_wait", "both_hop_full")]
    got = claims.verdict_values(two_regimes(), checks)
    assert got["holds"] == "holds in 1 of 2 seeds" and got["verdict"] == "does not hold"  # seed 2 is not measured
    assert got["holds_grokking_order"] == "holds in 3 of 3 seeds" and got["holds_no_wait"] == "holds in 1 of 2 seeds"
    assert got["readout"] == "activation patching" and got["claim_no_wait"] == findings.CRITERIA["no_wait"].claim
    assert got["why"].startswith("natural: in 3 of 3 seeds, reached")
    assert "; both hop full: in 2 of 2 seeds" in got["why"]
    only = claims.verdict_values(two_regimes(), checks[:1])
    assert only["holds"] == "holds in 3 of 3 seeds" and only["verdict"] == "holds"
    fake = claims.verdict_values(summary(), [("fake_grokking", "second_hop_full")])
    assert fake["holds"] == "holds in 0 of 2 seeds" and fake["readout"] == "the lens rule at intermediate stages"
    none = claims.verdict_values(summary().iloc[:0], checks)
    assert none["holds"] == "is not measured (no committed run)" and none["verdict"] == "is not measured"
    assert none["why"] == "natural: has no committed run; both hop full: has no committed run"
    assert none["readout"] == "the paper's lens rule"
    assert claims.verdict_values(summary().iloc[:0], checks, default="bridge_used")["readout"] == "activation patching"


def readout_curves() -> pd.DataFrame:
    """Second hop full, seeds 0-1 (four evaluations) and natural, seed 0: exact match and three readouts. The probe
    meets the fake-grokking criterion at steps 200-300 of seed 0 only; the lens rule never (0.45 is within the
    chance margin of its 0.40 at step 0); patching never (it finds the bridge). On ID queries (the positive
    control) the readouts end at 1.0, 0.2 and 0.9."""
    values = {"exact_match": [0.0, 0.5, 0.85, 0.9], "bridge_found": [0.4, 0.45, 0.45, 0.45],
              "bridge_probe": [0.0, 0.1, 0.3, 0.4], "bridge_used": [0.0, 0.5, 0.9, 0.95]}
    id_final = {"bridge_found": 1.0, "bridge_probe": 0.2, "bridge_used": 0.9}
    rows = [(100 * i, "test_inferred_ood", metric, v - 0.2 * seed * (metric == "exact_match"), regime, seed)
            for regime, seeds in (("second_hop_full", (0, 1)), ("natural", (0,)))
            for seed in seeds for metric, vs in values.items() for i, v in enumerate(vs)]
    rows += [(100 * i, "test_inferred_iid", metric, v if i == 3 else 0.0, regime, seed)
             for regime, seeds in (("second_hop_full", (0, 1)), ("natural", (0,)))
             for seed in seeds for metric, v in id_final.items() for i in range(4)]
    return pd.DataFrame(rows, columns=["step", "split", "metric", "value", "regime", "seed"])


def test_readout_levels_keep_each_readout_beside_its_chance_level():
    levels = claims.readout_levels(readout_curves(), ["second_hop_full", "both_hop_full"])
    assert len(levels) == 6 and set(levels.regime) == {"second_hop_full"}  # no curves of both hop full
    probe = levels[(levels.seed == 1) & (levels.readout == "bridge_probe")].iloc[0]
    assert (probe.chance, probe.final, probe.at_best, probe.id_final) == (0.0, 0.4, 0.4, 0.2)
    assert claims.chance_levels(levels, "bridge_found") == {"second_hop_full": pytest.approx(0.4)}
    table = claims.readout_table(levels).set_index("readout")
    assert table.loc["the paper's lens rule", "untrained (chance)"] == "0.40"
    assert table.loc["activation patching", "final"] == "0.95" and table.regime.iloc[0] == "second hop full"
    assert table.loc["the linear probe", claims.ID_CONTROL] == "0.20"
    assert claims.readout_text(levels, "second_hop_full") == ("the paper's lens rule 0.45 (untrained 0.40), the "
                                                               "linear probe 0.40 (untrained 0.00) and activation "
                                                               "patching 0.95 (untrained 0.00)")
    assert claims.readout_text(levels, "natural") == "not measured (no committed curves)"
    assert claims.readout_levels(pd.DataFrame(), ["natural"]).empty


def test_fake_grokking_is_checked_with_each_readout():
    table = claims.fake_by_readout(readout_curves(), "second_hop_full")
    assert len(table) == 6
    held = table.set_index(["seed", "readout"]).holds
    assert held[(0, "bridge_probe")] and not held[(1, "bridge_probe")]  # seed 1 never answers 0.8
    assert not held[(0, "bridge_found")] and not held[(0, "bridge_used")]
    probe = table[(table.seed == 0) & (table.readout == "bridge_probe")].iloc[0]
    assert (probe.chance, probe.fake_evaluations, probe.best_ood_step) == (0.0, 2, 300)
    assert probe.id_final == 0.2
    assert claims.fake_by_readout_text(table) == (
        "holds in 0 of 2 seeds by the paper's lens rule (which finds 1.00 of the ID bridges), in 1 of 2 seeds by the "
        "linear probe (which finds 0.20 of the ID bridges) and in 0 of 2 seeds by activation patching (which finds "
        "0.90 of the ID bridges)")
    none = claims.fake_by_readout(readout_curves(), "both_hop_full")
    assert none.empty and claims.fake_by_readout_text(none) == "is not measured (no committed run)"


def test_open_runs_keeps_what_opens_and_names_the_rest():
    def opener(regime: str):
        if regime == "both_hop_full":
            raise FileNotFoundError("the pretraining run of both_hop_full is missing")
        return f"run of {regime}"

    runs, note = claims.open_runs(opener, ["natural", "both_hop_full"])
    assert runs == {"natural": "run of natural"} and note == "the pretraining run of both_hop_full is missing"
    assert claims.open_runs(opener, ["natural"])[1] == ""


class StubRun:
    """What the evidence functions read of a `Run`: its snapshot steps, metrics, and models."""

    def __init__(self, stored=(), last=400, model=None, id="r"):
        self.stored, self.last, self.model, self.id = list(stored), last, model, id
        self.loaded = []

    def snapshot_steps(self):
        return self.stored

    def metrics(self):
        return pd.DataFrame({"step": range(0, self.last + 1, 100), "split": "train", "metric": "accuracy",
                             "value": 0.5})

    def load_model(self, step=None):
        self.loaded.append(step)
        return self.model


def test_evenly_spreads_at_most_the_asked_steps_from_first_to_last():
    steps = list(range(0, 1001, 100))
    assert claims.evenly(steps, most=3) == [0, 500, 1000]
    assert claims.evenly(steps, most=20) == steps
    assert claims.evenly(steps, most=1) == [0]
    assert claims.evenly([], most=3) == []


def test_before_grokking_picks_a_snapshot_between_the_fit_and_the_answers():
    row = pd.Series({"T_fit": 1000.0, "T_ood": 5000.0})
    assert claims.before_grokking([0, 1000, 2500, 4000, 6000], row)[0] == 1000
    assert claims.before_grokking([0, 2500, 4000, 6000], row)[0] == 2500
    step, how = claims.before_grokking([0, 100, 5000, 6000], row)  # never at or after T_ood
    assert step == 5000 and "middle snapshot" in how
    assert claims.before_grokking([0, 100, 2000], pd.Series({"T_fit": 1000.0, "T_ood": np.nan}))[0] == 2000
    assert claims.before_grokking([0, 100, 200], pd.Series({"T_fit": np.nan, "T_ood": 150.0}))[0] == 100
    assert claims.before_grokking([0, 100, 200], None)[0] == 100
    assert claims.before_grokking([], row)[0] is None


def lens(hits: list[list[int]]) -> LensResult:
    """A lens result of 2 stages x 2 positions from per-query (stage, position) hits."""
    rank = np.full((2, len(hits), 2), 5)
    for n, cells in enumerate(hits):
        for s, t in cells:
            rank[s, n, t] = 0
    return LensResult(["s0", "s1"], np.zeros_like(rank), rank, np.full_like(rank, 5))


def test_path_distances_compare_each_pair_on_each_query_set():
    res = {("a", "OOD"): lens([[(1, 0)], [(1, 0)]]), ("b", "OOD"): lens([[(1, 0)], [(1, 1)]]),
           ("c", "OOD"): lens([[], []]), ("a", "ID"): lens([[(0, 0)]]), ("b", "ID"): lens([[(0, 0)]])}
    got = claims.path_distances(res, [("a", "b"), ("a", "c"), ("a", "missing")])
    assert got[["queries", "model A", "model B"]].values.tolist() == [["OOD", "a", "b"], ["OOD", "a", "c"],
                                                                      ["ID", "a", "b"]]
    assert got["TV distance"].tolist()[0] == pytest.approx(0.5) and np.isnan(got["TV distance"].iloc[1])
    assert got.same_found.tolist() == [1.0, 0.0, 1.0]
    assert claims.distance_text(got, "OOD") == "a to b 0.50; a to c undefined (a map without any bridge)"
    assert claims.distance_text(got, "ID") == "a to b 0.00"
    assert claims.distance_text(got.iloc[:0], "OOD") == claims.NO_WEIGHTS


def test_patching_and_correct_answers_of_named_models(monkeypatch):
    ci = gc.preset("ci")
    ds = gc.make_dataset(ci.data)
    torch.manual_seed(0)
    model = gc.build_model(ci.model, ds.vocab_size).eval()
    qs = gc.test_queries(ci)
    profiles = claims.patch_profiles({"m": model}, qs, ds.graph.tail_of)
    assert set(profiles.queries) == {"OOD", "ID"} and set(profiles.model) == {"m"}
    assert list(profiles.stage.unique()) == gc.stage_names(ci.model)[:-1]
    top = profiles[profiles.queries == "OOD"]
    assert claims.patch_text(profiles, "OOD") == \
        f"m {top.followed.max():.2f} (unpatched accuracy {top.clean.iloc[0]:.2f})"
    assert claims.patch_profiles({}, qs, ds.graph.tail_of).empty and claims.patch_text(profiles.iloc[:0], "ID") == \
        claims.NO_WEIGHTS
    table = claims.when_correct({"m": model, "n": model}, qs["OOD"], ds.graph.tail_of)
    assert list(table.index) == ["m", "n"] and {"correct", "used_when_correct", "used_when_wrong"} <= set(table)
    fixed = pd.DataFrame({"correct": [0.5, 0.0, 1.0], "used_when_correct": [1.0, np.nan, 0.75],
                          "used_when_wrong": [0.25, 0.1, np.nan]}, index=["m", "n", "o"])
    assert claims.when_correct_text(fixed) == ("m answers 0.50 of them exactly, with the bridge used in 1.00 of its "
                                               "correct answers (0.25 of the others); n answers 0.00 of them exactly, "
                                               "with the bridge used in 0.10 of its wrong answers; o answers 1.00 of "
                                               "them exactly, with the bridge used in 0.75 of its correct answers")
    assert claims.when_correct_text(table.iloc[:0]) == claims.NO_WEIGHTS
    run = StubRun(model=model, last=400)
    along = claims.when_correct_along({"natural": run}, {"natural": [0, 400, None]}, qs["OOD"], ds.graph.tail_of)
    assert run.loaded == [0, 400] and sorted(along.step.unique()) == [0, 400]  # the final weights are step 400
    assert set(along.metric) <= {"correct", "used_when_correct"} and (along.regime == "natural").all()


def test_summarize_runs_judges_each_live_run():
    metrics = readout_curves().assign(run_id=lambda f: f.regime + f.seed.astype(str))
    metrics = pd.concat([metrics, metrics[metrics.metric == "exact_match"].assign(split="train", metric="accuracy")])
    runs = {("second_hop_full", 0): StubRun(id="second_hop_full0"), ("natural", 0): StubRun(id="natural0")}
    got = claims.summarize_runs(metrics, runs, "bridge_probe").set_index("regime")
    assert got.loc["second_hop_full", "holds_fake_grokking"] and got.loc["natural", "finding"] == "1"
    assert got.loc["second_hop_full", "bridge_metric"] == "bridge_probe" and (got.seed == 0).all()
    assert claims.summarize_runs(metrics, {}, "bridge_probe").empty
