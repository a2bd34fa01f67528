"""Femoral-head localiser network: one coarse whole-volume heatmap with a peak at every femoral head."""
from __future__ import annotations

import torch
from monai.networks.nets import BasicUNet

from . import store


def build_localizer(features: tuple[int, ...] = (8, 16, 32, 64, 64, 8)) -> BasicUNet:
    return BasicUNet(spatial_dims=3, in_channels=1, out_channels=1, features=features,
                     norm=("instance", {"affine": True}), dropout=0.0)


class CandidateEnsemble(torch.nn.Module):
    """Localisers whose candidate heads are pooled, the first member's first (`analysis.localization`): one
    fine-tuned on other anatomy adds the heads it finds without displacing those the first one finds, and
    the plausibility checks still decide which candidate is a head."""

    def __init__(self, members: list[torch.nn.Module]):
        super().__init__()
        self.members = torch.nn.ModuleList(members)


def build_from_card(card: dict) -> torch.nn.Module:
    if card.get("members"):
        return CandidateEnsemble([build_localizer(tuple(m["features"])) for m in card["members"]])
    return build_localizer(tuple(card["features"]))


def members(network: torch.nn.Module) -> list[torch.nn.Module]:
    return list(network.members) if isinstance(network, CandidateEnsemble) else [network]


def save_pooled(folder, sources: list[store.ModelEntry], card: dict) -> store.ModelEntry:
    """Write a pooled localiser made of verified single localisers (store entries), in their order; its card
    lists each member's provenance and what it was trained on."""
    networks = [store.load_weights(e, build_from_card(e.card), task="localizer") for e in sources]
    if any(isinstance(n, CandidateEnsemble) for n in networks):
        raise ValueError("a pooled localiser's members must be single localisers")
    members_card = [{**e.provenance(), "features": e.card["features"], "trained_on": e.card.get("trained_on")}
                    for e in sources]
    shared = {k: sources[0].card[k] for k in ("features", "grid_mm", "heatmap_sigma_mm") if k in sources[0].card}
    return store.save_model(folder, CandidateEnsemble(networks), {**card, "task": "localizer", **shared,
                                                                  "members": members_card})
