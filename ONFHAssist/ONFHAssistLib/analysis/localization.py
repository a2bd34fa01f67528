"""Find both femoral heads in a whole volume: coarse heatmap peaks, then reasons when a head is not found.

Orientation, spacing and field of view are never assumed: the volume is resampled onto an
axis-aligned LPS grid at `GRID_MM` that covers its whole physical extent, so a RAS-stored or
oblique scan looks the same to the network as an LPS one. The network marks every femoral head in
one heatmap; which is right and which is left is decided geometrically (LPS x grows towards the
patient's left), not learned: the two hips are near mirror images, so a network asked to tell them
apart learns it slowly and unreliably.

A peak is only a candidate. Trained on phantoms, the network also fires on bowel gas, vertebrae and
arms of real scans, and real heads score no higher than those (0.33–0.42 against 0.36–0.74), so no
height threshold can tell them apart. Each side therefore gets a ranked list of candidates (the
strongest side-by-side pair first), and `hipfinder` keeps the first one whose segmentation passes the
anatomical checks of `plausibility`. A single peak is never mirrored into a second, invented head.
The coarse centre is later refined by a sphere fit to the segmented head (`measure.fit_head_sphere`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import zip_longest

import numpy as np
import SimpleITK as sitk
import torch

from ..imaging import io
from ..imaging.crops import normalise
from ..models.localizer import members as localizer_members

GRID_MM = 6.0
MULTIPLE = 16  # the network halves the grid four times
CANDIDATE_MIN_HEIGHT = 0.2  # below this a peak is background texture (phantom heads score 0.84–1.0)
MAX_CANDIDATES = 4  # per side
POOLED_MAX_CANDIDATES = 6  # per side, from a pooled localiser (models.localizer.CandidateEnsemble)
SAME_CANDIDATE_MM = 10.0  # a pooled candidate this close to one already taken is the same head
METAL_HU = 2500.0  # above dense cortical bone (≤ 2000 HU), below every orthopaedic metal (≥ 3000 HU)
METAL_SEARCH_MM = 60.0  # a head (≤ 32 mm) and the neck a screw or nail runs through
METAL_MIN_ML = 0.5  # a 6.5 mm lag screw holds ≈ 1.7 ml over 50 mm; counted on the scan's own grid
HEATMAP_SIGMA_MM = 9.0
PEAK_SPACING_MM = 30.0
PAIR_DX_MM = (130.0, 260.0)  # centre-to-centre distance of adult femoral heads, with margin
PAIR_OFFSET_MM = 38.0  # most the pair may be offset in the sagittal (y, z) plane by patient rotation
# Share of a lateral edge's area covered by body above which the scan cuts the body there. Phantom views of
# both hips: at most 0.28 on either edge (development seed 4243); one-hip views: 0.83–1.0 on one edge (4250).
MIDLINE_EDGE_CUT = 0.5
SIDES = ("R", "L")


@dataclass
class HeadEstimate:
    """One side's femoral head: where, how sure, or why not found."""

    side: str
    found: bool
    center_lps: list[float] | None = None
    radius_mm: float | None = None
    confidence: float = 0.0
    reason: str = ""
    extras: dict = field(default_factory=dict)


def localizer_grid(image: sitk.Image) -> sitk.Image:
    """An axis-aligned LPS grid at GRID_MM covering the image's physical bounding box (padded to MULTIPLE)."""
    size = np.array(image.GetSize())
    corners = np.array([io.index_to_physical(image, np.array(c) * (size - 1))
                        for c in np.ndindex(2, 2, 2)])
    lo, hi = corners.min(0), corners.max(0)
    n = np.ceil((hi - lo) / GRID_MM / MULTIPLE).astype(int) * MULTIPLE
    n = np.maximum(n, MULTIPLE)
    return io.grid_reference((lo + hi) / 2.0, n * GRID_MM, GRID_MM)


def localizer_input(image: sitk.Image, modality: str) -> tuple[np.ndarray, sitk.Image]:
    """Normalised (z, y, x) array on the localiser grid, and the grid."""
    grid = localizer_grid(image)
    fill = -1024.0 if modality == "ct" else float(np.percentile(sitk.GetArrayViewFromImage(image), 0.5))
    resampled = io.resample_to(sitk.Cast(image, sitk.sitkFloat32), grid, default=fill)
    return normalise(sitk.GetArrayFromImage(resampled), modality), grid


def heatmap_target(grid: sitk.Image, centres) -> np.ndarray:
    """Training target (1, z, y, x): a unit Gaussian at every head centre."""
    zz, yy, xx = [np.arange(n) for n in grid.GetSize()[::-1]]
    out = np.zeros((1, len(zz), len(yy), len(xx)), np.float32)
    s = HEATMAP_SIGMA_MM / GRID_MM
    for centre in centres:
        ix, iy, iz = io.physical_to_index(grid, centre)
        gx, gy, gz = (np.exp(-0.5 * ((a - c) / s) ** 2) for a, c in ((xx, ix), (yy, iy), (zz, iz)))
        np.maximum(out[0], gz[:, None, None] * gy[None, :, None] * gx[None, None, :], out=out[0])
    return out


