"""Is this a scan the models can read? CT, T1-weighted MR, or another MR sequence (issue 18).

The models were trained on CT and T1-weighted MR only. A T2-weighted, fat-suppressed (STIR, SPAIR) or
diffusion series shows marrow, fat and fluid with other contrasts, so it must not pass silently as T1.
CT is recognised by its Hounsfield scale. For MR the DICOM acquisition tags decide when they say enough;
otherwise the tissue intensities do, by what T1 weighting means: fat has the shortest T1 of the body's
tissues, so on T1 subcutaneous fat is bright and fluid is dark, while T2 and fat-suppressed images show
fluid brighter than fat. When neither tells, the scan is taken as T1 and marked as not verified.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from . import io

# CT: air is -1000 HU and nothing in an MR is that negative; water is 0 and muscle, blood and organs
# 20-60 HU. The soft-tissue peak is sought between -40 and 120 HU, which leaves out fat's peak at -100.
AIR_MAX_HU = -850.0
MIN_AIR_FRACTION = 0.01
SOFT_TISSUE_SEARCH_HU = (-40.0, 120.0)
SOFT_TISSUE_PEAK_HU = (-20.0, 80.0)

# DICOM acquisition tags (first slice of the series).
TAGS = {"description": "0008|103e", "scanning_sequence": "0018|0020", "sequence_variant": "0018|0021",
        "scan_options": "0018|0022", "repetition_time_ms": "0018|0080", "echo_time_ms": "0018|0081",
        "inversion_time_ms": "0018|0082"}
# T1 contrast needs a TR short against muscle's T1 (1000-1400 ms at 1.5-3 T; 3 T T1 TSE runs up to ~900 ms)
# and a TE short against muscle's T2 (~35 ms); TE over 60 ms is T2 weighting, TR of 2000 ms or more lets
# every tissue's magnetisation recover (proton density or T2). Fat's T1 (260-380 ms) is nulled at
# TI = ln 2 * T1 = 180-260 ms, so an inversion time under 300 ms is a STIR.
T1_MAX_TR_MS, T1_MAX_TE_MS = 1000.0, 30.0
T2_MIN_TE_MS, LONG_TR_MS = 60.0, 2000.0
STIR_MAX_TI_MS = 300.0
FAT_SUPPRESSED_WORDS = ("STIR", "TIRM", "SPAIR", "SPIR", "FS", "FATSAT", "FAT SAT", "FAT SUP", "FATSUP")
DIFFUSION_WORDS = ("DWI", "ADC", "DIFF", "DIFFUSION", "TRACE", "TRACEW")
NOT_T1_WORDS = {"T2-weighted MR": ("T2", "T2W", "T2WI", "FLAIR"), "proton-density-weighted MR": ("PD", "PDW", "PDWI")}
T1_WORDS = ("T1", "T1W", "T1WI")

# Intensities are compared on ~3 mm voxels (averaging lowers the noise). Subcutaneous fat is the shell
# 0-15 mm under the skin; fluid (bladder, joints, bowel) lies 30 mm or deeper. On T1 fat is about three
# times muscle and nothing is brighter than fat; on T2 and STIR fluid is twice fat or more.
SAMPLE_MM = 3.0
RIM_MM, DEEP_MM = 15.0, 30.0
MIN_REGION_VOXELS = 100
FAT_BRIGHT, FAT_DARK = 1.5, 0.6  # subcutaneous fat / median body tissue
FLUID_BRIGHT = 1.5  # brightest deep tissue (99.5th percentile) / subcutaneous fat (75th percentile)
N4_SAMPLE_MM, N4_ITERATIONS = 9.0, [20, 20, 20]  # the shading correction's voxels and iterations per level
N4_MIN_SIZE = 4  # voxels per axis of the fitting grid; a smaller scan is compared uncorrected


@dataclass(frozen=True)
class ModalityDecision:
    """What the scan is (modality "ct" | "mr_t1" | "mr_other"), whether the models can read it, and why."""

    modality: str
    supported: bool
    verified: bool  # False: MR taken as T1 without evidence for it
    kind: str  # e.g. "T2-weighted MR"
    why: str  # the evidence in words
    evidence: dict

    @property
    def reason(self) -> str:
        return f"{self.kind}: {self.why}."

    def to_json(self) -> dict:
        return asdict(self)


def decide_modality(image: sitk.Image, tags: dict[str, str] | None = None) -> ModalityDecision:
    """CT by its Hounsfield scale; MR by its DICOM tags when they decide, else by its tissue intensities."""
    is_ct, hounsfield = ct_evidence(image)
    if is_ct:
        return ModalityDecision("ct", True, True, "CT", f"{hounsfield['air_fraction']:.0%} of voxels at air "
                                f"density and a soft-tissue peak at {hounsfield['soft_tissue_peak_hu']:g} HU",
                                {"basis": "hounsfield", **hounsfield})
    return _from_tags(tags or {}) or _from_intensity(tissue_contrasts(image))


def ct_evidence(image: sitk.Image) -> tuple[bool, dict]:
    """Hounsfield units: at least 1 % of voxels at air density or below and a soft-tissue peak near water."""
    arr = sitk.GetArrayViewFromImage(image).ravel()
    sample = arr[:: max(1, arr.size // 500000)].astype(np.float32)
    lo, hi = SOFT_TISSUE_SEARCH_HU
    counts, edges = np.histogram(sample, bins=int((hi - lo) / 10), range=(lo, hi))
    peak = float(edges[np.argmax(counts)] + 5.0)
    evidence = {"air_fraction": round(float(np.mean(sample <= AIR_MAX_HU)), 4), "soft_tissue_peak_hu": peak,
                "soft_tissue_fraction": round(float(counts.sum()) / sample.size, 4)}
    is_ct = (evidence["air_fraction"] >= MIN_AIR_FRACTION and evidence["soft_tissue_fraction"] >= MIN_AIR_FRACTION
             and SOFT_TISSUE_PEAK_HU[0] <= peak <= SOFT_TISSUE_PEAK_HU[1])
    return is_ct, evidence


def _from_tags(tags: dict[str, str]) -> ModalityDecision | None:
    """The acquisition decides when it names a suppression, diffusion or a clear TR/TE; None when silent."""
    found = {name: tags[key].strip() for name, key in TAGS.items() if tags.get(key, "").strip()}
    times = {name: _number(found.get(name)) for name in ("repetition_time_ms", "echo_time_ms", "inversion_time_ms")}
    tr, te, ti = times.values()
    words = " " + re.sub(r"[^A-Z0-9]+", " ", found.get("description", "").upper()).strip() + " "
    options = set(re.split(r"[^A-Z0-9]+", found.get("scan_options", "").upper()))
    sequence = set(re.split(r"[^A-Z]+", found.get("scanning_sequence", "").upper()))
    desc = f"series description '{found.get('description', '')}'"
    evidence = {"basis": "dicom tags", **found}

    def other(kind: str, why: str) -> ModalityDecision:
        return ModalityDecision("mr_other", False, True, kind, why, evidence)

    if _says(words, DIFFUSION_WORDS) or "EP" in sequence:
        return other("diffusion-weighted MR", desc if _says(words, DIFFUSION_WORDS) else "echo-planar sequence")
    if ti is not None and ti < STIR_MAX_TI_MS:
        return other("fat-suppressed MR (STIR)", f"inversion time {ti:g} ms nulls fat")
    if _says(words, FAT_SUPPRESSED_WORDS) or "FS" in options:
        return other("fat-suppressed MR", desc if _says(words, FAT_SUPPRESSED_WORDS) else "scan options FS")
    if te is not None and te > T2_MIN_TE_MS:
        return other("T2-weighted MR", f"echo time {te:g} ms is over {T2_MIN_TE_MS:g} ms")
    if tr is not None and tr >= LONG_TR_MS:
        return other("proton-density- or T2-weighted MR", f"repetition time {tr:g} ms is {LONG_TR_MS:g} ms or more")
    if tr is not None and te is not None and tr < T1_MAX_TR_MS and te < T1_MAX_TE_MS:
        return ModalityDecision("mr_t1", True, True, "T1-weighted MR", f"TR {tr:g} ms and TE {te:g} ms", evidence)
    for kind, names in NOT_T1_WORDS.items():
        if _says(words, names):
            return other(kind, desc)
    if _says(words, T1_WORDS):
        return ModalityDecision("mr_t1", True, True, "T1-weighted MR", desc, evidence)
    return None


def _says(words: str, names) -> bool:
    return any(f" {name} " in words for name in names)


def _number(text: str | None) -> float | None:
    """A DICOM decimal string (first value of a multi-valued one), or None."""
    try:
        return float(text.split("\\")[0]) if text else None
    except ValueError:
        return None


def tissue_contrasts(image: sitk.Image) -> dict:
    """Subcutaneous fat against the median body tissue, and the brightest deep tissue against that fat."""
    image = sitk.DICOMOrient(sitk.Cast(image, sitk.sitkFloat32), "LPS")
    image = sitk.BinShrink(image, [max(1, int(round(SAMPLE_MM / s))) for s in image.GetSpacing()])
    body, depth = _body_depth(image)
    array = _without_coil_shading(image, body)
    rim, deep = body & (depth <= RIM_MM), body & (depth >= DEEP_MM)
    evidence: dict = {"basis": "intensity", "body_voxels": int(body.sum()), "rim_voxels": int(rim.sum()),
                      "deep_voxels": int(deep.sum()), "fat_ratio": None, "fluid_ratio": None}
    if min(evidence["body_voxels"], evidence["rim_voxels"]) >= MIN_REGION_VOXELS:
        fat = float(np.percentile(array[rim], 75))
        evidence["fat_ratio"] = _ratio(np.median(array[rim]), np.median(array[body]))
        if evidence["deep_voxels"] >= MIN_REGION_VOXELS:
            evidence["fluid_ratio"] = _ratio(np.percentile(array[deep], 99.5), fat)
    return evidence


def _without_coil_shading(image: sitk.Image, body: np.ndarray) -> np.ndarray:
    """The image divided by its slow multiplicative shading (N4 inside the body, fitted on ~9 mm voxels: the
    shading is slow, and 0.3-0.6 s instead of 6-14 s): a receive coil can make one corner of a scan brighter
    than fat, and the contrasts below compare tissues far apart. Without it a realistic phantom's one-hip T1
    (development seed 4250) read as T2: fluid ratio 2.04, after N4 1.05."""
    shrink = [max(1, int(round(N4_SAMPLE_MM / s))) for s in image.GetSpacing()]
    if body.sum() < MIN_REGION_VOXELS or any(n // k < N4_MIN_SIZE for n, k in zip(image.GetSize(), shrink)):
        return sitk.GetArrayFromImage(image)  # too little to fit a field to (N4 fails on it); the ratios decide
    mask = sitk.GetImageFromArray(body.astype(np.uint8))
    mask.CopyInformation(image)
    positive = image - float(sitk.GetArrayViewFromImage(image).min()) + 1.0
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations(N4_ITERATIONS)
    n4.Execute(sitk.BinShrink(positive, shrink), sitk.Cast(sitk.BinShrink(mask, shrink) > 0, sitk.sitkUInt8))
    return sitk.GetArrayFromImage(positive / sitk.Exp(n4.GetLogBiasFieldAsImage(positive)))


def _ratio(a: float, b: float) -> float | None:
    return round(float(a) / float(b), 3) if b > 0 else None


def _body_depth(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Body mask (z, y, x) and each body voxel's in-plane depth under the skin in mm.

    The body is the largest region above an Otsu threshold on log intensity (background noise and tissue
    lie decades apart), holes filled per axial slice (bowel gas, cortical bone). Depth is measured in the
    axial plane, and where the body leaves the field of view the edge is not skin: the mask is extended
    beyond the image before measuring.
    """
    low = float(sitk.GetArrayViewFromImage(image).min())
    body3d = sitk.OtsuThreshold(sitk.Log(image - low + 1.0), 0, 1)
    body3d = sitk.RelabelComponent(sitk.ConnectedComponent(body3d)) == 1
    pad = [int(np.ceil(DEEP_MM / s)) + 1 for s in image.GetSpacing()[:2]]
    masks, depths = [], []
    for k in range(image.GetSize()[2]):
        mask = sitk.BinaryFillhole(body3d[:, :, k])
        depth = sitk.SignedMaurerDistanceMap(sitk.ZeroFluxNeumannPad(mask, pad, pad), insideIsPositive=True,
                                             squaredDistance=False, useImageSpacing=True)
        masks.append(sitk.GetArrayFromImage(mask).astype(bool))
        depths.append(sitk.GetArrayFromImage(sitk.Crop(depth, pad, pad)))
    return np.stack(masks), np.stack(depths)


