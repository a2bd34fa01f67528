"""`onfh analyze` end to end with the shipped models on the bundled demo scan: schema, report, maps on the
input grid, left–right mirror equivariance, batch behaviour and refusals."""
import csv
import io as io_text
import json
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import SimpleITK as sitk

from ONFHAssistLib.slicer import demo_case
from ONFHAssistLib.imaging import io
from ONFHAssistLib.models import store as modelstore
from ONFHAssistLib.cli import main
from ONFHAssistLib.analysis.pipeline import Analyzer
from ONFHAssistLib.analysis.results import stage_text, validate

SHIPPED = ("localizer", "segmentation", "staging", "sranet", "survival")
MAPS = ("label_map", "attention", "gradcam")


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer("cpu")


@pytest.fixture(scope="module")
def demo(analyzer, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return analyzer.analyze(demo_case.image_path(), out), out


@pytest.fixture(scope="module")
def mirrored(analyzer, tmp_path_factory):
    """The demo scan flipped left–right in voxel space with its geometry kept: a physical mirror image."""
    folder = tmp_path_factory.mktemp("mirrored")
    image = io.read_image(demo_case.image_path())
    flipped = sitk.GetImageFromArray(sitk.GetArrayFromImage(image)[:, :, ::-1].copy())
    flipped.CopyInformation(image)
    io.write_image(flipped, folder / "mirrored.nii.gz")
    return analyzer.analyze(folder / "mirrored.nii.gz", folder / "out"), folder / "out"


def _hips(analysis):
    return {h["side"]: h for h in analysis["hips"]}


def test_every_model_is_used_and_recorded(demo):
    analysis, _ = demo
    assert {m["task"] for m in analysis["models"]} == set(SHIPPED)
    for m in analysis["models"]:
        folder = modelstore.find_model(m["task"], m["name"]).folder
        assert m["sha256"] == modelstore.sha256_file(folder / modelstore.WEIGHTS)
    assert analysis["demo_model"] and any("not for clinical use" in w for w in analysis["warnings"])


def test_a_missing_optional_model_is_skipped_with_a_warning(tmp_path, monkeypatch):
    """A store with only the required localiser and segmentation: staging, SRANet and risk are skipped, said so."""
    store = tmp_path / "shipped"
    for task in ("localizer", "segmentation"):
        shutil.copytree(modelstore.find_model(task).folder, store / f"onfh-{task}")
    monkeypatch.setattr(modelstore, "SHIPPED_STORE", store)
    monkeypatch.setenv("ONFH_MODELS", str(tmp_path / "empty-store"))
    analysis = Analyzer("cpu").analyze(demo_case.image_path(), tmp_path / "out")
    for task in ("staging", "sranet", "survival"):
        assert f"no {task} model is installed: that step is skipped." in analysis["warnings"]
    assert all(h["sranet"] is None and not h["stage"] for h in analysis["hips"])
    assert "attention" not in analysis["files"] and "gradcam" not in analysis["files"]


def test_analysis_json_validates_and_a_broken_one_does_not(demo):
    analysis, out = demo
    written = json.loads((out / "analysis.json").read_text(encoding="utf-8"))
    validate(written)
    broken = json.loads(json.dumps(written))
    broken["hips"][0]["sranet"]["probability"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    del broken["schema_version"]
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_demo_results_agree_with_the_phantom_truth(demo):
    analysis, _ = demo
    hips, truth = _hips(analysis), {t["side"]: t for t in demo_case.truth()}
    lesion = next(s for s, t in truth.items() if t["jic_stage"] > 0)
    healthy = "L" if lesion == "R" else "R"
    assert hips[lesion]["found"] and hips[healthy]["found"]
    assert all(h["anatomy"]["bone_added_ml"] is None for h in hips.values())  # MR: no Hounsfield scale
    assert abs(hips[lesion]["necrotic_ratio"] - truth[lesion]["necrotic_ratio"]) < 0.03
    assert hips[lesion]["stage"]["arco"]["index"] > 0 and hips[healthy]["stage"]["arco"]["index"] == 0
    assert hips[lesion]["risk"]["grades_used"]["jic_type"] != "none"
    assert hips[lesion]["risk"] is not None and hips[healthy]["risk"] is None
    curve = hips[lesion]["risk"]["survival"]["probability"]
    assert curve[0] == 1.0 and np.all(np.diff(curve) <= 0)


def test_the_collapse_risk_carries_its_bootstrap_interval_and_training_percentile(demo):
    """Recomputed from the shipped training-cohort reference: the interval (scipy-free), the percentile (scipy's
    strict percentileofscore); the point estimate inside its interval; the report says what the interval covers."""
    from scipy.stats import percentileofscore

    from ONFHAssistLib.survival.reference import load_reference

    analysis, out = demo
    risk = _hips(analysis)["R"]["risk"]
    entry = modelstore.find_model("survival")
    reference = load_reference(entry.folder, entry.card)
    expected = reference.collapse_interval(risk["score"])  # the stored score is rounded to 5 decimals
    for months, (low, high) in risk["collapse_interval"].items():
        assert [low, high] == pytest.approx(expected[months], abs=1e-4)
        assert low < risk["collapse_probability"][months] < high
    assert risk["collapse_interval"]["12"][1] < risk["collapse_interval"]["60"][1]
    strict = percentileofscore(reference.score, risk["score"], kind="strict")
    assert risk["training_percentile"] == pytest.approx(strict, abs=0.005)  # analysis.json keeps two decimals
    assert risk["reference"]["training_hips"] == reference.score.size == entry.card["trained_on"]["hips"]
    assert risk["reference"]["level"] == 0.95
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "patient-level bootstrap resamples of the Breslow baseline" in page and "95 % interval" in page
    assert _hips(analysis)["L"]["risk"] is None


def test_maps_land_on_the_input_grid_inside_the_hip_boxes(demo):
    analysis, out = demo
    image = io.read_image(demo_case.image_path())
    maps = {key: io.read_image(out / analysis["files"][key]) for key in MAPS}
    for m in maps.values():
        assert m.GetSize() == image.GetSize() and m.GetOrigin() == image.GetOrigin()
        assert m.GetSpacing() == image.GetSpacing() and m.GetDirection() == image.GetDirection()
    boxes = np.zeros(sitk.GetArrayViewFromImage(image).shape, bool)
    for hip in analysis["hips"]:
        boxes |= _box_mask(image, hip["box"]["center_lps"], hip["box"]["size_mm"] / 2 + 6.0)
    for key in ("attention", "gradcam"):
        values = sitk.GetArrayFromImage(maps[key])
        assert np.isfinite(values).all() and values.min() >= 0 and values.max() > 0
        assert not values[~boxes].any()  # nothing outside the two per-hip crops
    attention_mass = [h["sranet"]["attention_on_lesion"] for h in analysis["hips"] if h["sranet"]["attention_on_lesion"]]
    assert all(0 < a <= 1 for a in attention_mass)


def test_sranet_tells_the_lesion_hip_from_the_healthy_one(demo):
    """The shipped SRANet on the demo: the phantom's lesion hip scores high and its attention sits on the lesion."""
    hips = _hips(demo[0])
    lesion = {t["side"]: int(t["ficat"]) > 0 for t in demo_case.truth()}
    ill, healthy = (hips[s]["sranet"] for s in ("R", "L")) if lesion["R"] else (hips[s]["sranet"] for s in ("L", "R"))
    assert ill["probability"] > 0.5 > healthy["probability"]
    assert ill["attention_on_lesion"] > 0.5


def test_gradcam_peaks_inside_the_head_of_the_lesion_hip(demo):
    """Grad-CAM of the predicted stage looks at the femoral head (the phantom's truth), not the crop's corners."""
    analysis, out = demo
    truth = next(t for t in demo_case.truth() if int(t["ficat"]) > 0)
    centre = np.array([truth["head_x"], truth["head_y"], truth["head_z"]], float)
    cam = io.read_image(out / analysis["files"]["gradcam"])
    values = sitk.GetArrayFromImage(cam)
    near = _box_mask(cam, centre, 60.0)  # the lesion hip's crop, not the other hip's
    peak = np.unravel_index(np.argmax(np.where(near, values, -1.0)), values.shape)
    peak_lps = np.array(cam.TransformIndexToPhysicalPoint([int(i) for i in peak[::-1]]))
    assert np.linalg.norm(peak_lps - centre) < truth["head_radius_mm"]


def _box_mask(image, centre, half_mm):
    """Voxels within an LPS-aligned cube of half-edge `half_mm` around a point (the demo's axes are LPS axes, some
    reversed)."""
    zz, yy, xx = np.indices(sitk.GetArrayViewFromImage(image).shape)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    xyz = np.stack([xx, yy, zz], -1).reshape(-1, 3) * np.array(image.GetSpacing())
    pts = xyz @ direction.T + np.array(image.GetOrigin())
    return (np.abs(pts - np.asarray(centre)).max(1) <= half_mm).reshape(zz.shape)


def test_mirrored_scan_swaps_and_mirrors_every_per_hip_result(demo, mirrored):
    (a, out_a), (b, out_b) = demo, mirrored
    hips_a, hips_b = _hips(a), _hips(b)
    image = io.read_image(demo_case.image_path())
    plane = float(io.index_to_physical(image, ((image.GetSize()[0] - 1) / 2.0, 0, 0))[0])
    for side, other in (("R", "L"), ("L", "R")):
        x, y = hips_a[side], hips_b[other]
        assert x["found"] == y["found"]
        np.testing.assert_allclose(io.mirror_point(x["center_lps"], plane), y["center_lps"], atol=0.02)
        assert x["radius_mm"] == pytest.approx(y["radius_mm"], abs=0.02)
        assert x["necrotic_ratio"] == pytest.approx(y["necrotic_ratio"], abs=1e-4)
        assert x["sranet"]["probability"] == pytest.approx(y["sranet"]["probability"], abs=1e-4)
        for system, stage in x["stage"].items():
            for name, p in stage["probabilities"].items():
                assert p == pytest.approx(y["stage"][system]["probabilities"][name], abs=1e-4)
        if x["risk"]:
            assert x["risk"]["score"] == pytest.approx(y["risk"]["score"], abs=1e-4)
    for key in MAPS:
        m_a = sitk.GetArrayFromImage(io.read_image(out_a / a["files"][key]))
        m_b = sitk.GetArrayFromImage(io.read_image(out_b / b["files"][key]))[:, :, ::-1]
        if key == "label_map":
            assert np.mean(m_a != m_b) < 1e-4
        else:
            np.testing.assert_allclose(m_a, m_b, atol=1e-3 * max(float(m_a.max()), 1e-6))


def test_report_is_self_contained_and_carries_the_banner(demo):
    analysis, out = demo
    page = (out / analysis["files"]["report"]).read_text(encoding="utf-8")
    assert "not for clinical use" in page
    assert page.count("data:image/png;base64,") >= 4
    assert "src=\"http" not in page and "<script" not in page


def test_user_grades_override_predicted_ones(analyzer, tmp_path, demo):
    analysis, _ = demo
    lesion = next(h["side"] for h in analysis["hips"] if h["risk"])
    given = {lesion: {"jic_stage": 1, "jic_type": "C2", "arco": 1, "steinberg": 1, "ficat": 1}}
    other = analyzer.analyze(demo_case.image_path(), tmp_path, grades=given)
    risk = _hips(other)[lesion]["risk"]
    assert risk["grades_source"] == "user" and risk["grades_used"]["jic_type"] == "C2"
    assert _hips(other)[lesion]["grades"] == {"used": given[lesion], "source": "user", "given": sorted(given[lesion]),
                                              "collapse": []}
    assert risk["score"] != _hips(analysis)[lesion]["risk"]["score"]  # the given grades reached the model


def test_a_hip_given_a_collapse_stage_gets_no_risk(analyzer, tmp_path, demo):
    """Issue 22: the risk model is for pre-collapse ONFH; ARCO III given for the lesion hip (the others still
    predicted) withholds the risk in analysis.json with the reason, and every text says collapse is present."""
    analysis, _ = demo
    lesion = next(h["side"] for h in analysis["hips"] if h["risk"])
    other = analyzer.analyze(demo_case.image_path(), tmp_path, grades={lesion: {"arco": 3}})
    validate(other)
    hip = _hips(other)[lesion]
    assert hip["risk"] is None and hip["grades"]["collapse"] == ["arco"] and hip["grades"]["source"] == "mixed"
    assert hip["risk_note"].startswith("collapse already present (ARCO III, given): no collapse risk is given")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "collapse already present — ARCO III (given)" in page and "collapse by 1 / 3 / 5 years" not in page


def test_corrupted_weights_stop_with_a_checksum_message(tmp_path, capsys):
    folder = tmp_path / "seg"
    shutil.copytree(modelstore.find_model("segmentation").folder, folder)
    with open(folder / modelstore.WEIGHTS, "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\x00tamper!")
    code = main(["analyze", str(demo_case.image_path()), "--out", str(tmp_path / "out"),
                 "--models", f"segmentation={folder}", "--progress", "none"])
    assert code == 2
    assert "checksum mismatch" in capsys.readouterr().err
    assert not (tmp_path / "out" / "analysis.json").exists()


def test_batch_goes_past_a_bad_scan_and_lists_it(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(demo_case.image_path(), inputs / "good.nii.gz")
    (inputs / "broken.nii.gz").write_bytes(b"not a volume")
    code = main(["analyze", str(inputs), "--out", str(tmp_path / "out"), "--progress", "none", "--device", "cpu"])
    assert code == 2
    assert "broken" in capsys.readouterr().err
    rows = (tmp_path / "out" / "cohort.csv").read_text(encoding="utf-8").strip().splitlines()
    assert len(rows) == 5 and [r.split(",")[:3] for r in rows[1:]] == [  # the failed scan's hips too
        ["broken", "R", "failed"], ["broken", "L", "failed"], ["good", "R", "lesion"], ["good", "L", "none"]]
    assert (tmp_path / "out" / "good" / "report.html").exists() and not (tmp_path / "out" / "broken").exists()
    right = next(csv.DictReader(io_text.StringIO("\n".join([rows[0], rows[3]]))))
    risk = next(h for h in json.loads((tmp_path / "out" / "good" / "analysis.json").read_text())["hips"]
                if h["side"] == "R")["risk"]
    assert float(right["training_percentile"]) == pytest.approx(risk["training_percentile"])
    assert [float(right[f"collapse_36m_{end}"]) for end in ("low", "high")] == pytest.approx(risk["collapse_interval"]["36"])


def test_shipped_models_stay_small_and_record_their_size():
    entries = [modelstore.find_model(task) for task in SHIPPED]
    sizes = [(e.folder / modelstore.WEIGHTS).stat().st_size for e in entries]
    assert sum(sizes) <= 60e6
    for entry, size in zip(entries, sizes):
        assert entry.card["parameters"] > 0 and entry.card["size_mb"] == pytest.approx(size / 1e6, abs=1e-3)
        assert entry.folder.parent == modelstore.SHIPPED_STORE and entry.card["label"] == modelstore.DEMO_LABEL


def test_stage_text_flags_a_stage_no_class_is_sure_of():
    assert stage_text({"label": "II", "probabilities": {"I": 0.19, "II": 0.81}}) == "II (p 0.81)"
    assert stage_text({"label": "IV", "probabilities": {"I": 0.29, "IV": 0.30}}) == "IV (p 0.30, uncertain)"



def test_a_stage_the_segmentation_decided_is_reported_in_words():
    from ONFHAssistLib.analysis.pipeline import _stage_overruled
    from ONFHAssistLib.analysis.results import HipResult, StageResult

    probs = {"0": 0.6, "I": 0.1, "II": 0.3}
    overruled = HipResult("R", True, volumes_ml={"head": 50.0, "necrosis": 4.2},
                          stage={"arco": StageResult("II", 2, probs, "staging")})
    assert "stage 0 the highest probability (0.60)" in _stage_overruled(overruled)
    assert "4.2 ml lesion" in _stage_overruled(overruled)
    no_lesion = HipResult("R", True, volumes_ml={"head": 50.0, "necrosis": 0.0},
                          stage={"arco": StageResult("0", 0, {"0": 0.1, "I": 0.2, "II": 0.7}, "staging")})
    assert "stage II the highest probability (0.70)" in _stage_overruled(no_lesion)
    assert "no lesion inside the femoral head" in _stage_overruled(no_lesion)
    assert _stage_overruled(HipResult("R", True, stage={"arco": StageResult("0", 0, probs, "staging")})) == ""


def test_a_run_that_fails_half_way_leaves_nothing_behind(analyzer, tmp_path, monkeypatch):
    def broken_report(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("ONFHAssistLib.analysis.pipeline.write_report", broken_report)
    with pytest.raises(RuntimeError):
        analyzer.analyze(demo_case.image_path(), tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "analysis.json").write_text("{}", encoding="utf-8")  # an earlier, complete run
    with pytest.raises(RuntimeError):
        analyzer.analyze(demo_case.image_path(), tmp_path / "old")
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["analysis.json"]
    assert (tmp_path / "old" / "analysis.json").read_text(encoding="utf-8") == "{}"


def test_a_run_killed_while_moving_its_files_leaves_no_finished_looking_folder(analyzer, tmp_path, monkeypatch):
    """Killed after the first new file moved in: the old analysis.json must not sit beside the new label map,
    and the hidden folder of an earlier killed run is swept away."""
    import os
    from types import SimpleNamespace

    from ONFHAssistLib.analysis import pipeline

    out = tmp_path / "old"
    (out / ".partial-killed-earlier").mkdir(parents=True)
    (out / "analysis.json").write_text("{}", encoding="utf-8")
    moved = []

    def dies_after_one(src, dst):
        if moved:
            raise KeyboardInterrupt  # the process stops here
        moved.append(Path(dst).name)
        os.replace(src, dst)

    monkeypatch.setattr(pipeline, "os", SimpleNamespace(replace=dies_after_one))
    with pytest.raises(KeyboardInterrupt):
        analyzer.analyze(demo_case.image_path(), out)
    assert moved == ["labels.nii.gz"] and (out / "labels.nii.gz").exists()
    assert not (out / "analysis.json").exists()
    assert sorted(p.name for p in out.iterdir()) == ["labels.nii.gz"]


def test_one_side_only_is_segmented_and_reported(tmp_path, demo):
    analysis, out = demo
    right = Analyzer("cpu", sides=("R",)).analyze(demo_case.image_path(), tmp_path)
    assert [h["side"] for h in right["hips"]] == ["R"]
    validate(right)
    assert _hips(right)["R"]["center_lps"] == _hips(analysis)["R"]["center_lps"]
    assert _hips(right)["R"]["risk"] == _hips(analysis)["R"]["risk"]
    both = sitk.ReadImage(str(out / analysis["files"]["label_map"]))
    one = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / right["files"]["label_map"])))
    idx = np.argwhere(np.ones(one.shape, bool))[:, ::-1]
    points = np.asarray(both.GetOrigin()) + idx @ (np.reshape(both.GetDirection(), (3, 3)) @ np.diag(both.GetSpacing())).T
    near_right = (np.linalg.norm(points - _hips(analysis)["R"]["center_lps"], axis=1)
                  < np.linalg.norm(points - _hips(analysis)["L"]["center_lps"], axis=1)).reshape(one.shape)
    expected = np.where(near_right, sitk.GetArrayFromImage(both), 0)
    assert (one > 0).sum() > 1000 and np.array_equal(one, expected)  # the right hip's labels, nothing on the left


def test_a_rerun_into_a_used_folder_leaves_no_file_of_the_earlier_analysis(tmp_path, demo):
    """Both hips first, then the right hip only into the same folder: the left hip's key images (and anything
    else the earlier analysis.json named) are gone, so the folder holds exactly what the new analysis names."""
    import shutil

    analysis, out = demo
    folder = tmp_path / "out"
    shutil.copytree(out, folder)
    assert (folder / analysis["files"]["key_images_L"]).exists()
    right = Analyzer("cpu", sides=("R",)).analyze(demo_case.image_path(), folder)
    assert "key_images_L" not in right["files"]
    assert sorted(p.name for p in folder.iterdir()) == sorted([*right["files"].values(), "analysis.json"])
