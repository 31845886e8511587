"""Plot functions of the claim chapters 2-3: path maps, patching profiles, curves with per-regime milestones."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import grokcircuit as gc  # noqa: E402
from grokcircuit import plots  # noqa: E402

STAGES = ["embed", "loop0_block0", "loop0_block1"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def path_map(scale: float) -> pd.DataFrame:
    """3 stages x 3 positions with rate = scale * (stage index + position) / 4."""
    return pd.DataFrame([{"stage": s, "position": p, "rate": scale * (i + p) / 4}
                         for i, s in enumerate(STAGES) for p in range(3)])


def images(fig: Figure) -> dict:
    return {im.get_gid(): im for ax in fig.axes for im in ax.get_images() if im.get_gid()}


def test_path_maps_show_each_cell_on_one_shared_scale():
    fig = plots.plot_path_maps({"natural": path_map(1.0), "both hop full": path_map(0.5)},
                               positions=["h", "r1", "r2"])
    assert isinstance(fig, Figure)
    got = images(fig)
    assert set(got) == {"map:natural", "map:both hop full"}
    np.testing.assert_allclose(got["map:natural"].get_array(), np.add.outer(np.arange(3), np.arange(3)) / 4)
    np.testing.assert_allclose(got["map:both hop full"].get_array(), np.add.outer(np.arange(3), np.arange(3)) / 8)
    assert {im.get_clim() for im in got.values()} == {(0.0, 1.0)}  # shared: the largest rate of all maps
    ax = got["map:natural"].axes
    assert [t.get_text() for t in ax.get_yticklabels()] == STAGES
    assert [t.get_text() for t in ax.get_xticklabels()] == ["h", "r1", "r2"]


def test_path_maps_keep_the_stage_order_and_a_given_scale():
    shuffled = path_map(1.0).iloc[::-1]  # last stage first: that order is kept, not sorted
    fig = plots.plot_path_maps({"a": shuffled}, vmax=2.0)
    im = images(fig)["map:a"]
    assert [t.get_text() for t in im.axes.get_yticklabels()] == STAGES[::-1]
    assert im.get_clim() == (0.0, 2.0)


def test_path_maps_reject_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        plots.plot_path_maps({})
    with pytest.raises(ValueError, match="rate"):
        plots.plot_path_maps({"a": path_map(1.0).drop(columns="rate")})


def profile_frame() -> pd.DataFrame:
    rows = []
    for queries in ("OOD", "ID"):
        for model, base in (("natural", 0.8), ("second hop full", 0.1)):
            for i, stage in enumerate(STAGES):
                rows.append({"stage": stage, "followed": base / (i + 1), "kept": 1 - base / (i + 1),
                             "model": model, "queries": queries})
    return pd.DataFrame(rows)


def test_patch_profiles_draw_followed_and_kept_per_model_and_panel():
    frame = profile_frame()
    fig = plots.plot_patch_profiles(frame)
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid()}
    assert len(lines) == 2 * 2 * 2
    np.testing.assert_allclose(lines["patch:OOD/natural/followed"].get_ydata(), [0.8, 0.4, 0.8 / 3])
    np.testing.assert_allclose(lines["patch:ID/second hop full/kept"].get_ydata(), [0.9, 0.95, 1 - 0.1 / 3])
    assert lines["patch:OOD/natural/kept"].get_linestyle() == "--"
    assert [ax.get_title() for ax in fig.axes] == ["OOD", "ID"]


def test_patch_profiles_without_panels_and_bad_input():
    frame = profile_frame()
    fig = plots.plot_patch_profiles(frame[frame.queries == "ID"].drop(columns="queries"))
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="followed"):
        plots.plot_patch_profiles(frame.drop(columns="followed"))


def curves_frame() -> pd.DataFrame:
    rows = [{"step": step, "split": "train", "metric": "accuracy", "value": step / 300, "seed": 0, "regime": r}
            for r in ("natural", "both_hop_full") for step in (0, 100, 200, 300)]
    return pd.DataFrame(rows)


def test_regime_curves_mark_each_panel_with_its_own_milestones():
    fig = plots.plot_regime_curves(curves_frame(), [("train", "accuracy")],
                                   milestones={"natural": {"T_fit": 100, "T_ood": None},
                                               "both_hop_full": {"T_fit": 200}})
    marks = {ln.get_gid(): (ax.get_title(), ln.get_xdata()[0]) for ax in fig.axes for ln in ax.get_lines()
             if (ln.get_gid() or "").startswith("milestone:")}
    assert marks == {"milestone:natural:T_fit": ("Natural", 100), "milestone:both_hop_full:T_fit": ("Both hop full", 200)}
    with pytest.raises(ValueError, match="no panel"):
        plots.plot_regime_curves(curves_frame(), [("train", "accuracy")], milestones={"second_hop_full": {"T": 1}})


def test_regime_curves_label_milestones_at_the_same_step_once():
    fig = plots.plot_regime_curves(curves_frame(), [("train", "accuracy")],
                                   milestones={"both_hop_full": {"T_fit": 200, "T_bridge": 100, "T_ood": 100}})
    ax = next(ax for ax in fig.axes if ax.get_title() == "Both hop full")
    assert sorted(t.get_text() for t in ax.texts) == ["T_bridge = T_ood", "T_fit"]
    assert sum((ln.get_gid() or "").startswith("milestone:") for ln in ax.get_lines()) == 3


def test_paper_vs_ours_scales_each_regime_by_its_own_fit_and_skips_regimes_that_never_fit():
    steps = [0, 500, 1000, 1500]
    metrics = pd.DataFrame([(s, split, metric, 0.5, regime, 0, "r")
                            for regime in ("natural", "second_hop_full") for s in steps
                            for split, metric in (("train", "accuracy"), ("test_inferred_ood", "target_found"),
                                                  ("test_inferred_ood", "bridge_used"))],
                           columns=["step", "split", "metric", "value", "regime", "seed", "run_id"])
    summary = pd.DataFrame({"finding": ["1", "2"], "regime": ["natural", "second_hop_full"], "seed": [0, 0],
                            "T_fit": [500.0, float("nan")], "T_bridge": [None, None], "T_ood": [None, None]})
    curves = gc.claims.paper_vs_ours(metrics, summary, ["natural", "second_hop_full"], "bridge_used")
    ours = curves[curves.source == "ours"]
    assert set(ours.regime) == {"natural"} and ours.x.max() == 3.0  # 1,500 / T_fit 500
    assert set(ours.quantity) == {"train_accuracy", "ood_answer", "bridge_found"}
    assert ours.label.str.contains("bridge used").any()
    paper_natural = curves[(curves.source == "paper") & (curves.regime == "natural")]
    assert paper_natural.x.min() == pytest.approx(50_000 / gc.paper.FIGURE2.set_index("regime").T_fit["natural"])
    assert set(curves[curves.source == "paper"].regime) == {"natural", "second_hop_full"}

    fig = plots.plot_paper_vs_ours(curves, xmax=12)
    gids = {line.get_gid() for ax in fig.axes for line in ax.lines}
    assert "curve:natural:ours/bridge_found" in gids and "curve:second_hop_full:paper/ood_answer" in gids
    assert "curve:second_hop_full:ours/bridge_found" not in gids
    assert all(ax.get_xlabel() == "step / T_fit" for ax in fig.axes[:2])
    with pytest.raises(ValueError, match="no curves"):
        plots.plot_paper_vs_ours(curves.iloc[:0])
