"""The scans of a dataset folder with their hip rows: what the localiser recipe and evaluation iterate over."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import SimpleITK as sitk

from ..dataset import check_label_values, find_volume, patient_folds, read_hips
from ..errors import InputError
from ..imaging import io
from ..imaging.crops import guess_modality
from .crop_cache import CENTRE_COLUMNS

log = logging.getLogger(__name__)
DEFAULT_FOLDS = 5


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


def split_scans(scans: list[Scan], data_dir: Path, seed: int, folds: int | None = None) -> tuple[list[Scan], list[Scan]]:
    """Training and validation scans: one patient-grouped fold of `folds` held out for validation. With 0 every
    scan trains and none validates (the engine then keeps the last epoch); None means DEFAULT_FOLDS, at most one
    fold per patient, and no validation for a dataset of one patient."""
    table = read_hips(data_dir)
    patients = table.patient_id.nunique()
    if folds is None:
        folds = min(DEFAULT_FOLDS, patients) if patients >= 2 else 0
        if not folds:
            log.warning("%s holds one patient: no validation split; every case trains and the last epoch is kept.",
                        data_dir)
    if folds == 0:
        return list(scans), []
    if folds > patients:
        raise InputError(f"--folds {folds}: {data_dir} holds {patients} patient(s); use at most {patients} folds, "
                         "or --folds 0 to train on every case without validation.")
    fold_of = patient_folds(table, folds, seed)
    train = [s for s in scans if fold_of[s.patient_id] != 0]
    val = [s for s in scans if fold_of[s.patient_id] == 0]
    return train, val
