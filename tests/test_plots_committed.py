"""Plots of committed runs: the plot of the selected rows, or a note naming the runs that are missing."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from grokcircuit import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def metrics() -> pd.DataFrame:
    return pd.DataFrame([{"step": step, "split": "train", "metric": "accuracy", "value": step / 200, "seed": 0,
                          "regime": regime} for regime in ("natural", "second_hop_full") for step in (0, 100, 200)])


def note_text(fig) -> str:
    return next(t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == "note")


def test_plot_note_states_the_note_without_markup():
    fig = plots.plot_note("No run of both hop full yet: `grokcircuit reproduce --preset cpu` trains it.")
    assert " ".join(note_text(fig).split()) == "No run of both hop full yet: grokcircuit reproduce --preset cpu trains it."
    assert not fig.axes[0].axison and not fig.axes[0].get_lines()


def test_plot_or_note_plots_only_the_selected_rows():
    seen = []

    def plot(rows: pd.DataFrame):
        seen.append(rows)
        return plots.plot_regime_curves(rows, [("train", "accuracy")], milestones={"natural": {"T_fit": 100}})

    fig = plots.plot_or_note(metrics(), plot, "unused", regime=["natural", "both_hop_full"])
    assert set(seen[0].regime) == {"natural"} and len(seen[0]) == 3
    assert [ax.get_title() for ax in fig.axes] == ["Natural"]
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "curve:train/accuracy")
    assert list(line.get_ydata()) == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("frame, selection", [(metrics(), {"regime": ["both_hop_full"]}),
                                              (pd.DataFrame(), {"regime": ["natural"]}),
                                              (metrics().iloc[:0], {})])
def test_plot_or_note_falls_back_to_the_note(frame, selection):
    fig = plots.plot_or_note(frame, lambda rows: pytest.fail("plotted no rows"), "runs missing", **selection)
    assert note_text(fig) == "runs missing"
