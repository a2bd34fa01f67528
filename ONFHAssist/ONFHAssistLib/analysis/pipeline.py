"""`Analyzer`: a hip volume in, every per-hip result out (DESIGN §3).

read → localise both heads → per found hip: segmentation (and measures) → staging + Grad-CAM → SRANet +
attention → collapse risk → maps back on the input grid → output folder. Every per-hip model sees a
right-hip view (left hips mirrored about their own centre), so a left–right flipped scan gives mirrored
results. Models are loaded once per Analyzer and reused for every scan of a batch. The staging, SRANet
and survival models are optional: without one, its step is skipped with a warning.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
import torch

from ..atomic import atomic_path, atomic_write_json
from ..devices import describe_device, resolve_device
from ..errors import InputError
from ..imaging import dicom_tags, io
from ..imaging.crops import CropSpec, crop_arrays
from ..imaging.modality import check_modality
from ..models import store as modelstore
from ..models.networks import build
from ..models.sranet import patch_map_to_volume
from ..models.sranet_patches import lesion_patches
from ..progress import Reporter
from ..survival.curves import BreslowBaseline
from ..survival.reference import load_reference
from . import dicom_export, pdf_report
from . import grades as user_grades
from . import ood
from .grading import decide_stage, grade_codes, lateral_reach_deg, predicted_grades
from .figures import key_images
from .hipfinder import SIDES, HipFinding, find_and_segment
from .maps import crop_map, gradcam_for, on_grid, paste
from .report import write_report
from .findings import SIDE_NAMES, collapse_note
from .results import AnalysisResult, HipResult, RiskResult, StageResult, collapse_systems, validate
from .segment import INFER_SPEC, MIN_NECROSIS_ML

STAGE_NAMES = {"arco": ("0", "I", "II", "III", "IV"), "ficat": ("0", "I", "II", "III", "IV"),
               "jic_stage": ("0", "1", "2", "3", "4"), "ficat3": ("0", "I", "II"), "binary": ("none", "necrosis")}
DERIVED_SYSTEMS = {"arco": ("ficat", "jic_stage")}  # systems that share the stage number in the phantom
CURVE_MONTHS = np.arange(0, 121, 3)
OPTIONAL_TASKS = ("staging", "sranet", "survival")


@dataclass
class LoadedModel:
    network: torch.nn.Module
    entry: modelstore.ModelEntry

    @property
    def card(self) -> dict:
        return self.entry.card


def load_models(names: dict[str, str | None], device: torch.device, warnings: list[str]) -> dict[str, LoadedModel]:
    """Localiser and segmentation are required; the others are loaded when installed. A model that is
    installed but corrupted always stops the run (InputError with the checksum message)."""
    loaded = {}
    for task in ("localizer", "segmentation", *OPTIONAL_TASKS):
        try:
            entry = modelstore.find_model(task, names.get(task))
        except InputError:
            if task not in OPTIONAL_TASKS or names.get(task):
                raise
            warnings.append(f"no {task} model is installed: that step is skipped.")
            continue
        network = modelstore.load_weights(entry, build(task, entry.card), task=task)
        loaded[task] = LoadedModel(network.to(device).eval(), entry)
    return loaded


@contextmanager
def _autocast(device: torch.device):
    """Mixed precision on CUDA, plain float32 on CPU."""
    if device.type == "cuda":
        with torch.autocast("cuda"):
            yield
    else:
        yield


class Analyzer:
    def __init__(self, device: str = "auto", model_names: dict[str, str | None] | None = None,
                 reporter: Reporter | None = None, sides: tuple[str, ...] = SIDES, anonymise: bool = False,
                 dicom: str = "auto"):
        self.device = resolve_device(device)
        self.sides = tuple(sides)  # the hips asked for; the other side is neither segmented nor reported
        self.anonymise = anonymise  # no name, ID, birth date, accession in anything written (dicom_tags)
        self.dicom = dicom  # DICOM SEG and SR: "auto" for a DICOM series input, "always" for any input, or "never"
        self.reporter = reporter or Reporter()
        self.model_warnings: list[str] = []
        self.models = load_models(model_names or {}, self.device, self.model_warnings)
        self.ood = _ood_stats(self.models["segmentation"].entry, self.model_warnings)
        staging = self.models.get("staging")  # hooks are registered once, not per hip
        self.gradcam = gradcam_for(staging.network) if staging else None
        self.reference = _survival_reference(self.models.get("survival"), self.model_warnings)

    def analyze(self, image_path: str | Path, out_dir: str | Path, modality: str = "auto",
                grades: dict | None = None) -> dict:
        """Analyse one scan into `out_dir`; returns the analysis.json content (already written and validated).

        Everything is written into a hidden folder inside `out_dir` first and moved into place at the end,
        analysis.json last, so a run that fails half-way leaves nothing behind. A previous analysis.json is
        removed before the new files move in: a run killed while moving leaves a folder without one, which
        no reader takes for a finished analysis. The hidden folder of a run killed earlier (one analysis per
        output folder at a time) is swept away by the next.
        """
        out = Path(out_dir)
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        for leftover in out.glob(".partial-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=".partial-", dir=out))
        try:
            result = self._analyze(image_path, work, modality, grades)
            earlier = _earlier_outputs(out)
            (out / "analysis.json").unlink(missing_ok=True)
            for stale in earlier - set(result["files"].values()):  # e.g. a left hip's images, another scan's SEG
                (out / stale).unlink(missing_ok=True)
            for name in [*result["files"].values(), "analysis.json"]:
                (out / name).parent.mkdir(exist_ok=True)
                os.replace(work / name, out / name)
            return result
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if created and not any(out.iterdir()):
                out.rmdir()

    def _analyze(self, image_path, out: Path, modality: str, grades: dict | None) -> dict:
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        start = clock

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = round(timings.get(name, 0.0) + now - clock, 3)
            clock = now

        self.reporter.progress("analyze", 0.0, message=f"reading {Path(image_path).name}")
        image = io.read_image(image_path)
        io.check_hip_extent(image.GetSize(), image.GetSpacing(), str(image_path))
        modality, modality_check, modality_warnings = check_modality(image, image_path, modality)
        lap("read")
        self.reporter.progress("analyze", 0.1, message="finding both femoral heads")
        with _autocast(self.device):
            findings, label = find_and_segment(self.models["localizer"].network, self.models["segmentation"].network,
                                               image, modality, self.device, self.sides)
        lap("localise_and_segment")
        shape = sitk.GetArrayViewFromImage(image).shape
        attention, gradcam = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        files = {"label_map": "labels.nii.gz"}
        if "staging" in self.models:
            files["gradcam"] = "gradcam.nii.gz"
        if "sranet" in self.models:
            files["attention"] = "attention.nii.gz"
        hips, warnings = [], [*modality_warnings, *self.model_warnings]
        for n, finding in enumerate(findings):
            self.reporter.progress("analyze", 0.3 + 0.5 * n / len(findings), message=f"{finding.estimate.side} hip")
            hip = self._hip(finding, image, label, modality, (grades or {}).get(finding.estimate.side), files,
                            attention, gradcam, lap)
            if not hip.found:
                warnings.append(f"{hip.side} hip not analysed: {hip.reason}.")
            else:
                warnings += [f"{hip.side} hip: {note}" for note in
                             (_out_of_distribution(hip), _stage_overruled(hip), _lesion_dropped(finding)) if note]
            hips.append(hip)
        self.reporter.progress("analyze", 0.85, message="writing maps and report")
        maps = {"labels": label}
        io.write_image(label, out / files["label_map"])
        for key, array in (("gradcam", gradcam), ("attention", attention)):
            if key in files:
                maps[key] = on_grid(array, image)
                io.write_image(maps[key], out / files[key])
        files["report"] = "report.html"
        lap("write_maps")
        entries = [m.entry for m in self.models.values()]
        demo = any(e.card.get("label") == modelstore.DEMO_LABEL for e in entries)
        if demo:
            warnings.append("models are a phantom-trained demo: not for clinical use.")
        timings["total"] = round(time.perf_counter() - start, 3)
        result = AnalysisResult(
            input={"path": dicom_tags.input_path(image_path, self.anonymise), "modality": modality,
                   "modality_check": modality_check,
                   **io.describe(image)},
            hips=hips, files=files, models=[e.provenance() for e in entries], device=describe_device(self.device),
            timings_s=timings, warnings=warnings, demo_model=demo).to_json()
        result = {"schema_version": result.pop("schema_version"), "input": result.pop("input"),
                  **dicom_tags.identity(image_path, self.anonymise), **result}
        if self.dicom == "always" or (self.dicom == "auto" and Path(image_path).is_dir()):
            result["files"].update(self._dicom(result, image_path, image, label, out))
            lap("dicom")
            result["timings_s"]["dicom"] = timings["dicom"]
        survival = self.models.get("survival")
        key_pngs = self._key_images(result, image, maps, modality, out)
        write_report(result, key_pngs, out / files["report"], survival.card.get("training_km") if survival else None)
        result["files"]["pdf_report"] = pdf_report.write_pdf(
            result, out / "report.pdf", [(f"{SIDE_NAMES[side]} hip", png) for side, png in key_pngs.items()]).name
        lap("report")
        result["timings_s"].update(report=timings["report"], total=round(time.perf_counter() - start, 3))
        validate(result)
        atomic_write_json(out / "analysis.json", result)
        self.reporter.progress("analyze", 1.0, message="done")
        return result

    def _hip(self, finding: HipFinding, image, label, modality, given, files, attention, gradcam, lap) -> HipResult:
        est = finding.estimate
        hip = HipResult(side=est.side, found=est.found, reason=est.reason, confidence=round(est.confidence, 3),
                        anatomy=est.extras.get("evidence"))
        if not est.found:
            hip.candidate_lps = est.center_lps
            return hip
        m = finding.segmentation.measures
        seg_crop = finding.segmentation.crop
        hip.center_lps, hip.radius_mm = [round(v, 2) for v in est.center_lps], round(float(m.radius_mm), 2)
        hip.box = {"center_lps": [round(v, 2) for v in finding.segmentation.crop_center],
                   "size_mm": INFER_SPEC.box_mm}
        hip.volumes_ml = {"head": round(m.head_volume_ml, 2), "necrosis": round(m.necrosis_volume_ml, 2)}
        hip.necrotic_ratio, hip.necrotic_angle_deg = round(m.necrotic_ratio, 4), round(m.necrotic_angle_deg, 1)
        # measured in the segmentation's right-hip-view crop, where the sphere centre m.center_xyz lives
        reach = lateral_reach_deg(sitk.GetArrayViewFromImage(seg_crop), seg_crop.GetOrigin(), seg_crop.GetSpacing(),
                                  m.center_xyz, m.radius_mm) if m.necrosis_volume_ml > 0 else None
        hip.lateral_reach_deg = None if reach is None else round(reach, 1)
        hip.ood = self.ood.assess(finding.segmentation.features) if self.ood else None
        centre, side = est.center_lps, est.side
        stage_index = None
        if "staging" in self.models:
            stage_index = self._stage(hip, image, centre, side, modality, gradcam)
            hip.gradcam_file = files["gradcam"]
            lap("staging")
        if "sranet" in self.models:
            self._sranet(hip, image, label, centre, side, modality, attention)
            hip.sranet["attention_file"] = files["attention"]
            lap("sranet")
        predicted = predicted_grades(stage_index, reach) if stage_index is not None else {}
        used, source = user_grades.merge(predicted, given)
        if used:
            hip.grades = {"used": used, "source": source, "given": sorted(given or {}),
                          "collapse": collapse_systems(used)}
        if hip.grades and hip.grades["collapse"]:  # the risk model is for pre-collapse ONFH (issue 22)
            hip.risk_note = collapse_note(hip.grades)
        elif "survival" not in self.models:
            hip.risk_note = "no collapse risk: no survival model is installed."
        else:
            self._risk(hip, image, label, centre, side, modality, used, source)
            lap("risk")
        return hip

    def _stage(self, hip: HipResult, image, centre, side, modality, gradcam: np.ndarray) -> int:
        """Stage probabilities per system and the Grad-CAM map of the predicted class, pasted on the input grid."""
        model = self.models["staging"]
        spec = CropSpec(**model.card["crop"])
        x = torch.from_numpy(crop_arrays(image, centre, side, spec, modality)[0])[None, None].to(self.device)
        with torch.no_grad(), _autocast(self.device):
            probs = torch.softmax(model.network(x).float(), 1)[0].cpu().numpy()
        index = decide_stage(probs, hip.volumes_ml["necrosis"])
        system = model.card["system"]
        names = STAGE_NAMES[system]
        by_name = {names[k]: round(float(p), 5) for k, p in enumerate(probs)}
        overruled = f"stage {names[0]} ruled out by the segmented lesion" if index else \
            f"stage {names[0]} because the segmentation finds no lesion in the head"
        source = model.entry.name if index == int(probs.argmax()) else f"{model.entry.name}; {overruled}"
        hip.stage[system] = StageResult(names[index], index, by_name, source)
        for derived in DERIVED_SYSTEMS.get(system, ()):
            dnames = STAGE_NAMES[derived]
            hip.stage[derived] = StageResult(dnames[index], index, {dnames[k]: v for k, v in enumerate(by_name.values())},
                                             f"{source} (same stage number as {system})")
        heat = self.gradcam(x, class_idx=index)[0, 0].detach().float().cpu().numpy()
        paste(gradcam, crop_map(heat, io.grid_reference(centre, spec.box_mm, spec.spacing_mm)), side, centre, image)
        return index

    def _sranet(self, hip: HipResult, image, label, centre, side, modality, attention: np.ndarray) -> None:
        """Necrosis probability, patch attention on the input grid, and the attention share on the segmented lesion."""
        model = self.models["sranet"]
        spec = CropSpec(**model.card["crop"])
        crop, lab = crop_arrays(image, centre, side, spec, modality, label)
        with torch.no_grad(), _autocast(self.device):
            out = model.network(torch.from_numpy(crop)[None, None].to(self.device))
        weights = out["weights"].float()
        volume = patch_map_to_volume(weights)[0].cpu().numpy()
        weights = weights[0].cpu().numpy()
        on_lesion = lesion_patches(lab)
        hip.sranet = {"probability": round(float(torch.softmax(out["logits"].float(), 1)[0, 1]), 5),
                      "attention_on_lesion": round(float(weights[on_lesion].sum()), 4) if on_lesion.any() else None}
        paste(attention, crop_map(volume, io.grid_reference(centre, spec.box_mm, spec.spacing_mm)), side, centre, image)

    def _risk(self, hip: HipResult, image, label, centre, side, modality, used: dict, source: str) -> None:
        missing = [k for k in user_grades.GRADE_NAMES if k not in used]
        if missing:
            hip.risk_note = f"no collapse risk: grades {', '.join(missing)} are unknown (give them with --grades)."
            return
        if int(used["jic_stage"]) == 0:
            hip.risk_note = "no collapse risk: no ONFH staged in this hip (the risk model applies to ONFH hips)."
            return
        model = self.models["survival"]
        spec = CropSpec(**model.card["crop"])
        crop, lab = crop_arrays(image, centre, side, spec, modality, label)
        codes = grade_codes(pd.DataFrame([{k: str(v) for k, v in used.items()}]))
        with torch.no_grad():
            score = float(model.network(torch.from_numpy(crop)[None, None].to(self.device),
                                        torch.from_numpy(lab)[None].to(self.device),
                                        torch.from_numpy(codes).to(self.device))[0][0])
        baseline = BreslowBaseline(**model.card["baseline"])
        curve = baseline.survival(score, CURVE_MONTHS)
        hip.risk = RiskResult(round(score, 5), baseline.group(score),
                              {"months": CURVE_MONTHS.tolist(), "probability": [round(float(s), 5) for s in curve]},
                              {k: round(v, 5) for k, v in baseline.collapse_probability(score).items()}, used, source)
        if self.reference is not None:
            hip.risk.collapse_interval = {k: [round(lo, 5), round(hi, 5)]
                                          for k, (lo, hi) in self.reference.collapse_interval(score).items()}
            hip.risk.training_percentile = round(self.reference.percentile(score), 2)
            hip.risk.reference = self.reference.describe()

    def _key_images(self, result: dict, image: sitk.Image, maps: dict, modality: str, out: Path) -> dict[str, bytes]:
        """Each found hip's key images (`figures.key_images`), drawn once for the HTML and the PDF report and kept
        beside them as key_images_<side>.png (named in result["files"])."""
        pngs = {}
        for hip in sorted(result["hips"], key=lambda h: h["side"] != "R"):
            if hip["found"]:
                pngs[hip["side"]] = png = key_images(image, maps, hip, modality).png
                result["files"][f"key_images_{hip['side']}"] = name = f"key_images_{hip['side']}.png"
                with atomic_path(out / name) as tmp:
                    Path(tmp).write_bytes(png)
        return pngs

    def _dicom(self, result: dict, source, image: sitk.Image, label: sitk.Image, out: Path) -> dict[str, str]:
        """The SEG and SR (`dicom_export`) on the input series' slices, or for a volume file on slice headers with
        new UIDs and a new frame of reference; a series highdicom cannot derive them from (e.g. slices that do
        not stack into one volume) costs them, with a warning, not the analysis."""
        try:
            sources = (dicom_export.source_datasets(source, self.anonymise) if Path(source).is_dir() else
                       dicom_export.volume_sources(image, result["input"]["modality"]))
            dicom_export.write_seg(label, sources, result["models"], out / dicom_export.SEG_FILE)
            dicom_export.write_sr(result, sources, out / dicom_export.SR_FILE)
        except ImportError:  # Slicer's Python before the module's dependency install
            result["warnings"].append("no DICOM SEG and SR were written: highdicom is not installed.")
            return {}
        except ValueError as exc:
            result["warnings"].append(f"no DICOM SEG and SR were written: {exc}")
            return {}
        return {"dicom_seg": dicom_export.SEG_FILE, "dicom_sr": dicom_export.SR_FILE}


OPTIONAL_OUTPUTS = {*dicom_export.FILES, *(f"key_images_{side}.png" for side in SIDES), "gradcam.nii.gz",
                    "attention.nii.gz"}


def _earlier_outputs(out: Path) -> set[str]:
    """What an earlier analysis in `out` may have written that this one might not: every optional output, and
    the files its analysis.json names (when it can be read; a run killed while moving left none)."""
    try:
        named = json.loads((out / "analysis.json").read_text(encoding="utf-8"))["files"].values()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        named = []
    return OPTIONAL_OUTPUTS | {name for name in named if isinstance(name, str) and not Path(name).is_absolute()
                               and ".." not in Path(name).parts}


def _ood_stats(entry: modelstore.ModelEntry, warnings: list[str]) -> ood.OODStats | None:
    """The segmentation model's out-of-distribution statistics; without them, a warning that no hip is checked."""
    stats = ood.load_stats(entry.folder, entry.card["sha256"])
    if stats is None:
        warnings.append(f"no out-of-distribution statistics for the segmentation model {entry.name} {entry.version}: "
                        "no hip is checked against its training data.")
    return stats


