"""Claim checks over a committed summary (`grokcircuit.reproduce.load_summary`): seeds, spreads, readings,
claim tables and the sentences the chapters glue.

A summary holds one row per (finding, regime, seed), finding "3" rows being finetuning runs whose `regime` is
the base. Everything here works with whatever rows it holds; the criteria themselves live in `findings`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pandas as pd
import torch

from . import findings, paper
from .config import optimizer_text, preset, run_length
from .data import vocab_size
from .findings import BRIDGE, CRITERIA, FAKE_BRIDGE, FAKE_OOD, FIT, OOD_HALF, WORTH_MARGIN, fake_evaluations
from .lens import LensResult, Queries
from .model import build_model, count_params
from .paths import R1_SLOT, agreement, bridge_rate_when_correct, patch_profile, path_map, total_variation
from .runs import Run

MILESTONES = ("T_fit", "T_bridge", "T_ood")
MILESTONE_RULES = {"T_fit": ("training accuracy", FIT), "T_bridge": ("the OOD bridge readout", BRIDGE),
                   "T_ood": ("OOD exact match", OOD_HALF)}


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
    """Median [min-max] over seeds of the reached (non-missing) values (the median alone when min and max read
    the same), with how many seeds reached them when not all did; "not reached" when none did, "no run" when there
    are no seeds. `steps` formats integers with thousands separators."""
    values = pd.to_numeric(pd.Series(values), errors="coerce")
    hit = values.dropna()
    if values.empty:
        return "no run"
    if hit.empty:
        return "not reached"
    fmt = (lambda v: f"{v:,.0f}") if steps else (lambda v: f"{v:.2f}")  # noqa: E731
    low, high = fmt(hit.min()), fmt(hit.max())
    text = fmt(hit.median()) + (f" [{low}–{high}]" if low != high else "")
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


def as_bool(value) -> bool:
    """A holds_ value read back from a CSV (True, numpy True or "True") as a bool."""
    return str(value) == "True"


def _holds(rows: pd.DataFrame, criterion: str, prefix: str = "holds_") -> pd.Series:
    """The non-missing values of holds_<criterion> (or another `prefix`) as booleans."""
    column = f"{prefix}{criterion}"
    if column not in rows:
        return pd.Series(dtype=bool)
    return rows[column].dropna().map(as_bool).astype(bool)


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
    """One row per (regime, criterion of `findings.CRITERIA`) measured in `summary`: what the criterion tests, the
    numbers it rests on in the paper (`grokcircuit.paper`) and ours (median [min-max] over seeds), in how many
    seeds it holds, and, for a criterion that reads the bridge, in how many it holds with the paper's lens rule.

    Pretraining criteria by default; `finetune` gives those of finding 3, per base. `regimes` restricts and orders.
    """
    present = list(dict.fromkeys(summary.regime)) if not summary.empty else []
    rows = []
    for regime in regimes or present:
        mine = _with_ratio(rows_of(summary, regime, finetune))
        for c in CRITERIA.values():
            held = _holds(mine, c.name)
            if held.empty:
                continue
            steps = [label.startswith("T_") and "/" not in label for label, _, _ in c.quantities]
            paper = c.paper_value(regime) or [None] * len(c.quantities)
            theirs = ["not in the paper" if value is None or col is None else spread(pd.Series([value]), s)
                      for (_, _, col), value, s in zip(c.quantities, paper, steps)]
            ours = [spread(mine[col] if col in mine else pd.Series(dtype=float), s)
                    for (_, col, _), s in zip(c.quantities, steps)]
            lens = _holds(mine, c.name, "lens_")
            rows.append({"regime": name_of(regime), "criterion": c.name, "tests": c.text,
                         "quantity": "; ".join(label for label, _, _ in c.quantities),
                         "paper": "; ".join(theirs), "ours": "; ".join(ours),
                         "holds": f"{int(held.sum())} of {_seeds(len(held))}",
                         "holds with the lens rule": f"{int(lens.sum())} of {_seeds(len(lens))}" if len(lens) else ""})
    return pd.DataFrame(rows, columns=["regime", "criterion", "tests", "quantity", "paper", "ours", "holds",
                                       "holds with the lens rule"])


def reading(row: pd.Series) -> str:
    """How one pretraining run behaved on the OOD queries, from its summary row: fake grokking (when measured),
    no OOD generalization, or generalization through (or before) the bridge."""
    if as_bool(row.get("holds_fake_grokking")):
        return (f"reached OOD exact match {FAKE_OOD} while finding the bridge in at most {FAKE_BRIDGE} of the OOD "
                "queries (fake grokking)")
    if pd.isna(row.T_ood):
        return f"did not reach OOD exact match {OOD_HALF} within {int(row.steps):,} steps"
    if pd.notna(row.T_bridge) and row.T_bridge <= row.T_ood:
        return f"reached OOD exact match {OOD_HALF} at or after finding the bridge (T_bridge ≤ T_ood)"
    if pd.isna(row.T_bridge):
        return f"reached OOD exact match {OOD_HALF} without the bridge ever found in {BRIDGE} of the OOD queries"
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
    """The fake-grokking criterion on one run's curves (`findings.fake_evaluations`): how many evaluations meet
    it, and the run's best OOD evaluation (its exact match and bridge found there)."""
    both = fake_evaluations(metrics, bridge)
    best = both.ood.idxmax() if len(both) else None
    return {"evaluations": len(both), "fake_evaluations": int(both.fake.sum()),
            "best_ood_step": None if best is None else int(best),
            "best_ood_exact_match": float("nan") if best is None else float(both.ood.loc[best]),
            "bridge_at_best_ood": float("nan") if best is None else float(both.bridge.loc[best])}


