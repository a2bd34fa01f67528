"""Dataset folders (DESIGN §4): layout, validation with clear messages, patient-grouped folds, atomic adds.

A dataset is `dataset.json`, `images/<scan_id>.nii.gz`, `labels/<scan_id>.nii.gz` and `hips.csv`
(one row per hip). Every write goes through a temporary file and a rename, so a crash or a reader
running alongside never sees a torn file.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np
import pandas as pd
import SimpleITK as sitk
from sklearn.model_selection import StratifiedGroupKFold

from .atomic import atomic_write_text
from .errors import InputError
from .imaging import io

REQUIRED_COLUMNS = ("patient_id", "scan_id", "side", "time_months", "event")
GRADE_CODES = {
    "jic_stage": {"0", "1", "2", "3", "4"},
    "jic_type": {"none", "A", "B", "C1", "C2"},
    "arco": {"0", "1", "2", "3", "4"},
    "steinberg": {"0", "1", "2", "3", "4", "5", "6"},
    "ficat": {"0", "1", "2", "3", "4"},
}
LABEL_NAMES = {"0": "background", "1": "pelvis", "2": "femur", "3": "necrosis"}
ORIGINAL_LABELS = "labels/original"  # the model's own label maps; labels/<scan> holds the final, corrected ones
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LOCK_NAME = ".hips.lock"
LOCK_TIMEOUT_S = 120.0


def write_table(table: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, table.to_csv(index=False))


def write_dataset_json(root: Path, name: str, modality: str, extra: dict | None = None) -> None:
    meta = {"name": name, "modality": modality, "labels": LABEL_NAMES, "format": "onfh-dataset/1"}
    meta.update(extra or {})
    atomic_write_text(root / "dataset.json", json.dumps(meta, indent=2) + "\n")


def find_volume(folder: Path, scan_id: str) -> Path | None:
    """The volume file for a scan id in a folder (any supported suffix), confined to that folder."""
    if not SAFE_ID.match(scan_id):
        return None
    for suffix in io.VOLUME_SUFFIXES:
        candidate = folder / f"{scan_id}{suffix}"
        if candidate.is_file():
            return candidate
    return None


@dataclass
class ValidationReport:
    """What `onfh dataset validate` prints: a summary and every problem with its file or row."""

    summary: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def headline(self) -> str:
        """One sentence a user reads first: what the dataset holds, or how many problems it has."""
        if not self.ok:
            return f"{len(self.errors)} problem(s); first: {self.errors[0]}"
        s = self.summary
        return (f"{s['name']} ({s['modality']}): {s['scans']} scans, {s['hips']} hips, {s['patients']} patients; "
                f"outcome known for {s['hips_with_outcome']} hips: {s['events']} collapses, {s['censored']} censored")


def _try_lock(f: IO) -> bool:
    """Take an exclusive lock on an open file without waiting; the OS drops it when its holder dies, even by
    SIGKILL, so a killed `dataset add` never blocks the next (fcntl.flock on POSIX, msvcrt.locking on Windows)."""
    try:
        if os.name == "nt":
            import msvcrt

            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


@contextmanager
def hips_lock(root: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """One writer at a time for a dataset's read-modify-write of hips.csv: concurrent adds keep every row."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    deadline = time.monotonic() + timeout_s
    while True:
        with open(path, "a+b") as f:
            if _try_lock(f) and _still_the_lock_file(f, path):
                yield  # closing the file releases the lock
                return
        if time.monotonic() > deadline:
            raise InputError(f"{path}: another process has held the dataset lock for "
                             f"{timeout_s:.0f} s; try again when it has finished.")
        time.sleep(0.05)


