"""One self-contained HTML report per scan: key findings, per-hip tables, stage bars, survival curve, key images.

Images are PNGs embedded as base64, so the file can be mailed or archived on its own. The key images are
drawn once by `figures.key_images` and shared with the PDF report.
"""
from __future__ import annotations

import base64
import html
import io as bytes_io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..atomic import atomic_write_text  # noqa: E402
from .findings import (SIDE_NAMES, SYSTEM_NAMES, collapse_text, grade_lines, grade_text,  # noqa: E402
                       interval_note, key_findings, percent_text, probability_text, risk_reference_text)
from .pdf_report import patient_lines  # noqa: E402
from .results import stage_text, unreliable_text  # noqa: E402

HORIZONS = (12, 36, 60)


def _png(fig) -> str:
    buffer = bytes_io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


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
                    label=f"training hips, risk {'above' if group == 'high' else 'at or below'} median "
                          f"(KM, n = {km['n']})")
    months, prob = risk["survival"]["months"], risk["survival"]["probability"]
    ax.step(months, prob, where="post", color="black", lw=2.2, label="this hip")
    marks = [(h, 1.0 - risk["collapse_probability"][str(h)]) for h in HORIZONS]
    intervals = risk.get("collapse_interval")
    if intervals:  # S = 1 - collapse, so the interval's high collapse end is the low survival end
        below = [max(0.0, s - (1.0 - intervals[str(h)][1])) for h, s in marks]
        above = [max(0.0, (1.0 - intervals[str(h)][0]) - s) for h, s in marks]
        ax.errorbar([h for h, _ in marks], [s for _, s in marks], yerr=[below, above], fmt="none", ecolor="black",
                    capsize=4, lw=1.2, label=f"{100 * risk['reference']['level']:.0f} % interval (baseline bootstrap)")
    ax.plot([h for h, _ in marks], [s for _, s in marks], "o", color="black")
    ax.text(0.98, 0.97, "collapse by\n" + "\n".join(
        f"{h // 12} y: {percent_text(1 - s, 0)}" + (f" ({percent_text(intervals[str(h)][0], 0)}–"
                                                    f"{percent_text(intervals[str(h)][1], 0)})" if intervals else "")
        for h, s in marks),
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


def _table(rows: list[tuple[str, str | None]]) -> str:
    """Rows of (label, text), both escaped here ('< 0.01' is text); a row without a value is a section heading."""
    cells = [f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" if v is not None else
             f"<tr><th colspan='2' class='section'>{html.escape(k)}</th></tr>" for k, v in rows]
    return "<table>" + "".join(cells) + "</table>"


def _side(hip: dict) -> str:
    return f"{SIDE_NAMES[hip['side']]} hip"


def key_findings_html(analysis: dict) -> str:
    """The box a clinician reads first: per hip the key finding, coloured by its flag, and its confidence line."""
    items = "".join(f"<div class='finding {f['flag']}'><p class='sentence'>{html.escape(f['sentence'])}.</p>"
                    f"<p class='confidence'>{html.escape(f['confidence'])}</p></div>" for f in key_findings(analysis))
    return f"<section class='key'><h2>Key findings</h2>{items}</section>"


def _risk_rows(hip: dict, training_km: dict | None) -> list[tuple[str, str]]:
    risk = hip.get("risk")
    if not risk:
        return [("Collapse risk", None), ("collapse risk", hip.get("risk_note") or "not computed")]
    cohort = f"{sum(km['n'] for km in training_km.values())} training hips" if training_km else "the training cohort"
    if risk.get("training_percentile") is not None:
        cohort = "those hips"  # the percentile sentence has named them
    where = "above" if risk["group"] == "high" else "at or below"
    return [("Collapse risk", None),
            *((f"collapse within {h // 12} year{'s' if h > 12 else ''}", collapse_text(risk, str(h))) for h in HORIZONS),
            ("risk compared with the training cohort", f"{risk_reference_text(risk)}; {where} the median risk of {cohort}"),
            ("uncertainty", interval_note(risk)),
            ("grades the risk used", ", ".join(grade_text(k, v) for k, v in risk["grades_used"].items() if v != "none")
             + f" ({risk['grades_source']})")]


def _clinical_table(hip: dict, training_km: dict | None) -> str:
    """Grades as clinicians write them, the lesion's size and place, and the collapse risk."""
    grades = grade_lines(hip)
    rows = [("Grades (where each comes from)", None)] if grades else []
    rows += grades
    necrosis = (hip.get("volumes_ml") or {}).get("necrosis") or 0.0
    rows.append(("Lesion", None))
    if necrosis > 0:
        rows += [("lesion volume", f"{necrosis:.1f} ml"),
                 ("lesion share of the head", percent_text(hip["necrotic_ratio"]))]
        if hip.get("necrotic_angle_deg"):
            rows.append(("necrotic angle (Kerboul)", f"{hip['necrotic_angle_deg']:.0f}°"))
    else:
        rows.append(("lesion", "none segmented in the femoral head"))
    return _table(rows + _risk_rows(hip, training_km))


def _internals(hip: dict) -> str:
    """What the models said in their own numbers, folded away: for review, not for reading the result."""
    rows = []
    for system, stage in list(hip["stage"].items())[:1]:
        rows.append((f"staging network: {SYSTEM_NAMES.get(system, system)} class probabilities",
                     " · ".join(f"{k} {probability_text(p)}" for k, p in stage["probabilities"].items())))
        rows.append(("stage shown", stage_text(stage) + "; " + stage["source"]))
    if hip.get("sranet"):
        rows.append(("SRANet P(necrosis)", probability_text(hip["sranet"]["probability"])))
        if hip["sranet"].get("attention_on_lesion") is not None:
            rows.append(("SRANet attention on the segmented lesion",
                         percent_text(hip["sranet"]["attention_on_lesion"])))
    if hip.get("risk"):
        rows.append(("risk score (Cox log-hazard)", f"{hip['risk']['score']:.2f}"))
    if hip.get("ood"):
        ood = hip["ood"]
        rows.append(("unlike the training data: score (limit)", f"{ood['score']:.1f} ({ood['threshold']:.1f})"))
    if (added := (hip.get("anatomy") or {}).get("bone_added_ml")) is not None:
        rows.append(("bone the segmentation network left out, added from the CT's Hounsfield units",
                     f"{added:.1f} ml"))
    rows.append(("localiser heatmap peak at the head", f"{hip['confidence']:.2f}"))
    return f"<details><summary>Model internals</summary>{_table(rows)}</details>"


def _hip_details(hip: dict, training_km: dict | None) -> str:
    parts = [f"<h2>{_side(hip)}</h2>"]
    if not hip["found"]:
        return parts[0] + f"<p>Not analysed: {html.escape(hip['reason'])}.</p>"
    if note := unreliable_text(hip):
        parts.append(f"<p class='warn'>Stage and risk {html.escape(note)}.</p>")
    parts += [_clinical_table(hip, training_km), _internals(hip)]
    return "".join(parts)


def _hip_images(hip: dict, key_png: bytes | None, training_km: dict | None) -> str:
    charts = _img(stage_png(hip), "stage probabilities") + \
        (_img(survival_png(hip["risk"], training_km), "survival curve") if hip.get("risk") else "")
    slices = _img(base64.b64encode(key_png).decode("ascii"), f"{hip['side']} hip key images") if key_png else ""
    return (f"<h3>{_side(hip)}</h3><div class='row'>{charts}</div>"
            "<p class='caption'>Axial, coronal and sagittal slices through the lesion's centre (the head's when there is "
            "no lesion), radiological convention with orientation letters; one colour scale per map across the report. "
            "Yellow pelvis, blue femur, red necrosis.</p>" + slices)


def _technical(analysis: dict) -> str:
    """Geometry, run and model provenance: for checking the analysis, not for reading it."""
    source = analysis["input"]
    rows = [("file", source["path"]), ("modality", source["modality"]),
            ("size (voxels)", " × ".join(map(str, source["size"]))),
            ("spacing (mm)", " × ".join(f"{v:.2f}" for v in source["spacing_mm"])),
            ("orientation", source["orientation"]), ("device", analysis["device"]["device"]),
            ("time", f"{analysis['timings_s']['total']:.1f} s")]
    for hip in sorted(analysis["hips"], key=lambda h: h["side"] != "R"):
        if hip["found"]:
            volumes = hip.get("volumes_ml") or {}
            rows.append((f"{_side(hip)}: centre (LPS mm), radius, head volume",
                         f"{[round(v, 1) for v in hip['center_lps']]}, r {hip['radius_mm']:.1f} mm, "
                         f"{volumes.get('head', 0.0):.1f} ml"))
    model_rows = "".join(f"<tr><td>{html.escape(m['task'])}</td><td>{html.escape(m['name'])}</td>"
                         f"<td>{html.escape(m['version'])}</td><td><code>{m['sha256'][:16]}…</code></td></tr>"
                         for m in analysis["models"])
    return ("<h2>Technical details</h2>" + _table(rows)
            + "<h3>Models</h3><table><tr><th>task</th><th>name</th><th>version</th><th>sha256</th></tr>"
            + model_rows + "</table>")


STYLE = ("body{font-family:sans-serif;margin:1.5em;color:#222} .banner{background:#b00020;color:#fff;padding:.6em 1em;"
         "font-weight:bold} .warn{color:#8a5a00} .caption{font-size:.85em;color:#555} table{border-collapse:collapse;"
         "margin:.5em 1em .5em 0} th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.9em}"
         " .row{display:flex;flex-wrap:wrap;align-items:flex-start} img{max-width:100%} .key{border:2px solid #444;"
         "padding:.2em 1em .6em;margin:1em 0} .finding{border-left:8px solid;padding:.3em .8em;margin:.5em 0}"
         " .finding p{margin:.2em 0} .sentence{font-size:1.1em;font-weight:bold} .confidence{font-size:.9em}"
         " .positive{border-color:#b00020;background:#fdecee} .negative{border-color:#2e7d32;background:#edf7ee}"
         " .not_assessed{border-color:#8a5a00;background:#fff6e0} summary{cursor:pointer;color:#555;font-size:.9em}"
         " th.section{background:#f0f0f0} .patient{font-size:.9em;white-space:pre-wrap}")


def write_report(analysis: dict, key_pngs: dict[str, bytes], path: str | Path, training_km: dict | None = None) -> Path:
    """Render the report for one analysed scan and write it atomically: key findings first, then each hip's
    details (clinical items, model internals folded), the images, and the technical details last."""
    parts = []
    if analysis["demo_model"]:
        parts.append('<div class="banner">Phantom-trained demo model — not for clinical use.</div>')
    who, which = patient_lines(analysis)  # the scan's file name is in `which` (a neutral one when anonymised)
    parts.append(f"<h1>ONFH Assist report</h1><p class='patient'><b>{html.escape(who)}</b><br>{html.escape(which)}</p>")
    parts.append(key_findings_html(analysis))
    parts += [f'<p class="warn">{html.escape(warning)}</p>' for warning in analysis["warnings"]]
    hips = sorted(analysis["hips"], key=lambda h: h["side"] != "R")
    parts += [_hip_details(hip, training_km) for hip in hips]
    found = [hip for hip in hips if hip["found"]]
    if found:
        parts.append("<h2>Images</h2>" + "".join(_hip_images(hip, key_pngs.get(hip["side"]), training_km) for hip in found))
    parts.append(_technical(analysis))
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>ONFH Assist report</title><style>" + STYLE
            + "</style></head><body>" + "\n".join(parts) + "</body></html>\n")
    atomic_write_text(Path(path), page)
    return Path(path)
