"""Femoral-head localiser network: a coarse whole-volume heatmap per side (channel 0 right, 1 left)."""
from __future__ import annotations

from monai.networks.nets import BasicUNet

SIDES = ("R", "L")


def build_localizer(features: tuple[int, ...] = (8, 16, 32, 64, 64, 8)) -> BasicUNet:
    return BasicUNet(spatial_dims=3, in_channels=1, out_channels=len(SIDES), features=features,
                     norm=("instance", {"affine": True}), dropout=0.0)
