"""Volumes with no femoral head in view, for training the localiser towards an all-zero heatmap.

On real scans the localiser fired on bowel gas, vertebrae, an arm and the midline (issue 18), while a
phantom training set only ever shows it pelvises holding two heads. Two kinds of hard negatives:

- the part of each training phantom above its femoral heads (pelvis and lower abdomen, no head in view);
- public non-hip CT slices that an installed package ships (pydicom's test files, licences below),
  each stacked into a slab thick enough for the localiser.

Nothing under ../shared/data/real is used: the real scans are test cases only.
"""
from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from ..analysis.plausibility import RADIUS_MM
from ..imaging import io

log = logging.getLogger(__name__)

# The crop starts this far above the top of the highest head, so that not even the cap of a head is in
# view after the localiser's 6 mm resampling (one grid cell, plus a few mm of partial volume).
HEAD_CLEARANCE_MM = 10.0
SLAB_SPACING_MM = 5.0
# 200 mm: over twice the localiser's 96 mm grid multiple, so that even the 85 mm wide CT_small leaves its
# bottleneck more than one cell to normalise over in training.
SLAB_SLICES = 40

# pydicom's test files (pydicom/data/test_files): the package is MIT licensed; its README.txt says of
# these images "I believe there is no restriction on using any of these files in this manner".
PACKAGE_SLICES = {
    "CT_small.dcm": "CT of a thoracic vertebra with the aorta, 128 × 128, 0.66 mm; downsized by pydicom "
                    "from NEMA WG04 'CT1_UNC' (the DICOM standard's public sample images)",
    "693_J2KI.dcm": "CT of the head (brain), 512 × 512, 0.48 mm, JPEG 2000; pydicom's regression file for its "
                    "issue #693",
}


def headless_above(image: sitk.Image, heads: list[tuple[list[float], float]]) -> sitk.Image | None:
    """The slices lying wholly above every head (centre LPS mm, radius mm) plus HEAD_CLEARANCE_MM; None
    when they cover less than io.MIN_EXTENT_MM."""
    if not heads:
        return None
    top = max(centre[2] + radius for centre, radius in heads) + HEAD_CLEARANCE_MM
    size = np.array(image.GetSize())
    corners = np.array([c for c in np.ndindex(2, 2)], float) * (size[:2] - 1)
    lowest = np.array([min(io.index_to_physical(image, (x, y, k))[2] for x, y in corners) for k in range(size[2])])
    above = np.flatnonzero(lowest >= top)
    if not len(above):
        return None
    k0, k1 = int(above.min()), int(above.max()) + 1
    if np.any(lowest[k0:k1] < top) or (k1 - k0) * image.GetSpacing()[2] < io.MIN_EXTENT_MM:
        return None  # not one block at the top end (a tilted slab): left out rather than risk a head in view
    return image[:, :, k0:k1]


def package_slab(name: str) -> sitk.Image | None:
    """The PACKAGE_SLICES file `name` from the installed pydicom, repeated SLAB_SLICES times SLAB_SPACING_MM
    apart; None (logged) when pydicom does not ship it or this ITK build cannot decode it."""
    spec = importlib.util.find_spec("pydicom")
    path = Path(spec.origin).parent / "data" / "test_files" / name if spec and spec.origin else None
    if path is None or not path.is_file():
        log.warning("hard negative %s left out: the installed pydicom does not ship it", name)
        return None
    try:
        slice2d = sitk.ReadImage(str(path), sitk.sitkFloat32)[:, :, 0]
    except RuntimeError as error:
        log.warning("hard negative %s left out: %s", name, str(error).strip().splitlines()[-1])
        return None
    return sitk.JoinSeries([slice2d] * SLAB_SLICES, 0.0, SLAB_SPACING_MM)


def above_heads(scan) -> tuple[sitk.Image | None, str]:
    """(headless_above of a training scan, its modality); a head without a radius in hips.csv counts as the
    largest plausible one."""
    image = scan.image()
    radius = scan.rows.head_radius_mm if "head_radius_mm" in scan.rows else pd.Series(np.nan, scan.rows.index)
    radii = dict(zip(scan.rows.side, pd.to_numeric(radius, errors="coerce").fillna(RADIUS_MM[1])))
    return headless_above(image, [(c, float(radii[side])) for side, c in scan.centres().items()]), scan.modality(image)


def negative_sources(scans) -> list[tuple[str, Callable[[], tuple[sitk.Image | None, str]]]]:
    """(name, loader) of every hard negative for these training scans; a loader gives (volume or None, modality)."""
    return ([(f"above_{scan.scan_id}", lambda scan=scan: above_heads(scan)) for scan in scans]
            + [(f"package_{name}", lambda name=name: (package_slab(name), "ct")) for name in PACKAGE_SLICES])