def bridge_of(summary: pd.DataFrame, default: str = "bridge_found") -> str:
    """The bridge metric the summary's runs were judged with (its `bridge_metric` column); `default` when empty."""
    used = summary["bridge_metric"].dropna().unique() if "bridge_metric" in summary else []
    if len(used) > 1:
        raise ValueError(f"bridge_of: the summary mixes bridge metrics {sorted(used)}")
    return str(used[0]) if len(used) else default


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
            low, high = f"{minutes.min():.0f}", f"{minutes.max():.0f}"
            parts.append(f"{name} {minutes.median():.0f} min{f' [{low}–{high}]' if low != high else ''} "
                         f"over {len(minutes)} run{'s' * (len(minutes) != 1)}")
    return "; ".join(parts)


def chapter_times_text(table: pd.DataFrame) -> str:
    """The wall time of each chapter from `benchmarks/chapters.py`'s table, with its runs in the store and on a
    first run that trains them: "02_identical_paths 40 s (75 s on a first run); ..."."""
    if table.empty:
        return "not measured"

    def one(r) -> str:
        first, again = r.first_run_s, r.runs_in_store_s
        if pd.isna(again):
            return f"{r.chapter} {first:.0f} s as a first run" if pd.notna(first) else f"{r.chapter} not measured"
        if pd.isna(first):
            return f"{r.chapter} {again:.0f} s"
        return f"{r.chapter} {again:.0f} s ({first:.0f} s on a first run)"

    return "; ".join(one(r) for r in table.itertuples())


def milestone_text(summary: pd.DataFrame, regime: str, key: str) -> str:
    """When the pretraining runs of `regime` reach milestone `key`, as a clause that reads whatever the outcome:
    "OOD exact match reaches 0.5 at step 1,200 [1,000–1,500]" (median [min–max] over the seeds that reach it, "in 2
    of 3 seeds" when not all do), "OOD exact match never reaches 0.5 in 400 steps", or "... is not measured"."""
    what, threshold = MILESTONE_RULES[key]
    rows = rows_of(summary, regime)
    if rows.empty:
        return f"{what} is not measured (no run)"
    steps = pd.to_numeric(rows[key], errors="coerce")
    if steps.isna().all():
        return f"{what} never reaches {threshold:g} in {int(rows.steps.max()):,} steps"
    return f"{what} reaches {threshold:g} at step {spread(steps, steps=True)}"


def glue_values() -> dict[str, str | float]:
    """What the chapters state of the criteria, by the names they glue it under: each criterion's sentence
    (rule_<name>) and the milestone and fake-grokking thresholds."""
    return {**{f"rule_{c.name}": c.text for c in CRITERIA.values()},
            **{name: float(getattr(findings, name)) for name in ("FIT", "BRIDGE", "OOD_HALF", "FAKE_OOD",
                                                                 "FAKE_BRIDGE", "CHANCE_MARGIN", "DELAY", "ANSWERS")}}


def differences(name: str, seeds: Sequence[int], **overrides) -> tuple[pd.DataFrame, dict[str, str | int]]:
    """How preset `name` (with `overrides`) differs from the paper's setting: a table (one column each) and the
    values a chapter glues (ours_<row>, paper_<row>, preset, seed_list, ours_optimizer, paper_optimizer)."""
    ours, paper = preset(name, **overrides), preset("paper")

    def n_params(c) -> str:
        with torch.device("meta"):  # shapes only: the paper's 44.6M-parameter model is never allocated
            return f"{count_params(build_model(c.model, vocab_size(c.data.entities, c.data.relations))):,}"

    table = pd.DataFrame({n: {"entities": c.data.entities, "relations": c.data.relations,
                              "facts per entity": c.data.out_degree, "phi": c.data.phi, "architecture": c.model.arch,
                              "width": c.model.d_model, "parameters": n_params(c),
                              "run length": run_length(n, **(overrides if n == name else {}))}
                          for n, c in (("paper", paper), (name, ours))})
    table.loc["seeds"] = ["one run per regime", ", ".join(map(str, seeds))]
    values = {f"{who}_{key.replace(' ', '_')}": table.loc[key, col]
              for key in ("entities", "architecture", "parameters", "run length")
              for who, col in (("ours", name), ("paper", "paper"))}
    return table, {**values, "preset": name, "seed_list": ", ".join(map(str, seeds)),
                   "ours_optimizer": optimizer_text(ours), "paper_optimizer": optimizer_text(paper)}


OURS_CURVES = {"train_accuracy": ("train", "accuracy"), "ood_answer": ("test_inferred_ood", "target_found")}


