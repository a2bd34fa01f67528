"""Device choice shared by every command: CUDA when present and asked for, CPU otherwise."""
from __future__ import annotations

import logging

import torch

from .errors import InputError

log = logging.getLogger(__name__)


def resolve_device(choice: str = "auto") -> torch.device:
    """'auto' picks CUDA if available; 'cuda' without a GPU is a user error, not a crash."""
    if choice not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device {choice!r}: use auto, cpu or cuda.")
    if choice == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto.")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def describe_device(device: torch.device) -> dict:
    """What the panel and analysis.json show: torch version, CUDA build, GPU name and free memory."""
    info = {"device": str(device), "torch": torch.__version__, "cuda_build": torch.version.cuda or "none"}
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        info.update(gpu=torch.cuda.get_device_name(device), free_mb=free // 2**20, total_mb=total // 2**20)
    return info


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) and numpy so runs are reproducible."""
    import numpy as np

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def summary_line(info: dict) -> str:
    """The panel's diagnostics line from `describe_device` output, e.g.
    'torch 2.13.0+cpu, CPU only (no CUDA build)' or 'torch 2.5.1, CUDA 12.4, NVIDIA H100 (70 GB free)'."""
    text = f"torch {info['torch']}, "
    if info.get("gpu"):
        return text + f"CUDA {info['cuda_build']}, {info['gpu']} ({info['free_mb'] / 1024:.0f} GB free)"
    if info.get("cuda_build", "none") == "none":
        return text + "CPU only (no CUDA build)"
    return text + f"CPU (CUDA {info['cuda_build']} build, but no GPU found)"
