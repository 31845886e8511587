"""The CPU-scale search of appendix A1: the candidate configurations that `scripts/search_cpu.py` (pretraining)
and `scripts/search_finetune.py` (finetuning variants) train, and the tables and sentences A1 reads from their
results (`results/<preset>/search.csv`, `search_finetune.csv` and the curves beside them).

A candidate is (regime, overrides of the `cpu` preset, why); a finetuning variant is (base regime, overrides of
the preset's finetuning run, why). Overrides are explicit about scale and about the filter's start (`SEEDED` or
`ZERO`), so a candidate keeps its meaning, and its run id, when the `cpu` preset moves.

`HYPOTHESES` are the explanations tried for the findings that do not appear at this scale, each with the candidates
that test it and a verdict read from their rows (`hypothesis_table`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from .claims import and_join, as_bool, name_of
from .config import from_dict
from .findings import (COMPOSES, CRITERIA, FITTING, LENS, MAX_FALL, OOD_HALF, curve, fake_evaluations,
                       fall_after_fit)

# the filter's average seeded with the first filtered gradient, so that step's filtered gradient is 1 + lambda times
# the raw one: the recipe of every candidate trained before the cpu preset's average started at zero (PLAIN states it
# too, without a filter, so that the preset's start stays out of those run ids)
SEEDED = {"train.grokfast_init": "gradient"}
PLAIN = {"train.grokfast_alpha": "0.0", "train.grokfast_lamb": "2.0", "train.grokfast_from": "0", **SEEDED}  # no filter
E100 = {"data.entities": "100", "train.batch_size": "256", **PLAIN}
GROKFAST = {"train.grokfast_alpha": "0.98", "train.grokfast_lamb": "2.0", "train.grokfast_from": "6000", **SEEDED}
SMALL = {"data.entities": "60", "train.batch_size": "128", "train.steps": "20000", **PLAIN}
THREE_PASSES = {**SMALL, **GROKFAST, "model.loops": "3"}  # the filtered model with a third pass through its blocks
TRM = {**SMALL, **GROKFAST, "model.arch": "trm", "model.h_cycles": "2", "model.l_cycles": "2", "model.prefix_len": "0",
       "model.q_halt_weight": "0", "model.mlp_multiple": "16"}  # the paper's architecture, at the filtered scale

ZERO = {**GROKFAST, "train.grokfast_init": "zero"}  # the filter's average starts at zero: no jump at switch-on
ZERO_FROM0 = {**ZERO, "train.grokfast_from": "0"}
UNTIED = {"model.tie_embeddings": "false"}

# name -> (regime, overrides of the cpu preset, why)
CANDIDATES: dict[str, tuple[str, dict[str, str], str]] = {
    "looped2x2-wd1": ("natural", {**E100, "train.steps": "16000", "train.weight_decay": "1.0"},
                      "early-probe model (2 blocks x 2 loops, d=128, E=100) with the paper's weight decay 1.0"),
    "e60-looped2x2": ("natural", {**SMALL},
                      "smaller graph (E=60) and batch 128, so the fit comes within the budget"),
    "e60-looped1x4": ("natural", {**SMALL, "model.n_blocks": "1", "model.loops": "4"},
                      "one block applied 4 times: every fact lookup uses the same weights at every depth"),
    "e60-looped2x2-rope": ("natural", {**SMALL, "model.positions": "rope"},
                           "rotary (relative) positions: hop 2 can reuse the atomic lookup one slot later"),
    "e60-looped1x4-rope": ("natural", {**SMALL, "model.n_blocks": "1", "model.loops": "4", "model.positions": "rope"},
                           "one block applied 4 times, with rotary positions"),
    "e60-looped2x2-both-full": ("both_hop_full", {**SMALL},
                                "Finding 1's no-wait regime at the e60-looped2x2 scale"),
    "e60-looped2x2-second-full": ("second_hop_full", {**SMALL},
                                  "Finding 2's fake-grokking regime at the e60-looped2x2 scale"),
    "e60-looped2x2-wd1": ("natural", {**SMALL, "train.weight_decay": "1.0"},
                          "the paper's weight decay 1.0: twice the per-step decay, to speed consolidation after the fit"),
    "e60-looped2x2-second-full-s1": ("second_hop_full", {**SMALL, "data.seed": "1", "train.seed": "1"},
                                     "the second-hop-full run with another seed (data and model)"),
    "e60-standard4": ("natural", {**SMALL, "model.n_blocks": "4", "model.loops": "1"},
                      "no parameter sharing: 4 distinct blocks, the same depth (the paper's Figure 1 argument)"),
    "e60-standard4-both-full": ("both_hop_full", {**SMALL, "model.n_blocks": "4", "model.loops": "1"},
                                "no parameter sharing, both-hop-full augmentation"),
    "e60-looped2x2-40k": ("natural", {**SMALL, "train.steps": "40000"},
                          "the natural run continued to 40k steps (4.7x its fit), past the paper's T_ood of 3.7x T_fit"),
    "e60-looped2x2-80k": ("natural", {**SMALL, "train.steps": "80000"},
                          "the natural run continued to 80k steps: at 40k its OOD bridge and patching rates still rose"),
    "e60-looped2x2-lr2e-3": ("natural", {**SMALL, "train.lr": "2e-3"},
                             "twice the learning rate: twice the per-step decay lr*wd after the fit"),
    "e60-looped2x2-grokfast": ("natural", {**SMALL, **GROKFAST},
                               "Grokfast-EMA gradient filter (alpha 0.98, lambda 2) switched on near the fit"),
    "e60-looped2x2-grokfast-60k": ("natural", {**SMALL, **GROKFAST, "train.steps": "60000"},
                                   "the Grokfast run continued to 60k steps: at 20k its OOD exact match still rose"),
    "e60-looped2x3-grokfast": ("natural", THREE_PASSES,
                               "three passes through the two blocks: the OOD plateau near 0.5 is hop-2 lookups of "
                               "atomic-only facts failing, and more recurrence gives hop 2 its own pass"),
    "e60-looped2x3-grokfast-60k": ("natural", {**THREE_PASSES, "train.steps": "60000"},
                                   "the three-pass run continued to 60k steps, as long as the cpu preset's "
                                   "natural run"),
    "e60-looped2x3-grokfast-60k-s1": ("natural", {**THREE_PASSES, "train.steps": "60000",
                                                  "data.seed": "1", "train.seed": "1"},
                                      "the three-pass natural run with another seed (data and model)"),
    "e60-looped2x3-grokfast-60k-s2": ("natural", {**THREE_PASSES, "train.steps": "60000",
                                                  "data.seed": "2", "train.seed": "2"},
                                      "the three-pass natural run with a third seed (its training time includes "
                                      "about 8 minutes during which the process was paused)"),
    "e60-looped2x3-both-full": ("both_hop_full", THREE_PASSES,
                                "Finding 1's no-wait regime with three passes"),
    "e60-looped2x3-second-full": ("second_hop_full", THREE_PASSES,
                                  "Finding 2's fake-grokking regime with three passes"),
    "e60-looped2x3-first-full": ("first_hop_full", THREE_PASSES,
                                 "the first-hop-full regime (one version of the paper's Figure 2C) with three passes"),
    "e60-trm2x2-second-full": ("second_hop_full", TRM,
                               "the paper's TRM (MLP token mixing, H2 x L2, no prefix) in the fake-grokking regime: "
                               "its first hop is not a plain atomic recall, as it is in a causal decoder"),
    "e60-trm2x2-both-full": ("both_hop_full", TRM, "the TRM in the no-wait regime: does it find the bridge at all?"),
    "e60-trm2x2-second-full-60k": ("second_hop_full", {**TRM, "train.steps": "60000"},
                                   "the TRM's second-hop-full run continued to 60k steps: the paper's reaches OOD "
                                   "0.5 only after about 3 times its fit"),
    "e60-trm2x2-both-full-60k": ("both_hop_full", {**TRM, "train.steps": "60000"},
                                 "the TRM's both-hop-full run continued to 60k steps: the paper's bridge appears "
                                 "long after its OOD answers"),
    "e60-trm2x2-60k": ("natural", {**TRM, "train.steps": "60000"}, "the TRM in the natural regime, 60k steps"),
    "e60-looped1x4-grokfast": ("natural", {**SMALL, **GROKFAST, "model.n_blocks": "1", "model.loops": "4"},
                               "one block applied 4 times with the filter: every lookup uses the same weights"),
    "e60-looped2x2-grokfast-l5": ("natural", {**SMALL, **GROKFAST, "train.grokfast_lamb": "5.0"},
                                  "a stronger filter (lambda 5): the Grokfast OOD exact match plateaued near 0.45"),
    # the recipe without the collapse: the filter's average starts at zero (the readouts of `probe` and the
    # entity-restricted lens are logged from here on)
    "zero-natural": ("natural", {**SMALL, **ZERO, "train.steps": "60000"},
                     "the preset with the filter's average started at zero: does training still collapse at 6,000?"),
    "zero-natural-s1": ("natural", {**SMALL, **ZERO, "train.steps": "60000", "train.seed": "1", "data.seed": "1"},
                        "the zero start switched on at 6,000, seed 1"),
    "zero-from0-natural": ("natural", {**SMALL, **ZERO_FROM0, "train.steps": "60000"},
                           "the filter from step 0 (zero start): no switch-on at all"),
    "zero-from0-second-full": ("second_hop_full", {**SMALL, **ZERO_FROM0},
                               "the tied looped model under the new recipe, second-hop-full (compare untied)"),
    "zero-from0-both-full": ("both_hop_full", {**SMALL, **ZERO_FROM0}, "the no-wait regime under the new recipe"),
    # hypothesis 1: untied embeddings (the lens no longer reads the storage code by construction)
    "untied-second-full": ("second_hop_full", {**SMALL, **ZERO_FROM0, **UNTIED},
                           "untied head, second-hop-full: lens-fake and circuit-real, or fake grokking proper?"),
    "untied-second-full-s1": ("second_hop_full", {**SMALL, **ZERO_FROM0, **UNTIED, "train.seed": "1",
                                                  "data.seed": "1"}, "untied second-hop-full, seed 1"),
    "untied-natural": ("natural", {**SMALL, **ZERO_FROM0, **UNTIED, "train.steps": "60000"},
                       "untied head, natural regime: does it still grok?"),
    # hypothesis 2: the TRM at 200 entities, where the paper's lens rule has a chance level of 0.09, not 0.2
    "trm-e200-second-full": ("second_hop_full", {**TRM, **ZERO_FROM0, "data.entities": "200"},
                             "the TRM at 200 entities, second-hop-full: does the lens or the probe see its bridges?"),
    "trm-e200-both-full": ("both_hop_full", {**TRM, **ZERO_FROM0, "data.entities": "200"},
                           "the TRM at 200 entities, both-hop-full"),
    # hypothesis 3: where the small TRM fails on OOD queries
    "trm-first-full": ("first_hop_full", {**TRM, **ZERO_FROM0},
                       "the TRM first-hop-full (one reading of the paper's Figure 2C): OOD answers without the "
                       "bridge?"),
    "trm-first-full-s1": ("first_hop_full", {**TRM, **ZERO_FROM0, "train.seed": "1", "data.seed": "1"},
                          "the TRM first-hop-full, seed 1"),
    # hypothesis 5: the recipe at the paper's augmentation ratio and per-step decay
    "paper-ratio-second-full": ("second_hop_full", {**SMALL, **ZERO_FROM0, "data.aug_k": "6"},
                                "second-hop-full adding 3.2% training rows (k=6), near the paper's 2.9%, instead of "
                                "8.8% (k=18)"),
    "paper-ratio-second-full-s1": ("second_hop_full", {**SMALL, **ZERO_FROM0, "data.aug_k": "6", "train.seed": "1",
                                                       "data.seed": "1"},
                                   "second-hop-full at the paper's augmentation ratio (k=6), seed 1"),
    "paper-decay-second-full": ("second_hop_full", {**SMALL, **ZERO_FROM0, "train.weight_decay": "0.04"},
                                "second-hop-full at the paper's per-step decay lr*wd = 4e-5 (wd 0.04) instead of "
                                "5e-4"),
}

THREE_PASS_BASE = {**SEEDED, "model.loops": "3"}  # the base of search candidate e60-looped2x3-grokfast-60k

# name -> (base regime, overrides of the cpu preset's finetuning run, why)
FINETUNE_CANDIDATES: dict[str, tuple[str, dict[str, str], str]] = {
    "preset": ("natural", {**SEEDED}, "the cpu preset's finetuning: LR 5e-4 (half the pretraining LR), 3,000 steps"),
    "lr1e-4": ("natural", {**SEEDED, "finetune.lr": "1e-4"},
               "a fifth of the LR: less disturbance of the pretrained circuit"),
    "lr2e-3": ("natural", {**SEEDED, "finetune.lr": "2e-3"},
               "four times the LR: new facts pushed harder into every stage"),
    "steps9k": ("natural", {**SEEDED, "finetune.steps": "9000"},
                "three times longer: the paper's new+old rate reaches 1 only after 6k steps"),
    "keep-paper": ("natural", {**SEEDED, "finetune.keep_policy": "paper"},
                   "the paper's wording of the retained set: old atomic facts plus the compositions of kept facts"),
    "keep-paper-9k": ("natural", {**SEEDED, "finetune.keep_policy": "paper", "finetune.steps": "9000"},
                      "the paper's retained set, three times longer: old facts are not forgotten, so time can help"),
    "base-looped2x3": ("natural", THREE_PASS_BASE,
                       "the preset's finetuning of a three-pass base (search: e60-looped2x3-grokfast-60k), whose own "
                       "OOD exact match is higher"),
    "base-looped2x3-keep-paper": ("natural", {**THREE_PASS_BASE, "finetune.keep_policy": "paper"},
                                  "the three-pass base with the paper's retained set"),
    "base-looped2x3-both-full": ("both_hop_full", THREE_PASS_BASE, "the three-pass both-hop-full base"),
    "base-looped2x3-second-full": ("second_hop_full", THREE_PASS_BASE,
                                   "the three-pass second-hop-full base (the paper's fake-grokked base)"),
    "base-looped2x3-control": ("control", THREE_PASS_BASE, "the from-scratch control with the three-pass model"),
}

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


def _base_of(row) -> tuple:
    """A finetuning variant's base run: its base regime and its overrides (JSON) that are not about finetuning."""
    overrides = json.loads(row.overrides)
    return row.base, tuple(sorted((k, v) for k, v in overrides.items() if not k.startswith("finetune.")))


