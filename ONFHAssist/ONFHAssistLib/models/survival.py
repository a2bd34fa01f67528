"""Tri-stream collapse-risk network: image encoder + Spatial Label Encoder (SLE) + grade embedder.

Streams (seed 000): a shallow 3D ResNet on the per-hip crop (d_img), the SLE on the label map
(d_lbl), and an FT-Transformer-style categorical tokenizer over the grade systems (d_grade).
Fusion: concat → Linear → act → Linear = z_out (the embedding SurvRNC shapes) → Linear = risk u.
Variants give the ablation rows: 'full', 'no_sle' (label one-hot early-fused with the image),
'image' (image only) and 'grades' (grades only).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from monai.networks.nets import ResNet
from torch import nn

# Tokens per grade system: its levels (0/none included) and, last, a token of its own for a missing grade.
GRADE_SYSTEMS = {"jic_stage": 6, "jic_type": 6, "arco": 6, "steinberg": 8, "ficat": 6}
VARIANTS = ("full", "no_sle", "image", "grades")
LABEL_VALUES = 4


@dataclass(frozen=True)
class SurvivalConfig:
    variant: str = "full"
    d_img: int = 128
    d_lbl: int = 128
    d_grade: int = 64
    d_token: int = 16
    d_fusion: int = 128
    resnet_layers: tuple = (1, 1, 1, 1)
    resnet_planes: tuple = (16, 32, 64, 128)
    sle_channels: int = 8
    sle_patch: int = 8
    sle_heads: int = 4
    sle_layers: int = 2
    crop_size: int = 64
    grade_skip: bool = False  # wide path: a linear Cox term on the ordinal grade codes, added to the deep risk

    def to_json(self) -> dict:
        return asdict(self)


class GradeTokenizer(nn.Module):
    """One shared embedding table with per-feature row offsets plus a per-feature bias; tokens
    concatenated → linear → d_grade."""

    def __init__(self, cardinalities: list[int], d_token: int, d_out: int):
        super().__init__()
        self.register_buffer("offsets", torch.tensor([0] + cardinalities[:-1]).cumsum(0), persistent=False)
        self.embedding = nn.Embedding(sum(cardinalities), d_token)
        self.bias = nn.Parameter(torch.zeros(len(cardinalities), d_token))
        self.project = nn.Linear(len(cardinalities) * d_token, d_out)

    def forward(self, grades: torch.Tensor) -> torch.Tensor:  # (B, n_features) integer codes
        tokens = self.embedding(grades + self.offsets) + self.bias
        return self.project(tokens.flatten(1))


class SpatialLabelEncoder(nn.Module):
    """Label values → learned channels → 3D patches + positions → shallow transformer → attention pooling."""

    def __init__(self, cfg: SurvivalConfig):
        super().__init__()
        self.values = nn.Embedding(LABEL_VALUES, cfg.sle_channels)
        self.patches = nn.Conv3d(cfg.sle_channels, cfg.d_lbl, kernel_size=cfg.sle_patch, stride=cfg.sle_patch)
        n_patches = (cfg.crop_size // cfg.sle_patch) ** 3
        self.positions = nn.Parameter(torch.zeros(1, n_patches, cfg.d_lbl))
        nn.init.trunc_normal_(self.positions, std=0.02)
        layer = nn.TransformerEncoderLayer(cfg.d_lbl, cfg.sle_heads, dim_feedforward=2 * cfg.d_lbl, dropout=0.1,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.sle_layers, enable_nested_tensor=False)
        self.score = nn.Linear(cfg.d_lbl, 1)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:  # (B, D, H, W) integer labels
        volume = self.values(labels.long()).permute(0, 4, 1, 2, 3)
        tokens = self.patches(volume).flatten(2).transpose(1, 2) + self.positions
        tokens = self.encoder(tokens)
        weights = torch.softmax(self.score(tokens), dim=1)
        return (weights * tokens).sum(1)


class TriStreamSurvival(nn.Module):
    def __init__(self, cfg: SurvivalConfig = SurvivalConfig()):
        super().__init__()
        if cfg.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}")
        self.cfg = cfg
        uses_image = cfg.variant != "grades"
        width = 0
        if uses_image:
            channels = 1 + (LABEL_VALUES if cfg.variant == "no_sle" else 0)
            self.image = ResNet("basic", list(cfg.resnet_layers), list(cfg.resnet_planes), spatial_dims=3,
                                n_input_channels=channels, num_classes=cfg.d_img, norm=("instance", {"affine": True}))
            width += cfg.d_img
        if cfg.variant == "full":
            self.sle = SpatialLabelEncoder(cfg)
            width += cfg.d_lbl
        if cfg.variant in ("full", "no_sle", "grades"):
            self.grades = GradeTokenizer(list(GRADE_SYSTEMS.values()), cfg.d_token, cfg.d_grade)
            width += cfg.d_grade
        self.fusion = nn.Sequential(nn.Linear(width, cfg.d_fusion), nn.GELU(), nn.Linear(cfg.d_fusion, cfg.d_fusion))
        self.risk = nn.Linear(cfg.d_fusion, 1)
        if cfg.grade_skip and cfg.variant != "image":
            # the wide term reads a grade as its level / the top level; a missing grade adds nothing to it (the
            # tokenizer's own missing token carries what missingness says)
            self.register_buffer("grade_scale", torch.tensor([n - 2 for n in GRADE_SYSTEMS.values()], dtype=torch.float32),
                                 persistent=False)
            self.register_buffer("grade_missing", torch.tensor([n - 1 for n in GRADE_SYSTEMS.values()]), persistent=False)
            self.grade_linear = nn.Linear(len(GRADE_SYSTEMS), 1, bias=False)
            nn.init.zeros_(self.grade_linear.weight)

    def forward(self, image: torch.Tensor, labels: torch.Tensor, grades: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(risk u of shape (B,), embedding z_out of shape (B, d_fusion))."""
        parts = []
        if self.cfg.variant == "no_sle":
            onehot = nn.functional.one_hot(labels.long(), LABEL_VALUES).permute(0, 4, 1, 2, 3).to(image.dtype)
            parts.append(self.image(torch.cat([image, onehot], 1)))
        elif self.cfg.variant != "grades":
            parts.append(self.image(image))
        if self.cfg.variant == "full":
            parts.append(self.sle(labels))
        if self.cfg.variant != "image":
            parts.append(self.grades(grades))
        z = self.fusion(torch.cat(parts, 1))
        risk = self.risk(z).squeeze(1)
        if hasattr(self, "grade_linear"):
            level = torch.where(grades < self.grade_missing, grades.to(z.dtype) / self.grade_scale, 0.0)
            risk = risk + self.grade_linear(level).squeeze(1)
        return risk, z