def _survival_reference(model: LoadedModel | None, warnings: list[str]):
    """The survival model's training-cohort reference; without it, a warning that risks have no interval."""
    if model is None:
        return None
    reference = load_reference(model.entry.folder, model.card)
    if reference is None:
        warnings.append(f"no training-cohort reference for the survival model {model.entry.name} "
                        f"{model.entry.version}: collapse probabilities have no interval and the risk is placed "
                        "against the training cohort's median only.")
    return reference


def _out_of_distribution(hip: HipResult) -> str:
    if hip.ood is None or hip.ood["reliable"]:
        return ""
    return (f"scan unlike the training data (score {hip.ood['score']:.1f} above {hip.ood['threshold']:.1f}): "
            "stage and risk are not reliable")


def _stage_overruled(hip: HipResult) -> str:
    """Words for a stage the segmentation decided against the staging network's own choice (`decide_stage`)."""
    for stage in hip.stage.values():
        names, probs = list(stage.probabilities), list(stage.probabilities.values())
        top = int(np.argmax(probs))
        if stage.index == top:
            continue
        if stage.index == 0:
            return (f"staging gave stage {names[top]} the highest probability ({probs[top]:.2f}), but the segmentation "
                    "finds no lesion inside the femoral head, so stage 0 is reported and no risk is given. Review the "
                    "images, or give the grades (--grades).")
        return (f"staging gave stage 0 the highest probability ({probs[0]:.2f}), but the segmentation marks a "
                f"{hip.volumes_ml['necrosis']:.1f} ml lesion, so the most probable ONFH stage is shown and used for "
                "the risk. Review the images, or give the grades (--grades).")
    return ""


def _lesion_dropped(finding: HipFinding) -> str:
    seg = finding.segmentation
    if seg is None or seg.dropped_lesion_ml < 0.05:
        return ""
    floor = (f", or form a component under {seg.min_lesion_ml:.1f} ml, the smallest lesion this scan's voxels resolve"
             if seg.min_lesion_ml > MIN_NECROSIS_ML else "")
    return (f"{seg.dropped_lesion_ml:.1f} ml the segmentation marked as lesion lie outside the femoral head or the "
            f"femur, or against the acetabulum{floor}; they were dropped (necrosis is only counted inside the head).")
