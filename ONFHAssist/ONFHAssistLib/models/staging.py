"""Staging network (seed 003's 3D-ONFHNet): a 3D DenseNet whose transitions fuse multi-scale pooling.

MulPoolFusion replaces DenseNet's average-pool transition: max- and average-pooling with kernels 2, 4
and 6 (stride 2, so every branch halves the grid), concatenated and projected by a 1×1×1 convolution.
"""
from __future__ import annotations

import torch
from torch import nn

SYSTEMS = {"ficat3": 3, "ficat": 5, "arco": 5, "jic_stage": 5, "binary": 2}
POOL_KERNELS = (2, 4, 6)


class DenseLayer(nn.Module):
    def __init__(self, channels: int, growth: int, bottleneck: int = 4, padding: str = "zeros"):
        super().__init__()
        self.block = nn.Sequential(
            nn.BatchNorm3d(channels), nn.ReLU(inplace=True), nn.Conv3d(channels, bottleneck * growth, 1, bias=False),
            nn.BatchNorm3d(bottleneck * growth), nn.ReLU(inplace=True),
            nn.Conv3d(bottleneck * growth, growth, 3, padding=1, bias=False, padding_mode=padding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.block(x)], 1)


class MulPoolFusion(nn.Module):
    """Parallel max/avg pooling at several scales → concat → 1×1×1 conv (the transition between dense blocks)."""

    def __init__(self, channels: int, out_channels: int, kernels=POOL_KERNELS):
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm3d(channels), nn.ReLU(inplace=True))
        self.pools = nn.ModuleList()
        for k in kernels:
            self.pools.append(nn.MaxPool3d(k, stride=2, padding=(k - 2) // 2))
            self.pools.append(nn.AvgPool3d(k, stride=2, padding=(k - 2) // 2, count_include_pad=False))
        self.project = nn.Conv3d(channels * len(self.pools), out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        return self.project(torch.cat([pool(x) for pool in self.pools], 1))


class MulPoolDenseNet(nn.Module):
    def __init__(self, classes: int, growth: int = 12, blocks=(4, 4, 4), init_features: int = 24, padding: str = "zeros"):
        """`padding="replicate"` (staging 1.2.0) continues the tissue at the crop's edge instead of a wall of zeros."""
        super().__init__()
        layers: list[nn.Module] = [nn.Conv3d(1, init_features, 3, stride=2, padding=1, bias=False,
                                             padding_mode=padding)]  # stem halves the grid
        channels = init_features
        for b, n in enumerate(blocks):
            for _ in range(n):
                layers.append(DenseLayer(channels, growth, padding=padding))
                channels += growth
            if b < len(blocks) - 1:
                layers.append(MulPoolFusion(channels, channels // 2))
                channels //= 2
        layers += [nn.BatchNorm3d(channels), nn.ReLU(inplace=False)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, classes)
        self.cam_layer = f"features.{len(layers) - 1}"  # the last activation: where Grad-CAM looks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_and_activation(x)[0]

    def logits_and_activation(self, x: torch.Tensor, classes: torch.Tensor | None = None):
        """Logits, and with `classes` each sample's class-activation map on the last grid (Grad-CAM up to scale)."""
        features = self.features(x)
        logits = self.classifier(features.mean(dim=(2, 3, 4)))
        if classes is None:
            return logits, None
        return logits, torch.einsum("bcxyz,bc->bxyz", features, self.classifier.weight[classes])