def _still_the_lock_file(f: IO, path: Path) -> bool:
    """A failed first add removes its lock file; a waiter that locked the removed file must start again."""
    try:
        return os.fstat(f.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def read_hips(root: Path, allow_empty: bool = False) -> pd.DataFrame:
    """hips.csv as strings (so codes like '0' stay exact); raises InputError if it cannot be parsed or, unless
    `allow_empty` (a dataset being started), has no rows: training would fail later with a vaguer message."""
    path = Path(root) / "hips.csv"
    if not path.is_file():
        raise InputError(f"{path}: missing; a dataset needs hips.csv with one row per hip.")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: not a readable CSV table ({str(exc).splitlines()[0]}).") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}.")
    if table.empty and not allow_empty:
        raise InputError(f"{path}: has a header but no rows; a dataset needs one row per hip.")
    return table


def check_rows(table: pd.DataFrame, where: str = "hips.csv") -> list[str]:
    """Every row-level problem, as 'hips.csv row N: ...' (N counts data rows from 1 after the header)."""
    problems = []
    for i, row in enumerate(table.to_dict("records"), start=1):
        at = f"{where} row {i}"
        for col in ("patient_id", "scan_id"):
            if not SAFE_ID.match(row[col]):
                problems.append(f"{at}: {col} {row[col]!r} must be a plain name (letters, digits, _ . -).")
        if row["side"] not in ("L", "R"):
            problems.append(f"{at}: side {row['side']!r} must be L or R.")
        problems += _check_outcome(row, at)
        for col, codes in GRADE_CODES.items():
            if col in row and row[col] != "" and row[col] not in codes:
                problems.append(f"{at}: {col} {row[col]!r} is not one of {sorted(codes)}.")
    dup = table.duplicated(["scan_id", "side"], keep="first")
    for i in np.flatnonzero(dup.to_numpy()):
        problems.append(f"{where} row {i + 1}: duplicate hip {table.scan_id.iloc[i]} {table.side.iloc[i]}.")
    owners = table.groupby("scan_id")["patient_id"].nunique()
    for scan in owners[owners > 1].index:
        problems.append(f"{where}: scan {scan} is listed under more than one patient_id.")
    return problems + _contradictions(table, where)


def _contradictions(table: pd.DataFrame, where: str) -> list[str]:
    """One hip has one fate: scans of the same patient and side (follow-ups) may differ in time, never in event."""
    known = table[table.event.isin(["0", "1"])]
    events = known.groupby(["patient_id", "side"])["event"].nunique()
    return [f"{where}: patient {patient} side {side} has rows with event 0 and event 1; one hip cannot both "
            "collapse and not collapse." for patient, side in events[events > 1].index]


def _check_outcome(row: dict, at: str) -> list[str]:
    time, event = row["time_months"], row["event"]
    if time == "" and event == "":
        return []  # outcome unknown: usable for segmentation and staging, not survival
    if time == "" or event == "":
        return [f"{at}: give time_months and event together (or neither, when the outcome is not known)."]
    problems = []
    try:
        t = float(time)
        if not np.isfinite(t) or t <= 0:
            problems.append(f"{at}: time_months {time!r} must be a positive number of months.")
    except ValueError:
        problems.append(f"{at}: time_months {time!r} is not a number.")
    if event not in ("0", "1"):
        problems.append(f"{at}: event {event!r} must be 0 (censored) or 1 (collapse).")
    return problems


def validate(root: str | Path, check_images: bool = True) -> ValidationReport:
    """Check a dataset folder; collects every problem instead of stopping at the first."""
    root = Path(root)
    report = ValidationReport()
    if not root.is_dir():
        report.errors.append(f"{root}: no such dataset folder.")
        return report
    meta = _read_meta(root, report)
    try:
        table = read_hips(root)
    except InputError as exc:
        report.errors.append(str(exc))
        return report
    report.errors += check_rows(table)
    coverage = {name: 0 for name in LABEL_NAMES.values() if name != "background"}
    for scan_id in sorted(set(table.scan_id)):
        if check_images and SAFE_ID.match(scan_id):
            _check_scan(root, scan_id, report, coverage)
    known = table[table.event.isin(["0", "1"])]
    report.summary = {
        "name": meta.get("name", ""),
        "modality": meta.get("modality", ""),
        "scans": int(table.scan_id.nunique()),
        "hips": int(len(table)),
        "patients": int(table.patient_id.nunique()),
        "hips_with_outcome": int(len(known)),
        "events": int((known.event == "1").sum()),
        "censored": int((known.event == "0").sum()),
        "label_coverage_scans": coverage,
    }
    return report


