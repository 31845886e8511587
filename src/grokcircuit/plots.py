"""Figures for the book: tidy pandas frames (or small dicts) in, matplotlib `Figure` out.

Every figure of the notebooks comes from a function here, so the chapters hold no plotting logic. The module
aggregates (mean and min-max over seeds) but computes nothing else, and never imports torch.

Entry points: `set_style`; `plot_graph_example` (a tiny knowledge graph, chapter 1), `plot_split_sizes` and
`plot_regime_counts` (dataset sizes, paper §2-4 and App. B-C); `plot_curves` (metrics over training steps).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyArrowPatch
from matplotlib.path import Path

from .config import REGIMES

REGIME_LABELS = {
    "natural": "Natural", "both_hop_full": "Both hop full", "both_hop_half": "Both hop half",
    "first_hop_full": "First hop full", "second_hop_full": "Second hop full",
}
SPLIT_LABELS = {
    "train": "train", "id_atomic": "ID atomic", "ood_atomic": "OOD atomic", "train_inferred": "train two-hop",
    "test_inferred_iid": "ID test two-hop", "test_inferred_ood": "OOD test two-hop",
}
ID_COLOR, OOD_COLOR, PATH_COLOR = "0.55", "#d62728", "#1f77b4"


def set_style() -> None:
    """The book's look: seaborn's whitegrid theme, colour-blind palette, readable sizes."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind", rc={
        "figure.figsize": (7.0, 4.0), "figure.dpi": 110, "savefig.dpi": 150, "axes.titlesize": 13,
        "axes.labelsize": 12, "legend.fontsize": 10, "axes.spines.top": False, "axes.spines.right": False,
    })


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise one clear ValueError when `frame` is not a DataFrame holding `columns`."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what}: expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; the frame has {list(frame.columns)}")


def _new_axes(ax: plt.Axes | None, figsize: tuple[float, float]) -> tuple[Figure, plt.Axes]:
    if ax is not None:
        return ax.figure, ax
    return plt.subplots(figsize=figsize, layout="constrained")


# ------------------------------------------------------------------ chapter 1: the task and its data

def plot_graph_example(facts: pd.DataFrame, path: Sequence[int] | None = None, *, entities: int | None = None,
                       ax: plt.Axes | None = None) -> Figure:
    """Draw atomic facts (columns h, r, t, ood) as labelled arrows between entities placed on a circle.

    OOD facts are red and dashed. `path = (h, r1, b, r2, t)` highlights one two-hop chain h -r1-> b -r2-> t.
    Every fact is one `FancyArrowPatch`; every entity one `Circle`.
    """
    _require(facts, ["h", "r", "t", "ood"], "plot_graph_example")
    h, r, t = (facts[c].to_numpy(int) for c in ("h", "r", "t"))
    ood = facts["ood"].to_numpy(bool)
    n = entities if entities is not None else int(max(h.max(), t.max())) + 1 if len(facts) else 0
    if path is not None and len(path) != 5:
        raise ValueError(f"plot_graph_example: path must be (h, r1, b, r2, t), got {path!r}")
    hops = set() if path is None else {(path[0], path[1], path[2]), (path[2], path[3], path[4])}
    roles = {} if path is None else {path[0]: "h", path[2]: "b", path[4]: "t"}

    fig, ax = _new_axes(ax, (6.5, 6.5))
    angle = np.pi / 2 - 2 * np.pi * np.arange(n) / max(n, 1)
    pos = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    radius = 0.1
    nodes = []
    for e in range(n):
        on_path = e in roles
        node = Circle(pos[e], radius, facecolor=PATH_COLOR if on_path else "white", edgecolor="0.2", lw=1.5,
                      zorder=3)
        ax.add_patch(node)
        nodes.append(node)
        ax.text(*pos[e], f"e{e}", ha="center", va="center", fontsize=10, zorder=4,
                color="white" if on_path else "black")
        if on_path:
            ax.text(*(pos[e] * 1.27), roles[e], ha="center", va="center", fontsize=13, fontweight="bold",
                    color=PATH_COLOR, zorder=4)

    seen: dict[tuple[int, int], int] = {}
    for hi, ri, ti, oi in zip(h, r, t, ood):
        highlighted = (hi, ri, ti) in hops
        color = PATH_COLOR if highlighted else OOD_COLOR if oi else ID_COLOR
        style = dict(arrowstyle="-|>", mutation_scale=14, color=color, lw=2.6 if highlighted else 1.3,
                     linestyle="--" if oi else "-", zorder=2)
        if hi == ti:  # a self-loop: a cubic curve leaving and re-entering the node on its outer side
            a = angle[hi]
            d = lambda da, s: pos[hi] + s * np.array([np.cos(a + da), np.sin(a + da)])  # noqa: E731
            loop = Path([d(-0.5, radius), d(-0.6, 3.2 * radius), d(0.6, 3.2 * radius), d(0.5, radius)],
                        [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4])
            arrow = FancyArrowPatch(path=loop, **style)
            label_at = d(0.0, 2.75 * radius)
        else:
            k = seen.get((hi, ti), 0)
            seen[(hi, ti)] = k + 1
            rad = 0.12 + 0.22 * k  # parallel facts h -> t fan out
            arrow = FancyArrowPatch(pos[hi], pos[ti], connectionstyle=f"arc3,rad={rad}", patchA=nodes[hi],
                                    patchB=nodes[ti], shrinkA=1, shrinkB=1, **style)
            (dx, dy) = pos[ti] - pos[hi]
            label_at = (pos[hi] + pos[ti]) / 2 + 0.5 * rad * np.array([dy, -dx])  # midpoint of the arc
        ax.add_patch(arrow)
        ax.text(*label_at, f"r{ri}", ha="center", va="center", fontsize=9, color=color, zorder=4,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))

    handles = [Line2D([], [], color=ID_COLOR, lw=1.3, label="ID fact"),
               Line2D([], [], color=OOD_COLOR, lw=1.3, ls="--", label="OOD fact")]
    if path is not None:
        handles.append(Line2D([], [], color=PATH_COLOR, lw=2.6, label="two-hop path h → b → t"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 1.0), frameon=False, fontsize=9)
    ax.set(xlim=(-1.45, 1.45), ylim=(-1.45, 1.45), aspect="equal")
    ax.axis("off")
    return fig


