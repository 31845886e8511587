"""The paper's three findings as measurable criteria on a run's metrics (paper §8): the registry `CRITERIA`.

Milestones (first evaluation step at which):
- T_fit:    training accuracy (mean EM over id_atomic, ood_atomic, train_inferred) >= FIT;
- T_bridge: the OOD bridge readout >= BRIDGE;
- T_ood:    OOD exact match >= OOD_HALF.

Each `Criterion` is defined once: its name (the summary's `holds_<name>` column), finding, the paper's claim, the
regimes (or finetuning bases) it applies to, its thresholds as the named constants below, its test on a summary
row, the sentence that states it, and the numbers it is decided on (ours and the paper's, `grokcircuit.paper`).
`summarize_pretrain` and `summarize_finetune` measure one run and apply every criterion of its regime;
`judge_seeds` applies those that compare the runs of one seed. The claim tables (`grokcircuit.claims`),
`grokcircuit.reproduce` and the notebooks read the same registry.

The bridge readout. The criteria read the bridge through `bridge_metric(arch, metrics)`: `READOUT[arch]` where the
run logs it (the probe for the TRM, patching for the causal model: readouts that can fail); for runs logged
before them the paper's any-stage, any-position lens rule for the TRM, and for the causal looped model the rule without its first and last stage, because there
the last stage at the r1 slot is the atomic answer (the bridge) for any model that memorised the facts, so the
paper's rule is met by a model trained only on atomic facts (seen in the from-scratch control). Leaving out the
last stage measures whether the bridge is retrieved early enough for the second hop to read it, but a fact
retrieved early still counts without any composition: the control finds new facts' bridges this way too.
Activation patching (`grokcircuit.paths`) is the causal check. Every criterion that reads the bridge is also
decided with the paper's lens rule (`LENS`), reported beside it as `lens_<name>`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import pandas as pd

from .config import REGIMES
from .paper import FIGURE2, FIGURE4

# milestones
FIT, BRIDGE, OOD_HALF = 0.99, 0.9, 0.5
# finding 1
DELAY = 3  # natural grokking: T_ood at least this many times T_fit (the paper's is 3.7)
NO_WAIT_OOD, NO_WAIT_BY = 0.9, 1.5  # both hop full: OOD exact match NO_WAIT_OOD by step NO_WAIT_BY * T_fit
# finding 2
FAKE_OOD, FAKE_BRIDGE = 0.8, 0.5  # an evaluation answering OOD queries while the bridge is read in at most half
CHANCE_MARGIN = 0.1  # ... yet clearly above what the readout finds in the untrained model (step 0)
# finding 3
LEARNED = 0.99  # new-fact accuracy after finetuning
COMPOSES, FAILS = 0.9, 0.1  # new+old exact match of a circuit base, old+new exact match of any base
ANSWERS = 0.5  # a base "answers" a category of finetuned queries when it gets at least this share right
FAKE_BASE_MARGIN = 0.2  # the fake base's new+old exact match lies this far below every circuit base of its seed
WORTH_MARGIN = 0.1  # the paper's trade-off (chapter 5): the wait buys nothing unless the grokked base composes
# new+old this much better after finetuning than the base that never waited
CIRCUIT_BASES = ("natural", "both_hop_full", "first_hop_full")
FAKE_BASES = ("second_hop_full",)

LENS = "bridge_found"  # the paper's lens rule, reported beside the readout
# the readout that can fail, per architecture: in the TRM every state is a composition cell, so the probe; in the
# causal model the bridge sits at the r1 slot, which is the atomic query itself, so only patching can tell use
READOUT = {"trm": "bridge_probe", "looped": "bridge_used"}

BRIDGE_RULES = {
    "bridge_found": "the paper's: the bridge is the top-1 token at any stage and any position",
    "bridge_found_intermediate": ("the bridge is the top-1 token at any position of a stage other than the first and "
                                  "the last. In this causal model the r1 slot of a two-hop query is the atomic query "
                                  "(h, r1), so a memorised fact shows its answer there: always at the last stage, and "
                                  "at intermediate stages when the fact is retrieved early. The rule therefore measures "
                                  "early retrieval, not composition; activation patching is the causal check"),
    "bridge_entity_lens": ("the bridge is the top entity of the logit lens restricted to entity tokens, at the best "
                           "composition cell"),
    "bridge_probe": ("a linear probe fit on the states of training compositions reads the bridge, at the best "
                     "stage"),
    "bridge_used": ("the answer becomes the donor's when the first-hop slots are patched with those of a query "
                    "with another bridge (activation patching)"),
}


def bridge_metric(arch: str, metrics: pd.DataFrame | None = None) -> str:
    """The bridge readout the criteria read for `arch`: `READOUT[arch]` where `metrics` log it, else the lens rule
    the architecture does not meet trivially (see the module docstring)."""
    if metrics is not None and (metrics.metric == READOUT[arch]).any():
        return READOUT[arch]
    return "bridge_found" if arch == "trm" else "bridge_found_intermediate"


def curve(metrics: pd.DataFrame, split: str, metric: str) -> pd.Series:
    """value by step for one (split, metric)."""
    sel = metrics[(metrics.split == split) & (metrics.metric == metric)]
    return sel.set_index("step")["value"].sort_index()


def first_step(metrics: pd.DataFrame, split: str, metric: str, threshold: float) -> int | None:
    """First evaluation step at which the value reaches `threshold`, or None."""
    c = curve(metrics, split, metric)
    hit = c[c >= threshold]
    return int(hit.index[0]) if len(hit) else None


def milestones(metrics: pd.DataFrame, bridge: str = "bridge_found") -> dict[str, int | None]:
    return {"T_fit": first_step(metrics, "train", "accuracy", FIT),
            "T_bridge": first_step(metrics, "test_inferred_ood", bridge, BRIDGE),
            "T_ood": first_step(metrics, "test_inferred_ood", "exact_match", OOD_HALF)}


def final(metrics: pd.DataFrame, split: str, metric: str) -> float:
    c = curve(metrics, split, metric)
    return float(c.iloc[-1]) if len(c) else float("nan")


def fake_evaluations(metrics: pd.DataFrame, bridge: str) -> pd.DataFrame:
    """OOD exact match and bridge readout per evaluation, with `fake`: the evaluation answers at least FAKE_OOD of
    the OOD queries while the readout lies between its untrained value (step 0) plus CHANCE_MARGIN and FAKE_BRIDGE."""
    both = pd.concat([curve(metrics, "test_inferred_ood", "exact_match"), curve(metrics, "test_inferred_ood", bridge)],
                     axis=1, keys=["ood", "bridge"]).dropna()
    chance = both.bridge.iloc[0] if len(both) and both.index[0] == 0 else float("nan")
    return both.assign(fake=(both.ood >= FAKE_OOD) & (both.bridge <= FAKE_BRIDGE)
                       & (both.bridge >= chance + CHANCE_MARGIN))


FITTING = 0.9  # training accuracy from which a fall counts as a collapse of the fit (`fall_after_fit`)
MAX_FALL = 0.1  # the largest fall after the fit a committed run may show: more is a collapse, not a fit


def fall_after_fit(metrics: pd.DataFrame) -> float:
    """The largest fall of training accuracy below its best so far, once it has reached FITTING (0 if it never
    falls; NaN if it never gets there): the collapse the gradient filter's switch-on caused."""
    acc = curve(metrics, "train", "accuracy")
    after = acc[acc.index >= acc.index[(acc >= FITTING).argmax()]] if (acc >= FITTING).any() else acc.iloc[:0]
    return float((after.cummax() - after).max()) if len(after) else float("nan")


