"""The paper's three findings as measurable criteria on a run's metrics (paper §8).

Milestones (first evaluation step at which):
- T_fit:    training accuracy (mean EM over id_atomic, ood_atomic, train_inferred) >= 0.99;
- T_bridge: OOD bridge found >= 0.9;
- T_ood:    OOD exact match >= 0.5.
The bridge metric depends on the architecture (`bridge_metric`): the paper's any-stage, any-position rule for
the TRM; for the causal looped model the rule without its first and last stage, because there the last stage
at the r1 slot is the atomic answer (the bridge) for any model that memorised the facts, so the paper's rule
is met by a model trained only on atomic facts (seen in the from-scratch control). Leaving out the last stage
measures whether the bridge is retrieved early enough for the second hop to read it (the paper's integration of
OOD facts), but a fact retrieved early still counts without any composition: the control finds new facts'
bridges this way too. Activation patching (`grokcircuit.paths`) is the causal check. This choice was made from
that structural reason, before any natural-regime run reached its OOD milestone.
Each `summarize_*` returns one row with the milestones, final metrics and `holds_<criterion>` booleans
(None where a criterion does not apply).
"""
from __future__ import annotations

import pandas as pd

FIT, BRIDGE, OOD_HALF = 0.99, 0.9, 0.5
COMPOSES = 0.9  # new+old exact match a circuit base must reach after finetuning
CIRCUIT_BASES = ("natural", "both_hop_full", "first_hop_full")


def curve(metrics: pd.DataFrame, split: str, metric: str) -> pd.Series:
    """value by step for one (split, metric)."""
    sel = metrics[(metrics.split == split) & (metrics.metric == metric)]
    return sel.set_index("step")["value"].sort_index()


def first_step(metrics: pd.DataFrame, split: str, metric: str, threshold: float) -> int | None:
    """First evaluation step at which the value reaches `threshold`, or None."""
    c = curve(metrics, split, metric)
    hit = c[c >= threshold]
    return int(hit.index[0]) if len(hit) else None


BRIDGE_RULES = {
    "bridge_found": "the paper's: the bridge is the top-1 token at any stage and any position",
    "bridge_found_intermediate": ("the bridge is the top-1 token at any position of a stage other than the first and "
                                  "the last. In this causal model the r1 slot of a two-hop query is the atomic query "
                                  "(h, r1), so a memorised fact shows its answer there: always at the last stage, and "
                                  "at intermediate stages when the fact is retrieved early. The rule therefore measures "
                                  "early retrieval, not composition; activation patching is the causal check"),
}


def bridge_metric(arch: str) -> str:
    """The bridge-found metric that is not trivially met by the architecture (see the module docstring)."""
    return "bridge_found" if arch == "trm" else "bridge_found_intermediate"


def milestones(metrics: pd.DataFrame, bridge: str = "bridge_found") -> dict[str, int | None]:
    return {"T_fit": first_step(metrics, "train", "accuracy", FIT),
            "T_bridge": first_step(metrics, "test_inferred_ood", bridge, BRIDGE),
            "T_ood": first_step(metrics, "test_inferred_ood", "exact_match", OOD_HALF)}


def final(metrics: pd.DataFrame, split: str, metric: str) -> float:
    c = curve(metrics, split, metric)
    return float(c.iloc[-1]) if len(c) else float("nan")


def _lt(a: int | None, b: int | None) -> bool:
    return a is not None and b is not None and a < b


def summarize_pretrain(metrics: pd.DataFrame, regime: str, bridge: str = "bridge_found") -> dict:
    """Milestones, final metrics and the criteria that apply to `regime`; `bridge` names the bridge metric."""
    m = milestones(metrics, bridge)
    ood, bridge_curve = curve(metrics, "test_inferred_ood", "exact_match"), curve(metrics, "test_inferred_ood", bridge)
    row = {**m, "steps": int(metrics.step.max()),
           "final_train_accuracy": final(metrics, "train", "accuracy"),
           "final_iid_exact_match": final(metrics, "test_inferred_iid", "exact_match"),
           "final_ood_exact_match": final(metrics, "test_inferred_ood", "exact_match"),
           "bridge_metric": bridge,
           "final_ood_bridge_found": final(metrics, "test_inferred_ood", bridge),
           "max_ood_exact_match": float(ood.max()) if len(ood) else float("nan")}
    t_fit, t_bridge, t_ood = m["T_fit"], m["T_bridge"], m["T_ood"]
    if regime == "natural":
        row["holds_grokking_order"] = _lt(t_fit, t_bridge) and _lt(t_bridge, t_ood)
        row["holds_grokking_delay"] = t_fit is not None and t_ood is not None and t_ood >= 3 * t_fit
    if regime == "both_hop_full":
        early = ood[ood.index <= 1.5 * t_fit] if t_fit is not None else ood.iloc[:0]
        row["holds_no_wait"] = bool(len(early) and early.max() >= 0.9)
        row["holds_bridge_at_end"] = row["final_ood_bridge_found"] >= BRIDGE
    if regime == "second_hop_full":
        both = pd.concat([ood, bridge_curve], axis=1, keys=["ood", "bridge"]).dropna()
        row["holds_fake_grokking"] = bool(((both.ood >= 0.8) & (both.bridge <= 0.5)).any())
    return row


def summarize_finetune(metrics: pd.DataFrame, base: str, bridge: str = "bridge_found") -> dict:
    """Finding 3 on one finetuning run; `base` is the base regime or "control"."""
    row = {"final_new_atomic": final(metrics, "atomic_new", "exact_match"), "bridge_metric": bridge}
    for cat in ("new_old", "old_new", "new_new"):
        row[f"final_{cat}_exact_match"] = final(metrics, cat, "exact_match")
        row[f"final_{cat}_bridge_found"] = final(metrics, cat, bridge)
    row["holds_new_facts_learned"] = row["final_new_atomic"] >= 0.99
    if base in CIRCUIT_BASES:
        row["holds_new_old_composes"] = row["final_new_old_exact_match"] >= COMPOSES
        row["holds_old_new_fails_with_bridge"] = (row["final_old_new_exact_match"] <= 0.1
                                                  and row["final_old_new_bridge_found"] >= BRIDGE)
    if base == "second_hop_full":
        row["holds_fake_base_fails"] = row["final_new_old_exact_match"] <= 0.5
    return row
