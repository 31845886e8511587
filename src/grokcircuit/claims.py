"""Claim checks over a committed summary (`grokcircuit.reproduce.load_summary`): seeds, spreads, readings,
claim tables and the sentences the chapters glue.

A summary holds one row per (finding, regime, seed), finding "3" rows being finetuning runs whose `regime` is
the base. Everything here works with whatever rows it holds; the criteria themselves live in `findings`.
"""
from __future__ import annotations

import json

import pandas as pd

from .findings import BRIDGE, COMPOSES, OOD_HALF, curve


MILESTONES = ("T_fit", "T_bridge", "T_ood")
CRITERIA = {  # what each holds_<criterion> of `summarize_pretrain` / `summarize_finetune` tests
    "grokking_order": "T_fit < T_bridge < T_ood",
    "grokking_delay": "T_ood ≥ 3 T_fit",
    "no_wait": "OOD exact match ≥ 0.9 by step 1.5 T_fit",
    "bridge_at_end": f"final OOD bridge found ≥ {BRIDGE}",
    "fake_grokking": "an evaluation with OOD exact match ≥ 0.8 and OOD bridge found ≤ 0.5",
    "new_facts_learned": "final new-fact accuracy ≥ 0.99",
    "new_old_composes": "final new+old exact match ≥ 0.9",
    "old_new_fails_with_bridge": f"final old+new exact match ≤ 0.1 and its bridge found ≥ {BRIDGE}",
    "fake_base_fails": "final new+old exact match ≤ 0.5",
}
QUANTITIES = {  # criterion -> the numbers it is decided on: (label, summary column, column of gc.paper's table)
    "grokking_order": [("T_fit", "T_fit", "T_fit"), ("T_bridge", "T_bridge", "T_bridge"), ("T_ood", "T_ood", "T_ood")],
    "grokking_delay": [("T_ood / T_fit", "ood_over_fit", "ood_over_fit")],
    "no_wait": [("T_ood / T_fit", "ood_over_fit", "ood_over_fit")],
    "bridge_at_end": [("final OOD bridge found", "final_ood_bridge_found", "final_bridge")],
    "fake_grokking": [("final OOD exact match", "final_ood_exact_match", "final_ood"),
                      ("final OOD bridge found", "final_ood_bridge_found", "final_bridge")],
    "new_facts_learned": [("final new-fact accuracy", "final_new_atomic", "new_atomic")],
    "new_old_composes": [("final new+old exact match", "final_new_old_exact_match", "new_old_em")],
    "old_new_fails_with_bridge": [("final old+new exact match", "final_old_new_exact_match", "old_new_em"),
                                  ("final old+new bridge found", "final_old_new_bridge_found", "old_new_bridge")],
    "fake_base_fails": [("final new+old exact match", "final_new_old_exact_match", "new_old_em")],
}


def name_of(regime: str) -> str:
    """A regime or base as prose: "second_hop_full" -> "second hop full"."""
    return regime.replace("_", " ")


def rows_of(summary: pd.DataFrame, regime: str, finetune: bool = False) -> pd.DataFrame:
    """The summary rows of one pretraining regime (or, with `finetune`, of the finetuning runs from one base)."""
    if summary.empty:
        return summary
    return summary[(summary.regime == regime) & ((summary.finding == "3") == finetune)]


def _seeds(n: int) -> str:
    return f"{n} seed{'s' * (n != 1)}"


def seeds_text(summary: pd.DataFrame, regimes: list[str], finetune: bool = False) -> str:
    """Which seeds each regime has, e.g. "natural: 1 seed (0); both hop full: no run yet"."""
    parts = []
    for regime in regimes:
        seeds = sorted(int(s) for s in rows_of(summary, regime, finetune).seed)
        parts.append(f"{name_of(regime)}: " + (f"{_seeds(len(seeds))} ({', '.join(map(str, seeds))})"
                                                if seeds else "no run yet"))
    return "; ".join(parts)


