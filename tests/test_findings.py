"""The claim checks (`findings.summarize_pretrain`, `summarize_finetune`) on hand-made curves whose verdict is known."""
from __future__ import annotations

import pandas as pd

from grokcircuit import findings as F

STEPS = list(range(0, 11_000, 1000))
BRIDGE = "bridge_found"


def rising(at: int | None, low: float = 0.0, high: float = 1.0) -> list[float]:
    """`low` before step `at`, `high` from it on (never, when `at` is None)."""
    return [high if at is not None and step >= at else low for step in STEPS]


def curves(**series: list[float]) -> pd.DataFrame:
    """A tidy metrics frame from `split__metric=[value per step]`."""
    rows = [(step, *name.split("__"), value) for name, values in series.items() for step, value in zip(STEPS, values)]
    return pd.DataFrame(rows, columns=["step", "split", "metric", "value"])


def pretrain(regime: str, fit: int | None, bridge: list[float], ood: list[float]) -> dict:
    metrics = curves(train__accuracy=rising(fit), test_inferred_ood__exact_match=ood,
                     **{f"test_inferred_ood__{BRIDGE}": bridge})
    return F.summarize_pretrain(metrics, regime, bridge=BRIDGE)


def test_natural_grokking_in_order_and_late():
    row = pretrain("natural", fit=2000, bridge=rising(3000), ood=rising(2000 * F.DELAY))
    assert (row["T_fit"], row["T_bridge"], row["T_ood"]) == (2000, 3000, 2000 * F.DELAY)
    assert row["holds_grokking_order"] is True and row["holds_grokking_delay"] is True


def test_natural_grokking_too_early_or_never():
    early = pretrain("natural", fit=2000, bridge=rising(3000), ood=rising(4000))
    assert early["holds_grokking_order"] is True and early["holds_grokking_delay"] is False
    never = pretrain("natural", fit=2000, bridge=rising(3000), ood=rising(None))
    assert never["T_ood"] is None
    assert never["holds_grokking_order"] is False and never["holds_grokking_delay"] is False
    bridge_last = pretrain("natural", fit=2000, bridge=rising(9000), ood=rising(8000))
    assert bridge_last["holds_grokking_order"] is False


def test_both_hop_full_answers_without_waiting():
    fast = pretrain("both_hop_full", fit=2000, bridge=rising(2000), ood=rising(3000))
    assert fast["holds_no_wait"] is True and fast["holds_bridge_at_end"] is True
    slow = pretrain("both_hop_full", fit=2000, bridge=rising(None), ood=rising(int(2000 * F.NO_WAIT_BY) + 1000))
    assert slow["holds_no_wait"] is False and slow["holds_bridge_at_end"] is False
    assert "holds_grokking_order" not in fast  # a criterion applies only to its regimes


def test_fake_grokking_needs_answers_without_the_bridge_but_above_chance():
    chance = 0.05
    between = chance + F.CHANCE_MARGIN + 0.05
    assert between <= F.FAKE_BRIDGE
    fake = pretrain("second_hop_full", fit=2000, bridge=rising(1000, chance, between), ood=rising(4000))
    assert fake["holds_fake_grokking"] is True and fake["fake_evaluations"] == len(STEPS) - 4
    at_chance = pretrain("second_hop_full", fit=2000, bridge=rising(None, chance), ood=rising(4000))
    assert at_chance["holds_fake_grokking"] is False
    with_bridge = pretrain("second_hop_full", fit=2000, bridge=rising(1000, chance), ood=rising(4000))
    assert with_bridge["holds_fake_grokking"] is False
    no_answers = pretrain("second_hop_full", fit=2000, bridge=rising(1000, chance, between), ood=rising(None))
    assert no_answers["holds_fake_grokking"] is False


def finetune(base: str, new: float, new_old: float, old_new: float, old_new_bridge: float) -> dict:
    metrics = curves(atomic_new__exact_match=rising(1000, high=new), new_old__exact_match=rising(1000, high=new_old),
                     old_new__exact_match=rising(1000, high=old_new), new_new__exact_match=rising(None),
                     **{f"new_old__{BRIDGE}": rising(1000), f"old_new__{BRIDGE}": rising(1000, high=old_new_bridge),
                        f"new_new__{BRIDGE}": rising(None)})
    return F.summarize_finetune(metrics, base, bridge=BRIDGE)


def test_a_circuit_base_composes_new_old_but_not_old_new():
    row = finetune("natural", new=1.0, new_old=0.95, old_new=0.05, old_new_bridge=0.95)
    assert row["holds_new_facts_learned"] is True and row["holds_new_old_composes"] is True
    assert row["holds_old_new_fails_with_bridge"] is True
    worse = finetune("natural", new=0.5, new_old=0.5, old_new=0.5, old_new_bridge=0.0)
    assert not any(worse[k] for k in ("holds_new_facts_learned", "holds_new_old_composes",
                                      "holds_old_new_fails_with_bridge"))


def test_the_control_is_judged_on_new_facts_only():
    row = finetune("control", new=1.0, new_old=0.0, old_new=0.0, old_new_bridge=0.0)
    assert row["holds_new_facts_learned"] is True
    assert "holds_new_old_composes" not in row and "holds_old_new_fails_with_bridge" not in row


def test_a_collapse_of_the_fit_is_measured_from_its_best():
    collapse = [0.1, 0.5, 0.95, 0.97, 0.2, 0.6, 0.99, 1.0, 1.0, 1.0, 1.0]
    assert F.fall_after_fit(curves(train__accuracy=collapse)) == 0.97 - 0.2
    assert F.fall_after_fit(curves(train__accuracy=rising(3000))) == 0.0
    assert pd.isna(F.fall_after_fit(curves(train__accuracy=rising(None))))
    assert pretrain("natural", fit=2000, bridge=rising(3000), ood=rising(6000))["train_fall_after_fit"] == 0.0
