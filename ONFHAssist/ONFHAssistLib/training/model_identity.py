"""Who a trained model is (issue 24): every recipe used to name its output `onfh-<task> 1.0.0`, so a user's model
and the shipped one could not be told apart and a second import of `1.0.0` shadowed the first.

Now the name comes from the run (`--name`, default `<task>-<dataset name>`), the version is one above every
installed model of that name (so it never collides), and the card records the training dataset (name, case
count, sha256 of its hips.csv) and whether it is a phantom, which alone earns the demo label.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..dataset import SAFE_ID, read_hips
from ..errors import InputError
from ..models import store as modelstore

PHANTOM_GENERATOR = "ONFHAssistLib.phantom"  # dataset.json's "generator" in a cohort `onfh phantom` wrote
USER_LABEL = "trained on the user's own data — not validated for clinical use"


def _dataset_meta(data: Path) -> dict:
    try:
        meta = json.loads((data / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def next_version(task: str, name: str) -> str:
    """'1.0.0' for a new name, else one minor version above the newest installed model of that name."""
    versions = [modelstore.version_key(e.version) for e in modelstore.list_models(task) if e.name == name]
    if not versions:
        return "1.0.0"
    major, minor = (list(max(versions)) + [0, 0])[:2]
    return f"{major}.{minor + 1}.0"


def identity(settings, task: str, variant: str = "") -> dict:
    """Card fields naming a model trained by `settings`: name, version, label, phantom_trained, training_dataset.
    `variant` marks an ablation in the default name (e.g. '-nostructure')."""
    data = Path(settings.data)
    meta = _dataset_meta(data)
    dataset_name = str(meta.get("name") or data.resolve().name)
    name = settings.name or re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{task}{variant}-{dataset_name}").strip("-.")
    if not SAFE_ID.match(name):
        raise InputError(f"--name {name!r}: a model name is letters, digits, _ . - (at most 128).")
    table = read_hips(data)
    phantom = meta.get("generator") == PHANTOM_GENERATOR
    return {"name": name, "version": next_version(task, name), "label": modelstore.DEMO_LABEL if phantom else USER_LABEL,
            "phantom_trained": phantom,
            "training_dataset": {"name": dataset_name, "cases": int(table.scan_id.nunique()), "hips": int(len(table)),
                                 "patients": int(table.patient_id.nunique()),
                                 "hips_csv_sha256": modelstore.sha256_file(data / "hips.csv")}}
