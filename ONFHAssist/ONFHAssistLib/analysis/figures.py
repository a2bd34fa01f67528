"""PNG figures a user (or a reviewer of this code) looks at: label overlays through each femoral head,
Kaplan–Meier curves by risk group, ROC and confusion matrices, calibration and decision curves."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Circle  # noqa: E402

from lifelines import KaplanMeierFitter  # noqa: E402

from ..imaging import io  # noqa: E402
from ..atomic import atomic_path  # noqa: E402
from ..survival.stats import logrank  # noqa: E402

LABEL_COLOURS = ListedColormap([(0, 0, 0, 0), (0.95, 0.8, 0.2, 0.45), (0.2, 0.6, 1.0, 0.45), (0.95, 0.15, 0.15, 0.7)])


def coronal_overlay_png(image: sitk.Image, label: sitk.Image, hips: list[dict], path: str | Path, title: str) -> Path:
    """Coronal slices (1 mm, LPS-aligned, patient's right on the viewer's left) through each found head,
    with the label map and the fitted head circle; a missing head is named with its reason."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.5))
    for ax, hip in zip(axes, sorted(hips, key=lambda h: h["side"] != "R")):
        ax.set_axis_off()
        centre = hip["center_lps"] if hip["found"] else hip.get("candidate_lps")
        if not hip["found"]:
            ax.set_title(f"{hip['side']} hip: not found (× where it was expected)\n" + textwrap.fill(hip["reason"], 60),
                         fontsize=9)
        if centre is None:
            continue
        box = (160.0, 1.0, 160.0)
        img = io.crop_box(image, centre, box, 1.0)
        lab = io.crop_box(label, centre, box, 1.0, label=True)
        mid = img.GetSize()[1] // 2
        a = sitk.GetArrayViewFromImage(img)[:, mid, :]
        b = sitk.GetArrayViewFromImage(lab)[:, mid, :]
        lo, hi = np.percentile(a, (1, 99.5))
        extent = (-80, 80, -80, 80)
        ax.imshow(a, cmap="gray", vmin=lo, vmax=hi, origin="lower", extent=extent)
        ax.imshow(b, cmap=LABEL_COLOURS, vmin=0, vmax=3, origin="lower", extent=extent, interpolation="nearest")
        if not hip["found"]:
            ax.plot([0], [0], marker="x", color="orange", markersize=14, mew=2.5)
        else:
            ax.add_patch(Circle((0, 0), hip["radius_mm"], fill=False, color="lime", lw=1.2))
            ratio = hip.get("necrotic_ratio")
            extra = f", necrotic ratio {ratio:.2f}" if ratio is not None else ""
            ax.set_title(f"{hip['side']} hip: head r = {hip['radius_mm']:.1f} mm{extra}", fontsize=10)
    fig.suptitle(title + "\n(coronal, patient's right on the left; yellow pelvis, blue femur, red necrosis, "
                 "green fitted head)", fontsize=10)
    return _save_png(fig, path)


def km_by_risk_group(time, event, high, title: str, path: str | Path) -> Path:
    """Kaplan–Meier curves of the low- and high-risk groups with the log-rank p in the title."""
    time, event, high = np.asarray(time, float), np.asarray(event, int), np.asarray(high, bool)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for name, mask, colour in (("low risk", ~high, "tab:blue"), ("high risk", high, "tab:red")):
        if mask.any():
            KaplanMeierFitter(label=f"{name} (n = {mask.sum()})").fit(time[mask], event[mask]).plot_survival_function(
                ax=ax, color=colour, ci_show=True)
    p = logrank(time, event, high)[1] if high.any() and (~high).any() else float("nan")
    ax.set_title(f"{title}\nlog-rank p = {p:.3g}", fontsize=10)
    ax.set_xlabel("months")
    ax.set_ylabel("femoral head without collapse")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    return _save_png(fig, path)


def roc_png(y, p, path: str | Path, title: str) -> Path:
    """ROC curve of a binary score with its AUC (sklearn) in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.plot(fpr, tpr, color="tab:red", lw=2, label=f"AUC = {roc_auc_score(y, p):.3f} (n = {len(y)})")
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _save_png(fig, path)


def confusion_png(cm, names: list[str], path: str | Path, title: str) -> Path:
    """Confusion matrix with counts in each cell (rows: truth, columns: prediction)."""
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 1.1 * len(names) + 2))
    ax.imshow(cm, cmap="Blues")
    for (i, j), value in np.ndenumerate(cm):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > cm.max() / 2 else "black")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(title, fontsize=10)
    return _save_png(fig, path)


def calibration_png(tables: dict, months: int, path: str | Path) -> Path:
    """Predicted vs Kaplan–Meier-observed collapse by `months`, one line per model (quantile bins)."""
    fig, ax = plt.subplots(figsize=(5.2, 4.8))
    top = max([0.05] + [float(max(t.predicted.max(), t.observed.max())) for t in tables.values()])
    ax.plot([0, top], [0, top], color="grey", ls="--", lw=1, label="ideal")
    for name, table in tables.items():
        ax.plot(table.predicted, table.observed, marker="o", label=name)
    ax.set_xlabel(f"predicted P(collapse by {months} months)")
    ax.set_ylabel("observed (Kaplan–Meier, per bin)")
    ax.set_title(f"Calibration at {months} months (pooled out-of-fold)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save_png(fig, path)


def decision_curve_png(tables: dict, months: int, path: str | Path) -> Path:
    """Net benefit of acting on predicted collapse by `months`, per model, against treat-all and treat-none."""
    fig, ax = plt.subplots(figsize=(5.8, 4.6))
    first = next(iter(tables.values()))
    ax.plot(first.threshold, first.treat_all, color="grey", lw=1, label="treat all")
    ax.axhline(0.0, color="black", lw=1, label="treat none")
    for name, table in tables.items():
        ax.plot(table.threshold, table.model, lw=2, label=name)
    ax.set_ylim(-0.05, max(0.05, float(first.treat_all.max()) * 1.3))
    ax.set_xlabel("threshold probability")
    ax.set_ylabel("net benefit")
    ax.set_title(f"Decision curve, collapse by {months} months (pooled out-of-fold)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save_png(fig, path)


def _save_png(fig, path: str | Path) -> Path:
    """Write a figure atomically (a reader never sees half a PNG) and free it."""
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path