def _read_meta(root: Path, report: ValidationReport) -> dict:
    path = root / "dataset.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        report.errors.append(f"{path}: missing.")
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        report.errors.append(f"{path}: not valid JSON.")
        return {}
    for key in ("name", "modality", "labels"):
        if key not in meta:
            report.errors.append(f"{path}: missing key {key!r}.")
    return meta


def _check_scan(root: Path, scan_id: str, report: ValidationReport, coverage: dict) -> None:
    image_path = find_volume(root / "images", scan_id)
    if image_path is None:
        report.errors.append(f"images/: no image for scan {scan_id}.")
        return
    try:
        image = io.read_image(image_path)
    except InputError as exc:
        report.errors.append(str(exc))
        return
    label_path = find_volume(root / "labels", scan_id)
    if label_path is None:
        report.warnings.append(f"labels/: no label map for scan {scan_id} (fine for survival-only use).")
        return
    try:
        label = io.read_image(label_path)
        check_label(label, image, str(label_path))
    except InputError as exc:
        report.errors.append(str(exc))
        return
    present = np.unique(sitk.GetArrayViewFromImage(label))
    for value in present:
        if str(int(value)) in LABEL_NAMES and value > 0:
            coverage[LABEL_NAMES[str(int(value))]] += 1


def check_label_values(label: sitk.Image, name: str) -> None:
    """A label map holds only 0-3: any other value would index past the classes of every network."""
    values = np.unique(sitk.GetArrayViewFromImage(label))
    bad = [int(v) for v in values if v not in (0, 1, 2, 3)]
    if bad:
        raise InputError(f"{name}: label values {bad[:5]} are outside 0-3 (background, pelvis, femur, necrosis).")


def check_label(label: sitk.Image, image: sitk.Image, name: str) -> None:
    """A label map must hold only 0-3 and share the image's grid exactly (to 1e-4 mm)."""
    check_label_values(label, name)
    same = (label.GetSize() == image.GetSize()
            and np.allclose(label.GetSpacing(), image.GetSpacing(), atol=1e-4)
            and np.allclose(label.GetOrigin(), image.GetOrigin(), atol=1e-4)
            and np.allclose(label.GetDirection(), image.GetDirection(), atol=1e-6))
    if not same:
        raise InputError(f"{name}: the label map's grid (size, spacing, origin, direction) differs from its image's.")


def patient_folds(table: pd.DataFrame, n_folds: int, seed: int = 0) -> dict[str, int]:
    """Fold index per patient: grouped by patient, stratified by event, deterministic by seed."""
    patients = table.patient_id.astype(str).to_numpy()
    n_patients = len(set(patients))
    if n_folds < 2 or n_folds > n_patients:
        raise InputError(f"cannot make {n_folds} folds from {n_patients} patients.")
    events = pd.to_numeric(table.event, errors="coerce").fillna(0).astype(int).to_numpy()
    if np.bincount(events).max() < n_folds:  # too few hips in every class to stratify: shuffled round robin
        order = np.random.default_rng(seed).permutation(sorted(set(patients)))
        return {str(p): i % n_folds for i, p in enumerate(order)}
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds: dict[str, int] = {}
    with warnings.catch_warnings():  # small cohorts: sklearn warns that a class is rarer than n_folds
        warnings.simplefilter("ignore", UserWarning)
        for fold, (_, test_idx) in enumerate(splitter.split(np.zeros(len(table)), events, groups=patients)):
            for p in patients[test_idx]:
                folds[str(p)] = fold
    return folds