def refine_peak(h: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """Sub-voxel peak: per axis a parabola through the log-heights (exact for a Gaussian)."""
    offset = np.zeros(3)
    for axis in range(3):
        lo, hi = peak.copy(), peak.copy()
        lo[axis], hi[axis] = peak[axis] - 1, peak[axis] + 1
        if lo[axis] < 0 or hi[axis] >= h.shape[axis]:
            continue
        a, b, c = (np.log(max(float(h[tuple(p)]), 1e-6)) for p in (lo, peak, hi))
        if a - 2 * b + c < 0:
            offset[axis] = np.clip(0.5 * (a - c) / (a - 2 * b + c), -0.5, 0.5)
    return peak + offset


def decode_peaks(heatmap: np.ndarray, grid: sitk.Image, count: int = 12) -> list[tuple[list[float], float]]:
    """Up to `count` local maxima at least PEAK_SPACING_MM apart: (LPS mm, height), strongest first."""
    h = heatmap[0] if heatmap.ndim == 4 else heatmap
    work = h.copy()
    zz, yy, xx = np.indices(h.shape, sparse=True)
    radius = PEAK_SPACING_MM / GRID_MM
    peaks = []
    for _ in range(count):
        peak = np.array(np.unravel_index(int(np.argmax(work)), h.shape))
        if not np.isfinite(work[tuple(peak)]) or work[tuple(peak)] <= 0.0:
            break
        point = io.index_to_physical(grid, refine_peak(h, peak)[::-1])
        peaks.append(([float(v) for v in point], float(h[tuple(peak)])))
        work[(zz - peak[0]) ** 2 + (yy - peak[1]) ** 2 + (xx - peak[2]) ** 2 <= radius ** 2] = -np.inf
    return peaks


def plausible_pair(right: list[float], left: list[float]) -> bool:
    """Two femoral heads sit side by side: far apart in x, close in y (AP) and z (height)."""
    dx, dy, dz = np.asarray(left) - np.asarray(right)
    return PAIR_DX_MM[0] <= dx <= PAIR_DX_MM[1] and float(np.hypot(dy, dz)) <= PAIR_OFFSET_MM


def assign_sides(peaks: list[tuple[list[float], float]], midline_x: float) -> dict[str, tuple[list[float], float]]:
    """Each side's best candidate (`side_candidates`); a side without one is absent."""
    return {side: found[0] for side, found in side_candidates(peaks, midline_x).items() if found}


def side_candidates(peaks: list[tuple[list[float], float]],
                    midline_x: float | None) -> dict[str, list[tuple[list[float], float]]]:
    """Per side, the peaks on that side of the body's midline strongest first (at most MAX_CANDIDATES,
    none below CANDIDATE_MIN_HEIGHT); the members of the strongest side-by-side pair go first. With the
    midline unknown (None) every peak is a candidate for both sides, and the femoral neck tells them apart
    (`plausibility`)."""
    strong = [p for p in peaks if p[1] >= CANDIDATE_MIN_HEIGHT]
    pairs = sorted(((a, b) for i, a in enumerate(strong) for b in strong[i + 1:]),
                   key=lambda ab: -(ab[0][1] + ab[1][1]))
    first = next(((a, b) if a[0][0] < b[0][0] else (b, a) for a, b in pairs
                  if plausible_pair(*((a[0], b[0]) if a[0][0] < b[0][0] else (b[0], a[0])))), None)
    out = {}
    for k, side in enumerate(SIDES):
        mine = [p for p in strong if midline_x is None or (p[0][0] < midline_x) == (side == "R")]
        if first is not None:
            mine = [first[k]] + [p for p in mine if p is not first[k]]
        out[side] = mine[:MAX_CANDIDATES]
    return out


def _coarse(image: sitk.Image) -> sitk.Image:
    return io.resample_spacing(sitk.Cast(image, sitk.sitkFloat32), 8.0)


def body_midline_x(image: sitk.Image) -> float:
    """LPS x of the body's centre (mean of voxels brighter than the background), for one-hip decisions."""
    return _body_centre_x(_coarse(image))


def _body_centre_x(coarse: sitk.Image) -> float:
    arr = sitk.GetArrayFromImage(coarse)
    body = np.argwhere(arr > np.percentile(arr, 50))
    centre = body.mean(0)[::-1] if len(body) else (np.array(coarse.GetSize()) - 1) / 2.0
    return float(io.index_to_physical(coarse, centre)[0])


def midline_x(image: sitk.Image, modality: str) -> float | None:
    """LPS x of the body's midline as far as the scan shows it. Air beyond both lateral edges: the body's
    centre (`body_midline_x`). Body cut at one edge (a one-hip view: the rest of the body goes on beyond
    it): that edge, as the midline lies at or beyond it, so every head in view is on the other side and at
    least as far from the midline as from the edge. Cut at both edges: unknown (None), and the femoral neck
    has to tell the side (`plausibility`)."""
    coarse = _coarse(image)
    arr = sitk.GetArrayFromImage(coarse)
    if modality == "ct":
        body = arr > -500.0  # air is −1000 HU, fat −100
    else:
        lo, hi = np.percentile(arr, (1.0, 99.0))
        body = arr > lo + 0.1 * (hi - lo)  # air is dark; fat, marrow and muscle are not
    axis_xyz = int(np.argmax(np.abs(np.array(coarse.GetDirection()).reshape(3, 3)[0])))  # image axis nearest LPS x
    axis = 2 - axis_xyz
    share = body.mean(axis=tuple(a for a in range(3) if a != axis))
    cut = [share[0] >= MIDLINE_EDGE_CUT, share[-1] >= MIDLINE_EDGE_CUT]
    if not any(cut):
        return _body_centre_x(coarse)
    if all(cut):
        return None
    corner = np.zeros(3)
    corner[axis_xyz] = 0 if cut[0] else coarse.GetSize()[axis_xyz] - 1
    return float(io.index_to_physical(coarse, corner)[0])


def symmetric_heatmap(network: torch.nn.Module, array: np.ndarray, device: torch.device) -> np.ndarray:
    """Mean of the heatmap and the mirrored heatmap of the mirrored input: a left-right flipped scan then
    gives exactly mirrored head centres (the grid is centred on the scan, so a flip of x maps it onto itself)."""
    x = torch.from_numpy(array)[None, None].to(device)
    with torch.no_grad():
        heat = network(x) + network(x.flip(-1)).flip(-1)
    return (0.5 * heat)[0].float().cpu().numpy()


def run_localizer(network: torch.nn.Module, image: sitk.Image, modality: str, device: torch.device,
                  midline_x: float | None) -> dict[str, list[tuple[list[float], float]]]:
    """Ranked femoral-head candidates per side: (LPS mm, heatmap height); a pooled localiser's members' in turn."""
    array, grid = localizer_input(image, modality)
    ranked = [side_candidates(decode_peaks(symmetric_heatmap(member, array, device), grid), midline_x)
              for member in localizer_members(network)]
    return {side: pooled([r[side] for r in ranked]) for side in SIDES}


def pooled(lists: list[list[tuple[list[float], float]]]) -> list[tuple[list[float], float]]:
    """The first candidate of each list, then the second of each, …; one within SAME_CANDIDATE_MM of a
    candidate already taken is skipped, and at most POOLED_MAX_CANDIDATES are kept. Heights of different
    networks are not compared: the order of the members is the ranking. One list comes back unchanged (its
    peaks are PEAK_SPACING_MM apart and at most MAX_CANDIDATES)."""
    out = []
    for candidate in (c for rank in zip_longest(*lists) for c in rank if c is not None):
        if all(np.linalg.norm(np.subtract(candidate[0], taken[0])) > SAME_CANDIDATE_MM for taken in out):
            out.append(candidate)
    return out[:POOLED_MAX_CANDIDATES]


def screen(image: sitk.Image, modality: str, side: str, centre: list[float], confidence: float) -> HeadEstimate:
    """What the image alone says about a candidate before it is segmented: out of view, or metal in the hip."""
    if not io.inside(image, centre):
        return HeadEstimate(side, False, centre, confidence=confidence,
                            reason="out of field of view: the head lies outside the scanned volume")
    if modality == "ct":
        metal_ml = metal_volume_ml(image, centre)
        if metal_ml >= METAL_MIN_ML:
            return HeadEstimate(side, False, centre, confidence=confidence, extras={"metal_ml": round(metal_ml, 2)},
                                reason=f"metal in the hip (implant, screw or nail): {metal_ml:.1f} ml above "
                                       f"{METAL_HU:.0f} HU within {METAL_SEARCH_MM:.0f} mm of the head")
    return HeadEstimate(side, True, centre, confidence=confidence)


def metal_volume_ml(image: sitk.Image, centre: list[float]) -> float:
    """Millilitres above METAL_HU within METAL_SEARCH_MM of a point, counted on the scan's own voxels.

    Resampling first (as an earlier version did, to 2 mm) spreads a thin screw's few metal voxels below
    METAL_HU; on the scan's own grid the count holds from 1 to 6 mm spacing (the README lists it)."""
    corners = [np.asarray(centre) + METAL_SEARCH_MM * (2 * np.array(c) - 1) for c in np.ndindex(2, 2, 2)]
    start, size = io.index_box(image, corners)
    if min(size) <= 0:
        return 0.0
    region = sitk.RegionOfInterest(image, [int(v) for v in size], [int(v) for v in start])
    arr = sitk.GetArrayViewFromImage(region)
    hot = np.argwhere(arr > METAL_HU)
    if not len(hot):
        return 0.0
    direction = np.array(region.GetDirection()).reshape(3, 3)
    points = np.asarray(region.GetOrigin()) + (hot[:, ::-1] * np.asarray(region.GetSpacing())) @ direction.T
    near = np.linalg.norm(points - np.asarray(centre), axis=1) <= METAL_SEARCH_MM
    return float(near.sum() * io.voxel_volume_ml(image))
