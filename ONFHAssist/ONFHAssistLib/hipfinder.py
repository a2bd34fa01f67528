"""Localise both heads, segment each found hip, refine the centre by a sphere fit: the first half of `analyze`."""
from __future__ import annotations

from dataclasses import dataclass

import SimpleITK as sitk

from .localization import HeadEstimate, run_localizer
from .segment import HipSegmentation, segment_hip, to_input_grid


@dataclass
class HipFinding:
    estimate: HeadEstimate  # refined centre and radius when the head was segmented
    segmentation: HipSegmentation | None
    coarse_center_lps: list[float] | None


def find_and_segment(localizer, segmenter, image: sitk.Image, modality: str, device) -> tuple[list[HipFinding], sitk.Image]:
    """Per side a finding, and the label map on the input grid (background where no hip was found)."""
    findings = []
    for estimate in run_localizer(localizer, image, modality, device):
        coarse = estimate.center_lps
        if not estimate.found:
            findings.append(HipFinding(estimate, None, coarse))
            continue
        seg = segment_hip(segmenter, image, coarse, estimate.side, modality, device)
        if seg.measures is None:
            estimate.found = False
            estimate.reason = "no femoral head surface in the segmentation around the detected point"
        else:
            estimate.center_lps, estimate.radius_mm = seg.center_lps, float(seg.measures.radius_mm)
        findings.append(HipFinding(estimate, seg, coarse))
    label = to_input_grid([f.segmentation for f in findings if f.segmentation is not None and f.estimate.found], image)
    return findings, label
