"""The bundled demo case: where it lives, its checksums and its phantom truth."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .. import resources
from ..errors import InputError

DEMO_DIR = resources.DEMO


def manifest() -> dict:
    path = DEMO_DIR / "demo.json"
    if not path.is_file():
        raise InputError(f"{path}: the bundled demo case is missing; regenerate it with Resources/make_demo_case.py.")
    return json.loads(path.read_text(encoding="utf-8"))


def image_path() -> Path:
    return _checked(manifest()["scan"])


def label_path() -> Path:
    return _checked(manifest()["label"])


def truth() -> list[dict]:
    """Per-hip phantom ground truth of the demo scan (same columns as hips.csv)."""
    return manifest()["truth"]


def _checked(name: str) -> Path:
    """The demo file, refused if it differs from the checksum recorded when it was made."""
    path = DEMO_DIR / name
    expected = manifest()["sha256"][name]
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        raise InputError(f"{path}: missing or altered (checksum differs from demo.json); regenerate the demo case.")
    return path


def sample_data_source() -> dict:
    """Keyword arguments for Slicer's `SampleDataLogic.registerCustomSampleDataSource`: the bundled scan,
    loaded from the extension's own file and checked against its SHA256 ("Sample Data → ONFH demo hip")."""
    name = manifest()["scan"]
    return {"category": "ONFH", "sampleName": "ONFH demo hip", "uris": (DEMO_DIR / name).resolve().as_uri(),
            "fileNames": name, "checksums": f"SHA256:{manifest()['sha256'][name]}", "nodeNames": "ONFH demo hip"}
