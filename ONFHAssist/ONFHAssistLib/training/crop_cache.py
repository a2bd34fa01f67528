"""Per-hip training crops, computed once per dataset and crop spec and kept as .npz (no pickle).

Every recipe trains on the same kind of input the pipeline produces at inference: a fixed box
around the head, left hips mirrored onto the right, intensities normalised per modality.
Head centres come from the dataset's `head_x, head_y, head_z` columns (phantom truth, or centres
saved by the pipeline when a corrected case was added).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path, atomic_write_text
from ..dataset import check_label, find_volume, read_hips
from ..errors import InputError
from ..imaging import io
from ..imaging.crops import CropSpec, crop_arrays, guess_modality

CENTRE_COLUMNS = ("head_x", "head_y", "head_z")


def build(data_dir: str | Path, spec: CropSpec, cache_dir: str | Path, reporter=None) -> pd.DataFrame:
    """Crop every hip of a dataset (reusing crops already cached for the same spec); returns hips.csv + `crop`."""
    data_dir, cache_dir = Path(data_dir), Path(cache_dir)
    table = read_hips(data_dir)
    missing = [c for c in CENTRE_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{data_dir / 'hips.csv'}: needs head centre columns {', '.join(CENTRE_COLUMNS)} "
                         "to crop training hips (add cases from the ONFHAssist panel, which records them).")
    fresh = not cache_dir.exists()
    cache_dir.mkdir(parents=True, exist_ok=True)
    spec_file = cache_dir / "spec.json"
    if spec_file.exists() and json.loads(spec_file.read_text(encoding="utf-8")) != spec.to_json():
        raise InputError(f"{cache_dir}: holds crops of another spec; use a new cache folder.")
    atomic_write_text(spec_file, json.dumps(spec.to_json()))
    try:
        _crop_all(data_dir, table, spec, cache_dir, reporter)
    except InputError:
        if fresh:  # a bad scan or label stops the run: a cache this run started is not left behind
            shutil.rmtree(cache_dir, ignore_errors=True)
        raise
    paths = []
    for _, r in table.iterrows():
        paths.append(str(cache_dir / f"{r.scan_id}_{r.side}.npz"))
    given = table["modality"].fillna("") if "modality" in table else pd.Series("", index=table.index)
    used = [m or _cached_modality(p) for m, p in zip(given, paths)]
    return table.assign(crop=paths, modality=used)


def _crop_all(data_dir: Path, table: pd.DataFrame, spec: CropSpec, cache_dir: Path, reporter) -> None:
    """Crop the hips not cached yet, scan by scan."""
    scans = list(dict.fromkeys(table.scan_id))
    for n, scan in enumerate(scans):
        rows = table[table.scan_id == scan]
        todo = [r for _, r in rows.iterrows() if not (cache_dir / f"{scan}_{r.side}.npz").exists()]
        if todo:
            _crop_scan(data_dir, scan, todo, spec, cache_dir)
        if reporter is not None:
            reporter.progress("crops", (n + 1) / len(scans), message=scan)


def _cached_modality(path: str) -> str:
    """The modality a crop was normalised for (guessed from the image when hips.csv did not say)."""
    with np.load(path, allow_pickle=False) as data:
        return str(data["modality"]) if "modality" in data else ""


def _crop_scan(data_dir: Path, scan: str, rows: list, spec: CropSpec, cache_dir: Path) -> None:
    image_path = find_volume(data_dir / "images", scan)
    if image_path is None:
        raise InputError(f"{data_dir / 'images'}: no image for scan {scan}.")
    image = io.read_image(image_path)
    label_path = find_volume(data_dir / "labels", scan)
    label = io.read_image(label_path) if label_path else None
    if label is not None:
        check_label(label, image, str(label_path))
    modality = rows[0].get("modality", "") or guess_modality(image)
    for row in rows:
        centre = [float(row[c]) for c in CENTRE_COLUMNS]
        img, lab = crop_arrays(image, centre, row.side, spec, modality, label)
        arrays = {"image": img, "modality": np.array(modality)}
        if lab is not None:
            arrays["label"] = lab.astype(np.uint8)
        with atomic_path(cache_dir / f"{scan}_{row.side}.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)


def load(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(image, label or None) of one cached crop."""
    with np.load(path, allow_pickle=False) as data:
        return data["image"], (data["label"] if "label" in data else None)


def centre_crop(array: np.ndarray, size: int, offset=(0, 0, 0)) -> np.ndarray:
    """The central size³ block of a cached crop, shifted by `offset` voxels (training jitter)."""
    start = [(n - size) // 2 + o for n, o in zip(array.shape[-3:], offset)]
    return array[(..., *(slice(s, s + size) for s in start))]
