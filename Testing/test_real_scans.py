"""Real scans no model here was trained on (`../shared/data/real/`): the real hip CT and variants of it
made here (spacing 1.5–5 mm, thick slices, noise, a 10° tilt, a crop), and two scans with no hip at all.

The clinical answer must not change with the variant: right head found near TotalSegmentator's femoral
head (the oracle in `real_ct_oracle`), no lesion, stage 0, no risk; the left hip (a lag screw) refused for
metal, never staged; no femoral head invented in an abdomen."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from ONFHAssistLib.analysis.pipeline import Analyzer
from ONFHAssistLib.imaging import io
from ONFHAssistLib.models import store as modelstore
from real_ct_oracle import CT, REAL, right_head_centre_lps

pytestmark = pytest.mark.skipif(not CT.exists(), reason="shared real scans not present")
# Issue 18's bar. With CT bone recovered by the Hounsfield scale, pelvis inside the head taken as head, femur
# above it given to the roof and the head fitted where it faces soft tissue (`analysis.ct_bone`,
# `segment.postprocess`) the fitted centre sits 3.1–5.8 mm from the oracle's on these variants (5 mm: 3.9);
# before, 6–11.3 mm (segmentation 1.2.0 alone). README "Real scans".
CENTRE_TOLERANCE_MM = 10.0


@pytest.fixture(scope="module")
def analyzer():
    if not modelstore.list_models("segmentation") or not modelstore.list_models("localizer"):
        pytest.skip("no shipped models")
    return Analyzer("cpu")


def _resampled(image: sitk.Image, spacing) -> sitk.Image:
    size = [int(round(n * s / t)) for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing)]
    return sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), spacing,
                         image.GetDirection(), -1024.0, sitk.sitkFloat32)


def _tilted(image: sitk.Image, degrees: float) -> tuple[sitk.Image, sitk.Transform]:
    """Rotated about the AP axis through the volume centre, on the same grid (a patient lying askew)."""
    rotation = sitk.Euler3DTransform()
    rotation.SetCenter(io.index_to_physical(image, (np.array(image.GetSize()) - 1) / 2.0).tolist())
    rotation.SetRotation(0.0, np.radians(degrees), 0.0)
    return sitk.Resample(image, image, rotation, sitk.sitkLinear, -1024.0, sitk.sitkFloat32), rotation


def _noisy(image: sitk.Image, sigma_hu: float) -> sitk.Image:
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    array += np.random.default_rng(0).normal(0.0, sigma_hu, array.shape).astype(np.float32)
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out


def _inferior_slices(image: sitk.Image, keep: int) -> sitk.Image:
    """The `keep` most inferior slices (a scan cropped to the hips)."""
    z = [io.index_to_physical(image, (0, 0, k))[2] for k in (0, image.GetSize()[2] - 1)]
    return image[:, :, :keep] if z[0] < z[1] else image[:, :, -keep:]


def variants():
    image = sitk.ReadImage(str(CT), sitk.sitkFloat32)
    reference = right_head_centre_lps()
    yield "native", image, reference
    for spacing in ((1.5,) * 3, (2.0,) * 3, (4.0,) * 3, (5.0,) * 3, (1.0, 1.0, 5.0)):
        yield f"spacing {spacing}", _resampled(image, spacing), reference
    yield "noise 30 HU", _noisy(image, 30.0), reference
    tilted, rotation = _tilted(image, 10.0)
    yield "tilt 10°", tilted, np.array(rotation.GetInverse().TransformPoint(reference.tolist()))
    yield "lower 90 mm", _inferior_slices(sitk.DICOMOrient(image, "LPS"), 30), reference


@pytest.mark.slow
def test_real_ct_gives_one_answer_at_any_resolution(analyzer, tmp_path):
    answers = []
    for name, image, reference in variants():
        path = tmp_path / f"{len(answers)}.nii.gz"
        sitk.WriteImage(image, str(path))
        hips = {h["side"]: h for h in analyzer.analyze(path, tmp_path / f"out{len(answers)}")["hips"]}
        right, left = hips["R"], hips["L"]
        error = np.linalg.norm(np.array(right["center_lps"]) - reference) if right["found"] else None
        answers.append((name, right["found"], error, right["volumes_ml"], right["stage"].get("arco", {}).get("index"),
                        right["risk"], left["found"], left["reason"], left["stage"], left["risk"], right["ood"]))
    print("\n".join(map(str, answers)))
    for name, found, error, volumes, stage, risk, left_found, left_reason, left_stage, left_risk, ood in answers:
        assert risk is None and stage in (0, None), name  # never a stage or a risk for this healthy head
        assert (ood is not None) == found, name  # every analysed head carries its out-of-distribution score
        assert found and error <= CENTRE_TOLERANCE_MM, (name, error)
        assert volumes["necrosis"] == 0.0 and stage == 0, name
        assert not left_found and "metal in the hip" in left_reason, (name, left_reason)
        assert left_stage == {} and left_risk is None, name


@pytest.mark.parametrize("scan", ["example_ct_sm.nii.gz", "example_mr_sm.nii.gz"])
def test_a_scan_without_hips_finds_no_head_and_exits_0(scan, tmp_path):
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "ONFHAssistLib", "analyze", str(REAL / scan), "--out", str(out)],
                         capture_output=True, encoding="utf-8")
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / "analysis.json").read_text(encoding="utf-8"))
    assert [h["found"] for h in summary["hips"]] == [False, False]
    for hip in summary["hips"]:
        assert hip["reason"].startswith("no femoral head"), hip["reason"]
        assert hip["stage"] == {} and hip["risk"] is None and hip["center_lps"] is None