READOUTS = ("bridge_found", "bridge_found_intermediate", "bridge_entity_lens", "bridge_probe", "bridge_used")


def readout_columns(metrics: pd.DataFrame, split: str = "test_inferred_ood") -> dict[str, float]:
    """For each bridge readout a run logged: its chance level (the untrained model, step 0), its final value, and
    its value at the evaluation with the best exact match."""
    em = curve(metrics, split, "exact_match")
    best = em.idxmax() if len(em) else None
    out = {}
    for readout in READOUTS:
        c = curve(metrics, split, readout)
        if len(c):
            out[f"chance_{readout}"] = float(c.iloc[0]) if c.index[0] == 0 else float("nan")
            out[f"final_{readout}"] = float(c.iloc[-1])
            out[f"{readout}_at_best"] = float(c.get(best, float("nan")))
    return out


def _lt(a: int | None, b: int | None) -> bool:
    return a is not None and b is not None and a < b


Row = Mapping[str, Any]


@dataclass(frozen=True)
class Criterion:
    name: str  # the summary's holds_<name> column
    finding: str
    claim: str  # what the paper states
    regimes: tuple[str, ...]  # pretraining regimes, or finetuning bases with `finetune`
    thresholds: dict[str, float]  # the named constants of this module it reads
    test: Callable[[Row], bool]  # on a summary row (`summarize_*`, `judge_seeds`)
    sentence: str  # the test in words, a format string over `thresholds`
    quantities: tuple[tuple[str, str, str | None], ...]  # (label, summary column, column of gc.paper's table)
    finetune: bool = False
    reads_bridge: bool = False  # also decided with the paper's lens rule (lens_<name>)
    across_seeds: bool = False  # compares the runs of one seed (`judge_seeds`)

    @property
    def text(self) -> str:
        return self.sentence.format(**self.thresholds)

    def paper_value(self, regime: str) -> list[float] | None:
        """The paper's value of each quantity for `regime` (NaN: never reached or not quoted); None when the paper
        has no run of it."""
        table = paper_table(self.finetune)
        if regime not in table.index:
            return None
        return [float("nan") if col is None else float(table.loc[regime, col]) for _, _, col in self.quantities]