def _from_intensity(evidence: dict) -> ModalityDecision:
    """Not T1 when fat is dark or fluid outshines it; T1 when fat is bright and nothing deep outshines it;
    otherwise taken as T1 but not verified."""
    fat, fluid = evidence["fat_ratio"], evidence["fluid_ratio"]
    if fat is not None and fat <= FAT_DARK:
        return ModalityDecision("mr_other", False, True, "fat-suppressed MR",
                                f"subcutaneous fat is {fat:g} x the median tissue, dark where T1 shows it bright",
                                evidence)
    if fluid is not None and fluid >= FLUID_BRIGHT:
        return ModalityDecision("mr_other", False, True, "T2-weighted or fat-suppressed MR",
                                f"the brightest tissue deep in the body is {fluid:g} x subcutaneous fat, "
                                "which T1 never shows", evidence)
    if fat is not None and fat >= FAT_BRIGHT:
        return ModalityDecision("mr_t1", True, True, "T1-weighted MR",
                                f"subcutaneous fat is {fat:g} x the median tissue and nothing deep outshines it",
                                evidence)
    return ModalityDecision("mr_t1", True, False, "MR of unverified sequence",
                            "no DICOM tags tell it and the intensities do not show T1 contrast clearly "
                            f"(fat ratio {_text(fat)}, fluid ratio {_text(fluid)})", evidence)


def _text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def check_modality(image: sitk.Image, image_path, requested: str) -> tuple[str, dict, list[str]]:
    """The modality to analyse as, the decision's record for analysis.json, and its warnings. The models read
    CT and T1-weighted MR only: under "auto" another MR sequence is refused; a modality the user named is
    obeyed, with a warning when the scan looks otherwise."""
    decision = decide_modality(image, io.dicom_tags(image_path))
    record = {**decision.to_json(), "chosen_by": "auto" if requested == "auto" else "user"}
    if requested != "auto":
        disagree = decision.modality != requested
        return requested, record, [f"the scan looks like {decision.kind} ({decision.why}) but was analysed as "
                                   f"{requested} as asked: results are not reliable."] if disagree else []
    if not decision.supported:
        raise InputError(f"{Path(image_path).name}: the scan looks like {decision.kind} ({decision.why}); only "
                         "T1-weighted MR and CT are supported, choose modality mr_t1 to analyse it anyway "
                         "with unreliable results.")
    return decision.modality, record, [] if decision.verified else \
        [f"MR sequence not verified ({decision.why}): analysed as T1-weighted."]
