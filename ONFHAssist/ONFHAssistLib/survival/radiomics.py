"""Radiomics features of a hip crop with pyradiomics: lesion and femur masks, one versioned parameter file."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import SimpleITK as sitk

from .. import resources
from ..errors import InputError

PARAMS = resources.RADIOMICS_PARAMS
PARAMS_VERSION = "onfh_radiomics_v1"
MASKS = {"lesion": (3,), "femur": (2, 3)}


def _extractor():
    """pyradiomics is installed on demand (only the radiomics baselines need it): no wheel exists for
    Python ≥ 3.10, so it is a source build that needs a C compiler."""
    try:
        import radiomics
        from radiomics import featureextractor
    except ImportError:
        raise InputError("the radiomics baselines need pyradiomics, which is not installed: run "
                         "`pip install pyradiomics` (a source build on Python ≥ 3.10: it needs a C compiler), "
                         "or leave the radiomics models out with --models.") from None

    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)  # its feature-class notes are not for users
    return featureextractor.RadiomicsFeatureExtractor(str(PARAMS))


def hip_features(image: np.ndarray, label: np.ndarray, spacing_mm: float, extractor=None) -> dict[str, float]:
    """Features per mask, prefixed by the mask name; NaN for a mask too small to describe."""
    extractor = extractor or _extractor()
    img = sitk.GetImageFromArray(image.astype(np.float32))
    img.SetSpacing([spacing_mm] * 3)
    out: dict[str, float] = {}
    for name, values in MASKS.items():
        mask = sitk.GetImageFromArray(np.isin(label, values).astype(np.uint8))
        mask.CopyInformation(img)
        try:
            result = extractor.execute(img, mask)
        except (ValueError, RuntimeError):  # empty or tiny mask: pyradiomics refuses it
            result = {}
        out.update({f"{name}_{k}": float(v) for k, v in result.items() if not k.startswith("diagnostics")})
    return out


def feature_table(images, labels, spacing_mm: float) -> pd.DataFrame:
    """One row per hip; columns missing for some hips are NaN."""
    extractor = _extractor()
    return pd.DataFrame([hip_features(i, l, spacing_mm, extractor) for i, l in zip(images, labels)])
