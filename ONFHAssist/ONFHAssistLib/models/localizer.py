"""Femoral-head localiser network: one coarse whole-volume heatmap with a peak at every femoral head."""
from __future__ import annotations

from monai.networks.nets import BasicUNet


def build_localizer(features: tuple[int, ...] = (8, 16, 32, 64, 64, 8)) -> BasicUNet:
    return BasicUNet(spatial_dims=3, in_channels=1, out_channels=1, features=features,
                     norm=("instance", {"affine": True}), dropout=0.0)
