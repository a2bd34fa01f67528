"""Summaries are strict JSON: an undefined metric (AUC of a one-class subset) is null, not NaN."""
import json
import math

import numpy as np
import pytest

from ONFHAssistLib.atomic import atomic_write_json


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


def test_nan_and_infinities_become_null_at_every_depth(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write_json(path, {"auc": float("nan"), "by_modality": {"ct": {"auc": np.float64("nan"), "hips": 3}},
                             "curve": [1.0, math.inf, -math.inf], "accuracy": 0.75})
    assert _strict(path.read_text(encoding="utf-8")) == {
        "auc": None, "by_modality": {"ct": {"auc": None, "hips": 3}}, "curve": [1.0, None, None], "accuracy": 0.75}


def test_a_value_json_cannot_hold_leaves_the_old_file(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write_json(path, {"auc": 0.9})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"auc": object()})
    assert _strict(path.read_text(encoding="utf-8")) == {"auc": 0.9}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