def missing_note(summary: pd.DataFrame, regimes: list[str], finetune: bool = False, preset: str = "cpu") -> str:
    """One sentence naming the regimes without any committed run and how to produce them; "" when none is missing."""
    missing = [name_of(r) for r in regimes if rows_of(summary, r, finetune).empty]
    if not missing:
        return ""
    kind = "finetuning run from" if finetune else "pretraining run of"
    names = ", ".join(missing[:-1]) + " or " * (len(missing) > 1) + missing[-1]
    return (f"The committed `{preset}` results hold no {kind} {names} yet: `grokcircuit reproduce "
            f"--preset {preset} --seeds 0 1 2` trains {'them' if len(missing) > 1 else 'it'} and writes "
            f"`results/{preset}/`.")


def spread(values: pd.Series, steps: bool = False) -> str:
    """Median [min-max] over seeds of the reached (non-missing) values, with how many seeds reached them when
    not all did; "not reached" when none did, "no run" when there are no seeds. `steps` formats integers with
    thousands separators."""
    values = pd.to_numeric(pd.Series(values), errors="coerce")
    hit = values.dropna()
    if values.empty:
        return "no run"
    if hit.empty:
        return "not reached"
    fmt = (lambda v: f"{v:,.0f}") if steps else (lambda v: f"{v:.2f}")  # noqa: E731
    text = fmt(hit.median()) + (f" [{fmt(hit.min())}–{fmt(hit.max())}]" if len(hit) > 1 else "")
    return text if len(hit) == len(values) else f"{text} in {len(hit)} of {_seeds(len(values))}"


def median_milestones(summary: pd.DataFrame, regimes: list[str]) -> dict[str, dict[str, int | None]]:
    """For each of `regimes` with pretraining rows: each milestone's median step over the seeds that reach it
    (None when none does)."""
    out = {}
    for regime in regimes:
        rows = rows_of(summary, regime)
        if len(rows):
            out[regime] = {key: int(hit.median()) if len(hit := pd.to_numeric(rows[key], errors="coerce").dropna())
                           else None for key in MILESTONES}
    return out


def _true(value) -> bool:
    """A holds_ value read back from a CSV (True, numpy True or "True") as a bool."""
    return str(value) == "True"


def _holds(rows: pd.DataFrame, criterion: str) -> pd.Series:
    """The non-missing values of holds_<criterion> as booleans."""
    column = f"holds_{criterion}"
    if column not in rows:
        return pd.Series(dtype=bool)
    return rows[column].dropna().map(_true).astype(bool)


def spread_of(summary: pd.DataFrame, regime: str, column: str, finetune: bool = False, steps: bool = False) -> str:
    """`spread` of one summary column over the seeds of `regime` ("no run" when it has none)."""
    rows = rows_of(summary, regime, finetune)
    return spread(rows[column] if column in rows else pd.Series(dtype=float), steps)




def holds_text(summary: pd.DataFrame, criterion: str, regimes: str | list[str], finetune: bool = False) -> str:
    """Over the seeds of one regime (or several): e.g. "holds in 0 of 2 seeds", or "is not measured (no committed
    run)"."""
    regimes = [regimes] if isinstance(regimes, str) else regimes
    held = pd.concat([_holds(rows_of(summary, r, finetune), criterion) for r in regimes])
    if held.empty:
        return "is not measured (no committed run)"
    return f"holds in {int(held.sum())} of {_seeds(len(held))}"


def _with_ratio(frame: pd.DataFrame) -> pd.DataFrame:
    if {"T_fit", "T_ood"} <= set(frame.columns):
        frame = frame.assign(ood_over_fit=pd.to_numeric(frame.T_ood, errors="coerce")
                             / pd.to_numeric(frame.T_fit, errors="coerce"))
    return frame