def paper_table(finetune: bool) -> pd.DataFrame:
    """The paper's table behind the criteria: Figure 4 per base, with the lowest new+old exact match of its
    circuit bases, or Figure 2 per regime, with T_ood / T_fit."""
    if finetune:
        fig4 = FIGURE4.set_index("base")
        return fig4.assign(circuit_new_old_em=fig4.loc[list(CIRCUIT_BASES), "new_old_em"].min())
    fig2 = FIGURE2.set_index("regime")
    return fig2.assign(ood_over_fit=fig2.T_ood / fig2.T_fit)


CRITERIA: dict[str, Criterion] = {c.name: c for c in (
    Criterion("grokking_order", "1", "natural grokking: fit, then bridge, then OOD answers", ("natural",),
              {"FIT": FIT, "BRIDGE": BRIDGE, "OOD_HALF": OOD_HALF},
              lambda r: _lt(r["T_fit"], r["T_bridge"]) and _lt(r["T_bridge"], r["T_ood"]),
              "T_fit < T_bridge < T_ood",
              (("T_fit", "T_fit", "T_fit"), ("T_bridge", "T_bridge", "T_bridge"), ("T_ood", "T_ood", "T_ood")),
              reads_bridge=True),
    Criterion("grokking_delay", "1", "natural grokking: OOD answers come long after the fit", ("natural",),
              {"DELAY": DELAY}, lambda r: _lt(r["T_fit"], r["T_ood"]) and r["T_ood"] >= DELAY * r["T_fit"],
              "T_ood ≥ {DELAY} T_fit", (("T_ood / T_fit", "ood_over_fit", "ood_over_fit"),)),
    Criterion("no_wait", "1", "both-hop-full: OOD answers as soon as it fits", ("both_hop_full",),
              {"NO_WAIT_OOD": NO_WAIT_OOD, "NO_WAIT_BY": NO_WAIT_BY},
              lambda r: r["early_ood_exact_match"] >= NO_WAIT_OOD,
              "OOD exact match ≥ {NO_WAIT_OOD} by step {NO_WAIT_BY} T_fit",
              (("T_ood / T_fit", "ood_over_fit", "ood_over_fit"),)),
    Criterion("bridge_at_end", "1", "both-hop-full: it answers through the bridge", ("both_hop_full",),
              {"BRIDGE": BRIDGE}, lambda r: r["final_ood_bridge_found"] >= BRIDGE,
              "final OOD bridge found ≥ {BRIDGE}",
              (("final OOD bridge found", "final_ood_bridge_found", "final_bridge"),), reads_bridge=True),
    Criterion("fake_grokking", "2", "second-hop-full: OOD answers without the bridge", ("second_hop_full",),
              {"FAKE_OOD": FAKE_OOD, "FAKE_BRIDGE": FAKE_BRIDGE, "CHANCE_MARGIN": CHANCE_MARGIN},
              lambda r: r["fake_evaluations"] > 0,
              "an evaluation with OOD exact match ≥ {FAKE_OOD} and OOD bridge found ≤ {FAKE_BRIDGE}, at least "
              "{CHANCE_MARGIN} above the untrained model's",
              (("final OOD exact match", "final_ood_exact_match", "final_ood"),
               ("final OOD bridge found", "final_ood_bridge_found", "final_bridge"),
               ("untrained OOD bridge found", "chance_ood_bridge_found", None)), reads_bridge=True),
    Criterion("new_facts_learned", "3", "finetuning learns the new facts", (*REGIMES, "control"),
              {"LEARNED": LEARNED}, lambda r: r["final_new_atomic"] >= LEARNED,
              "final new-fact accuracy ≥ {LEARNED}", (("final new-fact accuracy", "final_new_atomic", "new_atomic"),),
              finetune=True),
    Criterion("new_old_composes", "3", "circuit bases compose new+old at once", CIRCUIT_BASES,
              {"COMPOSES": COMPOSES}, lambda r: r["final_new_old_exact_match"] >= COMPOSES,
              "final new+old exact match ≥ {COMPOSES}",
              (("final new+old exact match", "final_new_old_exact_match", "new_old_em"),), finetune=True),
    Criterion("old_new_fails_with_bridge", "3", "no base composes old+new, though the bridge is found", CIRCUIT_BASES,
              {"FAILS": FAILS, "BRIDGE": BRIDGE},
              lambda r: r["final_old_new_exact_match"] <= FAILS and r["final_old_new_bridge_found"] >= BRIDGE,
              "final old+new exact match ≤ {FAILS} and its bridge found ≥ {BRIDGE}",
              (("final old+new exact match", "final_old_new_exact_match", "old_new_em"),
               ("final old+new bridge found", "final_old_new_bridge_found", "old_new_bridge")),
              finetune=True, reads_bridge=True),
    Criterion("fake_base_fails", "3", "the fake-grokked base fails new+old", FAKE_BASES,
              {"FAKE_BASE_MARGIN": FAKE_BASE_MARGIN},
              lambda r: r["final_new_old_exact_match"] + FAKE_BASE_MARGIN <= r["circuit_new_old_exact_match"],
              "final new+old exact match at least {FAKE_BASE_MARGIN} below every circuit base of the same seed",
              (("final new+old exact match", "final_new_old_exact_match", "new_old_em"),
               ("lowest circuit base's", "circuit_new_old_exact_match", "circuit_new_old_em")),
              finetune=True, across_seeds=True),
)}

