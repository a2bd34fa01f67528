"""The scans of a dataset folder with their hip rows: what the localiser recipe and evaluation iterate over."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import SimpleITK as sitk

from ..dataset import check_label_values, find_volume, patient_folds, read_hips
from ..errors import InputError
from ..imaging import io
from ..imaging.crops import guess_modality
from .crop_cache import CENTRE_COLUMNS


@dataclass
class Scan:
    scan_id: str
    patient_id: str
    image_path: Path
    label_path: Path | None
    rows: pd.DataFrame

    def image(self) -> sitk.Image:
        return io.read_image(self.image_path)

    def label(self) -> sitk.Image | None:
        """The label map, checked: a value outside 0-3 must be one sentence, not an index error mid-training."""
        if not self.label_path:
            return None
        label = io.read_image(self.label_path)
        check_label_values(label, str(self.label_path))
        return label

    def modality(self, image: sitk.Image) -> str:
        value = str(self.rows.iloc[0].get("modality", "") or "")
        return value if value in ("ct", "mr_t1") else guess_modality(image)

    def centres(self) -> dict[str, list[float]]:
        """True head centres by side (LPS mm) from the hips.csv columns."""
        return {r.side: [float(r[c]) for c in CENTRE_COLUMNS] for _, r in self.rows.iterrows()}


def list_scans(data_dir: str | Path, need_centres: bool = True) -> list[Scan]:
    data_dir = Path(data_dir)
    table = read_hips(data_dir)
    if need_centres and not set(CENTRE_COLUMNS) <= set(table.columns):
        raise InputError(f"{data_dir / 'hips.csv'}: needs columns {', '.join(CENTRE_COLUMNS)} (head centres, LPS mm).")
    scans = []
    for scan_id, rows in table.groupby("scan_id", sort=True):
        image = find_volume(data_dir / "images", scan_id)
        if image is None:
            raise InputError(f"{data_dir / 'images'}: no image for scan {scan_id}.")
        scans.append(Scan(scan_id, str(rows.patient_id.iloc[0]), image, find_volume(data_dir / "labels", scan_id), rows))
    return scans


def split_scans(scans: list[Scan], data_dir: Path, seed: int, folds: int = 5) -> tuple[list[Scan], list[Scan]]:
    """Training and validation scans: one patient-grouped fold held out for validation."""
    table = read_hips(data_dir)
    fold_of = patient_folds(table, min(folds, table.patient_id.nunique()), seed)
    train = [s for s in scans if fold_of[s.patient_id] != 0]
    val = [s for s in scans if fold_of[s.patient_id] == 0]
    return train, val