def claim_table(summary: pd.DataFrame, finetune: bool = False, regimes: list[str] | None = None) -> pd.DataFrame:
    """One row per (regime, criterion) measured in `summary`: what the criterion tests, the numbers it rests on in
    the paper (`grokcircuit.paper`) and ours (median [min-max] over seeds), and in how many seeds it holds.

    Pretraining criteria by default; `finetune` gives those of finding 3, per base. `regimes` restricts and orders.
    """
    from .paper import FIGURE2, FIGURE4

    paper = _with_ratio(FIGURE4.set_index("base") if finetune else FIGURE2.set_index("regime"))
    present = list(dict.fromkeys(summary.regime)) if not summary.empty else []
    rows = []
    for regime in regimes or present:
        mine = _with_ratio(rows_of(summary, regime, finetune))
        for criterion, tests in CRITERIA.items():
            held = _holds(mine, criterion)
            if held.empty:
                continue
            quantities = QUANTITIES[criterion]
            steps = [label.startswith("T_") and "/" not in label for label, _, _ in quantities]
            theirs = [("not reached" if pd.isna(paper.loc[regime, col]) else spread(pd.Series([paper.loc[regime, col]]), s))
                      if regime in paper.index else "not in the paper" for (_, _, col), s in zip(quantities, steps)]
            ours = [spread(mine[col], s) for (_, col, _), s in zip(quantities, steps)]
            rows.append({"regime": name_of(regime), "criterion": criterion, "tests": tests,
                         "quantity": "; ".join(label for label, _, _ in quantities),
                         "paper": "; ".join(theirs), "ours": "; ".join(ours),
                         "holds": f"{int(held.sum())} of {_seeds(len(held))}"})
    return pd.DataFrame(rows, columns=["regime", "criterion", "tests", "quantity", "paper", "ours", "holds"])


def reading(row: pd.Series) -> str:
    """How one pretraining run behaved on the OOD queries, from its summary row: fake grokking (when measured),
    no OOD generalization, or generalization through (or before) the bridge."""
    if _true(row.get("holds_fake_grokking")):
        return "reached OOD exact match 0.8 while finding the bridge in at most half of the OOD queries (fake grokking)"
    if pd.isna(row.T_ood):
        return f"did not reach OOD exact match {OOD_HALF} within {int(row.steps):,} steps"
    if pd.notna(row.T_bridge) and row.T_bridge <= row.T_ood:
        return f"reached OOD exact match {OOD_HALF} at or after finding the bridge (T_bridge ≤ T_ood)"
    return f"reached OOD exact match {OOD_HALF} before the bridge was found in {BRIDGE} of the OOD queries"


def readings_text(summary: pd.DataFrame, regime: str) -> str:
    """The `reading` of each seed of `regime`, grouped: e.g. "in 2 of 2 seeds, reached ... (T_bridge ≤ T_ood)"."""
    rows = rows_of(summary, regime)
    if rows.empty:
        return "has no committed run"
    counts = rows.apply(reading, axis=1).value_counts(sort=False)
    return "; ".join(f"in {k} of {_seeds(len(rows))}, {text}" for text, k in counts.items())


def run_text(summary: pd.DataFrame, regime: str) -> str:
    """The milestones of `regime` over its seeds and their `readings_text`, e.g. "T_fit 8,500, T_bridge not
    reached, T_ood not reached; in 1 of 1 seed, did not reach ..."; "no committed run yet" without rows."""
    if rows_of(summary, regime).empty:
        return "no committed run yet"
    steps = ", ".join(f"{key} {spread_of(summary, regime, key, steps=True)}" for key in MILESTONES)
    return f"{steps}; {readings_text(summary, regime)}"