def plot_split_sizes(frame: pd.DataFrame, *, log: bool = True, ax: plt.Axes | None = None) -> Figure:
    """Horizontal bars of item counts (columns split, items; optional group colours the bars)."""
    _require(frame, ["split", "items"], "plot_split_sizes")
    groups = frame["group"] if "group" in frame.columns else pd.Series(["items"] * len(frame), index=frame.index)
    levels = list(dict.fromkeys(groups))
    palette = dict(zip(levels, sns.color_palette("colorblind", len(levels))))
    fig, ax = _new_axes(ax, (7.0, 0.45 * len(frame) + 1.2))
    y = np.arange(len(frame))[::-1]
    bars = ax.barh(y, frame["items"].to_numpy(), color=[palette[g] for g in groups], height=0.7)
    ax.bar_label(bars, labels=[f"{v:,}" for v in frame["items"]], padding=3, fontsize=9)
    ax.set_yticks(y, list(frame["split"]))
    if log:
        ax.set_xscale("log")
    ax.set_xlim(right=frame["items"].max() * (8 if log else 1.2))
    ax.set_xlabel("items" + (" (log scale)" if log else ""))
    if "group" in frame.columns:
        ax.legend(handles=[Line2D([], [], color=palette[g], lw=8, label=g) for g in levels], frameon=False,
                  loc="lower right")
    return fig


