"""A collapse-risk network shown only some of its inputs, for seed 000's search over modality combinations.

A withheld image or label map is fed as all zeros (a label map of background only) and withheld grades as each
system's missing-grade token, so the network is unchanged and learns from exactly the modalities it keeps. The
label map a network segments as its auxiliary task (DeepMTS, XSurv) stays its training target: withholding it
removes an input, not the supervision.
"""
from __future__ import annotations

import torch
from torch import nn

from .survival import GRADE_SYSTEMS

MODALITIES = ("image", "labels", "grades")
MISSING_GRADE = tuple(tokens - 1 for tokens in GRADE_SYSTEMS.values())  # each system's last token: missing


class ModalitySubset(nn.Module):
    def __init__(self, net: nn.Module, keep: frozenset[str]):
        super().__init__()
        unknown = set(keep) - set(MODALITIES)
        if unknown or not keep:
            raise ValueError(f"keep must be a non-empty subset of {MODALITIES}, not {sorted(keep)}")
        self.net, self.keep = net, frozenset(keep)
        self.register_buffer("missing", torch.tensor(MISSING_GRADE, dtype=torch.long), persistent=False)

    def forward(self, image: torch.Tensor, labels: torch.Tensor, grades: torch.Tensor):
        if "image" not in self.keep:
            image = torch.zeros_like(image)
        if "labels" not in self.keep:
            labels = torch.zeros_like(labels)
        if "grades" not in self.keep:
            grades = self.missing.expand_as(grades)
        return self.net(image, labels, grades)

    def auxiliary_loss(self, seg: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net.auxiliary_loss(seg, labels)


def shown(net: nn.Module, keep: frozenset[str] | None) -> nn.Module:
    """`net` itself when it keeps every input (or `keep` is None), else the net behind a ModalitySubset."""
    return net if keep is None or set(MODALITIES) <= set(keep) else ModalitySubset(net, keep)