def milestone_table(summary: pd.DataFrame, regimes: list[str]) -> pd.DataFrame:
    """Per pretraining regime of `regimes` with rows, and milestone: seeds, seeds that reached it, and the median,
    min and max step over those (NaN when none did), with the same as text (`spread`)."""
    rows = []
    for regime in regimes:
        mine = rows_of(summary, regime)
        for key in MILESTONES if len(mine) else ():
            steps = pd.to_numeric(mine[key], errors="coerce")
            rows.append({"regime": regime, "milestone": key, "seeds": len(steps), "reached": int(steps.notna().sum()),
                         "median": steps.median(), "min": steps.min(), "max": steps.max(),
                         "steps": spread(steps, steps=True)})
    return pd.DataFrame(rows, columns=["regime", "milestone", "seeds", "reached", "median", "min", "max", "steps"])


def wait_text(summary: pd.DataFrame, flops_per_step: float) -> str:
    """The grokking wait: how much later natural reaches T_ood than both hop full (medians over the seeds that
    reach it), in steps and FLOPs, or why it cannot be measured."""
    t_ood = {r: m["T_ood"] for r, m in median_milestones(summary, ["natural", "both_hop_full"]).items()}
    why = [f"{name_of(r)} has no committed run" if r not in t_ood else f"{name_of(r)} did not reach T_ood"
           for r in ("natural", "both_hop_full") if t_ood.get(r) is None]
    if why:
        return "the wait cannot be measured: " + " and ".join(why)
    wait = t_ood["natural"] - t_ood["both_hop_full"]
    return f"the wait is {wait:,} extra steps ({wait * flops_per_step:.2g} FLOPs)"


def fake_grokking_table(metrics: pd.DataFrame, bridge: str, regimes: list[str]) -> pd.DataFrame:
    """`fake_grokking_check` per (regime, seed) of tidy pretraining curves (`reproduce.load_metrics`), for those of
    `regimes` present, with a column `holds`: some evaluation met the criterion."""
    columns = ["regime", "seed", "evaluations", "fake_evaluations", "best_ood_step", "best_ood_exact_match",
               "bridge_at_best_ood", "holds"]
    if metrics.empty:
        return pd.DataFrame(columns=columns)
    rows = [{"regime": regime, "seed": int(seed), **fake_grokking_check(runs, bridge)}
            for regime in regimes for seed, runs in metrics[metrics.regime == regime].groupby("seed")]
    return pd.DataFrame(rows, columns=columns[:-1]).assign(holds=lambda f: f.fake_evaluations > 0)[columns]


def fake_grokking_check(metrics: pd.DataFrame, bridge: str = "bridge_found") -> dict:
    """The fake-grokking criterion on one run's curves: evaluations with OOD exact match >= 0.8 and bridge found
    <= 0.5, and the run's best OOD evaluation (its exact match and bridge found there)."""
    both = pd.concat([curve(metrics, "test_inferred_ood", "exact_match"), curve(metrics, "test_inferred_ood", bridge)],
                     axis=1, keys=["ood", "bridge"]).dropna()
    best = both.ood.idxmax() if len(both) else None
    return {"evaluations": len(both), "fake_evaluations": int(((both.ood >= 0.8) & (both.bridge <= 0.5)).sum()),
            "best_ood_step": None if best is None else int(best),
            "best_ood_exact_match": float("nan") if best is None else float(both.ood.loc[best]),
            "bridge_at_best_ood": float("nan") if best is None else float(both.bridge.loc[best])}


def bridge_of(summary: pd.DataFrame, default: str = "bridge_found") -> str:
    """The bridge metric the summary's runs were judged with (its `bridge_metric` column); `default` when empty."""
    used = summary["bridge_metric"].dropna().unique() if "bridge_metric" in summary else []
    if len(used) > 1:
        raise ValueError(f"bridge_of: the summary mixes bridge metrics {sorted(used)}")
    return str(used[0]) if len(used) else default


