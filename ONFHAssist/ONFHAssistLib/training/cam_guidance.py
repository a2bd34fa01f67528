"""Teach the staging network to keep its class evidence where a radiologist looks (staging 1.3.0 on).

With global average pooling, Grad-CAM of the last block is the class-activation map (features × the
class's weights) up to a scale. Trained on labels alone, the map's peak fell inside the head on 18 of
41 held-out lesion hips (and on the lesion on 6). The localisation term pulls the map's softmax mass onto
the cells where the hip's evidence lies: the lesion, or, for a hip without one, the femoral head.
Softmax is shift-invariant, so the term shapes where the evidence sits without moving the logits the
classification loss trains. With it the peak lies in the head on 41 of 41 (README: Staging and SRANet).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

FEMUR, NECROSIS = 2, 3
HEAD_RADIUS_MM = 25.0  # a typical adult femoral head; the evidence region of a hip without a lesion


def evidence_region(label: np.ndarray | None, spacing_mm: float) -> np.ndarray | None:
    """Voxels of a head-centred label crop that hold the hip's stage evidence (None without a label)."""
    if label is None:
        return None
    if (label == NECROSIS).any():
        return label == NECROSIS
    return (label == FEMUR) & (distance_from_centre_mm(label.shape, spacing_mm) <= HEAD_RADIUS_MM)


def distance_from_centre_mm(shape: tuple[int, ...], spacing_mm: float) -> np.ndarray:
    """Each voxel's distance from the centre of a head-centred crop, in mm."""
    offsets = np.indices(shape) - ((np.array(shape) - 1) / 2).reshape(-1, 1, 1, 1)
    return np.sqrt((offsets ** 2).sum(0)) * spacing_mm


def evidence_cells(regions: torch.Tensor, cells: tuple[int, int, int]) -> torch.Tensor:
    """(B, *cells) booleans: which cells of the network's last grid touch each hip's evidence region."""
    return F.adaptive_max_pool3d(regions[:, None].float(), cells)[:, 0] > 0


def localisation_loss(activation: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """−log of the activation's softmax mass inside the evidence cells, averaged over hips that have any."""
    has = cells.flatten(1).any(1)
    if not has.any():
        return activation.sum() * 0.0
    flat, inside = activation.flatten(1)[has], cells.flatten(1)[has]
    return (torch.logsumexp(flat, 1) - torch.logsumexp(flat.masked_fill(~inside, float("-inf")), 1)).mean()


def gradcam_peaks(cam, images: np.ndarray, labels: list, probabilities: np.ndarray, radii_mm: np.ndarray,
                  spacing_mm: float, device) -> dict:
    """Where Grad-CAM of the predicted ONFH stage peaks on head-centred crops of hips with a labelled lesion:
    the share of peaks within the head's radius of the centre, and on a lesion voxel."""
    inside, on_lesion = [], []
    for image, label, p, radius in zip(images, labels, probabilities, radii_mm):
        if label is None or not (label == NECROSIS).any():
            continue
        stage = int(np.argmax(p[1:])) + 1  # as `onfh analyze` shows a hip with a segmented lesion
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(device)
        heat = cam(x, class_idx=stage)[0, 0].detach().float().cpu().numpy()
        peak = np.unravel_index(int(heat.argmax()), heat.shape)
        inside.append(bool(distance_from_centre_mm(heat.shape, spacing_mm)[peak] <= radius))
        on_lesion.append(bool(label[peak] == NECROSIS))
    return {"lesion_hips": len(inside), "peak_in_head": _share(inside), "peak_on_lesion": _share(on_lesion)}


def _share(flags: list[bool]) -> float:
    return float(np.mean(flags)) if flags else float("nan")
