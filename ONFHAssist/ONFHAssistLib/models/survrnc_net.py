"""SurvRNC (Saeed et al., MICCAI 2024) as a Table 1 row: a CNN on the image channels and an MLP on the clinical
record, their embeddings concatenated into z, a linear risk on z; trained with Cox NPLL + λ·SurvRNC on z
(the recipe adds the loss). Without SLE the label map is early-fused as one-hot channels with the image (the
paper's PET/CT early fusion); with SLE it goes through seed 000's Spatial Label Encoder instead."""
from __future__ import annotations

import torch
from monai.networks.nets import ResNet
from torch import nn

from .survival import LABEL_VALUES, SpatialLabelEncoder, SurvivalConfig
from .survival_parts import GradeMLP, fusion_head, label_channels


class SurvRNCNet(nn.Module):
    def __init__(self, cfg: SurvivalConfig, sle: bool = False):
        super().__init__()
        self.use_sle = sle
        channels = 1 if sle else 1 + LABEL_VALUES
        self.image = ResNet("basic", list(cfg.resnet_layers), list(cfg.resnet_planes), spatial_dims=3,
                            n_input_channels=channels, num_classes=cfg.d_img, norm=("instance", {"affine": True}))
        self.sle = SpatialLabelEncoder(cfg) if sle else None
        self.grades = GradeMLP(cfg.d_grade)
        self.fusion = fusion_head(cfg.d_img + (cfg.d_lbl if sle else 0) + cfg.d_grade, cfg.d_fusion)
        self.risk = nn.Linear(cfg.d_fusion, 1)

    def forward(self, image: torch.Tensor, labels: torch.Tensor, grades: torch.Tensor):
        """(risk of shape (B,), embedding z of shape (B, d_fusion))."""
        if self.use_sle:
            parts = [self.image(image), self.sle(labels)]
        else:
            parts = [self.image(torch.cat([image, label_channels(labels, image.dtype)], 1))]
        z = self.fusion(torch.cat([*parts, self.grades(grades)], 1))
        return self.risk(z).squeeze(1), z