ROMAN = {"I": "1", "II": "2", "III": "3", "IV": "4", "V": "5", "VI": "6"}  # grades as reports print them
SIDE_KEYS = ("time_months", "event", *GRADE_CODES, "head_x", "head_y", "head_z", "modality", "bme")


def grade_code(key: str, value: str) -> str:
    """A grade as hips.csv stores it, from the way it is printed: 'II' or 'ii' -> '2', 'c1' -> 'C1', 'NONE' -> 'none'."""
    text = value.strip()
    if key == "jic_type":
        return "none" if text.lower() == "none" else text.upper()
    return ROMAN.get(text.upper(), text)


def side_keys(root: str | Path) -> tuple[str, ...]:
    """The keys `--side` accepts for a dataset: outcome, grades, head centre, modality, and any clinical column its
    hips.csv already has."""
    path = Path(root) / "hips.csv"
    header = path.read_text(encoding="utf-8").splitlines()[:1] if path.is_file() else []
    columns = [c.strip() for c in header[0].split(",")] if header else []
    return tuple(dict.fromkeys([*SIDE_KEYS, *(c for c in columns if c and c not in ("patient_id", "scan_id", "side"))]))


def _unknown_key(key: str, known: tuple[str, ...]) -> str:
    near = [k for k in known if k.startswith(key)] or difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    return f"unknown key {key!r}{f' (did you mean {near[0]!r}?)' if near else ''}; known keys: {', '.join(known)}"


def parse_side(text: str, known: tuple[str, ...] = SIDE_KEYS, what: str = "--side") -> dict:
    """A hip row from 'R:time_months=24,event=1,jic_stage=2' (`onfh dataset add --side`, the panel's fields),
    checked here so that a problem is told against the text the user typed (`what` names where it was typed):
    unknown keys (with a did-you-mean), outcome and grade codes; grades may be written as printed ('arco=II')."""
    side, _, rest = text.partition(":")
    at = f"{what} {text!r}"
    if side not in ("L", "R"):
        raise InputError(f"{at}: must start with L or R (the hip's side), e.g. R:time_months=24,event=1.")
    row = {"side": side, "time_months": "", "event": ""}
    for item in filter(None, rest.split(",")):
        key, eq, value = (part.strip() for part in item.partition("="))
        if not eq:
            raise InputError(f"{at}: expected key=value pairs after the side, found {item!r}.")
        if key not in known:
            raise InputError(f"{at}: {_unknown_key(key, known)}.")
        row[key] = grade_code(key, value) if key in GRADE_CODES else value
    problems = _check_outcome(row, at)
    problems += [f"{at}: {key} {row[key]!r} is not one of {sorted(codes)} (roman numerals are read too)."
                 for key, codes in GRADE_CODES.items() if row.get(key, "") not in ("", *codes)]
    for key in ("head_x", "head_y", "head_z"):
        if row.get(key, "") != "" and not _finite(row[key]):
            problems.append(f"{at}: {key} {row[key]!r} is not a number (LPS millimetres).")
    if problems:
        raise InputError(problems[0])
    return row


def _finite(text: str) -> bool:
    try:
        return bool(np.isfinite(float(text)))
    except ValueError:
        return False


def rows_from_analysis(analysis: dict, entries: dict[str, str]) -> list[dict]:
    """Hip rows for a case added from the panel: each found head's centre (for training crops) plus what the
    annotator typed for that side (outcome and grades, 'time_months=24,event=1,arco=2')."""
    rows = []
    for hip in analysis["hips"]:
        if not hip["found"]:
            continue
        row = parse_side(f"{hip['side']}:{entries.get(hip['side'], '').replace(' ', '')}",
                         what=f"the {hip['side']} hip's outcome and grades")
        row.update(zip(("head_x", "head_y", "head_z"), (f"{v:.2f}" for v in hip["center_lps"])))
        rows.append(row)
    if not rows:
        raise InputError("no femoral head was found in this analysis, so there is no hip to add.")
    return rows


