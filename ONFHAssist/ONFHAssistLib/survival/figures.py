"""Figures of a survival cross-validation for papers: Kaplan–Meier curves by risk group (numbers at risk under
the axis, censor ticks, hazard ratio with its 95 % interval), calibration at a horizon (per-bin counts and
intervals, a panel per model) and decision curves (every model), each saved as a 300 dpi PNG plus an SVG
with editable text (`save_figure`)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError
from lifelines.plotting import add_at_risk_counts

from ..atomic import atomic_path
from .stats import logrank

PAPER_DPI = 300
COLOURS = plt.get_cmap("tab10").colors


def save_figure(fig, path: str | Path) -> Path:
    """`path` as a 300 dpi PNG and, beside it, the same figure as SVG (text kept as text, for a journal's
    editor), each written atomically; the figure is freed. Returns the PNG's path."""
    path = Path(path).with_suffix(".png")
    with plt.rc_context({"svg.fonttype": "none"}):
        for target, kind in ((path, "png"), (path.with_suffix(".svg"), "svg")):
            with atomic_path(target) as tmp:
                fig.savefig(tmp, dpi=PAPER_DPI, format=kind, bbox_inches="tight")
    plt.close(fig)
    return path


def hazard_ratio(time, event, high) -> tuple[float, float, float] | str:
    """(HR, lower, upper 95 %) of the high- over the low-risk group from a Cox fit on the group indicator, or
    why it cannot be estimated (a group without events, or a fit that does not converge)."""
    time, event, high = np.asarray(time, float), np.asarray(event, int), np.asarray(high, bool)
    for name, mask in (("low-risk", ~high), ("high-risk", high)):
        if not mask.any():
            return f"no {name} hips"
        if not event[mask].any():
            return f"no collapse in the {name} group"
    frame = pd.DataFrame({"time": time, "event": event, "high": high.astype(float)})
    try:
        fit = CoxPHFitter().fit(frame, "time", "event")
    except ConvergenceError:
        return "the Cox fit did not converge"
    low, up = np.exp(fit.confidence_intervals_.loc["high"].to_numpy())
    return float(fit.hazard_ratios_["high"]), float(low), float(up)


def hazard_ratio_text(value) -> str:
    if isinstance(value, str):
        return f"HR n/a ({value})"
    hr, low, up = value
    return f"HR high vs low {hr:.2f} (95% CI {low:.2f}–{up:.2f})"


def km_by_risk_group(time, event, high, title: str, path: str | Path) -> Path:
    """Kaplan–Meier curves of the low- and high-risk groups with 95 % bands and censor ticks, the numbers at
    risk under the axis, the hazard ratio (95 % CI) in the legend and the log-rank p in the title."""
    time, event, high = np.asarray(time, float), np.asarray(event, int), np.asarray(high, bool)
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    fitters = []
    for name, mask, colour in (("low risk", ~high, COLOURS[0]), ("high risk", high, COLOURS[3])):
        if mask.any():
            kmf = KaplanMeierFitter(label=f"{name} (n = {mask.sum()}, {event[mask].sum()} collapsed)")
            kmf.fit(time[mask], event[mask]).plot_survival_function(
                ax=ax, color=colour, ci_show=True, show_censors=True, censor_styles={"marker": "|", "ms": 7, "mew": 1.2})
            fitters.append(kmf)
    ax.plot([], [], ls="", marker="|", ms=7, mew=1.2, color="black", label="censored")
    ax.plot([], [], " ", label=hazard_ratio_text(hazard_ratio(time, event, high)))
    p = logrank(time, event, high)[1] if high.any() and (~high).any() else float("nan")
    ax.set_title(f"{title}\nlog-rank p = {p:.3g}", fontsize=10)
    ax.set_xlabel("months")
    ax.set_ylabel("femoral head without collapse")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, float(time.max()) * 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=8)  # off the bands
    # lifelines' (and KMunicate's) count at a tick t: the hips still followed after t, time > t
    add_at_risk_counts(*fitters, ax=ax, rows_to_show=["At risk"], labels=[f.label.split(" (")[0] for f in fitters])
    return save_figure(fig, path)


def calibration_png(tables: dict, months: int, path: str | Path) -> Path:
    """Predicted vs Kaplan–Meier-observed collapse by `months`, a panel per model: each quantile bin a point
    with its 95 % interval (columns `lower`/`upper` of the table) and its hip count."""
    names = list(tables)
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.3 * rows), squeeze=False, sharex=True, sharey=True)
    top = max([0.05] + [float(np.nanmax(t[["predicted", "observed", *_bounds(t)]].to_numpy())) for t in tables.values()])
    top = min(1.0, top * 1.1)
    for ax, name, colour in zip(axes.flat, names, COLOURS * 2):
        table = tables[name]
        ax.plot([0, top], [0, top], color="grey", ls="--", lw=1)
        errors = None
        if _bounds(table):
            errors = np.vstack([table.observed - table.lower, table.upper - table.observed]).clip(min=0)
        ax.errorbar(table.predicted, table.observed, yerr=errors, fmt="o", color=colour, ms=4, capsize=3, lw=1)
        for x, y, n in zip(table.predicted, table.observed, table.n):
            ax.annotate(f"n={n}", (x, y), textcoords="offset points", xytext=(5, -10), fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    fig.supxlabel(f"predicted P(collapse by {months} months)", fontsize=9)
    fig.supylabel("observed (Kaplan–Meier, 95% CI)", fontsize=9)
    fig.suptitle(f"Calibration at {months} months (pooled out-of-fold, quantile bins)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _bounds(table) -> list[str]:
    return [c for c in ("lower", "upper") if c in table]


def decision_curve_png(tables: dict, months: int, path: str | Path) -> Path:
    """Net benefit of acting on predicted collapse by `months`, every model against treat-all and treat-none."""
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    first = next(iter(tables.values()))
    ax.plot(first.threshold, first.treat_all, color="grey", lw=1.2, ls="--", label="treat all")
    ax.axhline(0.0, color="black", lw=1, label="treat none")
    for (name, table), colour in zip(tables.items(), COLOURS * 2):
        ax.plot(table.threshold, table.model, lw=1.6, color=colour, label=name)
    top = max([0.05, float(first.treat_all.max())] + [float(t.model.max()) for t in tables.values()])
    ax.set_ylim(-0.05, top * 1.3)
    ax.set_xlim(float(first.threshold.min()), float(first.threshold.max()))
    ax.set_xlabel("threshold probability")
    ax.set_ylabel("net benefit")
    ax.set_title(f"Decision curve, collapse by {months} months (pooled out-of-fold)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)