def paper_vs_ours(metrics: pd.DataFrame, summary: pd.DataFrame, regimes: Sequence[str], bridge: str
                  ) -> pd.DataFrame:
    """The paper's Figure 2 curves (`paper.FIGURE2_CURVES`) and ours for `plots.plot_paper_vs_ours`, each regime's
    steps divided by its T_fit (the paper's; ours: the median over the seeds that fit). Ours: training accuracy,
    the OOD bridge through `bridge` (our readout; the paper's is its lens rule) and OOD target found (the paper's
    red curve, an upper bound on exact match). A regime none of whose seeds fits has no curve of ours."""
    parts = []
    for regime in regimes:
        theirs = paper.FIGURE2_CURVES[paper.FIGURE2_CURVES.regime == regime]
        t_fit = paper.FIGURE2.set_index("regime").T_fit.get(regime)
        if len(theirs) and pd.notna(t_fit):
            parts.append(theirs.assign(source="paper", x=theirs.step / t_fit, label=theirs.quantity.map(
                lambda q: f"{q.replace('_', ' ').replace('bridge found', 'bridge')} (paper)")))
        ours_fit = median_milestones(summary, [regime]).get(regime, {}).get("T_fit")
        if ours_fit is None:
            continue
        wanted = {**OURS_CURVES, "bridge_found": ("test_inferred_ood", bridge)}
        for quantity, (split, metric) in wanted.items():
            rows = metrics[(metrics.regime == regime) & (metrics.split == split) & (metrics.metric == metric)]
            parts.append(rows.assign(source="ours", quantity=quantity, x=rows.step / ours_fit,
                                     label=f"{quantity.replace('_', ' ').replace('bridge found', 'bridge')} "
                                           f"(ours{', ' + bridge.replace('_', ' ') if quantity == 'bridge_found' else ''})"))
    columns = ["regime", "source", "quantity", "x", "value", "seed", "label"]
    return pd.concat(parts, ignore_index=True).reindex(columns=columns) if parts else pd.DataFrame(columns=columns)


# --- chapters 4-5: committed evidence

CATEGORIES = ("new_old", "old_new", "new_new")  # the zero-shot two-hop categories after finetuning
BASE_ORDER = ("natural", "both_hop_full", "first_hop_full", "second_hop_full", "control", "both_hop_half")  # Fig. 4
TRANSFER_PARTS = {"new_old_composes": findings.CIRCUIT_BASES, "old_new_fails_with_bridge": findings.CIRCUIT_BASES,
                  "fake_base_fails": findings.FAKE_BASES}  # Finding 3, criterion by criterion, and the bases it reads
TRANSFER_PANELS = ("exact match: paper", "exact match: ours", "bridge: paper", "bridge: ours")
WORTH_PARTS = {  # the paper's trade-off (§6), part by part, as `wait_by_seed` decides it per seed
    "no_wait_needed": f"both hop full reaches OOD exact match {OOD_HALF} before natural does",
    "buys_nothing": f"the natural base's new+old exact match after finetuning is at most {WORTH_MARGIN} above both "
                    "hop full's",
}


def committed_seeds(summary: pd.DataFrame, finetune: bool | None = None) -> list[int]:
    """The seeds with a committed run: pretraining runs, finetuning runs with `finetune`, either with None."""
    if summary.empty:
        return []
    rows = summary if finetune is None else summary[(summary.finding == "3") == finetune]
    return sorted({int(s) for s in rows.seed})


def _one(value) -> bool | None:
    return None if pd.isna(value) else bool(value)


def _all_hold(values: Sequence) -> bool | None:
    """False when one value is False, True when all are True, None otherwise (one is not decided)."""
    values = [_one(v) for v in values]
    if False in values:
        return False
    return True if values and None not in values else None


def _held(rows: pd.DataFrame, criterion: str) -> bool | None:
    held = _holds(rows, criterion)
    return bool(held.iloc[0]) if len(held) else None


def claim_by_seed(summary: pd.DataFrame, parts: dict[str, Sequence[str]] = TRANSFER_PARTS) -> pd.DataFrame:
    """A finetuning claim per committed seed (index): for each criterion of `parts` (criterion -> the bases it is
    decided on) whether it holds for that seed's run from every one of its bases (None while one has no judged run),
    and `holds`: every part holds (False as soon as one fails)."""
    rows = []
    for seed in committed_seeds(summary, finetune=True):
        mine = summary[summary.seed == seed]
        part = {c: _all_hold([_held(rows_of(mine, b, finetune=True), c) for b in bases]) for c, bases in parts.items()}
        rows.append({"seed": seed, **part, "holds": _all_hold(list(part.values()))})
    return pd.DataFrame(rows, columns=["seed", *parts, "holds"], dtype=object).set_index("seed")


def seeds_held_text(held: pd.Series, kind: str = "committed") -> str:
    """A claim's verdict per seed (`holds` of `claim_by_seed` or `wait_by_seed`) in words: "holds in 1 of 3
    committed seeds" (`kind` names the runs), with how many lack a run it needs, or "is not measured (no committed
    run yet)"."""
    if held.empty:
        return f"is not measured (no {kind} run yet)"
    n, m = sum(v is True for v in map(_one, held)), len(held)
    unknown = sum(_one(v) is None for v in held)
    return (f"holds in {n} of {m} {kind} seed{'s' * (m != 1)}"
            + (f" ({unknown} of them without every run it needs)" if unknown else ""))


def failing_text(table: pd.DataFrame, sentences: dict[str, str], kind: str = "committed") -> str:
    """Which parts of a claim fail, in how many seeds of `table` (`claim_by_seed`, `wait_by_seed`; one column per
    part, named as in `sentences`), e.g. "“circuit bases compose new+old at once” fails in 3 of 3 seeds"; else that
    no part fails (where decided). `kind` names the runs."""
    m = len(table)
    if not m:
        return f"no {kind} run decides it yet"
    fails = {s: sum(_one(v) is False for v in table[c]) for c, s in sentences.items()}
    named = [f"“{s}” fails in {k} of {m} seed{'s' * (m != 1)}" for s, k in fails.items() if k]
    if named:
        return "; ".join(named)
    decided = all(_one(v) is not None for c in sentences for v in table[c])
    return f"no part of it fails in any {kind} seed" + ("" if decided else " that decides it")


