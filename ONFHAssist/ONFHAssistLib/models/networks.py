"""Build the network a model card describes and load its verified safetensors weights."""
from __future__ import annotations

import torch

from ..errors import InputError
from . import store as modelstore
from .localizer import CandidateEnsemble
from .localizer import build_from_card as build_localizer_from_card
from .segmentation import build_segmenter
from .sranet import SRANet
from .staging import MulPoolDenseNet
from .survival import SurvivalConfig, TriStreamSurvival

BUILDERS = {
    "localizer": build_localizer_from_card,
    "segmentation": lambda card: build_segmenter(tuple(card["features"])),
    "staging": lambda card: MulPoolDenseNet(card["classes"], **card["architecture"]),
    "sranet": lambda card: SRANet(classes=card["classes"], **card["architecture"]),
    "survival": lambda card: TriStreamSurvival(SurvivalConfig(**{k: tuple(v) if isinstance(v, list) else v
                                                                 for k, v in card["config"].items()})),
}


def build(task: str, card: dict) -> torch.nn.Module:
    return BUILDERS[task](card)


def load(task: str, name: str | None, device: torch.device) -> tuple[torch.nn.Module, modelstore.ModelEntry]:
    """(network in eval mode on `device`, its store entry); InputError for a missing or tampered model."""
    entry = modelstore.find_model(task, name)
    network = modelstore.load_weights(entry, build(task, entry.card), task=task)
    return network.to(device), entry


def initialise_from(network: torch.nn.Module, task: str, name: str) -> dict:
    """Copy a verified model's weights into `network` before training (fine-tuning, e.g. the shipped model
    on an annotator's corrected cases); returns its provenance for the new card."""
    entry = modelstore.find_model(task, name)
    source = modelstore.load_weights(entry, build(task, entry.card), task=task)
    if isinstance(source, CandidateEnsemble) and not isinstance(network, CandidateEnsemble):
        source = source.members[0]  # a pooled localiser is fine-tuned from its first member
    try:
        network.load_state_dict(source.state_dict())
    except RuntimeError:
        raise InputError(f"--init {name}: its network differs from the one being trained "
                         "(other architecture or number of classes); start from scratch or pick a matching model.") from None
    return entry.provenance()
