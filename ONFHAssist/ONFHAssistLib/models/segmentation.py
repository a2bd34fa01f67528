"""Per-hip segmentation network: MONAI DynUNet, 4 classes (background, pelvis, femur, necrosis)."""
from __future__ import annotations

from monai.networks.nets import DynUNet

CLASSES = ("background", "pelvis", "femur", "necrosis")


def build_segmenter(filters: tuple[int, ...] = (16, 32, 64, 128)) -> DynUNet:
    """Small enough for 2 CPU cores; input edge must be a multiple of 2**(len(filters)-1)."""
    depth = len(filters)
    return DynUNet(spatial_dims=3, in_channels=1, out_channels=len(CLASSES), kernel_size=[3] * depth,
                   strides=[1] + [2] * (depth - 1), upsample_kernel_size=[2] * (depth - 1),
                   filters=list(filters), norm_name="instance", res_block=True)
