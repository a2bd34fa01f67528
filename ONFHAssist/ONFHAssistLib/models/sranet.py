"""SRANet (seed 001): patch attention over a 128³ head crop, with a structure regulariser on CT.

The crop is cut into 4×4×4 = 64 patches of 32³ in C order (patch p = 16i + 4j + k for the patch at
(i, j, k) along the crop's array axes). One small CNN encodes every patch (all 64 as one batch);
gated attention scores them; the bag feature is the attention-weighted sum of patch features.
Attention weights are the scores shifted to a minimum of 0 and normalised, so equal scores give
equal weights instead of a 0/0.
"""
from __future__ import annotations

import torch
from torch import nn

CROP, PATCH, GRID = 128, 32, 4
N_PATCHES = GRID ** 3
EPS = 1e-8


def to_patches(volume: torch.Tensor) -> torch.Tensor:
    """(B, 1, 128, 128, 128) → (B, 64, 1, 32, 32, 32), patch p = 16i + 4j + k."""
    b = volume.shape[0]
    x = volume.reshape(b, 1, GRID, PATCH, GRID, PATCH, GRID, PATCH)
    return x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, N_PATCHES, 1, PATCH, PATCH, PATCH)


def patch_map_to_volume(values: torch.Tensor) -> torch.Tensor:
    """(B, 64) per-patch values → (B, 128, 128, 128) volume, each patch filled with its value."""
    b = values.shape[0]
    grid = values.reshape(b, GRID, GRID, GRID)
    return grid.repeat_interleave(PATCH, 1).repeat_interleave(PATCH, 2).repeat_interleave(PATCH, 3)


def attention_weights(scores: torch.Tensor) -> torch.Tensor:
    """aᵢ = (gᵢ − min g) / Σ(g − min g), with ε so that equal scores give equal weights, not 0/0."""
    shifted = scores - scores.min(dim=1, keepdim=True).values
    return (shifted + EPS / N_PATCHES) / (shifted.sum(dim=1, keepdim=True) + EPS)


class PatchEncoder(nn.Module):
    """Conv3d(1,20,5) → ReLU → MaxPool(2) → Conv3d(20,50,5) → ReLU → MaxPool(2) → Linear(6250, 500) → ReLU."""

    def __init__(self, hidden: int = 500):
        super().__init__()
        self.features = nn.Sequential(nn.Conv3d(1, 20, 5), nn.ReLU(), nn.MaxPool3d(2),
                                      nn.Conv3d(20, 50, 5), nn.ReLU(), nn.MaxPool3d(2))
        self.project = nn.Sequential(nn.Linear(50 * 5 * 5 * 5, hidden), nn.ReLU())
        for layer in self.modules():  # He init keeps the ReLU stack's signal alive (PyTorch's default shrinks it ~30×)
            if isinstance(layer, (nn.Conv3d, nn.Linear)):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:  # (N, 1, 32, 32, 32) → (N, hidden)
        return self.project(self.features(patches).flatten(1))


class SRANet(nn.Module):
    def __init__(self, hidden: int = 500, attention: int = 128, classes: int = 2, encoder: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder or PatchEncoder(hidden)
        self.v = nn.Linear(hidden, attention)
        self.u = nn.Linear(hidden, attention)
        self.w = nn.Linear(attention, 1)
        self.classifier = nn.Linear(hidden, classes)

    def forward(self, volume: torch.Tensor) -> dict[str, torch.Tensor]:
        """logits (B, classes), scores g (B, 64), weights a (B, 64), all patches encoded as one batch."""
        b = volume.shape[0]
        h = self.encoder(to_patches(volume).reshape(b * N_PATCHES, 1, PATCH, PATCH, PATCH)).reshape(b, N_PATCHES, -1)
        g = self.score(h)
        a = attention_weights(g)
        bag = (a.unsqueeze(-1) * h).sum(1)
        return {"logits": self.classifier(bag), "scores": g, "weights": a}

    def score(self, h: torch.Tensor) -> torch.Tensor:
        """Gated attention score g = wᵀ(tanh(V h) ⊙ sigmoid(U h)), one per patch feature."""
        return self.w(torch.tanh(self.v(h)) * torch.sigmoid(self.u(h))).squeeze(-1)


def structure_loss(scores: torch.Tensor, bone_patches: torch.Tensor, hips: torch.Tensor | None = None) -> torch.Tensor:
    """Per-patch BCE between σ(g) and whether the patch overlaps bone: attention should sit on structure.

    `hips` (B,) marks the hips the term applies to (CT: a threshold finds bone there, not on MR-T1,
    where fat is as bright); the term is averaged over those.
    """
    per_hip = nn.functional.binary_cross_entropy_with_logits(scores, bone_patches.float(), reduction="none").mean(1)
    if hips is None:
        return per_hip.mean()
    return (per_hip * hips).sum() / hips.sum().clamp(min=1)


def sranet_loss(out: dict, target: torch.Tensor, bone_patches: torch.Tensor | None, alpha: float = 0.9,
                hips: torch.Tensor | None = None) -> torch.Tensor:
    """α·CE + (1 − α)·structure; the structure term needs the training-time bone mask (CT)."""
    ce = nn.functional.cross_entropy(out["logits"], target)
    if bone_patches is None:
        return ce
    return alpha * ce + (1.0 - alpha) * structure_loss(out["scores"], bone_patches, hips)