def plot_regime_counts(frame: pd.DataFrame, *, ax: plt.Axes | None = None) -> Figure:
    """Grouped bars: the augmented items each regime adds per hop (columns regime, hop, items)."""
    _require(frame, ["regime", "hop", "items"], "plot_regime_counts")
    order = [g for g in REGIMES if g in set(frame["regime"])] + sorted(set(frame["regime"]) - set(REGIMES))
    fig, ax = _new_axes(ax, (7.5, 4.0))
    sns.barplot(frame, x="regime", y="items", hue="hop", order=order, ax=ax, palette="colorblind",
                errorbar=None)
    for bars in ax.containers:
        ax.bar_label(bars, fmt="{:,.0f}", padding=2, fontsize=9)
    ax.set_xticks(range(len(order)), [REGIME_LABELS.get(g, g) for g in order])
    ax.set(xlabel="regime", ylabel="added two-hop training items")
    ax.margins(y=0.12)
    ax.legend(title="injected OOD hop", ncols=2, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return fig


# ------------------------------------------------------------------ later chapters: training curves

def _curve_label(split: str, metric: str) -> str:
    return f"{SPLIT_LABELS.get(split, split)}: {metric.replace('_', ' ')}"


def plot_curves(metrics: pd.DataFrame, metrics_to_plot: Sequence[tuple[str, str]], *,
                labels: Mapping[tuple[str, str], str] | None = None, milestones: Mapping[str, float] | None = None,
                xscale: str = "linear", ylim: tuple[float, float] = (0.0, 1.05), title: str | None = None) -> Figure:
    """Mean over seeds, with a min-max band, of each (split, metric) against the step.

    `metrics` has columns step, split, metric, value, and optionally seed and regime (one panel per regime).
    `milestones` maps a name to a step, drawn as a dotted vertical line (gid "milestone:<name>").
    """
    _require(metrics, ["step", "split", "metric", "value"], "plot_curves")
    wanted = [tuple(m) for m in metrics_to_plot]
    if not wanted:
        raise ValueError("plot_curves: metrics_to_plot is empty; pass (split, metric) pairs")
    have = set(zip(metrics["split"], metrics["metric"]))
    absent = [m for m in wanted if m not in have]
    if absent:
        raise ValueError(f"plot_curves: no rows for {absent}; available (split, metric): {sorted(have)}")
    regimes = [None]
    if "regime" in metrics.columns:
        present = set(metrics["regime"])
        regimes = [g for g in REGIMES if g in present] + sorted(present - set(REGIMES))
    fig, axes = plt.subplots(1, len(regimes), figsize=(4.2 * len(regimes) + 1.5, 3.8), sharey=True,
                             squeeze=False, layout="constrained")
    colors = sns.color_palette("colorblind", len(wanted))
    labels = dict(labels or {})
    for ax, regime in zip(axes[0], regimes):
        frame = metrics if regime is None else metrics[metrics["regime"] == regime]
        for color, (split, metric) in zip(colors, wanted):
            rows = frame[(frame["split"] == split) & (frame["metric"] == metric)]
            if "seed" in rows.columns:  # the seed's own mean first, so each seed weighs the same
                rows = rows.groupby(["seed", "step"], as_index=False)["value"].mean()
            stats = rows.groupby("step")["value"].agg(["mean", "min", "max"]).sort_index()
            ax.plot(stats.index, stats["mean"], color=color, lw=2, gid=f"curve:{split}/{metric}",
                    label=labels.get((split, metric), _curve_label(split, metric)))
            if "seed" in rows.columns and rows["seed"].nunique() > 1:
                ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.2, lw=0)
        for name, step in (milestones or {}).items():
            ax.axvline(step, color="0.25", ls=":", lw=1.2, gid=f"milestone:{name}")
            ax.annotate(name, (step, 1.0), xycoords=("data", "axes fraction"), rotation=90, ha="right",
                        va="top", fontsize=8, color="0.25", xytext=(-2, -2), textcoords="offset points")
        ax.set_xscale(xscale)
        ax.set(xlabel="step", ylim=ylim, title=REGIME_LABELS.get(regime, regime) if regime else title)
    axes[0, 0].set_ylabel("value")
    axes[0, -1].legend(frameon=False, fontsize=9, loc="best")
    if title and regimes != [None]:
        fig.suptitle(title)
    return fig


SEARCH_CURVES = (("train", "accuracy"), ("test_inferred_ood", "exact_match"), ("test_inferred_ood", "bridge_found"))


def plot_search(curves: pd.DataFrame, *, ncols: int = 3, per_epoch: bool = False) -> Figure:
    """One panel per searched configuration (column `name`): training accuracy, OOD exact match and
    OOD bridge found against the step (or the epoch, when `per_epoch`)."""
    _require(curves, ["name", "step", "split", "metric", "value"], "plot_search")
    names = list(dict.fromkeys(curves["name"]))
    if not names:
        raise ValueError("plot_search: no configurations to plot")
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, min(ncols, len(names)), figsize=(4.2 * min(ncols, len(names)), 3.2 * nrows),
                             sharey=True, squeeze=False, layout="constrained")
    colors = sns.color_palette("colorblind", len(SEARCH_CURVES))
    for ax, name in zip(axes.flat, names):
        frame = curves[curves["name"] == name]
        x_of = frame[frame.metric == "epoch"].set_index("step")["value"] if per_epoch else None
        for color, (split, metric) in zip(colors, SEARCH_CURVES):
            rows = frame[(frame["split"] == split) & (frame["metric"] == metric)].sort_values("step")
            x = rows["step"] if x_of is None else rows["step"].map(x_of)
            ax.plot(x, rows["value"], color=color, lw=1.8, gid=f"curve:{name}:{split}/{metric}",
                    label=_curve_label(split, metric))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch" if per_epoch else "step")
        ax.set_ylim(0, 1.05)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    axes.flat[0].set_ylabel("rate")
    axes.flat[0].legend(loc="upper left", fontsize=8)
    return fig


# ------------------------------------------------------------------ chapters 2-3: inference paths

def _stage_order(frame: pd.DataFrame) -> list:
    return list(dict.fromkeys(frame["stage"]))


