"""Build the network a model card describes and load its verified safetensors weights."""
from __future__ import annotations

import torch

from . import modelstore
from .models.localizer import build_localizer
from .models.segmentation import build_segmenter

BUILDERS = {"localizer": build_localizer, "segmentation": build_segmenter}


def build(task: str, card: dict) -> torch.nn.Module:
    return BUILDERS[task](tuple(card["features"]))


def load(task: str, name: str | None, device: torch.device) -> tuple[torch.nn.Module, modelstore.ModelEntry]:
    """(network in eval mode on `device`, its store entry); InputError for a missing or tampered model."""
    entry = modelstore.find_model(task, name)
    network = modelstore.load_weights(entry, build(task, entry.card), task=task)
    return network.to(device), entry