SHARING = {  # regime -> (search candidate with parameter sharing, the same depth without it)
    "natural": ("e60-looped2x2", "e60-standard4"),
    "both_hop_full": ("e60-looped2x2-both-full", "e60-standard4-both-full"),
}
SHARING_COLUMNS = {"T_fit": "T_fit", "final_train_accuracy": "training accuracy",
                   "final_iid_exact_match": "ID exact match", "max_ood_exact_match": "best OOD exact match",
                   "final_ood_bridge_found": "OOD bridge found", "ood_patch_followed": "OOD patch-follow",
                   "iid_patch_followed": "ID patch-follow"}


def sharing_table(search: pd.DataFrame, pairs: dict[str, tuple[str, str]] = SHARING) -> pd.DataFrame:
    """Parameter sharing against none (the paper's Figure 1 argument) from the search table: per regime, the
    looped model beside the standard transformer of the same depth, at the end of equally long runs.
    Candidates not yet in the search table are left out."""
    rows = []
    for regime, names in pairs.items():
        for model, name in zip(("shared (looped)", "none (standard)"), names):
            hit = search[search.name == name] if len(search) else search
            if len(hit):
                row = hit.iloc[0]
                rows.append({"regime": name_of(regime), "parameter sharing": model, "candidate": name,
                             "steps": int(row.steps),
                             **{label: row.get(col) for col, label in SHARING_COLUMNS.items()}})
    return pd.DataFrame(rows, columns=["regime", "parameter sharing", "candidate", "steps",
                                       *SHARING_COLUMNS.values()])


def sharing_text(table: pd.DataFrame) -> str:
    """One clause per regime of `sharing_table`: best OOD exact match and OOD bridge found with sharing and
    without, or what is missing."""
    parts = []
    for regime, rows in table.groupby("regime", sort=False):
        by = rows.set_index("parameter sharing")
        if len(by) < 2:
            parts.append(f"{regime}: only the {by.index[0].split(' ')[0]} model has been trained")
            continue
        s, n = by.loc["shared (looped)"], by.loc["none (standard)"]
        parts.append(f"{regime}: best OOD exact match {s['best OOD exact match']:.2f} with sharing against "
                     f"{n['best OOD exact match']:.2f} without, OOD bridge found {s['OOD bridge found']:.2f} "
                     f"against {n['OOD bridge found']:.2f}, ID exact match {s['ID exact match']:.2f} against "
                     f"{n['ID exact match']:.2f}")
    return "; ".join(parts) if parts else "no run of either model is in the search table yet"


FILTER = {"plain": ("e60-looped2x2", "e60-looped2x2-80k"),
          "filtered": ("e60-looped2x2-grokfast", "e60-looped2x2-grokfast-60k"), "strong": "e60-looped2x2-grokfast-l5"}


def filter_text(search: pd.DataFrame, names: dict = FILTER) -> str:
    """What the Grokfast filter changed in the natural regime, from the search table's candidates."""
    by = search.set_index("name") if len(search) else pd.DataFrame()
    if any(n not in by.index for n in (*names["plain"], *names["filtered"], names["strong"])):
        return "the search table lacks the runs that compare the filter with plain AdamW"
    (p_short, p_long), (f_short, f_long) = ([by.loc[n] for n in names[k]] for k in ("plain", "filtered"))
    strong = by.loc[names["strong"]]
    crossed = (f"first reaching {OOD_HALF} at step {int(f_long.T_ood):,}" if pd.notna(f_long.T_ood)
               else f"never reaching {OOD_HALF}")
    return (f"without the filter, the natural run's best OOD exact match was {p_short.max_ood_exact_match:.2f} "
            f"after {int(p_short.steps):,} steps and {p_long.max_ood_exact_match:.2f} after {int(p_long.steps):,}; "
            f"with it, {f_short.max_ood_exact_match:.2f} after {int(f_short.steps):,} steps and "
            f"{f_long.max_ood_exact_match:.2f} after {int(f_long.steps):,} ({crossed}, final "
            f"{f_long.final_ood_exact_match:.2f}); a filter of strength 5 instead of 2 ended at training accuracy "
            f"{strong.final_train_accuracy:.2f} and best OOD exact match {strong.max_ood_exact_match:.2f}")