# regimes of the paper's Figure 2 that no criterion tests, by the finding they are shown with
SHOWN_WITH = {"both_hop_half": "2", "first_hop_full": "2"}
FINDING_OF = {**{r: c.finding for c in CRITERIA.values() if not c.finetune for r in c.regimes}, **SHOWN_WITH}


def criteria_table() -> pd.DataFrame:
    """The registry as a table: one row per criterion."""
    return pd.DataFrame([{"finding": c.finding, "criterion": f"holds_{c.name}", "claim": c.claim,
                          "applies to": ", ".join(c.regimes), "test": c.text,
                          "lens rule beside it": "yes" if c.reads_bridge else ""} for c in CRITERIA.values()])


def _judge(row: dict, lens_row: Row, regime: str, finetune: bool) -> dict:
    """holds_<name> (and lens_<name>) of every per-run criterion that applies to `regime`."""
    for c in CRITERIA.values():
        if c.finetune == finetune and regime in c.regimes and not c.across_seeds:
            row[f"holds_{c.name}"] = bool(c.test(row))
            if c.reads_bridge:
                row[f"lens_{c.name}"] = bool(c.test(lens_row))
    return row


def _measure_pretrain(metrics: pd.DataFrame, bridge: str) -> dict:
    m = milestones(metrics, bridge)
    ood = curve(metrics, "test_inferred_ood", "exact_match")
    early = ood[ood.index <= NO_WAIT_BY * m["T_fit"]] if m["T_fit"] is not None else ood.iloc[:0]
    fake = fake_evaluations(metrics, bridge)
    return {**m, "steps": int(metrics.step.max()),
            "final_train_accuracy": final(metrics, "train", "accuracy"),
            "final_iid_exact_match": final(metrics, "test_inferred_iid", "exact_match"),
            "final_ood_exact_match": final(metrics, "test_inferred_ood", "exact_match"),
            "bridge_metric": bridge,
            "final_ood_bridge_found": final(metrics, "test_inferred_ood", bridge),
            "max_ood_exact_match": float(ood.max()) if len(ood) else float("nan"),
            "early_ood_exact_match": float(early.max()) if len(early) else float("nan"),
            "chance_ood_bridge_found": float(fake.bridge.iloc[0]) if len(fake) and fake.index[0] == 0 else float("nan"),
            "fake_evaluations": int(fake.fake.sum()), "train_fall_after_fit": fall_after_fit(metrics)}


