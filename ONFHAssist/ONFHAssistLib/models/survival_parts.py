"""Pieces the comparison networks of seed 000's Table 1 share: the grades as a clinical-record vector (one-hot
codes → MLP, how DeepMTS, XSurv and SurvRNC take clinical data) and the label map as one-hot channels."""
from __future__ import annotations

import torch
from torch import nn

from .survival import GRADE_SYSTEMS, LABEL_VALUES


class GradeMLP(nn.Module):
    """One-hot codes of every grade system, concatenated → Linear → GELU → Linear (d_out)."""

    def __init__(self, d_out: int):
        super().__init__()
        self.cardinalities = list(GRADE_SYSTEMS.values())
        self.mlp = nn.Sequential(nn.Linear(sum(self.cardinalities), d_out), nn.GELU(), nn.Linear(d_out, d_out))

    def forward(self, grades: torch.Tensor) -> torch.Tensor:  # (B, n_systems) integer codes
        parts = [nn.functional.one_hot(grades[:, i].long(), k) for i, k in enumerate(self.cardinalities)]
        return self.mlp(torch.cat(parts, 1).float())


def label_channels(labels: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, D, H, W) label values → (B, LABEL_VALUES, D, H, W) one-hot channels."""
    return nn.functional.one_hot(labels.long(), LABEL_VALUES).permute(0, 4, 1, 2, 3).to(dtype)


def fusion_head(width: int, d_fusion: int) -> nn.Sequential:
    """concat → Linear → GELU → Linear: the embedding z the risk is read from (and SurvRNC shapes)."""
    return nn.Sequential(nn.Linear(width, d_fusion), nn.GELU(), nn.Linear(d_fusion, d_fusion))