def train_minutes_text(summary: pd.DataFrame) -> str:
    """Training time per run of a committed summary, by kind of run: "natural pretraining: 28 min [27-30] ..."."""
    if summary.empty or "train_seconds" not in summary:
        return "no committed runs"
    kind = pd.Series(["finetuning" if f == "3" else "natural pretraining" if r == "natural" else "other pretraining"
                      for f, r in zip(summary.finding, summary.regime)], index=summary.index)
    parts = []
    for name in ("natural pretraining", "other pretraining", "finetuning"):
        minutes = summary.train_seconds[kind == name] / 60
        if len(minutes):
            parts.append(f"{name} {minutes.median():.0f} min [{minutes.min():.0f}–{minutes.max():.0f}] "
                         f"over {len(minutes)} run{'s' * (len(minutes) != 1)}")
    return "; ".join(parts)


FINETUNE_SEARCH_COLUMNS = {"final_new_atomic": "new facts", "final_new_old_exact_match": "new+old exact match",
                           "final_new_old_bridge_found": "new+old bridge found",
                           "final_old_new_exact_match": "old+new exact match", "final_id_atomic": "old ID facts"}


def finetune_search_table(search: pd.DataFrame) -> pd.DataFrame:
    """The finetuning variants of `scripts/search_finetune.py`: what each changes and its final rates."""
    if search.empty:
        return pd.DataFrame(columns=["variant", "base", "change", *FINETUNE_SEARCH_COLUMNS.values()])
    table = search[["name", "base", "why", *FINETUNE_SEARCH_COLUMNS]].rename(
        columns={"name": "variant", "why": "change", **FINETUNE_SEARCH_COLUMNS})
    table["minutes"] = (search["train_seconds"] / 60).round(1)
    return table.round(2).set_index("variant")


def _changes_base(overrides: str) -> bool:
    """Whether a finetuning variant's overrides (JSON) change its base run, not only the finetuning."""
    return any(not key.startswith("finetune.") for key in json.loads(overrides))


def finetune_search_text(search: pd.DataFrame, threshold: float = COMPOSES) -> str:
    """Finetuning variants of the preset's natural base (the best new+old composition against the criterion,
    and the worst forgetting), then the variants whose base is another run or regime."""
    if search.empty:
        return "no finetuning variants are committed"
    other = search.overrides.map(_changes_base) | (search.base != "natural")
    own = search[~other]
    best = own.loc[own.final_new_old_exact_match.idxmax()]
    worst = own.loc[own.final_id_atomic.idxmin()]
    text = (f"from the preset's natural base every variant learns the new facts (at least "
            f"{own.final_new_atomic.min():.2f}), the best new+old exact match is "
            f"{best.final_new_old_exact_match:.2f} ({best['name']}) against the criterion's {threshold}, and the "
            f"retained old ID facts fall as low as {worst.final_id_atomic:.2f} ({worst['name']})")
    if other.any():
        text += "; from other bases, " + ", ".join(
            f"{r.name} new+old {r.final_new_old_exact_match:.2f} and old+new {r.final_old_new_exact_match:.2f}"
            for r in search[other].itertuples())
    return text


def patch_follow_text(search: pd.DataFrame, regime: str) -> str:
    """The OOD patch-follow rates of the search candidates of one regime: "0.74 (name), 0.73 (name)"."""
    rows = search[search.regime == regime].dropna(subset=["ood_patch_followed"]) if len(search) else search
    if not len(rows):
        return "not measured"
    return ", ".join(f"{r.ood_patch_followed:.2f} ({r.name})" for r in rows.itertuples())


RECURRENCE = {"two": ("e60-looped2x2-grokfast-60k",),  # natural runs with the filter, by passes through the blocks
              "three": ("e60-looped2x3-grokfast-60k", "e60-looped2x3-grokfast-60k-s1", "e60-looped2x3-grokfast-60k-s2")}


