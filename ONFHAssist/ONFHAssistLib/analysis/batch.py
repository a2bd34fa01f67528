"""`onfh analyze` over several scans: one output folder per scan, a cohort.csv row per hip, and a list
of the scans that failed (the run goes on past them)."""
from __future__ import annotations

import csv
import io as text_io
from dataclasses import dataclass, field
from pathlib import Path

import SimpleITK as sitk

from ..atomic import atomic_write_text
from ..errors import InputError
from ..imaging import io
from .results import COHORT_COLUMNS, cohort_rows


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Scans named on the command line: files, DICOM series folders, or folders of volume files. Hidden
    entries of a folder (".tmp-*" partial files a killed writer left) are never taken for scans."""
    scans = []
    for path in paths:
        if path.is_dir() and not sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path)):
            inside = sorted(p for p in path.iterdir() if not p.name.startswith(".") and (io.volume_suffix(p) or
                            (p.is_dir() and sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(p)))))
            if not inside:
                raise InputError(f"{path}: the folder holds no volume files and no DICOM series.")
            scans.extend(inside)
        else:
            scans.append(path)
    return scans


def scan_name(path: Path) -> str:
    suffix = io.volume_suffix(path)
    return path.name[: len(path.name) - len(suffix)] if suffix else path.name


def _refuse_same_names(scans: list[Path], names: list[str]) -> None:
    """Two inputs named alike would write one output folder: name both so the user knows which to rename."""
    first: dict[str, Path] = {}
    for path, name in zip(scans, names):
        if name in first:
            raise InputError(f"{first[name]} and {path} have the same name {name!r}; their output folders would "
                             "collide (rename one).")
        first[name] = path


@dataclass
class BatchResult:
    analyses: dict[str, dict] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def run_batch(analyzer, scans: list[Path], out: Path, modality: str, grades: dict | None) -> BatchResult:
    """Analyse every scan into out/<scan name>/ and write out/cohort.csv; a bad scan is recorded, not fatal."""
    result = BatchResult()
    names = [scan_name(p) for p in scans]
    _refuse_same_names(scans, names)
    for path, name in zip(scans, names):
        try:
            io.check_scan(path)
            result.analyses[name] = analyzer.analyze(path, out / name, modality, grades)
        except InputError as exc:
            result.failures[name] = str(exc)
    buffer = text_io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COHORT_COLUMNS)
    writer.writeheader()
    for name, analysis in result.analyses.items():
        writer.writerows(cohort_rows(name, analysis))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "cohort.csv", buffer.getvalue())
    return result
