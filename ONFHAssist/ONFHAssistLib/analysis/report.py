"""One self-contained HTML report per scan: slices with overlays, stage bars, survival curve, tables.

Images are PNGs embedded as base64, so the file can be mailed or archived on its own. Slices are in
the radiological convention (patient's right on the viewer's left; axial anterior up, coronal
superior up), 1 mm pixels, centred on each femoral head.
"""
from __future__ import annotations

import base64
import html
import io as bytes_io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from ..imaging import io  # noqa: E402
from ..atomic import atomic_write_text  # noqa: E402
from .figures import LABEL_COLOURS  # noqa: E402
from .results import stage_text, unreliable_text  # noqa: E402

VIEW_MM = 100.0
HORIZONS = (12, 36, 60)


def _png(fig) -> str:
    buffer = bytes_io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _slice(image: sitk.Image, centre, plane: str, label: bool = False) -> np.ndarray:
    size = (VIEW_MM, 1.0, VIEW_MM) if plane == "coronal" else (VIEW_MM, VIEW_MM, 1.0)
    array = sitk.GetArrayFromImage(io.crop_box(image, centre, size, 1.0, label=label, default=0.0 if label else None))
    return array[:, 0, :] if plane == "coronal" else array[0]


def hip_slices_png(image: sitk.Image, maps: dict[str, sitk.Image], hip: dict) -> str:
    """Axial and coronal slices through one head: segmentation, SRANet attention and Grad-CAM overlays."""
    overlays = [("segmentation", "labels")] + [(name, key) for name, key in
                                               (("SRANet attention", "attention"), ("Grad-CAM (stage)", "gradcam"))
                                               if key in maps]
    fig, axes = plt.subplots(2, len(overlays), figsize=(3.6 * len(overlays), 7.4), squeeze=False)
    half = VIEW_MM / 2
    for row, plane in enumerate(("axial", "coronal")):
        grey = _slice(image, hip["center_lps"], plane)
        lo, hi = np.percentile(grey, (1, 99.5))
        origin = "upper" if plane == "axial" else "lower"
        for col, (title, key) in enumerate(overlays):
            ax = axes[row, col]
            ax.imshow(grey, cmap="gray", vmin=lo, vmax=hi, origin=origin, extent=(-half, half, -half, half))
            values = _slice(maps[key], hip["center_lps"], plane, label=key == "labels")
            if key == "labels":
                ax.imshow(values, cmap=LABEL_COLOURS, vmin=0, vmax=3, origin=origin, interpolation="nearest",
                          extent=(-half, half, -half, half))
            else:
                shown = np.ma.masked_less_equal(values, 1e-6)
                im = ax.imshow(shown, cmap="inferno", alpha=0.55, origin=origin, extent=(-half, half, -half, half),
                               vmin=0, vmax=max(float(values.max()), 1e-6))
                bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
                bar.set_label("attention weight" if key == "attention" else "relative importance", fontsize=8)
            ax.set_title(f"{plane}: {title}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return _png(fig)


def stage_png(hip: dict) -> str | None:
    """Bars of the stage probabilities (first grading system) and the SRANet necrosis probability."""
    system = next(iter(hip["stage"]), None)
    if system is None and not hip.get("sranet"):
        return None
    fig, ax = plt.subplots(figsize=(4.6, 2.6))
    names, values = [], []
    if system:
        for name, p in hip["stage"][system]["probabilities"].items():
            names.append(f"{system.upper()} {name}")
            values.append(p)
    if hip.get("sranet"):
        names.append("SRANet necrosis")
        values.append(hip["sranet"]["probability"])
    colours = ["tab:blue"] * (len(names) - (1 if hip.get("sranet") else 0)) + ["tab:red"] * bool(hip.get("sranet"))
    ax.barh(names[::-1], values[::-1], color=colours[::-1])
    for y, v in enumerate(values[::-1]):
        ax.text(min(v + 0.02, 0.85), y, f"{v:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    return _png(fig)


def survival_png(risk: dict, training_km: dict | None) -> str:
    """This hip's S(t) with 1/3/5-year marks, over the training cohort's low/high-risk Kaplan–Meier curves."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for group, colour in (("low", "tab:blue"), ("high", "tab:red")):
        if training_km and group in training_km:
            km = training_km[group]
            ax.step(km["months"], km["survival"], where="post", color=colour, alpha=0.45, lw=1.2,
                    label=f"training {group}-risk half (KM, n = {km['n']})")
    months, prob = risk["survival"]["months"], risk["survival"]["probability"]
    ax.step(months, prob, where="post", color="black", lw=2.2, label=f"this hip ({risk['group']} risk)")
    marks = [(h, 1.0 - risk["collapse_probability"][str(h)]) for h in HORIZONS]
    ax.plot([h for h, _ in marks], [s for _, s in marks], "o", color="black")
    ax.text(0.98, 0.97, "collapse by\n" + "\n".join(f"{h // 12} y: {1 - s:.0%}" for h, s in marks),
            transform=ax.transAxes, ha="right", va="top", fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85})
    ax.set_xlim(0, 120)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("months")
    ax.set_ylabel("P(no collapse)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return _png(fig)


def _img(data: str | None, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">' if data else ""


def _fmt(value, digits=2) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else html.escape(str(value))


def _quant_table(hip: dict) -> str:
    volumes = hip.get("volumes_ml") or {}
    risk = hip.get("risk") or {}
    collapse = risk.get("collapse_probability", {})
    note = unreliable_text(hip)
    flag = f" <strong class='warn'>{html.escape(note)}</strong>" if note else ""
    rows = [("head radius (mm)", _fmt(hip["radius_mm"], 1)), ("head volume (ml)", _fmt(volumes.get("head"), 1)),
            ("necrosis volume (ml)", _fmt(volumes.get("necrosis"), 2)),
            ("necrotic ratio", _fmt(hip["necrotic_ratio"], 3)), ("necrotic angle (°)", _fmt(hip["necrotic_angle_deg"], 0))]
    if hip.get("ood"):
        rows.append(("unlike the training data: score (threshold)",
                     f"{hip['ood']['score']:.1f} ({hip['ood']['threshold']:.1f})"))
    rows += [(f"stage ({system})", stage_text(s) + flag) for system, s in hip["stage"].items()]
    if hip.get("sranet"):
        rows.append(("SRANet P(necrosis)", _fmt(hip["sranet"]["probability"], 3)))
        rows.append(("attention on segmented lesion", _fmt(hip["sranet"]["attention_on_lesion"], 2)))
    if risk:
        rows += [("risk score (group)", f"{risk['score']:.2f} ({risk['group']})" + flag)]
        rows += [(f"collapse by {h // 12} y", f"{collapse[str(h)]:.0%}") for h in HORIZONS]
        rows.append(("grades used", html.escape(", ".join(f"{k} {v}" for k, v in risk["grades_used"].items()))
                     + f" ({risk['grades_source']})"))
    elif hip.get("risk_note"):
        rows.append(("collapse risk", html.escape(hip["risk_note"])))
    return "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def write_report(analysis: dict, image: sitk.Image, maps: dict[str, sitk.Image], path: str | Path,
                 training_km: dict | None = None) -> Path:
    """Render the report for one analysed scan and write it atomically."""
    parts = []
    if analysis["demo_model"]:
        parts.append('<div class="banner">Phantom-trained demo model — not for clinical use.</div>')
    source = analysis["input"]
    parts.append(f"<h1>ONFH Assist report: {html.escape(Path(source['path']).name)}</h1>"
                 f"<p>{html.escape(source['modality'])}, size {source['size']}, spacing "
                 f"{[round(s, 2) for s in source['spacing_mm']]} mm, device {html.escape(analysis['device']['device'])}, "
                 f"{analysis['timings_s']['total']:.1f} s</p>")
    for warning in analysis["warnings"]:
        parts.append(f'<p class="warn">{html.escape(warning)}</p>')
    for hip in sorted(analysis["hips"], key=lambda h: h["side"] != "R"):
        parts.append(f"<h2>{'Right' if hip['side'] == 'R' else 'Left'} hip</h2>")
        if not hip["found"]:
            parts.append(f"<p>Not analysed: {html.escape(hip['reason'])}.</p>")
            continue
        if note := unreliable_text(hip):
            parts.append(f"<p class='warn'>Stage and risk {html.escape(note)}.</p>")
        parts.append('<div class="row">' + _quant_table(hip) + _img(stage_png(hip), "stage probabilities")
                     + (_img(survival_png(hip["risk"], training_km), "survival curve") if hip.get("risk") else "")
                     + "</div>")
        parts.append("<p class='caption'>Slices through the head centre, 100 mm field, patient's right on the "
                     "viewer's left (axial: anterior up; coronal: superior up). Yellow pelvis, blue femur, red necrosis."
                     "</p>" + _img(hip_slices_png(image, maps, hip), f"{hip['side']} hip slices"))
    model_rows = "".join(f"<tr><td>{html.escape(m['task'])}</td><td>{html.escape(m['name'])}</td>"
                         f"<td>{html.escape(m['version'])}</td><td><code>{m['sha256'][:16]}…</code></td></tr>"
                         for m in analysis["models"])
    parts.append("<h2>Models</h2><table><tr><th>task</th><th>name</th><th>version</th><th>sha256</th></tr>"
                 f"{model_rows}</table>")
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>ONFH Assist report</title><style>"
            "body{font-family:sans-serif;margin:1.5em;color:#222} .banner{background:#b00020;color:#fff;"
            "padding:.6em 1em;font-weight:bold} .warn{color:#8a5a00} .caption{font-size:.85em;color:#555} table{border-collapse:collapse;margin:.5em 1em .5em 0}"
            " th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.9em} .row{display:flex;"
            "flex-wrap:wrap;align-items:flex-start} img{max-width:100%}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")
    atomic_write_text(Path(path), page)
    return Path(path)
