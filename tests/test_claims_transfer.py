"""Chapters 4 and 5 on the committed runs: Finding 3 and the trade-off per seed (`grokcircuit.claims`), and the
shape of the two chapters (verdict first, live training last, the glue names other pages read)."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from grokcircuit import claims, paper, plots

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = {"04": REPO / "notebooks" / "04_limited_transfer.ipynb",
            "05": REPO / "notebooks" / "05_is_grokking_worthwhile.ipynb"}
CIRCUIT = ("natural", "both_hop_full", "first_hop_full")


def finetune_row(base: str, seed: int, new_old: float, old_new: float = 0.0, bridge: float = 1.0, **holds) -> dict:
    return {"finding": "3", "regime": base, "seed": seed, "bridge_metric": "bridge_found_intermediate",
            "final_new_atomic": 1.0, "final_new_old_exact_match": new_old, "final_old_new_exact_match": old_new,
            "final_old_new_bridge_found": bridge, "final_new_new_exact_match": 0.0, "final_new_old_bridge_found": 1.0,
            "final_new_new_bridge_found": 1.0, **{f"holds_{k}": v for k, v in holds.items()}}


def transfer_summary() -> pd.DataFrame:
    """Seed 0: Finding 3 holds; seed 1: first hop full does not compose new+old; seed 2: no first-hop-full run, so
    its fake-base comparison is not decided (the rest holds). Read back through a CSV, as committed."""
    rows = []
    for seed in (0, 1, 2):
        for base in CIRCUIT:
            if seed == 2 and base == "first_hop_full":
                continue
            composes = not (seed == 1 and base == "first_hop_full")
            rows.append(finetune_row(base, seed, 0.95 if composes else 0.5, new_old_composes=composes,
                                     old_new_fails_with_bridge=True))
        rows.append(finetune_row("second_hop_full", seed, 0.3, fake_base_fails=True if seed < 2 else None))
        rows.append(finetune_row("control", seed, 0.04, bridge=0.2))
    return pd.DataFrame(rows)


def committed(frame: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    path = tmp_path / "summary.csv"
    frame.to_csv(path, index=False)
    return pd.read_csv(path, dtype={"finding": str})


def test_finding_3_is_decided_per_seed_over_every_base_of_each_part(tmp_path):
    table = claims.claim_by_seed(committed(transfer_summary(), tmp_path))
    assert list(table.index) == [0, 1, 2]
    assert table.loc[0].tolist() == [True, True, True, True]
    assert table.loc[1, "new_old_composes"] is False and table.loc[1, "holds"] is False
    assert table.loc[2, "new_old_composes"] is None  # first hop full has no run in seed 2
    assert table.loc[2, "fake_base_fails"] is None and table.loc[2, "holds"] is None
    assert claims.seeds_held_text(table.holds) == \
        "holds in 1 of 3 committed seeds (1 of them without every run it needs)"
    assert claims.seeds_held_text(table.holds, kind="live").startswith("holds in 1 of 3 live seeds")
    assert claims.seeds_held_text(table.holds.iloc[:0]) == "is not measured (no committed run yet)"


def test_the_why_names_each_failing_part_and_how_often():
    table = claims.claim_by_seed(transfer_summary())
    why = claims.failing_text(table, claims.transfer_sentences())
    assert why == ("“circuit bases compose new+old at once (final new+old exact match ≥ 0.9)” fails in 1 of 3 "
                   "seeds")
    held = table.loc[[0]]
    assert claims.failing_text(held, claims.transfer_sentences()) == "no part of it fails in any committed seed"
    assert claims.failing_text(table.loc[[0, 2]], claims.transfer_sentences()).endswith("that decides it")
    assert claims.failing_text(table.iloc[:0], claims.transfer_sentences()) == "no committed run decides it yet"


def test_transfer_numbers_pool_the_circuit_bases_beside_the_papers_figure_4():
    numbers = claims.transfer_numbers(transfer_summary())
    assert numbers["ours_circuit_new_old"] == "0.95 [0.50–0.95]"
    assert numbers["ours_fake_new_old"] == "0.30"  # min and max read the same
    assert numbers["paper_circuit_new_old"] == "1.00" and numbers["paper_fake_new_old"] == "0.33"
    assert numbers["paper_circuit_old_new"] == "0.00"
    assert claims.transfer_numbers(pd.DataFrame())["ours_circuit_new_old"] == "no run"


def control_curves(values: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """Step-0 evaluations of the control (one value per seed) and a later one that must not count."""
    rows = [{"base": "control", "seed": seed, "step": step, "split": split, "metric": metric, "value": v + step}
            for (split, metric), per_seed in values.items() for seed, v in enumerate(per_seed) for step in (0, 250)]
    return pd.DataFrame(rows)


def test_transfer_table_sets_each_rate_beside_the_paper_and_its_chance_level():
    curves = control_curves({("new_old", "bridge_found_intermediate"): [0.05, 0.07],
                             ("new_old", "exact_match"): [0.0, 0.02]})
    table = claims.transfer_table(transfer_summary(), curves).set_index(["base", "category"])
    row = table.loc[("natural", "new_old")]
    assert row["exact match, ours"] == pytest.approx(0.95)
    assert row["exact match, paper"] == 1.0 and row["bridge, paper"] == 1.0
    assert row["bridge, chance"] == pytest.approx(0.06)  # the untrained model: step 0 only, mean over seeds
    assert row["exact match, chance"] == pytest.approx(0.01)
    assert np.isnan(table.loc[("natural", "old_new"), "bridge, chance"])  # not in the curves
    assert list(table.index.get_level_values(0).unique()) == ["natural", "both_hop_full", "first_hop_full",
                                                              "second_hop_full", "control"]
    chance = transfer_summary().assign(final_new_old_bridge_found_chance=0.5)
    assert claims.transfer_table(chance, curves).set_index(["base", "category"]).loc[
        ("natural", "new_old"), "bridge, chance"] == 0.5


def test_transfer_bars_put_figure_4_beside_every_committed_seed():
    bars = claims.transfer_bars(transfer_summary())
    counts = bars.groupby("metric").size()
    assert counts["exact match: paper"] == len(paper.FIGURE4) * 3
    assert counts["exact match: ours"] == len(transfer_summary()) * 3
    theirs = bars[(bars.metric == "exact match: paper") & (bars.base == "second_hop_full")].set_index("category")
    assert theirs.value["new_old"] == 0.33
    fig = plots.plot_transfer_summary(bars, metrics=claims.TRANSFER_PANELS)
    assert [ax.get_title() for ax in fig.axes[:4]] == list(claims.TRANSFER_PANELS)
    assert set(claims.transfer_bars(pd.DataFrame()).metric) == {"exact match: paper", "bridge: paper"}


def pretrain_row(regime: str, seed: int, t_fit: float, t_ood: float) -> dict:
    return {"finding": "1", "regime": regime, "seed": seed, "T_fit": t_fit, "T_bridge": np.nan, "T_ood": t_ood,
            "steps": 60000}


def worth_summary() -> pd.DataFrame:
    """Seed 0: the wait is 35,000 steps and buys 0.05 (holds); seed 1: natural never answers, the wait buys 0.2
    (fails); seed 2: both hop full never answers (fails); seed 3: no finetuning run (undecided)."""
    rows = [pretrain_row("natural", 0, 8000, 40000), pretrain_row("both_hop_full", 0, 7000, 5000),
            pretrain_row("natural", 1, 8000, np.nan), pretrain_row("both_hop_full", 1, 7000, 6000),
            pretrain_row("natural", 2, 8000, 30000), pretrain_row("both_hop_full", 2, 7000, np.nan),
            pretrain_row("natural", 3, 8000, 30000), pretrain_row("both_hop_full", 3, 7000, 5000),
            finetune_row("natural", 0, 0.35), finetune_row("both_hop_full", 0, 0.30),
            finetune_row("natural", 1, 0.50), finetune_row("both_hop_full", 1, 0.30),
            finetune_row("natural", 2, 0.30), finetune_row("both_hop_full", 2, 0.30)]
    return pd.DataFrame(rows)


def test_the_wait_and_what_it_buys_are_decided_per_seed(tmp_path):
    table = claims.wait_by_seed(committed(worth_summary(), tmp_path), per_step=2.0)
    assert table.loc[0, "wait (steps)"] == 35000 and table.loc[0, "wait (FLOPs)"] == 70000
    assert table.loc[0, "gain"] == pytest.approx(0.05)
    assert table.loc[0, ["no_wait_needed", "buys_nothing", "holds"]].tolist() == [True, True, True]
    assert np.isnan(table.loc[1, "wait (steps)"]) and table.loc[1, "no_wait_needed"] is True  # natural never
    assert table.loc[1, "buys_nothing"] is False and table.loc[1, "holds"] is False
    assert table.loc[2, "no_wait_needed"] is False and table.loc[2, "holds"] is False
    assert table.loc[3, "buys_nothing"] is None and table.loc[3, "holds"] is None
    assert claims.seeds_held_text(table.holds) == \
        "holds in 1 of 4 committed seeds (1 of them without every run it needs)"
    why = claims.failing_text(table, claims.WORTH_PARTS)
    assert "“both hop full reaches OOD exact match 0.5 before natural does” fails in 1 of 4 seeds" in why
    assert "above both hop full's” fails in 1 of 4 seeds" in why
    assert claims.wait_by_seed(pd.DataFrame(columns=["finding", "regime", "seed"]), 1.0).empty


def test_milestone_costs_put_the_papers_figure_2_beside_the_median_of_ours():
    cost = claims.milestone_costs(worth_summary(), ["natural", "both_hop_full", "both_hop_half"], per_step=2.0,
                                  paper_per_step=10.0, ours="ours").set_index(["source", "regime", "milestone"])
    assert cost.loc[("paper", "natural", "T_ood"), "flops"] == 396_000 * 10.0
    assert ("paper", "both_hop_half", "T_ood") not in cost.index  # no clean run in the paper's Figure 2
    assert cost.loc[("ours", "natural", "T_ood"), "steps"] == 30000  # median over the 3 seeds that reach it
    assert cost.loc[("ours", "both_hop_full", "T_fit"), "flops"] == 14000
    assert np.isnan(cost.loc[("ours", "natural", "T_bridge"), "flops"])  # never reached
    fig = plots.plot_milestone_costs(cost.reset_index())
    assert [ax.get_title() for ax in fig.axes] == ["paper", "ours"]


def test_look_text_reads_the_patching_rates_of_each_category():
    look = pd.DataFrame({"n": [1000.0, 200.0], "correct": [0.42, 0.0], "used_when_correct": [0.38, np.nan],
                         "used_when_wrong": [0.35, 0.82]}, index=["new_old", "old_new"])
    text = claims.look_text(look)
    assert text.startswith("new+old: 0.42 of 1,000 queries answered exactly; the answer follows a bridge patched")
    assert "old+new: 0.00 of 200 queries answered exactly" in text and "in none of the correct answers" in text
    assert claims.look_text(pd.DataFrame()) == claims.NO_WEIGHTS


# ---------------------------------------------------------------- the chapters' shape

def cells(chapter: str) -> list:
    return nbformat.read(CHAPTERS[chapter], as_version=4).cells


def glued(source: str) -> list[str]:
    """The glue names a source sets, an f-string name as a regex."""
    names = re.findall(r'glue\(\s*(f?)"([^"]+)"', source)
    return [re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(n)) if f else re.escape(n) for f, n in names]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_chapter_opens_with_its_committed_verdict_and_ends_with_the_live_runs(chapter):
    text = [c.source for c in cells(chapter)]
    first = text[0]
    verdict = first[first.index(":::{admonition}"):]
    verdict = verdict[:verdict.index("\n:::")]
    assert ":class: verdict" in verdict and "committed" in verdict and "preset ci" not in verdict
    assert "{ref}`" in verdict and "paper" in verdict
    figure = re.search(r"```\{glue:figure\}.*?\n:name: (\S+)\n(.*?)```", first, re.S)
    assert figure and figure.group(1).endswith("-verdict") and "committed" in figure.group(2)
    live = [i for i, t in enumerate(text) if t.startswith("## Train it yourself")]
    assert len(live) == 1 and not any(t.startswith("## ") for t in text[live[0] + 1:])  # the closing section
    for source in text[live[0]:]:
        assert all(n.startswith("live_") for n in re.findall(r'glue\(\s*f?"([^"]+)"', source)), source
        assert "verdict_" not in source.replace("live_verdict", "")
    params = next(c for c in cells(chapter) if "parameters" in c.metadata.get("tags", []))
    assert 'results_preset: str = "cpu"' in params.source and "evidence_seed: int = 0" in params.source


def test_the_glue_names_other_pages_read_are_still_set():
    sources = {ch: "\n".join(c.source for c in cells(ch) if c.cell_type == "code") for ch in CHAPTERS}
    dynamic = set(claims.glue_values())  # glued in a loop by both chapters
    for page in (REPO / "book").glob("*.md"):
        for notebook, name in re.findall(r"\.\./notebooks/(0[45])_\w+\.ipynb::(\w+)", page.read_text()):
            source = sources[notebook]
            assert any(re.fullmatch(p, name) for p in glued(source)) or (
                name in dynamic and "glue_values()" in source), f"{page.name}: {notebook} no longer glues {name}"


def test_the_paper_query_counts_cover_figure_4s_bases_and_categories():
    counts = paper.FIGURE4_QUERIES
    assert list(counts.index) == list(paper.FIGURE4.base)
    assert list(counts.columns) == list(claims.CATEGORIES) and (counts > 0).all().all()