def finetune_search_text(search: pd.DataFrame, threshold: float = COMPOSES, reference: str = "preset") -> str:
    """Finetuning variants of the base of the `reference` variant (the first row where there is none): the best
    new+old composition against the criterion, and the worst forgetting; then the variants of other bases."""
    if search.empty:
        return "no finetuning variants are committed"
    bases = [_base_of(r) for r in search.itertuples()]
    mine = bases[search.name.tolist().index(reference)] if reference in search.name.values else bases[0]
    other = pd.Series([b != mine for b in bases], index=search.index)
    own = search[~other]
    best = own.loc[own.final_new_old_exact_match.idxmax()]
    worst = own.loc[own.final_id_atomic.idxmin()]
    base = (f"the {name_of(mine[0])} base of the preset with " + ", ".join(f"{k}={v}" for k, v in mine[1])
            if mine[1] else f"the preset's {name_of(mine[0])} base")
    text = (f"from {base}, every variant learns the new facts (at least "
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
    return "holds" if as_bool(value) else "fails"


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
        ood, iid = (curve(mine, split, LENS) for split in ("test_inferred_ood", "test_inferred_iid"))
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


READOUT_COLUMNS = {  # label -> (OOD value column of a search row, its chance-level column)
    "lens, paper's rule": ("bridge_found_at_best", "chance_bridge_found"),
    "entity lens": ("bridge_entity_lens_at_best", "chance_bridge_entity_lens"),
    "probe": ("bridge_probe_at_best", "chance_bridge_probe"),
    "patching": ("bridge_used_at_best", "chance_bridge_used"),
}


def readout_table(search: pd.DataFrame) -> pd.DataFrame:
    """The candidates that log every readout: per readout its OOD value at the best OOD evaluation with its chance
    level (the untrained model) in brackets, and the shares of correct OOD answers
    whose bridge the entity lens shows and patching uses."""
    columns = ["candidate", "regime", "head", "best OOD exact match", *READOUT_COLUMNS, "entity lens | correct",
               "used | correct"]
    if "chance_bridge_probe" not in search or search.chance_bridge_probe.isna().all():
        return pd.DataFrame(columns=columns)
    rows = search.dropna(subset=["chance_bridge_probe"])
    out = pd.DataFrame({"candidate": rows.name, "regime": rows.regime.map(name_of),
                        "head": ["untied" if json.loads(o).get("model.tie_embeddings") == "false" else "tied"
                                 for o in rows.overrides],
                        "best OOD exact match": rows.max_ood_exact_match.round(2)})
    for label, (value, chance) in READOUT_COLUMNS.items():
        out[label] = [f"{v:.2f} ({c:.2f})" for v, c in zip(rows[value], rows[chance])]
    out["entity lens | correct"] = rows.ood_entity_lens_when_correct.round(2)
    out["used | correct"] = rows.ood_used_when_correct.round(2)
    return out.reset_index(drop=True)


FAKE_READOUTS = {"the paper's lens rule": "bridge_found", "the probe": "bridge_probe", "patching": "bridge_used"}


def fake_table(search: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Finding 2 read three ways on each second-hop-full candidate that logs every readout: how many evaluations
    answer at least FAKE_OOD of the OOD queries while the readout finds the bridge in at most FAKE_BRIDGE of them
    (yet CHANCE_MARGIN above its untrained value; `findings.fake_evaluations`)."""
    rows = readout_table(search)
    rows = rows[rows.regime == name_of("second_hop_full")]
    out = []
    for name in rows.candidate:
        run = curves[curves.name == name]
        out.append({"candidate": name, **{label: int(fake_evaluations(run, readout).fake.sum())
                                          for label, readout in FAKE_READOUTS.items()}})
    return pd.DataFrame(out, columns=["candidate", *FAKE_READOUTS])


def _count(n: int) -> str:
    return "at no evaluation" if n == 0 else f"at {n} evaluation{'s' * (n != 1)}"


def fake_text(readouts: pd.DataFrame, fakes: pd.DataFrame) -> str:
    """Finding 2 per second-hop-full candidate in words, e.g. "untied-second-full (untied head; best OOD exact match
    0.95): fake grokking holds by the probe at 4 evaluations, by patching at no evaluation, ...", and where a
    readout that can fail misses a bridge that patching finds."""
    if fakes.empty:
        return "no second-hop-full candidate logs every readout yet"
    head = readouts.set_index("candidate")
    parts = []
    for r in fakes.to_dict("records"):
        verdicts = ", ".join(f"by {label} {_count(r[label])}" for label in FAKE_READOUTS)
        name = r["candidate"]
        parts.append(f"{name} ({head.loc[name, 'head']} head; best OOD exact match "
                     f"{head.loc[name, 'best OOD exact match']:.2f}): fake grokking holds {verdicts}")
    missed = fakes[(fakes["the probe"] > 0) & (fakes["patching"] == 0)].candidate.tolist()
    if missed:
        parts.append(f"in {', '.join(missed)} the probe misses a bridge that patching shows the answers use")
    return "; ".join(parts)


def filter_start(config: str) -> str:
    """How a search row's trained config (JSON) starts its gradient filter: "none" (no filter), "zero" (the average
    starts at zero), "seeded" (switched on after step 0 with its average seeded by that step's gradient, the
    collapse's recipe) or "seeded from 0"."""
    train = from_dict(json.loads(config)).train
    if train.grokfast_alpha == 0:
        return "none"
    if train.grokfast_init == "zero":
        return "zero"
    return "seeded" if train.grokfast_from > 0 else "seeded from 0"


def collapse_text(search: pd.DataFrame, curves: pd.DataFrame, summary: pd.DataFrame) -> str:
    """How far training accuracy fell after first reaching FITTING (`findings.fall_after_fit`, measured on each
    run's curves) in the search candidates whose filter switched on with a seeded average, in those whose average
    starts at zero, and in the pretraining runs of the committed reproduction (`summary`)."""
    if len(search):
        falls = pd.Series([fall_after_fit(curves[curves.name == n]) for n in search.name], index=search.name)
        start = pd.Series([filter_start(c) for c in search.config], index=search.name)
    else:
        falls = start = pd.Series(dtype=float)
    seeded, zero = (falls[start == kind].dropna() for kind in ("seeded", "zero"))
    committed = (summary.loc[summary.finding.astype(str) != "3", "train_fall_after_fit"].dropna()
                 if "train_fall_after_fit" in summary else pd.Series(dtype=float))
    parts = []
    if len(seeded):
        collapsed = seeded[seeded > MAX_FALL]
        parts.append(f"by up to {seeded.max():.2f} in the {len(seeded)} search candidates that reached it with the "
                     f"filter switched on at a later step and its average seeded (by more than {MAX_FALL} in "
                     f"{len(collapsed)} of them" + (f": {', '.join(collapsed.index)})" if len(collapsed) else ")"))
    if len(zero):
        parts.append(f"by at most {zero.max():.2f} in the {len(zero)} whose average starts at zero")
    if len(committed):
        parts.append(f"by at most {committed.max():.2f} in the {len(committed)} pretraining runs of the committed "
                     f"reproduction")
    if not parts:
        return f"no committed run has reached training accuracy {FITTING}"
    return f"training accuracy fell after first reaching {FITTING} " + "; ".join(parts)


ZERO_START = {"seeded": "e60-looped2x2-grokfast-60k", "from 6,000": "zero-natural", "from 0": "zero-from0-natural"}


def zero_start_text(search: pd.DataFrame, names: dict[str, str] = ZERO_START) -> str:
    """The natural regime with the filter's average started at zero, against the seeded recipe's run."""
    by = search.set_index("name") if len(search) else pd.DataFrame()
    if any(n not in by.index for n in names.values()):
        return "the search table lacks the natural runs with the filter's average started at zero"
    run = {k: by.loc[n] for k, n in names.items()}
    reach = lambda r: (f"reaching {OOD_HALF} at step {int(r.T_ood):,}" if pd.notna(r.T_ood)  # noqa: E731
                       else f"never reaching {OOD_HALF}")
    parts = [f"{run[k].max_ood_exact_match:.2f} in {int(run[k].steps):,} steps with the filter {k} ({reach(run[k])}"
             f", training accuracy falling by {run[k].train_fall_after_fit:.2f} after the fit)"
             for k in ("from 0", "from 6,000")]
    seeded = run["seeded"]
    return (f"with its average started at zero, the natural run's best OOD exact match was {' and '.join(parts)}; "
            f"the seeded recipe's run ({names['seeded']}), whose training collapsed at the switch-on, reached "
            f"{seeded.max_ood_exact_match:.2f} in {int(seeded.steps):,} steps ({reach(seeded)})")


@dataclass(frozen=True)
class Hypothesis:
    """An explanation tried for a finding that does not appear at this scale: the question it asks, the rows of
    the search table (or with `finetune`, of the finetuning search) that test it, those they are read beside, and
    the registry criterion (`findings.CRITERIA`) that decides it: supported when it holds in every tested row."""
    name: str
    question: str
    criterion: str
    runs: tuple[str, ...] = ()  # the candidates that test it; none: not run yet
    against: tuple[str, ...] = ()  # candidates shown beside them, not judged
    finetune: bool = False  # runs name finetuning variants (`FINETUNE_CANDIDATES`), not search candidates

    def rows(self, table: pd.DataFrame, names: tuple[str, ...] | None = None) -> pd.DataFrame:
        """The committed rows of `names` (default: the runs), in their order."""
        names = self.runs if names is None else names
        if table.empty:
            return pd.DataFrame()
        return table.set_index("name").reindex([n for n in names if n in set(table.name)])

    def verdict(self, table: pd.DataFrame) -> str:
        rows = self.rows(table)
        if rows.empty:
            return "not run"
        test = CRITERIA[self.criterion].test
        return "supported" if all(bool(test(r)) for _, r in rows.iterrows()) else "not supported"


HYPOTHESES = (
    Hypothesis("H1", "Does the tied head hide fake grokking: untied, does the looped model answer second-hop-full OOD "
               "queries without using the bridge?", "fake_grokking",
               ("untied-second-full", "untied-second-full-s1"), ("zero-from0-second-full",)),
    Hypothesis("H2", "Does the TRM fake-grok under second-hop-full on 200 entities, where the lens rule's chance "
               "level is lower than on 60?", "fake_grokking",
               ("trm-e200-second-full",), ("e60-trm2x2-second-full-60k",)),
    Hypothesis("H3", "Is the paper's fake grokking its first-hop-full run (one reading of Figure 2C): does the TRM "
               "trained first-hop-full answer OOD queries without the bridge?", "fake_grokking",
               ("trm-first-full", "trm-first-full-s1"), ("e60-trm2x2-second-full", "e60-trm2x2-both-full")),
    Hypothesis("H4", "Does depth give Finding 3: do circuit bases with a third pass through the blocks compose new "
               "facts as the first hop (new+old)?", "new_old_composes",
               ("base-looped2x3", "base-looped2x3-keep-paper", "base-looped2x3-both-full"), ("preset",),
               finetune=True),
    Hypothesis("H5", "Does the recipe's distance from the paper's hide the findings: would fake grokking appear "
               "with the paper's per-step decay lr·wd and augmentation ratio?", "fake_grokking",
               ("paper-ratio-second-full", "paper-ratio-second-full-s1", "paper-decay-second-full"),
               ("zero-from0-second-full",)),
)

HYPOTHESIS_READOUTS = {"lens": ("bridge_found_at_best", "chance_bridge_found"),  # OOD, at the best OOD evaluation
                       "probe": ("bridge_probe_at_best", "chance_bridge_probe"),
                       "patching": ("bridge_used_at_best", "chance_bridge_used")}


def _pretrain_measured(name: str, r: pd.Series) -> str:
    """One search row in words: best OOD exact match, each readout there beside its chance level, fake-grokking
    evaluations."""
    text = f"{name}: best OOD exact match {r.max_ood_exact_match:.2f}"
    if pd.isna(r.get("T_fit")):
        text += f" (never fitted: training accuracy {r.final_train_accuracy:.2f})"
    readouts = [f"{label} {r[v]:.2f}" + (f" (chance {r[c]:.2f})" if pd.notna(r.get(c)) else "")
                for label, (v, c) in HYPOTHESIS_READOUTS.items() if pd.notna(r.get(v))]
    label = {v.removesuffix("_at_best"): k for k, (v, _) in HYPOTHESIS_READOUTS.items()}.get(r.bridge_metric,
                                                                                            r.bridge_metric)
    if readouts:
        text += ", with " + ", ".join(readouts)
    elif pd.notna(r.get("final_ood_bridge_found")):  # a row logged before the readouts: its own bridge rule, final
        text += f", final {label} {r.final_ood_bridge_found:.2f}"
    if pd.notna(r.get("fake_evaluations")):
        text += f"; fake grokking by {label} at {int(r.fake_evaluations)} evaluations"
    return text


def _finetune_measured(name: str, r: pd.Series, criterion: str) -> str:
    """One finetuning row in words: the numbers its criterion is decided on."""
    return f"{name}: " + ", ".join(f"{label} {r[col]:.2f}" for label, col, _ in CRITERIA[criterion].quantities)


def measured_text(h: Hypothesis, table: pd.DataFrame) -> str:
    """What the runs of `h` measured, then those it is read beside; "not run" when none is committed."""
    def say(rows: pd.DataFrame) -> str:
        return "; ".join(_finetune_measured(n, r, h.criterion) if h.finetune else _pretrain_measured(n, r)
                         for n, r in rows.iterrows())
    tested, beside = h.rows(table), h.rows(table, h.against)
    if tested.empty:
        return "not run"
    return say(tested) + (f". Beside {say(beside)}" if len(beside) else "")


def hypothesis_table(search: pd.DataFrame, finetune_search: pd.DataFrame,
                     hypotheses: tuple[Hypothesis, ...] = HYPOTHESES) -> pd.DataFrame:
    """One row per hypothesis: its question, its runs (and those read beside them), what they measured and the
    verdict of its criterion on them ("supported", "not supported", "not run")."""
    rows = []
    for h in hypotheses:
        table = finetune_search if h.finetune else search
        runs = ", ".join(h.runs) or "no candidate yet"
        rows.append({"hypothesis": h.name, "question": h.question,
                     "runs": runs + (f" (beside {', '.join(h.against)})" if h.against else ""),
                     "measured": measured_text(h, table), "verdict": h.verdict(table)})
    return pd.DataFrame(rows, columns=["hypothesis", "question", "runs", "measured", "verdict"])


def verdicts_text(table: pd.DataFrame) -> str:
    """`hypothesis_table`'s verdicts grouped: "supported: H4; not supported: H1, H2, H3 and H5"."""
    groups = table.groupby("verdict", sort=False).hypothesis.apply(list)
    return "; ".join(f"{verdict}: {and_join(names)}" for verdict, names in groups.items()) or \
        "no hypothesis is registered"
