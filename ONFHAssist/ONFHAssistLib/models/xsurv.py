"""XSurv (Meng et al., MICCAI 2023) as a Table 1 row: an X-shaped merging-diverging network. Two modality
encoders (here the image and the label map, seed 000's adaptation of PET and CT) are merged level by level;
at the deepest level a Hybrid Parallel Cross-Attention block runs a convolution on both modalities in parallel
with cross-attention each way. Two diverging decoders, one per region (the femoral head and the necrotic
lesion, for the primary tumour and the nodes), gate their skip features with Region-specific Attention Gates
and segment their region; the survival head reads the merged bottleneck and both region decoders (pooled)
with the grades. Loss: Cox NPLL + Dice of both regions (`auxiliary_loss`)."""
from __future__ import annotations

import torch
from monai.losses import DiceLoss
from monai.networks.blocks import UnetBasicBlock, UnetOutBlock
from monai.networks.nets.attentionunet import AttentionBlock
from torch import nn

from .survival import LABEL_VALUES, SurvivalConfig
from .survival_parts import GradeMLP, fusion_head, label_channels

NORM = ("instance", {"affine": True})
FEMUR, NECROSIS = 2, 3  # label values (phantom.cohort.LABELS); the head region holds the lesion


class HybridParallelCrossAttention(nn.Module):
    """Convolution on the concatenated modalities in parallel with cross-attention A→B and B→A; summed."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.conv = UnetBasicBlock(3, 2 * channels, channels, 3, 1, NORM)
        self.a_from_b = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.b_from_a = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm = nn.LayerNorm(channels)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        shape = a.shape
        ta, tb = (self.norm(t.flatten(2).transpose(1, 2)) for t in (a, b))
        cross = self.a_from_b(ta, tb, tb)[0] + self.b_from_a(tb, ta, ta)[0]
        return self.conv(torch.cat([a, b], 1)) + cross.transpose(1, 2).reshape(shape)


class RegionDecoder(nn.Module):
    """Upsample, gate the merged skip with a region-specific attention gate, convolve; two levels; a 1-channel
    segmentation logit of the region."""

    def __init__(self, c: int):
        super().__init__()
        widths = [(4 * c, 2 * c), (2 * c, c)]
        self.up = nn.ModuleList([nn.ConvTranspose3d(i, o, 2, 2) for i, o in widths])
        self.gate = nn.ModuleList([AttentionBlock(3, max(o // 2, 1), o, o) for _, o in widths])
        self.conv = nn.ModuleList([UnetBasicBlock(3, 2 * o, o, 3, 1, NORM) for _, o in widths])
        self.out = UnetOutBlock(3, c, 1)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]):
        pooled = []
        for up, gate, conv, skip in zip(self.up, self.gate, self.conv, skips):
            x = up(x)
            x = conv(torch.cat([x, gate(x, skip)], 1))
            pooled.append(x.mean((2, 3, 4)))
        return self.out(x), torch.cat(pooled, 1)


class XSurv(nn.Module):
    def __init__(self, cfg: SurvivalConfig):
        super().__init__()
        c = max(cfg.resnet_planes[0] // 2, 2)  # full-resolution U-Net levels: half the ResNet's width (CPU)

        def encoder(channels):
            return nn.ModuleList([UnetBasicBlock(3, channels, c, 3, 1, NORM), UnetBasicBlock(3, c, 2 * c, 3, 2, NORM),
                                  UnetBasicBlock(3, 2 * c, 4 * c, 3, 2, NORM)])

        self.enc_image, self.enc_label = encoder(1), encoder(LABEL_VALUES)
        self.merge = nn.ModuleList([UnetBasicBlock(3, 2 * w, w, 1, 1, NORM) for w in (c, 2 * c)])
        self.hpca = HybridParallelCrossAttention(4 * c, cfg.sle_heads)
        self.regions = nn.ModuleList([RegionDecoder(c), RegionDecoder(c)])
        self.grades = GradeMLP(cfg.d_grade)
        self.fusion = fusion_head(4 * c + 2 * 3 * c + cfg.d_grade, cfg.d_fusion)
        self.risk = nn.Linear(cfg.d_fusion, 1)
        self.seg_loss = DiceLoss(sigmoid=True)

    def forward(self, image: torch.Tensor, labels: torch.Tensor, grades: torch.Tensor):
        """(risk (B,), embedding z (B, d_fusion), region logits (B, 2, D, H, W): femoral head, lesion)."""
        a, b, merged = image, label_channels(labels, image.dtype), []
        for level, (block_a, block_b) in enumerate(zip(self.enc_image, self.enc_label)):
            a, b = block_a(a), block_b(b)
            merged.append(self.hpca(a, b) if level == 2 else self.merge[level](torch.cat([a, b], 1)))
        bottleneck = merged[-1]
        outputs = [decoder(bottleneck, merged[-2::-1]) for decoder in self.regions]
        seg = torch.cat([s for s, _ in outputs], 1)
        z = self.fusion(torch.cat([bottleneck.mean((2, 3, 4)), *(p for _, p in outputs), self.grades(grades)], 1))
        return self.risk(z).squeeze(1), z, seg

    def auxiliary_loss(self, seg: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        target = torch.stack([labels >= FEMUR, labels == NECROSIS], 1).to(seg.dtype)
        return self.seg_loss(seg, target)
