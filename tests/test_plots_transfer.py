"""Plots of chapters 4-5: the finetuning grid (Figure 4), its summary bars (Figure 3) and milestone costs."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from grokcircuit import plots  # noqa: E402

BASES = ("natural", "second_hop_full", "control")
CATS = ("new_old", "old_new", "new_new")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def finetune_frame(seeds: int = 2) -> pd.DataFrame:
    rows = []
    for b, base in enumerate(BASES):
        for seed in range(seeds):
            for step in (0, 50, 100):
                rows.append((step, "atomic_new", "exact_match", step / 100, base, seed))
                for c, cat in enumerate(CATS):
                    for metric in ("exact_match", "bridge_found", "bridge@embed"):
                        rows.append((step, cat, metric, (b + c + seed) / 10 * step / 100, base, seed))
    return pd.DataFrame(rows, columns=["step", "split", "metric", "value", "base", "seed"])


def lines_by_gid(fig: Figure) -> dict[str, object]:
    return {line.get_gid(): line for ax in fig.axes for line in ax.get_lines() if line.get_gid()}


def test_transfer_grid_has_one_panel_per_base_in_two_columns():
    fig = plots.plot_transfer_grid(finetune_frame())
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["Natural", "Second hop full", "Control (from scratch)"]
    assert max(ax.get_subplotspec().colspan.stop for ax in fig.axes) == plots.NCOLS
    assert [ax.get_ylabel() for ax in fig.axes] == ["value", "", "value"]  # the first panel of each row
    assert len(lines_by_gid(fig)) == len(BASES) * (1 + 2 * len(CATS)) + 1  # and the chance line, in each panel
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 1 + 2 * len(CATS) + 1


def test_transfer_grid_draws_the_untrained_controls_bridge_rate_as_chance():
    frame = finetune_frame()
    at_zero = (frame.base == "control") & (frame.step == 0) & (frame.metric == "bridge_found")
    frame.loc[at_zero, "value"] = np.where(frame.loc[at_zero, "split"] == "old_new", 0.06, 0.02)
    lines = [line for ax in plots.plot_transfer_grid(frame).axes for line in ax.get_lines()
             if line.get_gid() == "chance:bridge_found"]
    assert len(lines) == len(BASES) and all(line.get_ydata()[0] == pytest.approx(0.06) for line in lines)
    no_control = plots.plot_transfer_grid(frame[frame.base != "control"])
    assert "chance:bridge_found" not in lines_by_gid(no_control)


def test_transfer_grid_plots_the_seed_mean_of_the_right_split():
    fig = plots.plot_transfer_grid(finetune_frame(seeds=2))
    line = lines_by_gid(fig)["second_hop_full:old_new:old_new/exact_match"]
    # base 1, category 1: seeds 0 and 1 give (2/10, 3/10) * step/100; the mean at step 100 is 0.25
    np.testing.assert_allclose(line.get_ydata(), [0.0, 0.125, 0.25])
    assert lines_by_gid(fig)["second_hop_full:old_new:old_new/bridge_found"].get_linestyle() == "--"
    new_fact = lines_by_gid(fig)["natural:new:atomic_new/exact_match"]
    np.testing.assert_allclose(new_fact.get_ydata(), [0.0, 0.5, 1.0])


def test_transfer_grid_rejects_missing_rows():
    frame = finetune_frame()
    with pytest.raises(ValueError, match="no rows"):
        plots.plot_transfer_grid(frame[frame.split != "old_new"])
    with pytest.raises(ValueError, match="base"):
        plots.plot_transfer_grid(frame.drop(columns="base"))


def summary_frame() -> pd.DataFrame:
    return pd.DataFrame([{"base": b, "category": c, "metric": m, "seed": s, "value": 0.1 * (i + j) + 0.05 * s}
                         for i, b in enumerate(BASES) for j, c in enumerate(CATS)
                         for m in ("exact_match", "bridge_found") for s in range(2)])


def test_transfer_summary_bars_are_seed_means():
    fig = plots.plot_transfer_summary(summary_frame())
    assert len(fig.axes) == 2
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches if p.get_height() > 0)
    expected = sorted(round(0.1 * (i + j) + 0.025, 6) for i in range(3) for j in range(3))
    assert heights == expected
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["new + old", "old + new", "new + new"]


def test_transfer_summary_rejects_a_missing_metric():
    frame = summary_frame()
    with pytest.raises(ValueError, match="bridge_found"):
        plots.plot_transfer_summary(frame[frame.metric == "exact_match"])


def cost_frame() -> pd.DataFrame:
    return pd.DataFrame([
        {"source": "ours", "regime": "natural", "milestone": "T_fit", "flops": 1e12},
        {"source": "ours", "regime": "natural", "milestone": "T_ood", "flops": np.nan},
        {"source": "ours", "regime": "both_hop_full", "milestone": "T_fit", "flops": 2e12},
        {"source": "ours", "regime": "both_hop_full", "milestone": "T_ood", "flops": 3e12},
        {"source": "paper", "regime": "natural", "milestone": "T_fit", "flops": 1e18},
        {"source": "paper", "regime": "natural", "milestone": "T_ood", "flops": 4e18},
        {"source": "paper", "regime": "both_hop_full", "milestone": "T_fit", "flops": 5e17},
        {"source": "paper", "regime": "both_hop_full", "milestone": "T_ood", "flops": 3e17},
    ])


def test_milestone_costs_log_bars_and_unreached_marks():
    fig = plots.plot_milestone_costs(cost_frame())
    assert [ax.get_title() for ax in fig.axes] == ["ours", "paper"]
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    heights = sorted(p.get_height() for p in fig.axes[1].patches)
    assert heights == [3e17, 5e17, 1e18, 4e18]
    marks = [t.get_gid() for ax in fig.axes for t in ax.texts if t.get_gid()]
    assert marks == ["unreached:natural:T_ood"]


def test_milestone_costs_rejects_a_missing_value_column():
    with pytest.raises(ValueError, match="flops"):
        plots.plot_milestone_costs(cost_frame().drop(columns="flops"))


def test_milestone_costs_with_nothing_reached_draws_only_marks(recwarn):
    frame = cost_frame().assign(flops=np.nan)
    fig = plots.plot_milestone_costs(frame[frame.source == "ours"])
    assert all(p.get_height() == 0 for p in fig.axes[0].patches)
    assert len([t for t in fig.axes[0].texts if t.get_gid()]) == 4
    assert not [w for w in recwarn if "log-scaled" in str(w.message)]


def test_plot_benchmark_bars_and_errors():
    from grokcircuit.plots import plot_benchmark

    frame = pd.DataFrame({"config": ["ci", "cpu", "paper"], "samples_per_s": [3000.0, 1500.0, 0.5],
                          "mfu": [0.3, 0.7, 0.6]})
    fig = plot_benchmark(frame)
    samples = [p for p in fig.axes[0].patches]
    assert [round(p.get_width(), 1) for p in samples] == [3000.0, 1500.0, 0.5]
    assert fig.axes[0].get_xscale() == "log"
    assert [round(p.get_width(), 2) for p in fig.axes[1].patches] == [0.3, 0.7, 0.6]
    with pytest.raises(ValueError, match="mfu"):
        plot_benchmark(frame.drop(columns="mfu"))


def test_plot_search_panels_and_curves():
    from grokcircuit.plots import plot_search

    rows = []
    for name, metrics in (("a", ["accuracy", "exact_match", "bridge_found", "bridge_found_intermediate"]),
                          ("b", ["accuracy", "exact_match", "bridge_found"])):
        for step in (0, 500, 1000):
            rows += [{"name": name, "step": step, "split": "train" if m == "accuracy" else "test_inferred_ood",
                      "metric": m, "value": step / 1000} for m in metrics]
    fig = plot_search(pd.DataFrame(rows), ncols=3)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["a", "b"]
    gids = [[line.get_gid() for line in ax.lines] for ax in visible]
    assert len(gids[0]) == 4 and len(gids[1]) == 3
    assert "curve:a:test_inferred_ood/bridge_found_intermediate" in gids[0]
    with pytest.raises(ValueError, match="name"):
        plot_search(pd.DataFrame(rows).drop(columns="name"))