def transfer_sentences() -> dict[str, str]:
    """Finding 3's parts (`TRANSFER_PARTS`) in words: the paper's claim and, in brackets, its test."""
    return {c: f"{CRITERIA[c].claim} ({CRITERIA[c].text})" for c in TRANSFER_PARTS}


def transfer_numbers(summary: pd.DataFrame) -> dict[str, str]:
    """Finding 3's numbers as text, ours (median [min–max] over the committed finetuning runs from the circuit bases,
    or from the fake-grokked base) beside the paper's (Figure 4, the same over those bases): new+old and old+new
    exact match and the old+new bridge of the circuit bases, new+old exact match of the fake base. Keys ours_<name>
    and paper_<name>."""
    fig4 = paper.FIGURE4.set_index("base")
    circuit, fake = list(findings.CIRCUIT_BASES), list(findings.FAKE_BASES)
    quantities = {"circuit_new_old": (circuit, "final_new_old_exact_match", "new_old_em"),
                  "circuit_old_new": (circuit, "final_old_new_exact_match", "old_new_em"),
                  "circuit_old_new_bridge": (circuit, "final_old_new_bridge_found", "old_new_bridge"),
                  "fake_new_old": (fake, "final_new_old_exact_match", "new_old_em")}
    out = {}
    for name, (bases, ours, theirs) in quantities.items():
        rows = pd.concat([rows_of(summary, b, finetune=True) for b in bases]) if len(summary) else summary
        out[f"ours_{name}"] = spread(rows[ours] if ours in rows else pd.Series(dtype=float))
        out[f"paper_{name}"] = spread(fig4.loc[bases, theirs])
    return out


def _bases(summary: pd.DataFrame) -> list[str]:
    """The finetuned bases of `summary`, in the order of the paper's Figure 4."""
    present = set(summary.regime[summary.finding == "3"]) if len(summary) else set()
    return [b for b in BASE_ORDER if b in present] + sorted(present - set(BASE_ORDER))


