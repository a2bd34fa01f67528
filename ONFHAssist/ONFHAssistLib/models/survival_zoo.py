"""Every collapse-risk network the CV compares, by variant name: the tri-stream network's variants and the
Table 1 comparison networks (DeepMTS, XSurv, SurvRNC with and without SLE), all sized by one SurvivalConfig."""
from __future__ import annotations

from dataclasses import replace

from torch import nn

from .deepmts import DeepMTS
from .survival import VARIANTS, SurvivalConfig, TriStreamSurvival
from .survrnc_net import SurvRNCNet
from .xsurv import XSurv

COMPARATORS = {"deepmts": DeepMTS, "xsurv": XSurv, "survrnc": SurvRNCNet,
               "survrnc_sle": lambda cfg: SurvRNCNet(cfg, sle=True)}
SURVRNC_VARIANTS = (*VARIANTS, "survrnc", "survrnc_sle")  # trained with the SurvRNC term; DeepMTS/XSurv are not


def build(variant: str, cfg: SurvivalConfig) -> nn.Module:
    """The network of `variant`; comparison networks take the config's sizes (not its wide term)."""
    if variant in VARIANTS:
        return TriStreamSurvival(replace(cfg, variant=variant))
    if variant not in COMPARATORS:
        raise ValueError(f"variant must be one of {VARIANTS + tuple(COMPARATORS)}")
    return COMPARATORS[variant](cfg)
