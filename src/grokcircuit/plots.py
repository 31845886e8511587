"""Figures for the book: tidy pandas frames (or small dicts) in, matplotlib `Figure` out.

Every figure of the notebooks comes from a function here, so the chapters hold no plotting logic. The module
aggregates (mean and min-max over seeds) but computes nothing else, and never imports torch.

Entry points: `set_style`; `plot_graph_example` (a tiny knowledge graph, chapter 1), `plot_split_sizes` and
`plot_regime_counts` (dataset sizes, paper §2-4 and App. B-C); `plot_curves` (metrics over training steps);
`plot_or_note` (a plot of committed runs, or a note naming the missing ones).

Layout. A figure of several panels is a grid of at most `NCOLS` columns of `PANEL`-inch panels, with one legend
below it, so that at the book's width (about 740 px) each panel displays at 350 px or more.
"""
from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyArrowPatch
from matplotlib.path import Path
from matplotlib.ticker import MaxNLocator

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
CHANCE_MODEL = "untrained (chance)"  # the label of the untrained model of the same seed, drawn in grey
NCOLS, PANEL = 2, (4.4, 3.2)  # grid columns at most, and one panel's (width, height) in inches


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


def _grid(n: int, *, ncols: int = NCOLS, panel: tuple[float, float] = PANEL, **kwargs) -> tuple[Figure, list]:
    """`n` panels in rows of at most min(ncols, NCOLS), each `panel` inches; the unused cells of the last row are
    removed. Returns the figure and its axes in reading order."""
    ncols = max(1, min(ncols, NCOLS, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), squeeze=False,
                             layout="constrained", **kwargs)
    for ax in axes.flat[n:]:
        ax.remove()
    return fig, list(axes.flat[:n])


def _first_column(axes: list) -> list:
    """The axes of `axes` (a `_grid`) that start a row."""
    return [ax for ax in axes if ax.get_subplotspec().is_first_col()]


