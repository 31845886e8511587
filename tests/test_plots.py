"""Plot functions: each returns a Figure with the expected artists and rejects malformed frames."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import ast  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch  # noqa: E402

from grokcircuit import plots  # noqa: E402
from grokcircuit.config import REGIMES  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def facts_frame() -> pd.DataFrame:
    # 4 entities: a chain 0 -r0-> 1 -r1-> 2, an OOD fact, a self-loop and two parallel facts 3 -> 0
    return pd.DataFrame({"h": [0, 1, 2, 3, 3, 2], "r": [0, 1, 0, 0, 1, 2], "t": [1, 2, 3, 0, 0, 2],
                         "ood": [False, False, True, False, False, False]})


def regime_frame(hops: int = 2) -> pd.DataFrame:
    return pd.DataFrame([{"regime": g, "hop": f"hop {k}", "items": 10 * (i + k)}
                         for i, g in enumerate(REGIMES) for k in range(1, hops + 1)])


def metrics_frame(seeds: int = 3, regimes: tuple[str, ...] | None = None) -> pd.DataFrame:
    rows = []
    for regime in regimes or (None,):
        for seed in range(seeds):
            for step in (0, 100, 200, 300):
                for split, metric in [("train", "accuracy"), ("test_inferred_ood", "exact_match"),
                                      ("train", "loss")]:
                    row = {"step": step, "split": split, "metric": metric, "value": step / 300 * (0.9 + 0.05 * seed),
                           "seed": seed}
                    if regime is not None:
                        row["regime"] = regime
                    rows.append(row)
    return pd.DataFrame(rows)


def test_module_does_not_import_torch():
    tree = ast.parse(Path(plots.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "torch" not in imported


def test_set_style_runs():
    plots.set_style()
    assert plt.rcParams["axes.spines.top"] is False


def test_graph_example_draws_every_fact_and_entity():
    facts = facts_frame()
    fig = plots.plot_graph_example(facts, path=(0, 0, 1, 1, 2), entities=5)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    nodes = [p for p in ax.patches if isinstance(p, Circle)]
    assert len(arrows) == len(facts)
    assert len(nodes) == 5
    dashed = [a for a in arrows if a.get_linestyle() not in ("-", "solid")]
    assert len(dashed) == int(facts["ood"].sum())
    texts = {t.get_text() for t in ax.texts}
    assert {"e0", "e4", "r0", "r1", "r2", "h", "b", "t"} <= texts
    assert len(ax.get_legend().get_texts()) == 3


def test_graph_example_without_path_has_no_roles():
    fig = plots.plot_graph_example(facts_frame())
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "h" not in texts and len(fig.axes[0].get_legend().get_texts()) == 2


def test_graph_example_rejects_bad_input():
    with pytest.raises(ValueError, match=r"missing column\(s\) \['ood'\]"):
        plots.plot_graph_example(facts_frame().drop(columns="ood"))
    with pytest.raises(ValueError, match="path must be"):
        plots.plot_graph_example(facts_frame(), path=(0, 0, 1))


def test_regime_counts_one_bar_per_regime_and_hop():
    frame = regime_frame()
    fig = plots.plot_regime_counts(frame)
    (ax,) = fig.axes
    assert sum(len(c) for c in ax.containers) == len(REGIMES) * 2
    heights = sorted(b.get_height() for c in ax.containers for b in c)
    assert heights == sorted(frame["items"])
    assert [t.get_text() for t in ax.get_xticklabels()] == [plots.REGIME_LABELS[g] for g in REGIMES]


def test_regime_counts_rejects_missing_column():
    with pytest.raises(ValueError, match=r"plot_regime_counts: missing column\(s\) \['hop'\]"):
        plots.plot_regime_counts(regime_frame().drop(columns="hop"))
    with pytest.raises(ValueError, match="expected a pandas DataFrame"):
        plots.plot_regime_counts({"regime": ["natural"], "hop": [1], "items": [0]})


def test_split_sizes_one_bar_per_row():
    frame = pd.DataFrame({"split": ["train", "id_atomic", "ood_atomic"], "items": [3300, 300, 60],
                          "group": ["training set", "probe", "probe"]})
    fig = plots.plot_split_sizes(frame)
    (ax,) = fig.axes
    assert len(ax.patches) == 3
    assert ax.get_xscale() == "log"
    top = max(ax.get_yticklabels(), key=lambda t: t.get_position()[1])
    assert top.get_text() == "train"  # the first row is drawn on top
    assert len(ax.get_legend().get_texts()) == 2
    with pytest.raises(ValueError, match=r"missing column\(s\) \['items'\]"):
        plots.plot_split_sizes(frame.drop(columns="items"))


def curves(ax) -> list:
    return [line for line in ax.lines if (line.get_gid() or "").startswith("curve:")]


def milestones(ax) -> list:
    return [line for line in ax.lines if (line.get_gid() or "").startswith("milestone:")]


def test_curves_one_line_per_metric_with_band_and_milestones():
    wanted = [("train", "accuracy"), ("test_inferred_ood", "exact_match")]
    fig = plots.plot_curves(metrics_frame(), wanted, milestones={"train fit": 100, "grokked": 300})
    (ax,) = fig.axes
    assert len(curves(ax)) == len(wanted)
    assert len(ax.collections) == len(wanted)  # one min-max band per curve
    assert {m.get_gid() for m in milestones(ax)} == {"milestone:train fit", "milestone:grokked"}
    assert ax.get_ylim() == (0.0, 1.05)
    mean = curves(ax)[0].get_ydata()
    np.testing.assert_allclose(mean[-1], np.mean([0.9, 0.95, 1.0]))


def test_curves_single_seed_has_no_band():
    fig = plots.plot_curves(metrics_frame(seeds=1).drop(columns="seed"), [("train", "accuracy")])
    assert len(curves(fig.axes[0])) == 1 and len(fig.axes[0].collections) == 0


def test_curves_one_panel_per_regime():
    regimes = ("second_hop_full", "natural")
    fig = plots.plot_curves(metrics_frame(seeds=2, regimes=regimes), [("train", "accuracy")], milestones={"x": 200})
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["Natural", "Second hop full"]  # in REGIMES order
    assert all(len(curves(ax)) == 1 and len(milestones(ax)) == 1 for ax in fig.axes)


def test_curves_reject_bad_input():
    frame = metrics_frame()
    with pytest.raises(ValueError, match=r"plot_curves: missing column\(s\) \['value'\]"):
        plots.plot_curves(frame.drop(columns="value"), [("train", "accuracy")])
    with pytest.raises(ValueError, match="no rows for"):
        plots.plot_curves(frame, [("train", "exact_match")])
    with pytest.raises(ValueError, match="metrics_to_plot is empty"):
        plots.plot_curves(frame, [])


def test_curves_of_many_regimes_form_a_two_column_grid_with_one_legend_below():
    fig = plots.plot_curves(metrics_frame(seeds=1, regimes=REGIMES), [("train", "accuracy")])
    assert len(fig.axes) == len(REGIMES)  # the unused cell of the last row is removed
    assert {ax.get_subplotspec().colspan.stop for ax in fig.axes} == {1, plots.NCOLS}
    width, _ = fig.get_size_inches()
    assert width == pytest.approx(plots.NCOLS * plots.PANEL[0])
    assert [ax.get_ylabel() for ax in fig.axes] == ["value", ""] * 2 + ["value"]
    assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes)


def test_curves_draw_the_chance_level_of_a_readout_at_its_step_0_mean():
    frame = metrics_frame(seeds=2)
    frame.loc[frame.step == 0, "value"] = np.where(frame.loc[frame.step == 0, "seed"] == 0, 0.1, 0.3)
    wanted = [("train", "accuracy"), ("test_inferred_ood", "exact_match")]
    fig = plots.plot_curves(frame, wanted, chance=[("test_inferred_ood", "exact_match")])
    (ax,) = fig.axes
    (line,) = [ln for ln in ax.lines if (ln.get_gid() or "").startswith("chance:")]
    assert line.get_gid() == "chance:test_inferred_ood/exact_match"
    np.testing.assert_allclose(line.get_ydata(), [0.2, 0.2])
    assert line.get_color() == curves(ax)[1].get_color() and line.get_linestyle() == "--"
    without_step_0 = plots.plot_curves(frame[frame.step > 0], wanted, chance=wanted)
    assert not [ln for ln in without_step_0.axes[0].lines if (ln.get_gid() or "").startswith("chance:")]


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_grids_never_exceed_the_column_limit(n):
    maps = {f"m{i}": pd.DataFrame({"stage": ["a", "a", "b", "b"], "position": [0, 1, 0, 1], "rate": [0.1] * 4})
            for i in range(n)}
    fig = plots.plot_path_maps(maps, ncols=4)
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert len(panels) == n
    assert max(ax.get_subplotspec().colspan.stop for ax in panels) == min(n, plots.NCOLS)


def paper_vs_ours_frame() -> pd.DataFrame:
    return pd.DataFrame([(regime, source, "bridge_found", x, 0.5, 0) for regime in ("natural", "second_hop_full")
                         for source in ("paper", "ours") for x in (0.5, 1.0, 2.0)],
                        columns=["regime", "source", "quantity", "x", "value", "seed"])


def chance_lines(fig: Figure) -> dict[str, tuple[float, str]]:
    """gid -> (height, legend label) of every chance line of a figure."""
    return {ln.get_gid(): (ln.get_ydata()[0], ln.get_label()) for ax in fig.axes for ln in ax.get_lines()
            if (ln.get_gid() or "").startswith("chance:")}


def test_paper_vs_ours_draws_the_chance_level_per_panel():
    lines = chance_lines(plots.plot_paper_vs_ours(paper_vs_ours_frame(), chance=0.06))
    assert lines == {f"chance:{r}": (0.06, "chance (untrained)") for r in ("natural", "second_hop_full")}
    fig = plots.plot_paper_vs_ours(paper_vs_ours_frame(), chance={"second_hop_full": 0.2, "natural": float("nan")})
    assert chance_lines(fig) == {"chance:second_hop_full": (0.2, "chance (untrained)")}
    assert "chance (untrained)" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert not chance_lines(plots.plot_paper_vs_ours(paper_vs_ours_frame()))
    line = next(ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "chance:second_hop_full")
    assert line.get_linestyle() == "--"


def test_patch_profiles_label_what_was_patched():
    frame = pd.DataFrame({"stage": ["embed", "loop0_block0"], "followed": [0.1, 0.8], "kept": [0.9, 0.1],
                          "model": "natural"})
    assert plots.plot_patch_profiles(frame).axes[0].get_xlabel() == "patched stage (r1 slot)"
    fig = plots.plot_patch_profiles(frame, xlabel="patched stage (h and r1 slots)")
    assert fig.axes[0].get_xlabel() == "patched stage (h and r1 slots)"


def test_patch_profiles_draw_the_untrained_model_in_grey():
    frame = pd.DataFrame({"stage": ["embed", "loop0_block0"] * 2, "followed": [0.1, 0.8, 0.0, 0.02],
                          "kept": [0.9, 0.1, 0.3, 0.3], "model": ["natural"] * 2 + [plots.CHANCE_MODEL] * 2})
    lines = {line.get_gid(): line for line in plots.plot_patch_profiles(frame, panel=None).axes[0].lines}
    assert lines[f"patch:None/{plots.CHANCE_MODEL}/followed"].get_color() == "0.5"
    assert lines["patch:None/natural/followed"].get_color() != "0.5"
