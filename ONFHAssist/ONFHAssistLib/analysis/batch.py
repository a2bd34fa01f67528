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
from ..progress import Steps
from .findings import key_findings

COLUMNS = ("scan", "side", "kind", "finding", "found", "reason", "radius_mm", "head_ml", "necrosis_ml",
           "necrotic_ratio", "necrotic_angle_deg", "arco_stage", "p_stage", "sranet_probability", "risk_score",
           "risk_group", "training_percentile", "collapse_12m", "collapse_12m_low", "collapse_12m_high", "collapse_36m",
           "collapse_36m_low", "collapse_36m_high", "collapse_60m", "collapse_60m_low", "collapse_60m_high",
           "grades_source")


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


def cohort_rows(scan: str, analysis: dict) -> list[dict]:
    """One `cohort.csv` row per hip of an analysis, its key finding first."""
    rows = []
    for hip, finding in zip(sorted(analysis["hips"], key=lambda h: h["side"] != "R"), key_findings(analysis)):
        arco = hip["stage"].get("arco") or {}
        risk = hip.get("risk") or {}
        volumes = hip.get("volumes_ml") or {}
        rows.append({"scan": scan, "side": hip["side"], "kind": finding["kind"], "finding": finding["sentence"],
                     "found": hip["found"], "reason": hip["reason"],
                     "radius_mm": hip["radius_mm"], "head_ml": volumes.get("head"), "necrosis_ml": volumes.get("necrosis"),
                     "necrotic_ratio": hip["necrotic_ratio"], "necrotic_angle_deg": hip["necrotic_angle_deg"],
                     "arco_stage": arco.get("label"), "p_stage": (arco.get("probabilities") or {}).get(arco.get("label")),
                     "sranet_probability": (hip.get("sranet") or {}).get("probability"),
                     "risk_score": risk.get("score"), "risk_group": risk.get("group"),
                     "training_percentile": risk.get("training_percentile"), **_collapse_columns(risk),
                     "grades_source": (hip.get("grades") or {}).get("source")})
    return rows


def failed_rows(scan: str, sides, reason: str) -> list[dict]:
    """The `cohort.csv` rows of a scan that could not be analysed: one per hip asked for, with the reason."""
    return [{"scan": scan, "side": side, "kind": "failed", "finding": f"scan not analysed: {reason}", "found": "",
             "reason": reason} for side in sorted(sides, key=lambda s: s != "R")]


@dataclass
class BatchResult:
    analyses: dict[str, dict] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def run_batch(analyzer, scans: list[Path], out: Path, modality: str, grades: dict | None) -> BatchResult:
    """Analyse every scan into out/<scan name>/ and write out/cohort.csv (a row per hip asked for, a failed
    scan's rows with its reason, in input order); a bad scan is recorded, not fatal. Progress names the scan
    that runs (i/N) with the time left, through the analyser's reporter."""
    result = BatchResult()
    names = [scan_name(p) for p in scans]
    _refuse_same_names(scans, names)
    steps = Steps(analyzer.reporter, "batch", len(scans))  # "scan 2/5: name" and the time left, around each scan
    for n, (path, name) in enumerate(zip(scans, names)):
        with steps.step(f"scan {n + 1}/{len(scans)}: {name}"):
            try:
                io.check_scan(path)
                result.analyses[name] = analyzer.analyze(path, out / name, modality, grades)
            except InputError as exc:
                result.failures[name] = str(exc)
    buffer = text_io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for name in names:
        writer.writerows(cohort_rows(name, result.analyses[name]) if name in result.analyses else
                         failed_rows(name, analyzer.sides, result.failures[name]))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "cohort.csv", buffer.getvalue())
    return result


def _collapse_columns(risk: dict) -> dict:
    """Collapse probability by 12/36/60 months with its 95 % interval (blank without a training reference)."""
    probability, interval = risk.get("collapse_probability", {}), risk.get("collapse_interval") or {}
    columns = {}
    for months in ("12", "36", "60"):
        low, high = interval.get(months) or (None, None)
        columns.update({f"collapse_{months}m": probability.get(months), f"collapse_{months}m_low": low,
                        f"collapse_{months}m_high": high})
    return columns