def summarize_pretrain(metrics: pd.DataFrame, regime: str, bridge: str = "bridge_found") -> dict:
    """Milestones, final metrics and the criteria that apply to `regime`; `bridge` names the bridge readout."""
    return _judge(_measure_pretrain(metrics, bridge), _measure_pretrain(metrics, LENS), regime, finetune=False)


def _measure_finetune(metrics: pd.DataFrame, bridge: str) -> dict:
    row = {"final_new_atomic": final(metrics, "atomic_new", "exact_match"), "bridge_metric": bridge}
    for cat in ("new_old", "old_new", "new_new"):
        row[f"final_{cat}_exact_match"] = final(metrics, cat, "exact_match")
        row[f"final_{cat}_bridge_found"] = final(metrics, cat, bridge)
    return row


def summarize_finetune(metrics: pd.DataFrame, base: str, bridge: str = "bridge_found") -> dict:
    """Finding 3 on one finetuning run; `base` is the base regime or "control". The criteria that compare bases
    are left to `judge_seeds`."""
    return _judge(_measure_finetune(metrics, bridge), _measure_finetune(metrics, LENS), base, finetune=True)


def judge_seeds(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary with the criteria that compare the finetuning runs of one seed (`across_seeds`) decided:
    `circuit_new_old_exact_match` (the lowest new+old exact match of the circuit bases of the row's seed) and
    holds_<name>, missing where a circuit base of the seed has no row. Finetuning rows are those of finding "3"
    (all rows without a `finding` column); their base is the `regime` column, or `base`."""
    if summary.empty or "final_new_old_exact_match" not in summary:
        return summary
    base = summary["regime" if "regime" in summary else "base"]
    finetuned = summary.finding.astype(str) == "3" if "finding" in summary else pd.Series(True, summary.index)
    circuit = summary[finetuned & base.isin(CIRCUIT_BASES)].groupby("seed").final_new_old_exact_match
    lowest = circuit.min()[circuit.count() == len(CIRCUIT_BASES)]
    out = summary.assign(circuit_new_old_exact_match=float("nan"))
    for c in (c for c in CRITERIA.values() if c.across_seeds):
        column = f"holds_{c.name}"
        out[column] = None
        rows = finetuned & base.isin(c.regimes) & out.seed.isin(lowest.index)
        out.loc[rows, "circuit_new_old_exact_match"] = out.loc[rows, "seed"].map(lowest)
        out.loc[rows, column] = [bool(c.test(r)) for r in out[rows].to_dict("records")]
    return out
