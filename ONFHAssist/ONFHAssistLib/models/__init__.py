"""The networks (`localizer`, `segmentation`, `staging`, `sranet`, `survival`; plain `nn.Module` builders),
their losses, the builder that loads a named model (`networks`), safetensors weights (`weights`), the
model store (`store`: cards, checksums, registry, import/export) and SRANet's patch masks (`sranet_patches`).

May import torch, monai, SimpleITK and the top-level helpers; never `training`, `analysis`, `slicer` or
`cli` (a torchrun job's rank handling lives in `training.distributed`).
"""
