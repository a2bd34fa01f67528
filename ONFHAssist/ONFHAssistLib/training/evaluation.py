"""Evaluate localisation and segmentation on a dataset with ground truth: per-hip CSV and a summary.

Both tasks run the same path as `onfh analyze` (localise → segment → sphere fit), so the numbers
are those a user gets. Dice is computed on the input grid inside the box each hip was segmented in.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from ..analysis.hipfinder import find_and_segment
from ..analysis.segment import covering_region
from ..atomic import atomic_write_json, atomic_write_text
from ..devices import resolve_device
from ..imaging import io
from ..models.networks import load
from ..progress import Steps
from .scans import list_scans

STRUCTURES = ("pelvis", "femur", "necrosis")


def dice_per_class(pred: np.ndarray, truth: np.ndarray) -> list[float]:
    """Dice of labels 1..3; NaN where a structure is absent from both."""
    scores = []
    for value in (1, 2, 3):
        p, t = pred == value, truth == value
        denom = p.sum() + t.sum()
        scores.append(float(2.0 * np.logical_and(p, t).sum() / denom) if denom else float("nan"))
    return scores


def _hip_rows(scan, findings, label, truth_label, seconds) -> list[dict]:
    rows = []
    truth_by_side = {r.side: r for _, r in scan.rows.iterrows()}
    for finding in findings:
        est, truth = finding.estimate, truth_by_side.get(finding.estimate.side)
        if truth is None:
            continue
        centre = _truth_centre(truth)
        row = {"scan_id": scan.scan_id, "side": est.side, "modality": scan.rows.iloc[0].get("modality", ""),
               "in_view": io.inside(label, centre), "found": est.found, "reason": est.reason,
               "confidence": round(est.confidence, 3), "seconds": seconds,
               "coarse_error_mm": (None if finding.coarse_center_lps is None  # no candidate on this side
                                   else float(np.linalg.norm(np.array(finding.coarse_center_lps) - centre)))}
        if est.found:
            seg = finding.segmentation
            m = seg.measures
            other = truth_by_side.get("L" if est.side == "R" else "R")
            if other is not None:  # small here and large in center_error_mm: the other hip taken for this one
                row["other_side_error_mm"] = float(np.linalg.norm(np.array(est.center_lps) - _truth_centre(other)))
            row.update(center_error_mm=float(np.linalg.norm(np.array(est.center_lps) - centre)),
                       radius_mm=m.radius_mm, radius_error_mm=abs(m.radius_mm - float(truth.get("head_radius_mm") or "nan")),
                       head_volume_ml=m.head_volume_ml, necrosis_volume_ml=m.necrosis_volume_ml,
                       necrotic_ratio=m.necrotic_ratio, necrotic_ratio_truth=float(truth.get("necrotic_ratio") or "nan"),
                       necrotic_angle_deg=m.necrotic_angle_deg,
                       necrotic_angle_truth=float(truth.get("necrotic_angle_deg") or "nan"))
            row["ratio_error"] = abs(row["necrotic_ratio"] - row["necrotic_ratio_truth"])
            if truth_label is not None:
                start, size = covering_region(label, seg.crop)
                region = tuple(slice(s, s + n) for s, n in zip(start[::-1], size[::-1]))
                pred = sitk.GetArrayViewFromImage(label)[region]
                true = sitk.GetArrayViewFromImage(truth_label)[region]
                row.update(zip((f"dice_{s}" for s in STRUCTURES), dice_per_class(pred, true)))
        rows.append(row)
    return rows


def _truth_centre(row) -> np.ndarray:
    return np.array([float(row[c]) for c in ("head_x", "head_y", "head_z")])


def _summary(table: pd.DataFrame) -> dict:
    found = table[table.found]
    lesion = found[found.necrotic_ratio_truth > 0] if "necrotic_ratio_truth" in found else found.iloc[:0]
    if "dice_necrosis" in found and found.necrotic_ratio_truth.isna().any():  # a user's dataset: no phantom truth,
        unknown = found[found.necrotic_ratio_truth.isna() & found.dice_necrosis.notna()]  # lesion in a label map
        lesion = pd.concat([lesion, unknown])
    out = {"hips": len(table), "hips_in_view": int(table.in_view.sum()), "found": int(table.found.sum()),
           "found_in_view": int((table.found & table.in_view).sum()),
           "seconds_per_scan_median": float(table.seconds.median())}
    for col in ("coarse_error_mm", "center_error_mm", "radius_error_mm", "ratio_error"):
        if col in found and len(found):
            out[f"{col}_median"] = float(found[col].median())
            out[f"{col}_max"] = float(found[col].max())
    for s in STRUCTURES:
        col = f"dice_{s}"
        rows = lesion if s == "necrosis" else found
        if col in rows and len(rows):
            out[f"{col}_mean"] = float(rows[col].mean())
            out[f"{col}_min"] = float(rows[col].min())
    if len(found) and "necrosis_volume_ml" in found:
        healthy = found[found.necrotic_ratio_truth == 0]
        out["healthy_hips"] = len(healthy)
        out["healthy_hips_with_predicted_necrosis"] = int((healthy.necrosis_volume_ml > 0).sum())
    for modality, part in found.groupby("modality") if len(found) else []:
        lesion_part = part[part.necrotic_ratio_truth > 0]
        out[f"by_modality_{modality}"] = {
            "hips": len(part), "center_error_mm_median": float(part.center_error_mm.median()),
            **{f"dice_{s}_mean": float((lesion_part if s == "necrosis" else part)[f"dice_{s}"].mean())
               for s in STRUCTURES if f"dice_{s}" in part}}
    return out


def evaluate_task(task: str, settings, reporter) -> dict:
    """Run localise + segment on every scan; `settings.model` picks the model of `task`, the other is the default
    (the shipped model's name, `store.find_model`)."""
    device = resolve_device(settings.device)
    other = "segmentation" if task == "localizer" else "localizer"
    chosen = {task: load(task, settings.model, device), other: load(other, None, device)}
    (localizer, loc_entry), (segmenter, seg_entry) = chosen["localizer"], chosen["segmentation"]
    scans = list_scans(settings.data)
    rows = []
    steps = Steps(reporter, f"evaluate {task}", len(scans))
    for n, scan in enumerate(scans):
        with steps.step(f"scan {n + 1}/{len(scans)}: {scan.scan_id}"):
            image = scan.image()
            start = time.perf_counter()
            findings, label = find_and_segment(localizer, segmenter, image, scan.modality(image), device)
            rows += _hip_rows(scan, findings, label, scan.label(), round(time.perf_counter() - start, 2))
    table = pd.DataFrame(rows)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "per_hip.csv", table.to_csv(index=False, float_format="%.4f"))
    summary = {"task": task, "data": str(settings.data), "models": [loc_entry.provenance(), seg_entry.provenance()],
               **_summary(table)}
    atomic_write_json(out / "summary.json", summary)
    scalars = {k: v for k, v in summary.items() if not isinstance(v, (list, dict)) and k not in ("task", "data")}
    return {"summary": str(out / "summary.json"), **scalars}