def add_case(root: str | Path, image_path: str | Path, label_path: str | Path | None, patient_id: str,
             sides: Iterable[dict], scan_id: str | None = None, original_label_path: str | Path | None = None) -> str:
    """Add one scan and its hip rows; files are written first, hips.csv last, each atomically.

    `label_path` is the final (annotator-corrected) label map, `labels/<scan>`, which training reads;
    `original_label_path`, when given, is the label map the model produced, kept apart in
    `labels/original/<scan>` (as MONAI Label's datastore keeps original and final) so corrections can
    be measured and the model's own output is never mistaken for ground truth.
    A crash before the final rename leaves the old hips.csv, which never references the new files,
    so the dataset stays valid.
    """
    root = Path(root)
    if not SAFE_ID.match(patient_id):
        raise InputError(f"patient id {patient_id!r} must be a plain name (letters, digits, _ . -).")
    image = io.read_image(image_path)
    io.check_hip_extent(image.GetSize(), image.GetSpacing(), str(image_path))
    label = io.read_image(label_path) if label_path else None
    if label is not None:
        check_label(label, image, str(label_path))
    original = io.read_image(original_label_path) if original_label_path else None
    if original is not None:
        check_label(original, image, str(original_label_path))
    new_dataset = not root.exists()
    try:
        with hips_lock(root):
            return _add_locked(root, image, label, original, patient_id, sides, scan_id)
    except BaseException:
        if new_dataset:
            _remove_if_only_scaffolding(root)
        raise


def _remove_if_only_scaffolding(root: Path) -> None:
    """A first add that failed leaves no dataset behind: not the lock file, not empty folders (but never a file
    that another add managed to write meanwhile)."""
    (root / LOCK_NAME).unlink(missing_ok=True)
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    if not any(root.iterdir()):
        root.rmdir()


def _add_locked(root: Path, image: sitk.Image, label: sitk.Image | None, original: sitk.Image | None,
                patient_id: str, sides: Iterable[dict], scan_id: str | None) -> str:
    """add_case's read-modify-write of hips.csv, under the dataset lock; first sweeps away the hidden partial
    files a killed writer left (no live writer can own them: writers hold the lock)."""
    for folder in (root / "images", root / "labels", root / ORIGINAL_LABELS):
        for partial in folder.glob(".tmp-*"):
            partial.unlink(missing_ok=True)
    table = (read_hips(root, allow_empty=True) if (root / "hips.csv").exists()
             else pd.DataFrame(columns=list(REQUIRED_COLUMNS)))
    if scan_id is None:
        existing = set(table.scan_id)
        n = 1
        while f"{patient_id}_S{n}" in existing:
            n += 1
        scan_id = f"{patient_id}_S{n}"
    if scan_id in set(table.scan_id):
        raise InputError(f"scan {scan_id} is already in {root / 'hips.csv'}.")
    rows = pd.DataFrame([{**{k: str(v) for k, v in side.items()}, "patient_id": patient_id, "scan_id": scan_id}
                         for side in sides])
    problems = check_rows(pd.concat([table, rows], ignore_index=True).fillna(""))
    if problems:
        raise InputError(problems[0])
    io.write_image(image, root / "images" / f"{scan_id}.nii.gz")
    if label is not None:
        io.write_image(sitk.Cast(label, sitk.sitkUInt8), root / "labels" / f"{scan_id}.nii.gz")
    if original is not None:
        io.write_image(sitk.Cast(original, sitk.sitkUInt8), root / ORIGINAL_LABELS / f"{scan_id}.nii.gz")
    if not (root / "dataset.json").exists():
        write_dataset_json(root, root.name, "unknown")
    write_table(pd.concat([table, rows], ignore_index=True).fillna(""), root / "hips.csv")
    return scan_id