def _milestone(value: float) -> str:
    return "never" if pd.isna(value) else f"{int(value):,}"


def _verb(value) -> str:
    return "holds" if _true(value) else "fails"


def recurrence_text(search: pd.DataFrame, names: dict[str, tuple[str, ...]] = RECURRENCE) -> str:
    """The natural runs with two and with three passes through the blocks, from the search table."""
    by = search.set_index("name") if len(search) else pd.DataFrame()
    parts = []
    for passes, runs in names.items():
        rows = [(n, by.loc[n]) for n in runs if n in by.index]
        if rows:
            parts.append(f"with {passes} passes, " + "; ".join(
                f"{n} reached a best OOD exact match of {r.max_ood_exact_match:.2f} (final "
                f"{r.final_ood_exact_match:.2f}; T_fit {_milestone(r.T_fit)}, T_bridge {_milestone(r.T_bridge)}, "
                f"T_ood {_milestone(r.T_ood)}; OOD patch-follow {r.ood_patch_followed:.2f}; the order criterion "
                f"{_verb(r.holds_grokking_order)}, the delay criterion {_verb(r.holds_grokking_delay)})"
                for n, r in rows))
    return "; ".join(parts) or "the search table lacks the natural runs that compare the number of passes"


TRM_COLUMNS = {"regime": "regime", "steps": "steps", "T_fit": "T_fit", "T_ood": "T_ood",
               "max_ood_exact_match": "best OOD exact match", "final_ood_exact_match": "final OOD exact match",
               "init_ood_bridge": "OOD bridge found at step 0", "max_ood_bridge": "most OOD bridge found",
               "max_iid_bridge": "most ID bridge found", "ood_patch_followed": "OOD patch-follow",
               "holds_fake_grokking": "holds_fake_grokking"}


def trm_table(search: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """The search candidates that train the paper's TRM, with the bridge-found rate (the paper's any-stage,
    any-position rule) of the untrained model, and its largest value, OOD and ID, over the evaluations from the
    fit on (from the first evaluation on where the run never fitted), read from their curves."""
    if not len(search):
        return pd.DataFrame(columns=["candidate", *TRM_COLUMNS.values()])
    trm = search[[json.loads(c)["model"]["arch"] == "trm" for c in search.config]]
    rows = []
    for r in trm.itertuples():
        mine = curves[curves.name == r.name]
        ood, iid = (curve(mine, split, "bridge_found") for split in ("test_inferred_ood", "test_inferred_iid"))
        start = r.T_fit if pd.notna(r.T_fit) else 1
        row = {**r._asdict(), "regime": name_of(r.regime), "init_ood_bridge": ood.iloc[0],
               "max_ood_bridge": ood[ood.index >= start].max(), "max_iid_bridge": iid[iid.index >= start].max()}
        rows.append({"candidate": r.name, **{label: row.get(col) for col, label in TRM_COLUMNS.items()}})
    return pd.DataFrame(rows, columns=["candidate", *TRM_COLUMNS.values()])


def trm_text(table: pd.DataFrame) -> str:
    """One clause per TRM candidate of `trm_table`: fit, OOD exact match and the largest bridge-found rates."""
    if not len(table):
        return "no TRM run is in the search table yet"
    return "; ".join(
        f"{r['candidate']} ({r['regime']}, {int(r['steps']):,} steps) fitted its training set at step "
        f"{_milestone(r['T_fit'])} and reached a best OOD exact match of {r['best OOD exact match']:.2f} (final "
        f"{r['final OOD exact match']:.2f}), while from the fit on the bridge was found in at most "
        f"{r['most OOD bridge found']:.2f} of OOD and {r['most ID bridge found']:.2f} of ID test queries "
        f"({r['OOD bridge found at step 0']:.2f} of OOD queries before training)"
        for _, r in table.iterrows())
