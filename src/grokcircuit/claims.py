"""Claim checks over a committed summary (`grokcircuit.reproduce.load_summary`): seeds, spreads, readings,
claim tables and the sentences the chapters glue.

A summary holds one row per (finding, regime, seed), finding "3" rows being finetuning runs whose `regime` is
the base. Everything here works with whatever rows it holds; the criteria themselves live in `findings`.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from . import findings, paper
from .config import optimizer_text, preset, run_length
from .data import vocab_size
from .findings import BRIDGE, CRITERIA, FAKE_BRIDGE, FAKE_OOD, FIT, OOD_HALF, fake_evaluations
from .model import build_model, count_params

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
            parts.append(f"{name} {minutes.median():.0f} min [{minutes.min():.0f}–{minutes.max():.0f}] "
                         f"over {len(minutes)} run{'s' * (len(minutes) != 1)}")
    return "; ".join(parts)


def verdict(rows: pd.DataFrame, criteria: Sequence[str] | None = None) -> str:
    """A claim's verdict over summary `rows` (its regime's or bases' seeds): "holds" when each of `criteria`
    (default: every holds_<name> column measured in all rows) holds in every row, "does not hold" otherwise, and
    "is not measured" without any measured criterion."""
    columns = [f"holds_{c}" for c in criteria] if criteria is not None else \
        [c for c in rows.columns if c.startswith("holds_") and rows[c].notna().all()]
    held = [_holds(rows, c.removeprefix("holds_")) for c in columns]
    if not rows.size or not held or not all(len(h) for h in held):
        return "is not measured"
    return "holds" if all(h.all() for h in held) else "does not hold"


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
                                                                 "FAKE_BRIDGE", "CHANCE_MARGIN", "DELAY")}}


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