def transfer_table(summary: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per finetuned base and two-hop category: the final exact match and bridge readout (the summary's
    `bridge_metric`), the paper's (Figure 4) beside ours (median over the committed seeds), each with its chance
    level: its value in the untrained model, i.e. the step-0 evaluation of the from-scratch control in the committed
    curves `metrics` (`reproduce.load_metrics(..., "finetune")`, mean over its seeds), or the summary column
    final_<category>_<exact_match|bridge_found>_chance where there is one."""
    fig4 = paper.FIGURE4.set_index("base")
    bridge = bridge_of(summary[summary.finding == "3"] if len(summary) else summary)
    untrained = metrics[(metrics.step == 0) & (metrics.base == "control")] if len(metrics) else metrics
    rows = []
    for base in _bases(summary):
        mine = rows_of(summary, base, finetune=True)
        for cat in CATEGORIES:
            row = {"base": base, "category": cat}
            for key, metric, logged, theirs in (("exact match", "exact_match", "exact_match", "em"),
                                                ("bridge", "bridge_found", bridge, "bridge")):
                column = f"final_{cat}_{metric}"
                at_zero = untrained[(untrained.split == cat) & (untrained.metric == logged)] if len(untrained) else []
                row[f"{key}, paper"] = fig4[f"{cat}_{theirs}"].get(base, float("nan"))
                row[f"{key}, ours"] = pd.to_numeric(mine[column], errors="coerce").median()
                row[f"{key}, chance"] = (pd.to_numeric(mine[f"{column}_chance"], errors="coerce").median()
                                         if f"{column}_chance" in mine else
                                         float(at_zero.value.mean()) if len(at_zero) else float("nan"))
            rows.append(row)
    return pd.DataFrame(rows, columns=["base", "category", *(f"{k}, {s}" for k in ("exact match", "bridge")
                                                             for s in ("paper", "ours", "chance"))])


def transfer_bars(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's Figure 4 final values beside ours per base and category, for `plots.plot_transfer_summary(frame,
    metrics=TRANSFER_PANELS)`: columns base, category, value and metric (the panel: exact match or bridge, paper
    or ours); ours one row per committed seed."""
    columns = ["base", "category", "metric", "value"]
    fig4 = paper.FIGURE4.melt(id_vars="base")
    fig4 = fig4[fig4.variable.str.rsplit("_", n=1).str[0].isin(CATEGORIES)]
    theirs = fig4.assign(category=fig4.variable.str.rsplit("_", n=1).str[0], metric=fig4.variable.map(
        lambda v: "exact match: paper" if v.endswith("_em") else "bridge: paper"))
    ours = summary[summary.finding == "3"] if len(summary) else summary.assign(regime=[])
    parts = [theirs[columns]]
    for cat in CATEGORIES:
        for metric, label in (("exact_match", "exact match: ours"), ("bridge_found", "bridge: ours")):
            if f"final_{cat}_{metric}" in ours:
                parts.append(pd.DataFrame({"base": ours.regime, "category": cat, "metric": label,
                                           "value": pd.to_numeric(ours[f"final_{cat}_{metric}"], errors="coerce")}))
    return pd.concat(parts, ignore_index=True)[columns]


def milestone_costs(summary: pd.DataFrame, regimes: Sequence[str], per_step: float, paper_per_step: float,
                    ours: str = "ours (committed)") -> pd.DataFrame:
    """Steps and FLOPs to each milestone per regime, for `plots.plot_milestone_costs`: the paper's (its Figure 2
    milestones times `paper_per_step`) and ours (the median step over the committed seeds that reach it, times
    `per_step`), told apart by the column source ("paper" or `ours`); NaN where no run reached it."""
    fig2 = paper.FIGURE2.set_index("regime")
    theirs = [{"source": "paper", "regime": r, "milestone": k, "steps": float(fig2.loc[r, k])}
              for r in regimes if r in fig2.index for k in MILESTONES]
    mine = milestone_table(summary, list(regimes)).drop(columns="steps").rename(columns={"median": "steps"})
    mine = mine.assign(source=ours)
    frame = pd.concat([pd.DataFrame(theirs, columns=["source", "regime", "milestone", "steps"]),
                       mine[["source", "regime", "milestone", "steps"]]], ignore_index=True)
    return frame.assign(flops=frame.steps * frame.source.map({"paper": paper_per_step, ours: per_step}))


def wait_by_seed(summary: pd.DataFrame, per_step: float, margin: float = WORTH_MARGIN) -> pd.DataFrame:
    """The paper's trade-off per committed seed (index): T_ood of natural and of both hop full, the grokking wait
    (the difference, in steps and FLOPs; NaN unless both reach T_ood), the new+old exact match of the two bases
    after finetuning and the gain the wait buys (natural minus both hop full), and the parts of `WORTH_PARTS`:
    `no_wait_needed` (both hop full reaches T_ood, natural later or never), `buys_nothing` (gain ≤ `margin`) and
    `holds` (both); None where a run it needs is not committed."""
    rows = []
    for seed in committed_seeds(summary):
        mine = summary[summary.seed == seed]
        pre = {r: rows_of(mine, r) for r in ("natural", "both_hop_full")}
        ft = {r: rows_of(mine, r, finetune=True) for r in ("natural", "both_hop_full")}
        t_ood = {r: float(rows.T_ood.iloc[0]) if len(rows) else float("nan") for r, rows in pre.items()}
        new_old = {r: float(rows.final_new_old_exact_match.iloc[0]) if len(rows) else float("nan")
                   for r, rows in ft.items()}
        wait, gain = t_ood["natural"] - t_ood["both_hop_full"], new_old["natural"] - new_old["both_hop_full"]
        early = None if not all(map(len, pre.values())) else bool(  # natural never reaching T_ood counts as later
            pd.notna(t_ood["both_hop_full"]) and not t_ood["natural"] <= t_ood["both_hop_full"])
        rows.append({"seed": seed, "T_ood natural": t_ood["natural"], "T_ood both hop full": t_ood["both_hop_full"],
                     "wait (steps)": wait, "wait (FLOPs)": wait * per_step, "new+old natural": new_old["natural"],
                     "new+old both hop full": new_old["both_hop_full"], "gain": gain, "no_wait_needed": early,
                     "buys_nothing": None if pd.isna(gain) else bool(gain <= margin)})
        rows[-1]["holds"] = _all_hold([rows[-1]["no_wait_needed"], rows[-1]["buys_nothing"]])
    columns = ["seed", "T_ood natural", "T_ood both hop full", "wait (steps)", "wait (FLOPs)", "new+old natural",
               "new+old both hop full", "gain", *WORTH_PARTS, "holds"]
    return pd.DataFrame(rows, columns=columns).astype({c: object for c in (*WORTH_PARTS, "holds")}).set_index("seed")


def look_text(look: pd.DataFrame) -> str:
    """`paths.bridge_rate_when_correct` of one model per query category (the index: new_old, old_new, ...) in
    words, by activation patching: "new+old: 0.31 of 1,000 queries answered exactly; the answer follows a bridge
    patched into the first-hop slots in 0.90 of the correct answers and 0.20 of the others"; NO_WEIGHTS without
    rows."""
    if look.empty:
        return NO_WEIGHTS
    fmt = lambda v: "none" if pd.isna(v) else f"{v:.2f}"  # noqa: E731
    return "; ".join(f"{name_of(cat).replace(' ', '+')}: {fmt(r['correct'])} of {int(r['n']):,} queries answered "
                     "exactly; the answer follows a bridge patched into the first-hop slots in "
                     f"{fmt(r.get('used_when_correct'))} of the correct answers and {fmt(r.get('used_when_wrong'))} "
                     "of the others" for cat, r in look.iterrows())


# --- chapters 2-3: committed evidence

READOUT_NAMES = {"bridge_found": "the paper's lens rule", "bridge_found_intermediate": "the lens rule at intermediate "
                 "stages", "bridge_entity_lens": "the entity lens", "bridge_probe": "the linear probe",
                 "bridge_used": "activation patching"}
THREE_READOUTS = ("bridge_found", "bridge_probe", "bridge_used")  # the chapters' readouts: lens rule, probe, patching
NO_WEIGHTS = "not measured (no committed weights)"


def readout_name(readout: str) -> str:
    """A bridge readout in words: "activation patching" for bridge_used; an unknown metric by its name."""
    return READOUT_NAMES.get(readout, readout.replace("_", " "))


def and_join(parts: Sequence[str]) -> str:
    """The parts as a list in prose: "a", "a and b", "a, b and c"."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def criterion_numbers(summary: pd.DataFrame, criterion: str, regime: str) -> tuple[str, str]:
    """The numbers `criterion` is decided on for `regime`, labelled, as (the paper's, ours): the paper's from
    `Criterion.paper_value` (`grokcircuit.paper`; the quantities it does not quote are left out), ours median
    [min–max] over the seeds of `summary` (`spread`), e.g. ("T_fit 106,000, T_bridge 311,000, T_ood 396,000",
    "T_fit 9,500, T_bridge 12,000, T_ood 58,000")."""
    c = CRITERIA[criterion]
    mine = _with_ratio(rows_of(summary, regime, c.finetune))
    theirs = c.paper_value(regime) or [None] * len(c.quantities)
    paper_parts, our_parts = [], []
    for (label, column, paper_column), value in zip(c.quantities, theirs):
        steps = label.startswith("T_") and "/" not in label
        if paper_column is not None and value is not None:
            paper_parts.append(f"{label} {spread(pd.Series([value]), steps)}")
        our_parts.append(f"{label} {spread(mine[column] if column in mine else pd.Series(dtype=float), steps)}")
    return ", ".join(paper_parts) or "not in the paper", ", ".join(our_parts)


def verdict_values(summary: pd.DataFrame, checks: Sequence[tuple[str, str]], default: str = "bridge_found"
                   ) -> dict[str, str]:
    """What a claim chapter's verdict box states, from a committed summary and the (criterion, regime) pairs the
    claim rests on. Per criterion: claim_<name> (the paper's claim), paper_<name> and ours_<name> (the numbers it is
    decided on, `criterion_numbers`) and holds_<name> (`holds_text`). Over all: holds ("holds in 1 of 2 seeds":
    the seeds in which every check holds, of those in which every check is measured), verdict ("holds" in all of
    them, "does not hold", or "is not measured"), readout (the bridge readout the criteria read, in words; `default`
    when no check has a row) and why (each regime's `readings_text`)."""
    out, per_seed, rows = {}, [], []
    for criterion, regime in checks:
        c = CRITERIA[criterion]
        mine = rows_of(summary, regime, c.finetune)
        out[f"claim_{criterion}"] = c.claim
        out[f"paper_{criterion}"], out[f"ours_{criterion}"] = criterion_numbers(summary, criterion, regime)
        out[f"holds_{criterion}"] = holds_text(summary, criterion, regime)
        per_seed.append(_holds(mine.set_index("seed"), criterion).rename(f"{criterion}/{regime}") if len(mine)
                        else pd.Series(dtype=bool))
        rows.append(mine)
    table = pd.concat(per_seed, axis=1).dropna() if per_seed else pd.DataFrame()
    held = table.astype(bool).all(axis=1) if len(table) else pd.Series(dtype=bool)
    out["holds"] = f"holds in {int(held.sum())} of {_seeds(len(held))}" if len(held) else \
        "is not measured (no committed run)"
    out["verdict"] = "is not measured" if held.empty else "holds" if held.all() else "does not hold"
    out["readout"] = readout_name(bridge_of(pd.concat(rows), default) if rows else default)
    out["why"] = "; ".join(f"{name_of(r)}: {readings_text(summary, r)}" for r in dict.fromkeys(r for _, r in checks))
    return out


def readout_levels(metrics: pd.DataFrame, regimes: Sequence[str], readouts: Sequence[str] = THREE_READOUTS,
                   split: str = "test_inferred_ood") -> pd.DataFrame:
    """Per (regime, seed, readout) of committed pretraining curves (`reproduce.load_metrics`): the readout's value on
    `split` in the untrained model (step 0: its chance level), at the evaluation with the best exact match, and at
    the end (`findings.readout_columns`), and its final value on ID test queries (`id_final`, the positive
    control: training put those bridges in place). Runs and readouts without curves are left out."""
    columns = ["regime", "seed", "readout", "chance", "at_best", "final", "id_final"]
    rows = []
    for regime in regimes if len(metrics) else ():
        for seed, run in metrics[metrics.regime == regime].groupby("seed"):
            values = findings.readout_columns(run, split)
            rows += [{"regime": regime, "seed": int(seed), "readout": r, "chance": values[f"chance_{r}"],
                      "at_best": values[f"{r}_at_best"], "final": values[f"final_{r}"],
                      "id_final": findings.final(run, "test_inferred_iid", r)}
                     for r in readouts if f"final_{r}" in values]
    return pd.DataFrame(rows, columns=columns)


def chance_levels(levels: pd.DataFrame, readout: str) -> dict[str, float]:
    """Per regime of `readout_levels`: the chance level of `readout`, the mean over seeds of its value in the
    untrained model (what `plots.plot_paper_vs_ours` draws as `chance`)."""
    return levels[levels.readout == readout].groupby("regime").chance.mean().to_dict()


ID_CONTROL = "final on ID queries (bridge trained)"  # a readout's positive control


def readout_table(levels: pd.DataFrame) -> pd.DataFrame:
    """`readout_levels` to read: one row per (regime, readout), each value median [min–max] over seeds, the chance
    level (the untrained model) beside the others and the final value on ID queries (the positive control)."""
    columns = ["regime", "readout", "untrained (chance)", "at the best OOD evaluation", "final", ID_CONTROL]
    rows = [{"regime": name_of(regime), "readout": readout_name(readout), "untrained (chance)": spread(g.chance),
             "at the best OOD evaluation": spread(g.at_best), "final": spread(g.final), ID_CONTROL: spread(g.id_final)}
            for (regime, readout), g in levels.groupby(["regime", "readout"], sort=False)]
    return pd.DataFrame(rows, columns=columns)


def readout_text(levels: pd.DataFrame, regime: str, value: str = "final") -> str:
    """How each readout of `levels` reads the bridge in `regime`'s runs (`value`: "final" or "at_best"), beside its
    chance level, median over seeds: "the paper's lens rule 1.00 (untrained 0.06), activation patching 0.97
    (untrained 0.01)"; "not measured (no committed curves)" without rows."""
    rows = levels[levels.regime == regime]
    if rows.empty:
        return "not measured (no committed curves)"
    return and_join([f"{readout_name(r)} {spread(g[value])} (untrained {spread(g.chance)})"
                     for r, g in rows.groupby("readout", sort=False)])


def fake_by_readout(metrics: pd.DataFrame, regime: str = "second_hop_full",
                    readouts: Sequence[str] = THREE_READOUTS) -> pd.DataFrame:
    """Finding 2's criterion (`findings.fake_evaluations`) on each seed of `regime`'s committed curves, with the bridge
    read by each of `readouts`: per (seed, readout) the readout's chance level (step 0), how many evaluations meet
    the criterion, the best OOD evaluation with the readout there (`fake_grokking_check`), `holds`, and the
    readout's final value on ID queries (`id_final`: where training put the bridge, what it finds)."""
    columns = ["seed", "readout", "chance", "evaluations", "fake_evaluations", "best_ood_step", "best_ood_exact_match",
               "bridge_at_best_ood", "holds", "id_final"]
    rows = []
    for seed, run in metrics[metrics.regime == regime].groupby("seed") if len(metrics) else ():
        for readout in readouts:
            values = findings.curve(run, "test_inferred_ood", readout)
            if values.empty:
                continue
            check = fake_grokking_check(run, readout)
            rows.append({"seed": int(seed), "readout": readout, **check, "holds": check["fake_evaluations"] > 0,
                         "chance": float(values.iloc[0]) if values.index[0] == 0 else float("nan"),
                         "id_final": findings.final(run, "test_inferred_iid", readout)})
    return pd.DataFrame(rows, columns=columns)


def fake_by_readout_text(table: pd.DataFrame) -> str:
    """`fake_by_readout` in words, each readout with its positive control: "holds in 0 of 2 seeds by the paper's
    lens rule (which finds 1.00 of the ID bridges) and in 1 of 2 seeds by the linear probe (0.20 of the ID
    bridges)"; "is not measured (no committed run)" without rows."""
    if table.empty:
        return "is not measured (no committed run)"
    parts = [f"in {int(g.holds.sum())} of {_seeds(len(g))} by {readout_name(r)} (which finds "
             f"{spread(g.id_final)} of the ID bridges)" for r, g in table.groupby("readout", sort=False)]
    return "holds " + and_join(parts)


def open_runs(open_run: Callable[[str], Run], regimes: Sequence[str]) -> tuple[dict[str, Run], str]:
    """`open_run(regime)` for each of `regimes` (e.g. `lambda r: experiments.committed_run("cpu", r, 0)`): the runs
    that open, by regime, and a note made of the FileNotFoundError messages of the others ("" when all open)."""
    runs, missing = {}, []
    for regime in regimes:
        try:
            runs[regime] = open_run(regime)
        except FileNotFoundError as exc:
            missing.append(str(exc))
    return runs, "; ".join(missing)


def evenly(steps: Sequence[int], most: int) -> list[int]:
    """At most `most` of `steps`, evenly spread from the first to the last."""
    steps = list(steps)
    if len(steps) <= most:
        return steps
    return [steps[i] for i in sorted({round(k * (len(steps) - 1) / max(most - 1, 1)) for k in range(most)})]


def before_grokking(steps: Sequence[int], row: Mapping | None) -> tuple[int | None, str]:
    """The snapshot that shows a natural run before it grokked, from its snapshot `steps` and its summary `row`
    (T_fit, T_ood; None without one): the first one from T_fit on, the model that fits its training set, when that
    comes before T_ood (or the run never reaches T_ood); else the middle snapshot; None without snapshots. Returns it
    and how it was chosen."""
    steps = sorted(int(s) for s in steps)
    if not steps:
        return None, "missing: the run has no snapshot"
    t_fit, t_ood = (float("nan") if row is None else row.get(key, float("nan")) for key in ("T_fit", "T_ood"))
    fitted = [s for s in steps if pd.notna(t_fit) and s >= t_fit and (pd.isna(t_ood) or s < t_ood)]
    if fitted:
        return fitted[0], "the first snapshot from T_fit on, before T_ood"
    return steps[len(steps) // 2], "the middle snapshot, since none lies between T_fit and T_ood"


def path_distances(lens: Mapping[tuple[str, str], LensResult], pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """For each query set and pair (model A, model B) of named models: the total variation distance between their
    bridge maps (`paths.total_variation` of `paths.path_map`) and their per-query agreement (`paths.agreement`).
    `lens` maps (model, queries) to a lens result; pairs missing from it are left out."""
    columns = ["queries", "model A", "model B", "TV distance", "n", "same_found", "same_first_stage",
               "same_first_cell", "both_found"]
    rows = [{"queries": q, "model A": a, "model B": b,
             "TV distance": total_variation(path_map(lens[(a, q)]), path_map(lens[(b, q)])),
             **agreement(lens[(a, q)], lens[(b, q)])}
            for q in dict.fromkeys(q for _, q in lens) for a, b in pairs if (a, q) in lens and (b, q) in lens]
    return pd.DataFrame(rows, columns=columns)


def distance_text(distances: pd.DataFrame, queries: str) -> str:
    """The TV distances of `path_distances` on one query set in words: "natural (end) to both hop full (end) 0.05;
    ..."; a distance of a map without any bridge reads "undefined"."""
    rows = distances[distances.queries == queries]
    if rows.empty:
        return NO_WEIGHTS
    fmt = lambda v: "undefined (a map without any bridge)" if pd.isna(v) else f"{v:.2f}"  # noqa: E731
    return "; ".join(f"{r['model A']} to {r['model B']} {fmt(r['TV distance'])}" for _, r in rows.iterrows())


def patch_profiles(models: Mapping[str, torch.nn.Module], queries: Mapping[str, Queries], tail_of) -> pd.DataFrame:
    """`paths.patch_profile` at the r1 slot of each named model on each named query set, with `model` and `queries`
    columns: the frame `plots.plot_patch_profiles` draws. `tail_of`: the graph's (E, R) tails."""
    frames = [patch_profile(model, q, tail_of, position=R1_SLOT).assign(model=name, queries=qn)
              for name, model in models.items() for qn, q in queries.items()]
    columns = ["stage", "followed", "kept", "other", "n", "clean", "model", "queries"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def patch_text(profiles: pd.DataFrame, queries: str) -> str:
    """Per model of `patch_profiles`, the largest share of the `queries` whose answer follows the donor's bridge,
    beside its unpatched accuracy: "natural (end) 0.95 (unpatched accuracy 0.97) and ..."."""
    rows = profiles[profiles.queries == queries]
    if rows.empty:
        return NO_WEIGHTS
    return and_join([f"{name} {g.followed.max():.2f} (unpatched accuracy {g.clean.iloc[0]:.2f})"
                     for name, g in rows.groupby("model", sort=False)])


def when_correct(models: Mapping[str, torch.nn.Module], q: Queries, tail_of) -> pd.DataFrame:
    """`paths.bridge_rate_when_correct` of each named model on `q`, one row per model (its name the index)."""
    return pd.DataFrame({name: bridge_rate_when_correct(model, q, tail_of) for name, model in models.items()}).T


def when_correct_text(table: pd.DataFrame) -> str:
    """`when_correct` in words, per model: its exact match and, among its correct answers and the others, the share
    whose bridge patching shows used: "natural (end) answers 0.97 of them exactly, with the bridge used in 0.99 of
    its correct answers (0.10 of the others)"; a group without answers is left out."""
    if table.empty:
        return NO_WEIGHTS
    parts = []
    for name, r in table.iterrows():
        text = f"{name} answers {r.correct:.2f} of them exactly"
        if pd.notna(r.used_when_correct):
            text += f", with the bridge used in {r.used_when_correct:.2f} of its correct answers"
            text += f" ({r.used_when_wrong:.2f} of the others)" if pd.notna(r.used_when_wrong) else ""
        elif pd.notna(r.used_when_wrong):
            text += f", with the bridge used in {r.used_when_wrong:.2f} of its wrong answers"
        parts.append(text)
    return "; ".join(parts)


def when_correct_along(runs: Mapping[str, Run], steps: Mapping[str, Sequence[int]], q: Queries, tail_of
                       ) -> pd.DataFrame:
    """`when_correct` of each named run at each of its `steps` (loadable snapshots, `Run.snapshot_steps`; None: the
    final weights, at the run's last evaluation), tidy for `plots.plot_regime_curves`: regime (the name), step,
    split ("test_inferred_ood"), metric (correct, used_when_correct) and value; a value without any query to count
    (NaN) is left out. A step listed twice (the final weights and a snapshot at the last step) counts once."""
    rows = []
    for name, run in runs.items():
        last = int(pd.to_numeric(run.metrics().step).max())
        load = {}  # step -> what `Run.load_model` takes for it
        for step in steps.get(name, ()):
            load.setdefault(last if step is None else int(step), step)
        rows += [{"regime": name, "step": at, "split": "test_inferred_ood", "metric": metric, "value": value}
                 for at, step in sorted(load.items())
                 for metric, value in bridge_rate_when_correct(run.load_model(step), q, tail_of).items()
                 if metric in ("correct", "used_when_correct")]
    return pd.DataFrame(rows, columns=["regime", "step", "split", "metric", "value"]).dropna(subset=["value"])


def summarize_runs(metrics: pd.DataFrame, runs: Mapping[tuple[str, int], Run], bridge: str) -> pd.DataFrame:
    """A summary like the committed one (`reproduce.load_summary`) of pretraining runs trained live
    (`experiments.pretrain_metrics`: their tidy `metrics` and {(regime, seed): Run}): one row per run with the
    milestones, final values and criteria of `findings.summarize_pretrain`, the bridge read by `bridge`."""
    rows = [{"finding": findings.FINDING_OF[regime], "regime": regime, "seed": seed, "run_id": run.id,
             **findings.summarize_pretrain(metrics[metrics.run_id == run.id], regime, bridge)}
            for (regime, seed), run in runs.items()]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["finding", "regime", "seed", "run_id"])