def _legend_below(fig: Figure, axes: list, title: str | None = None, **kwargs) -> None:
    """One legend for the whole figure, below the panels: each label once, in the order first drawn."""
    entries: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    fig.legend(entries.values(), entries.keys(), loc="outside lower center", ncols=min(2, len(entries)),
               frameon=False, title=title, **kwargs)


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
                chance: Sequence[tuple[str, str]] = (), xscale: str = "linear",
                ylim: tuple[float, float] = (0.0, 1.05), title: str | None = None) -> Figure:
    """Mean over seeds, with a min-max band, of each (split, metric) against the step.

    `metrics` has columns step, split, metric, value, and optionally seed and regime (one panel per regime, in a
    grid). `milestones` maps a name to a step, drawn as a dotted vertical line (gid "milestone:<name>"). Each
    (split, metric) of `chance` (a bridge readout) also gets its chance level, its mean value at step 0 (the
    untrained model), as a dashed horizontal line in its colour (gid "chance:<split>/<metric>").
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
    fig, axes = _grid(len(regimes), sharey=True)
    colors = sns.color_palette("colorblind", len(wanted))
    labels, chance = dict(labels or {}), {tuple(c) for c in chance}
    for ax, regime in zip(axes, regimes):
        frame = metrics if regime is None else metrics[metrics["regime"] == regime]
        for color, (split, metric) in zip(colors, wanted):
            rows = frame[(frame["split"] == split) & (frame["metric"] == metric)]
            stats = _seed_stats(rows)
            label = labels.get((split, metric), _curve_label(split, metric))
            ax.plot(stats.index, stats["mean"], color=color, lw=2, gid=f"curve:{split}/{metric}", label=label)
            if "seed" in rows.columns and rows["seed"].nunique() > 1:
                ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.2, lw=0)
            if (split, metric) in chance and 0 in stats.index:
                ax.axhline(stats.loc[0, "mean"], color=color, ls="--", lw=1.2, gid=f"chance:{split}/{metric}",
                           label=f"{label}: untrained model (step 0)")
        for name, step in (milestones or {}).items():
            ax.axvline(step, color="0.25", ls=":", lw=1.2, gid=f"milestone:{name}")
            ax.annotate(name, (step, 1.0), xycoords=("data", "axes fraction"), rotation=90, ha="right",
                        va="top", fontsize=9, color="0.25", xytext=(-2, -2), textcoords="offset points")
        ax.set_xscale(xscale)
        if xscale == "linear":
            ax.xaxis.set_major_locator(MaxNLocator(4))  # long step labels stay apart
        ax.set(xlabel="step", ylim=ylim, title=REGIME_LABELS.get(regime, regime) if regime else title)
    for ax in _first_column(axes):
        ax.set_ylabel("value")
    _legend_below(fig, axes)
    if title and regimes != [None]:
        fig.suptitle(title)
    return fig


SEARCH_CURVES = (("train", "accuracy"), ("test_inferred_ood", "exact_match"), ("test_inferred_ood", "bridge_found"),
                 ("test_inferred_ood", "bridge_found_intermediate"))


def plot_search(curves: pd.DataFrame, *, ncols: int = NCOLS, per_epoch: bool = False) -> Figure:
    """One panel per searched configuration (column `name`): training accuracy, OOD exact match and
    OOD bridge found (any stage; and intermediate stages, where logged) against the step (or the epoch,
    when `per_epoch`)."""
    _require(curves, ["name", "step", "split", "metric", "value"], "plot_search")
    names = list(dict.fromkeys(curves["name"]))
    if not names:
        raise ValueError("plot_search: no configurations to plot")
    fig, axes = _grid(len(names), ncols=ncols, sharey=True)
    colors = sns.color_palette("colorblind", len(SEARCH_CURVES))
    for ax, name in zip(axes, names):
        frame = curves[curves["name"] == name]
        x_of = frame[frame.metric == "epoch"].set_index("step")["value"] if per_epoch else None
        for color, (split, metric) in zip(colors, SEARCH_CURVES):
            rows = frame[(frame["split"] == split) & (frame["metric"] == metric)].sort_values("step")
            if rows.empty:
                continue
            x = rows["step"] if x_of is None else rows["step"].map(x_of)
            ax.plot(x, rows["value"], color=color, lw=1.8, gid=f"curve:{name}:{split}/{metric}",
                    label=_curve_label(split, metric))
        ax.set_title(name, fontsize=11)
        ax.set_xlabel("epoch" if per_epoch else "step")
        ax.set_ylim(0, 1.05)
    for ax in _first_column(axes):
        ax.set_ylabel("rate")
    _legend_below(fig, axes)
    return fig


# ------------------------------------------------------------------ chapters 4-5: transfer and compute

BASE_LABELS = {**REGIME_LABELS, "control": "Control (from scratch)"}
CATEGORY_LABELS = {"new_old": "new + old", "old_new": "old + new", "new_new": "new + new"}
TRANSFER_CURVES = (("atomic_new", "exact_match", "new-fact accuracy"), (None, "exact_match", "exact match"),
                   (None, "bridge_found", "bridge found"))


def _ordered(values, known: Sequence[str]) -> list:
    present = list(dict.fromkeys(values))
    return [k for k in known if k in present] + [v for v in present if v not in known]


def _seed_stats(rows: pd.DataFrame) -> pd.DataFrame:
    """mean, min and max over seeds of `value` by step (each seed weighs the same)."""
    if "seed" in rows.columns:
        rows = rows.groupby(["seed", "step"], as_index=False)["value"].mean()
    return rows.groupby("step")["value"].agg(["mean", "min", "max"]).sort_index()


def plot_transfer_grid(metrics: pd.DataFrame, *, categories: Sequence[str] = ("new_old", "old_new", "new_new"),
                       xscale: str = "linear", bridge: str = "bridge_found") -> Figure:
    """The paper's Figure 4 as a grid of one panel per finetuned base (column `base`).

    Each panel shows the new-fact accuracy (atomic_new exact match, black) and, in one colour per two-hop category,
    the category's exact match (solid) and bridge readout `bridge` (dashed), mean over seeds with a min-max band.
    Lines carry the gid "<base>:<category>:<split>/<metric>", the new-fact accuracy "<base>:new:atomic_new/exact_match".
    Where the from-scratch control is among the bases, its step-0 evaluation (the untrained model) gives the bridge
    readout's chance level, the highest over the categories, drawn in every panel as a grey dotted line (gid
    "chance:<bridge>").
    """
    _require(metrics, ["step", "split", "metric", "value", "base"], "plot_transfer_grid")
    bases = _ordered(metrics["base"], list(BASE_LABELS))
    have = set(zip(metrics["split"], metrics["metric"]))
    absent = [(c, m) for c in categories for m in ("exact_match", bridge) if (c, m) not in have]
    if absent or ("atomic_new", "exact_match") not in have:
        raise ValueError(f"plot_transfer_grid: no rows for {absent or [('atomic_new', 'exact_match')]}")
    curves = [("new", "atomic_new", "exact_match", "0.15", "-", "new-fact accuracy")]
    for color, cat in zip(sns.color_palette("colorblind", len(categories)), categories):
        name = CATEGORY_LABELS.get(cat, cat)
        curves += [(cat, cat, "exact_match", color, "-", f"{name}: exact match"),
                   (cat, cat, bridge, color, "--", f"{name}: bridge found")]
    untrained = metrics[(metrics["base"] == "control") & (metrics["step"] == 0) & (metrics["metric"] == bridge)
                        & metrics["split"].isin(categories)]
    chance = untrained.groupby("split")["value"].mean().max() if len(untrained) else None
    fig, axes = _grid(len(bases), sharex=True, sharey=True)
    for ax, base in zip(axes, bases):
        frame = metrics[metrics["base"] == base]
        if chance is not None:
            ax.axhline(chance, color="0.5", ls=":", lw=1.4, gid=f"chance:{bridge}",
                       label="bridge found in the untrained model (chance)")
        for cat, split, metric, color, style, label in curves:
            stats = _seed_stats(frame[(frame["split"] == split) & (frame["metric"] == metric)])
            ax.plot(stats.index, stats["mean"], color=color, ls=style, lw=1.8, label=label,
                    gid=f"{base}:{cat}:{split}/{metric}")
            if "seed" in frame.columns and frame["seed"].nunique() > 1:
                ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.15, lw=0)
        ax.set(ylim=(0, 1.05), xscale=xscale, title=BASE_LABELS.get(base, base), xlabel="finetuning step")
    for ax in _first_column(axes):
        ax.set_ylabel("value")
    _legend_below(fig, axes)
    return fig


def plot_transfer_summary(frame: pd.DataFrame, *, metrics: Sequence[str] = ("exact_match", "bridge_found")) -> Figure:
    """The paper's Figure 3 in bars: final value per base (hue) and category (x), one panel per metric.

    `frame` has columns base, category, metric, value (one row per seed when seeds vary; the bar is the mean
    and the error bar the min-max range).
    """
    _require(frame, ["base", "category", "metric", "value"], "plot_transfer_summary")
    missing = [m for m in metrics if m not in set(frame["metric"])]
    if missing:
        raise ValueError(f"plot_transfer_summary: no rows for metric(s) {missing}")
    bases = _ordered(frame["base"], list(BASE_LABELS))
    cats = _ordered(frame["category"], list(CATEGORY_LABELS))
    fig, axes = _grid(len(metrics), panel=(PANEL[0], 3.6), sharey=True)
    for ax, metric in zip(axes, metrics):
        sel = frame[frame["metric"] == metric].assign(base=lambda f: f["base"].map(lambda b: BASE_LABELS.get(b, b)))
        sns.barplot(sel, x="category", y="value", hue="base", order=cats, ax=ax, palette="colorblind",
                    hue_order=[BASE_LABELS.get(b, b) for b in bases], errorbar=("pi", 100), err_kws={"lw": 1})
        ax.set_xticks(range(len(cats)), [CATEGORY_LABELS.get(c, c) for c in cats])
        ax.set(title=metric.replace("_", " "), xlabel="two-hop category", ylabel="final value", ylim=(0, 1.05))
        ax.get_legend().remove()
    _legend_below(fig, axes[:1], title="finetuned base")
    return fig


def plot_milestone_costs(frame: pd.DataFrame, *, value: str = "flops") -> Figure:
    """Bars of the compute to reach each milestone per regime, log scale; one panel per `source` when given.

    `frame` has columns regime, milestone and `value` (NaN where the milestone was not reached: the bar is
    absent and "not reached" is written at its place, with gid "unreached:<regime>:<milestone>").
    """
    _require(frame, ["regime", "milestone", value], "plot_milestone_costs")
    sources = list(dict.fromkeys(frame["source"])) if "source" in frame.columns else [None]
    milestones = list(dict.fromkeys(frame["milestone"]))
    fig, axes = _grid(len(sources), panel=(PANEL[0], 3.8))
    colors = dict(zip(milestones, sns.color_palette("colorblind", len(milestones))))
    width = 0.8 / max(len(milestones), 1)
    for ax, source in zip(axes, sources):
        sel = frame if source is None else frame[frame["source"] == source]
        regimes = _ordered(sel["regime"], list(BASE_LABELS))
        reached = sel[value].dropna()
        floor = reached.min() / 3 if len(reached) else 1.0
        for k, name in enumerate(milestones):
            rows = sel[sel["milestone"] == name].set_index("regime").reindex(regimes)
            x = np.arange(len(regimes)) + (k - (len(milestones) - 1) / 2) * width
            ax.bar(x, rows[value].fillna(0).to_numpy(float), width, bottom=0, color=colors[name], label=name)
            for xi, regime, v in zip(x, regimes, rows[value]):
                if pd.isna(v):
                    ax.text(xi, floor * 1.2, "not reached", rotation=90, ha="center", va="bottom", fontsize=8,
                            color="0.3", gid=f"unreached:{regime}:{name}")
        ax.set_ylim(floor, reached.max() * 3 if len(reached) else floor * 10)  # limits first: no autoscale warning
        ax.set_yscale("log")
        ax.set_xticks(range(len(regimes)), [BASE_LABELS.get(r, r) for r in regimes], rotation=30, ha="right")
        ax.set(title=source)
    for ax in _first_column(axes):
        ax.set_ylabel(f"{value.replace('_', ' ')} (log scale)")
    _legend_below(fig, axes)
    return fig


# ------------------------------------------------------------------ chapters 2-3: inference paths

def _stage_order(frame: pd.DataFrame) -> list:
    return list(dict.fromkeys(frame["stage"]))


def plot_path_maps(maps: Mapping[str, pd.DataFrame], *, ncols: int | None = None, vmax: float | None = None,
                   positions: Sequence[str] | None = None, what: str = "bridge") -> Figure:
    """Heatmaps (stage x position) of a top-1 rate, one panel per named map, on one shared colour scale.

    Each map has columns stage, position, rate (`grokcircuit.path_map`). The scale runs from 0 to `vmax`
    (default: the largest rate of all maps). Panels form a grid of at most `NCOLS` columns (`ncols`). Each image
    carries the gid "map:<name>"; each cell its value.
    """
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError("plot_path_maps: expected a non-empty mapping of name -> path map")
    for name, frame in maps.items():
        _require(frame, ["stage", "position", "rate"], f"plot_path_maps[{name!r}]")
    grids = {name: f.pivot_table(index="stage", columns="position", values="rate", sort=False)
             .reindex(_stage_order(f)) for name, f in maps.items()}
    top = max(float(np.nanmax(g.to_numpy())) if g.size else 0.0 for g in grids.values())
    vmax = vmax if vmax is not None else max(top, 1e-9)
    first = next(iter(grids.values()))
    fig, axes = _grid(len(grids), ncols=ncols or NCOLS, panel=(PANEL[0], 0.3 * first.shape[0] + 1.2))
    for ax, (name, grid) in zip(axes, grids.items()):
        image = ax.imshow(grid.to_numpy(float), cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
        image.set_gid(f"map:{name}")
        for (i, j), v in np.ndenumerate(grid.to_numpy(float)):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if v < 0.6 * vmax else "black")
        labels = positions if positions is not None else [str(p) for p in grid.columns]
        ax.set_xticks(range(grid.shape[1]), labels)
        ax.set_yticks(range(grid.shape[0]), list(grid.index), fontsize=9)
        ax.set(title=name, xlabel="position")
        ax.grid(False)
    fig.colorbar(image, ax=axes, location="bottom", shrink=0.6, aspect=40, label=f"{what} top-1 rate")
    return fig


def plot_patch_profiles(frame: pd.DataFrame, *, series: str = "model", panel: str | None = "queries",
                        xlabel: str = "patched stage (r1 slot)") -> Figure:
    """Activation patching per stage: the share of answers that follow the donor's bridge (solid) and that
    stay the same (dashed), one line per `series` value, one panel per `panel` value when that column exists.

    `frame` has columns stage, followed, kept and `series` (`grokcircuit.patch_profile` rows with labels); the
    series `CHANCE_MODEL` (the untrained model of the same seed) is drawn in grey.
    `xlabel` says what was patched. Lines carry the gid "patch:<panel>/<series>/<followed|kept>".
    """
    _require(frame, ["stage", "followed", "kept", series], "plot_patch_profiles")
    panels = list(dict.fromkeys(frame[panel])) if panel and panel in frame.columns else [None]
    names = list(dict.fromkeys(frame[series]))
    stages = _stage_order(frame)
    fig, axes = _grid(len(panels), panel=(PANEL[0], 3.6), sharey=True)
    colors = dict(zip(names, sns.color_palette("colorblind", len(names))))
    colors.update({name: "0.5" for name in names if name == CHANCE_MODEL})
    for ax, key in zip(axes, panels):
        sel = frame if key is None else frame[frame[panel] == key]
        for name in names:
            rows = sel[sel[series] == name].set_index("stage").reindex(stages)
            for what, style in (("followed", "-"), ("kept", "--")):
                ax.plot(range(len(stages)), rows[what].to_numpy(float), ls=style, marker="o", ms=4, lw=1.8,
                        color=colors[name], gid=f"patch:{key}/{name}/{what}",
                        label=f"{name}: {'follows donor' if what == 'followed' else 'answer kept'}")
        ax.set_xticks(range(len(stages)), stages, rotation=45, ha="right", fontsize=9)
        ax.set(ylim=(0, 1.05), xlabel=xlabel, title=key)
    for ax in _first_column(axes):
        ax.set_ylabel("share of queries")
    _legend_below(fig, axes, handlelength=3.5)  # long enough to tell dashed from solid
    return fig


def plot_regime_curves(metrics: pd.DataFrame, metrics_to_plot: Sequence[tuple[str, str]], *,
                       milestones: Mapping[str, Mapping[str, float | None]] | None = None, **kwargs) -> Figure:
    """`plot_curves` with one panel per regime, each marked with its own milestones.

    `milestones` maps a regime to {name: step}; a step of None (never reached) draws nothing. Lines carry the
    gid "milestone:<regime>:<name>"; milestones at the same step share one label ("T_bridge = T_ood").
    """
    _require(metrics, ["regime"], "plot_regime_curves")
    fig = plot_curves(metrics, metrics_to_plot, **kwargs)
    panel_of = {ax.get_title(): ax for ax in fig.axes}
    for regime, marks in (milestones or {}).items():
        ax = panel_of.get(REGIME_LABELS.get(regime, regime))
        if ax is None:
            raise ValueError(f"plot_regime_curves: no panel for regime {regime!r}")
        reached = {name: step for name, step in marks.items() if step is not None and not pd.isna(step)}
        for name, step in reached.items():
            ax.axvline(step, color="0.25", ls=":", lw=1.2, gid=f"milestone:{regime}:{name}")
        for step in dict.fromkeys(reached.values()):
            label = " = ".join(name for name, s in reached.items() if s == step)
            ax.annotate(label, (step, 1.0), xycoords=("data", "axes fraction"), rotation=90, ha="right",
                        va="top", fontsize=8, color="0.25", xytext=(-2, -2), textcoords="offset points")
    return fig


PAPER_VS_OURS_LABELS = {"train_accuracy": "training accuracy", "bridge_found": "OOD bridge", "ood_answer": "OOD answer"}


def plot_paper_vs_ours(curves: pd.DataFrame, *, xmax: float | None = None,
                       chance: float | Mapping[str, float] | None = None) -> Figure:
    """The paper's Figure 2 curves beside ours on one axis in units of T_fit: one panel per regime, a colour per
    quantity, the paper dashed with markers at its published steps, ours solid (mean over seeds, min-max band).

    `curves` has columns regime, source ("paper" or "ours"), quantity, x (step / T_fit), value, optionally seed
    and label (the legend text of a (source, quantity), e.g. which readout "ours" used). `chance`, the value of
    our bridge readout on the untrained model (one for all panels, or per regime), is drawn as a dashed grey
    line labelled "chance (untrained)" (gid "chance:<regime>"); a regime without a value, or a NaN, gets none."""
    _require(curves, ["regime", "source", "quantity", "x", "value"], "plot_paper_vs_ours")
    regimes = _ordered(curves["regime"], REGIMES)
    if not regimes:
        raise ValueError("plot_paper_vs_ours: no curves to plot")
    quantities = _ordered(curves["quantity"], list(PAPER_VS_OURS_LABELS))
    colors = dict(zip(quantities, sns.color_palette("colorblind", len(quantities))))
    fig, axes = _grid(len(regimes), sharey=True)
    for ax, regime in zip(axes, regimes):
        frame = curves[curves["regime"] == regime]
        for (source, quantity), rows in frame.groupby(["source", "quantity"], sort=False):
            label = rows["label"].iloc[0] if "label" in rows else \
                f"{PAPER_VS_OURS_LABELS.get(quantity, quantity)} ({source})"
            stats = _seed_stats(rows.drop(columns=["step"], errors="ignore").rename(columns={"x": "step"})
                                .dropna(axis=1, how="all"))
            style = dict(ls="--", marker="o", ms=4, lw=1.4) if source == "paper" else dict(ls="-", lw=2)
            ax.plot(stats.index, stats["mean"], color=colors[quantity], label=label,
                    gid=f"curve:{regime}:{source}/{quantity}", **style)
            if source != "paper" and "seed" in rows and rows["seed"].nunique() > 1:
                ax.fill_between(stats.index, stats["min"], stats["max"], color=colors[quantity], alpha=0.2, lw=0)
        level = chance.get(regime) if isinstance(chance, Mapping) else chance
        if level is not None and not pd.isna(level):
            ax.axhline(level, color="0.5", ls="--", lw=1.2, gid=f"chance:{regime}", label="chance (untrained)")
        ax.axvline(1.0, color="0.25", ls=":", lw=1.2, gid=f"milestone:{regime}:T_fit")
        ax.set(xlabel="step / T_fit", ylim=(0, 1.05), title=REGIME_LABELS.get(regime, regime))
        if xmax is not None:
            ax.set_xlim(0, xmax)
    for ax in _first_column(axes):
        ax.set_ylabel("rate")
    _legend_below(fig, axes, handlelength=3.5)
    return fig


def plot_benchmark(frame: pd.DataFrame) -> Figure:
    """Two bar panels per benchmarked configuration (column config): training samples/s (log scale) and model
    FLOP utilisation against the same run's measured matmul peak (column mfu)."""
    _require(frame, ["config", "samples_per_s", "mfu"], "plot_benchmark")
    if frame.empty:
        raise ValueError("plot_benchmark: no benchmark rows")
    fig, (left, right) = plt.subplots(1, 2, figsize=(NCOLS * PANEL[0], 0.5 * len(frame) + 1.8), layout="constrained")
    labels = frame["config"].astype(str).tolist()
    left.barh(labels, frame["samples_per_s"], color=sns.color_palette("colorblind")[0], gid="bars:samples")
    left.set_xscale("log")
    left.set_xlabel("training samples / s")
    right.barh(labels, frame["mfu"], color=sns.color_palette("colorblind")[1], gid="bars:mfu")
    right.set_xlim(0, 1)
    right.set_xlabel("model FLOP utilisation (of measured matmul peak)")
    right.set_yticklabels([])
    for ax in (left, right):
        ax.invert_yaxis()
    return fig


# ------------------------------------------------------------------ committed results (results/<preset>/)

def plot_note(note: str) -> Figure:
    """A figure that only states `note` (a text with gid "note"), in place of a plot whose runs are missing."""
    fig, ax = plt.subplots(figsize=(7.0, 1.2), layout="constrained")
    ax.text(0.5, 0.5, textwrap.fill(note.replace("`", ""), 80), ha="center", va="center", fontsize=10,
            color="0.25", gid="note")
    ax.axis("off")
    return fig


def plot_or_note(metrics: pd.DataFrame, plot: Callable[[pd.DataFrame], Figure], note: str,
                 **selection: Sequence) -> Figure:
    """`plot` of the rows of `metrics` whose columns hold one of the values `selection` allows (column=values), or
    `plot_note(note)` when no row is left, e.g. because those runs are not committed yet."""
    rows = metrics
    for column, values in selection.items():
        rows = rows[rows[column].isin(list(values))] if column in rows.columns else rows.iloc[:0]
    return plot(rows) if len(rows) else plot_note(note)
