"""DeepMTS (Meng et al. 2022) as a Table 1 row: a hard-sharing 3D U-Net segments the label map from the image
(the auxiliary task that lets a small cohort train a 3D model), and a cascaded 3D DenseNet reads the image
together with the U-Net's segmentation; the DenseNet's features, the U-Net encoder's pooled multi-scale
features and the grades (clinical MLP) are concatenated into z and a linear risk. Loss: Cox NPLL + Dice-CE of
the segmentation (`auxiliary_loss`)."""
from __future__ import annotations

import torch
from monai.losses import DiceCELoss
from monai.networks.blocks import UnetBasicBlock, UnetOutBlock, UnetUpBlock
from monai.networks.nets import DenseNet
from torch import nn

from .survival import LABEL_VALUES, SurvivalConfig
from .survival_parts import GradeMLP, fusion_head

NORM = ("instance", {"affine": True})


class DeepMTS(nn.Module):
    def __init__(self, cfg: SurvivalConfig):
        super().__init__()
        c = max(cfg.resnet_planes[0] // 2, 2)  # full-resolution U-Net levels: half the ResNet's width (CPU)
        self.enc = nn.ModuleList([UnetBasicBlock(3, 1, c, 3, 1, NORM), UnetBasicBlock(3, c, 2 * c, 3, 2, NORM),
                                  UnetBasicBlock(3, 2 * c, 4 * c, 3, 2, NORM)])
        self.dec = nn.ModuleList([UnetUpBlock(3, 4 * c, 2 * c, 3, 1, 2, NORM), UnetUpBlock(3, 2 * c, c, 3, 1, 2, NORM)])
        self.seg = UnetOutBlock(3, c, LABEL_VALUES)
        self.cascade = DenseNet(3, 1 + LABEL_VALUES, cfg.d_img, init_features=c, growth_rate=c, block_config=(2, 2),
                                bn_size=2, norm=NORM)
        self.grades = GradeMLP(cfg.d_grade)
        self.fusion = fusion_head(cfg.d_img + 7 * c + cfg.d_grade, cfg.d_fusion)
        self.risk = nn.Linear(cfg.d_fusion, 1)
        self.seg_loss = DiceCELoss(to_onehot_y=True, softmax=True)

    def forward(self, image: torch.Tensor, labels: torch.Tensor, grades: torch.Tensor):
        """(risk (B,), embedding z (B, d_fusion), segmentation logits (B, LABEL_VALUES, D, H, W))."""
        skips = []
        x = image
        for block in self.enc:
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.dec, reversed(skips[:-1])):
            x = block(x, skip)
        seg = self.seg(x)
        deep = self.cascade(torch.cat([image, torch.softmax(seg, 1)], 1))
        pooled = [s.mean((2, 3, 4)) for s in skips]
        z = self.fusion(torch.cat([deep, *pooled, self.grades(grades)], 1))
        return self.risk(z).squeeze(1), z, seg

    def auxiliary_loss(self, seg: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.seg_loss(seg, labels[:, None].long())