def plot_path_maps(maps: Mapping[str, pd.DataFrame], *, ncols: int | None = None, vmax: float | None = None,
                   positions: Sequence[str] | None = None, what: str = "bridge") -> Figure:
    """Heatmaps (stage x position) of a top-1 rate, one panel per named map, on one shared colour scale.

    Each map has columns stage, position, rate (`grokcircuit.path_map`). The scale runs from 0 to `vmax`
    (default: the largest rate of all maps). Each image carries the gid "map:<name>"; each cell its value.
    """
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError("plot_path_maps: expected a non-empty mapping of name -> path map")
    for name, frame in maps.items():
        _require(frame, ["stage", "position", "rate"], f"plot_path_maps[{name!r}]")
    grids = {name: f.pivot_table(index="stage", columns="position", values="rate", sort=False)
             .reindex(_stage_order(f)) for name, f in maps.items()}
    top = max(float(np.nanmax(g.to_numpy())) if g.size else 0.0 for g in grids.values())
    vmax = vmax if vmax is not None else max(top, 1e-9)
    ncols = ncols or len(grids)
    nrows = -(-len(grids) // ncols)
    first = next(iter(grids.values()))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.1 * first.shape[1] * ncols + 2.6, 0.42 * first.shape[0] * nrows + 1.4),
                             squeeze=False, layout="constrained")
    for ax, (name, grid) in zip(axes.flat, grids.items()):
        image = ax.imshow(grid.to_numpy(float), cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
        image.set_gid(f"map:{name}")
        for (i, j), v in np.ndenumerate(grid.to_numpy(float)):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if v < 0.6 * vmax else "black")
        labels = positions if positions is not None else [str(p) for p in grid.columns]
        ax.set_xticks(range(grid.shape[1]), labels)
        ax.set_yticks(range(grid.shape[0]), list(grid.index))
        ax.set(title=name, xlabel="position")
        ax.grid(False)
    for ax in list(axes.flat)[len(grids):]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes, shrink=0.8, label=f"{what} top-1 rate")
    return fig


def plot_patch_profiles(frame: pd.DataFrame, *, series: str = "model", panel: str | None = "queries") -> Figure:
    """Activation patching per stage: the share of answers that follow the donor's bridge (solid) and that
    stay the same (dashed), one line per `series` value, one panel per `panel` value when that column exists.

    `frame` has columns stage, followed, kept and `series` (`grokcircuit.patch_profile` rows with labels).
    Lines carry the gid "patch:<panel>/<series>/<followed|kept>".
    """
    _require(frame, ["stage", "followed", "kept", series], "plot_patch_profiles")
    panels = list(dict.fromkeys(frame[panel])) if panel and panel in frame.columns else [None]
    names = list(dict.fromkeys(frame[series]))
    stages = _stage_order(frame)
    fig, axes = plt.subplots(1, len(panels), figsize=(0.9 * len(stages) * len(panels) + 2.5, 3.6), sharey=True,
                             squeeze=False, layout="constrained")
    colors = dict(zip(names, sns.color_palette("colorblind", len(names))))
    for ax, key in zip(axes[0], panels):
        sel = frame if key is None else frame[frame[panel] == key]
        for name in names:
            rows = sel[sel[series] == name].set_index("stage").reindex(stages)
            for what, style in (("followed", "-"), ("kept", "--")):
                ax.plot(range(len(stages)), rows[what].to_numpy(float), ls=style, marker="o", ms=4, lw=1.8,
                        color=colors[name], gid=f"patch:{key}/{name}/{what}",
                        label=f"{name}: {'follows donor' if what == 'followed' else 'answer kept'}")
        ax.set_xticks(range(len(stages)), stages, rotation=30, ha="right")
        ax.set(ylim=(0, 1.05), xlabel="patched stage (r1 slot)", title=key)
    axes[0, 0].set_ylabel("share of queries")
    axes[0, -1].legend(frameon=False, fontsize=8, loc="best", handlelength=3.5)
    return fig


def plot_regime_curves(metrics: pd.DataFrame, metrics_to_plot: Sequence[tuple[str, str]], *,
                       milestones: Mapping[str, Mapping[str, float | None]] | None = None, **kwargs) -> Figure:
    """`plot_curves` with one panel per regime, each marked with its own milestones.

    `milestones` maps a regime to {name: step}; a step of None (never reached) draws nothing. Lines carry the
    gid "milestone:<regime>:<name>".
    """
    _require(metrics, ["regime"], "plot_regime_curves")
    fig = plot_curves(metrics, metrics_to_plot, **kwargs)
    panel_of = {ax.get_title(): ax for ax in fig.axes}
    for regime, marks in (milestones or {}).items():
        ax = panel_of.get(REGIME_LABELS.get(regime, regime))
        if ax is None:
            raise ValueError(f"plot_regime_curves: no panel for regime {regime!r}")
        for name, step in marks.items():
            if step is None or pd.isna(step):
                continue
            ax.axvline(step, color="0.25", ls=":", lw=1.2, gid=f"milestone:{regime}:{name}")
            ax.annotate(name, (step, 1.0), xycoords=("data", "axes fraction"), rotation=90, ha="right",
                        va="top", fontsize=8, color="0.25", xytext=(-2, -2), textcoords="offset points")
    return fig
