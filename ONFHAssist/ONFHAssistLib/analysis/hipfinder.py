"""Localise both heads, segment each found hip, refine the centre by a sphere fit: the first half of `analyze`.

Per side the localiser's candidates are tried strongest first; the first whose segmentation passes the
anatomical checks (`plausibility`) is the head. No candidate, metal, or only implausible candidates:
the hip is reported not found with the reason, and nothing downstream runs on it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from ..atomic import atomic_write_json
from ..imaging import io
from ..imaging.modality import check_modality
from ..models.networks import load
from . import plausibility
from .figures import coronal_overlay_png
from .localization import HeadEstimate, midline_x, plausible_pair, run_localizer, screen
from .segment import HipSegmentation, segment_hip, to_input_grid


@dataclass
class HipFinding:
    estimate: HeadEstimate  # refined centre and radius when the head was segmented
    segmentation: HipSegmentation | None
    coarse_center_lps: list[float] | None


SIDES = ("R", "L")


def find_and_segment(localizer, segmenter, image: sitk.Image, modality: str, device,
                     sides: tuple[str, ...] = SIDES) -> tuple[list[HipFinding], sitk.Image]:
    """Per requested side a finding, and the label map on the input grid (background where no hip was
    found or asked for). The localiser always looks at both sides (its heatmap is symmetric); only the
    requested hips are segmented."""
    midline = midline_x(image, modality)
    candidates = run_localizer(localizer, image, modality, device, midline)
    findings = [_first_plausible(side, candidates[side], segmenter, image, modality, device, midline)
                for side in SIDES if side in sides]
    _refuse_unpaired(findings)
    label = to_input_grid([f.segmentation for f in findings if f.segmentation is not None and f.estimate.found], image)
    return findings, label


def _first_plausible(side, candidates, segmenter, image, modality, device, midline) -> HipFinding:
    """The first candidate that is a femoral head; metal near a candidate refuses the whole side."""
    rejected = []
    for centre, height in candidates:
        estimate = screen(image, modality, side, centre, height)
        if "metal_ml" in estimate.extras:
            return HipFinding(estimate, None, centre)
        if not estimate.found:
            rejected.append(estimate.reason)
            continue
        seg = segment_hip(segmenter, image, centre, side, modality, device)
        evidence = plausibility.gather(seg, midline, hounsfield=modality == "ct")
        reason = plausibility.verdict(evidence)
        if evidence is not None:
            estimate.extras["evidence"] = evidence.to_json()
        if not reason:
            estimate.center_lps, estimate.radius_mm = seg.center_lps, float(seg.measures.radius_mm)
            return HipFinding(estimate, seg, centre)
        rejected.append(reason)
    if not candidates:
        return HipFinding(HeadEstimate(side, False, reason="no femoral head in the field of view"), None, None)
    best, height = candidates[0]
    reason = (f"no femoral head found: {len(candidates)} candidate(s) rejected, the strongest because: {rejected[0]}"
              if len(candidates) > 1 else f"no femoral head found: {rejected[0]}")
    return HipFinding(HeadEstimate(side, False, best, confidence=height, reason=reason), None, best)


def _refuse_unpaired(findings: list[HipFinding]) -> None:
    """Two heads must sit side by side about the midline; if they do not, the weaker one is refused."""
    found = {f.estimate.side: f for f in findings if f.estimate.found}
    if len(found) < 2 or plausible_pair(found["R"].estimate.center_lps, found["L"].estimate.center_lps):
        return
    weaker = min(found.values(), key=lambda f: f.estimate.confidence)
    other = "left" if weaker.estimate.side == "R" else "right"
    weaker.estimate.found = False
    weaker.estimate.reason = f"not a femoral head: not side by side with the {other} head about the body's midline"
    weaker.segmentation = None


def finding_json(finding: HipFinding) -> dict:
    """What `onfh segment` (and later `onfh analyze`) reports per hip."""
    est = finding.estimate
    out = {"side": est.side, "found": est.found, "confidence": round(est.confidence, 3), "reason": est.reason,
           "center_lps": est.center_lps if est.found else None, "radius_mm": est.radius_mm,
           "candidate_lps": None if est.found else est.center_lps}
    seg = finding.segmentation
    if est.found and seg is not None and seg.measures is not None:
        m = seg.measures
        out.update(head_volume_ml=round(m.head_volume_ml, 2), necrosis_volume_ml=round(m.necrosis_volume_ml, 2),
                   necrotic_ratio=round(m.necrotic_ratio, 4), necrotic_angle_deg=round(m.necrotic_angle_deg, 1))
    return out


def segment_file(image_path, out_dir, modality: str, localizer_name, segmenter_name, device, png: bool = True) -> dict:
    """`onfh segment`: labels.nii.gz on the input grid, analysis.json, and an overlay PNG, each written atomically."""
    start = time.perf_counter()
    image = io.read_image(image_path)
    io.check_hip_extent(image.GetSize(), image.GetSpacing(), str(image_path))
    modality, modality_check, warnings = check_modality(image, image_path, modality)
    localizer, loc_entry = load("localizer", localizer_name, device)
    segmenter, seg_entry = load("segmentation", segmenter_name, device)
    findings, label = find_and_segment(localizer, segmenter, image, modality, device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "analysis.json").unlink(missing_ok=True)  # written last: without it the folder is not a finished result
    io.write_image(label, out / "labels.nii.gz")
    summary = {"input": {"path": str(Path(image_path).resolve()), "modality": modality, "modality_check": modality_check,
                         **io.describe(image)}, "warnings": warnings,
               "hips": [finding_json(f) for f in findings], "models": [loc_entry.provenance(), seg_entry.provenance()],
               "files": {"label_map": "labels.nii.gz", **({"overlay": "overlay.png"} if png else {})},
               "seconds": round(time.perf_counter() - start, 2)}
    if png:
        coronal_overlay_png(image, label, summary["hips"], out / "overlay.png", f"{Path(image_path).name} ({modality})")
    # analysis.json: the stage of `onfh analyze` that exists so far, in its format (mrml.load_analysis reads it)
    atomic_write_json(out / "analysis.json", summary)
    return summary
