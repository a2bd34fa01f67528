"""Network weights as safetensors, the only weight format we read or write.

safetensors refuses tensors that share memory; some MONAI networks (DynUNet's skip layers) alias
their sub-modules' weights, so save and load go through safetensors' model helpers, which store
each shared tensor once and restore the aliases on load.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_model, save_model


def save(model: torch.nn.Module, path: str | Path) -> None:
    save_model(model, str(path))


def load(model: torch.nn.Module, path: str | Path, device: str = "cpu") -> tuple[list[str], list[str]]:
    """Load into `model` in place; returns (missing, unexpected) tensor names, aliases not counted."""
    return load_model(model, str(path), strict=False, device=device)
