"""Slicer scene bridge on a real MRML scene (slicer-core wheel): geometry, segments, results, provenance."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")

from ONFHAssistLib import dataset
from ONFHAssistLib.slicer import demo_case, mrml
from ONFHAssistLib.imaging import io  # noqa: E402
from ONFHAssistLib.errors import InputError  # noqa: E402
from ONFHAssistLib.analysis.pipeline import Analyzer  # noqa: E402


def _oblique_image(values: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((0.7, 1.3, 2.1))
    image.SetOrigin((-12.5, 30.25, -4.0))
    angle = np.deg2rad(17.0)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    image.SetDirection(rot.ravel().tolist())
    return image


def test_volume_round_trip_is_exact_and_maps_lps_to_ras():
    rng = np.random.default_rng(3)
    image = _oblique_image(rng.normal(size=(5, 6, 7)).astype(np.float32))
    scene = mrml.new_scene()
    node = mrml.add_volume(scene, image, "oblique")
    back = mrml.volume_to_sitk(node)
    assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image))
    assert np.allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-9)
    assert np.allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-9)
    assert np.allclose(back.GetDirection(), image.GetDirection(), atol=1e-9)
    # The voxel (i, j, k) lands at the same physical point: ITK's LPS point with x and y negated.
    ras = np.array(node.GetOrigin())
    lps = np.array(image.TransformIndexToPhysicalPoint((0, 0, 0)))
    assert np.allclose(ras, lps * [-1, -1, 1], atol=1e-9)


def test_segment_names_and_values_follow_the_term_file():
    terms = mrml.label_terms()
    assert {v: name.lower() for v, (name, _) in terms.items()} == {
        int(k): v for k, v in dataset.LABEL_NAMES.items() if k != "0"}


def test_demo_label_map_round_trips_through_a_segmentation():
    scene = mrml.new_scene()
    image = io.read_image(demo_case.image_path())
    label = io.read_image(demo_case.label_path())
    volume = mrml.add_volume(scene, image, "demo")
    seg = mrml.add_segmentation(scene, label, volume, "demo segmentation")
    names = [seg.GetSegmentation().GetNthSegment(i).GetName() for i in range(seg.GetSegmentation().GetNumberOfSegments())]
    assert names == ["Pelvis", "Femur", "Necrosis"]
    back = mrml.segmentation_to_label(scene, seg, volume)
    assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(label))
    assert np.allclose(back.GetOrigin(), label.GetOrigin(), atol=1e-6)


def _analysis_folder(tmp_path, image):
    label = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    label.CopyInformation(image)
    label[2:5, 2:5, 2:4] = 2
    label[3, 3, 2] = 3
    io.write_image(label, tmp_path / "labels.nii.gz")
    attention = sitk.Cast(image, sitk.sitkFloat32) * 0 + 0.5
    io.write_image(attention, tmp_path / "attention.nii.gz")
    hips = [{"side": "R", "found": True, "center_lps": [-40.0, 10.0, 5.0], "radius_mm": 24.0,
             "box": {"size_mm": 96.0}, "necrotic_ratio": 0.21, "necrotic_angle_deg": 180.5,
             "sranet": {"probability": 0.8}, "ood": {"score": 35.18, "threshold": 15.37, "reliable": False},
             "risk": {"score": 1.25, "group": "high", "collapse_probability": {"12": 0.1, "36": 0.3, "60": 0.5},
                      "survival": {"months": [0, 12, 36, 60], "probability": [1.0, 0.9, 0.7, 0.5]}}},
            {"side": "L", "found": False, "reason": "prosthesis: metal in the joint"}]
    analysis = {"input": {"path": str(tmp_path / "input.nii.gz")}, "hips": hips,
                "files": {"label_map": "labels.nii.gz", "attention": "attention.nii.gz"},
                "models": [{"task": "segmentation", "name": "seg-demo", "version": "1.0.0", "sha256": "ab" * 32}]}
    (tmp_path / "analysis.json").write_text(json.dumps(analysis))
    return analysis


def test_load_analysis_builds_every_node_with_provenance(tmp_path):
    image = _oblique_image(np.zeros((6, 7, 8), np.int16))
    analysis = _analysis_folder(tmp_path, image)
    scene = mrml.new_scene()
    volume = mrml.add_volume(scene, image, "patient")
    nodes = mrml.load_analysis(scene, tmp_path, volume)

    segments = nodes["segmentation"].GetSegmentation()
    assert [segments.GetNthSegment(i).GetName() for i in range(segments.GetNumberOfSegments())] == ["Femur", "Necrosis"]
    assert len(nodes["maps"]) == 1 and nodes["maps"][0].GetName() == "patient SRANet attention"
    (roi,) = nodes["rois"]  # the missing left hip gets no ROI
    assert np.allclose(roi.GetCenter(), [40.0, -10.0, 5.0])
    assert np.allclose(roi.GetSize(), [96.0] * 3)

    table = nodes["table"].GetTable()
    assert table.GetNumberOfRows() == 2
    column = {table.GetColumnName(c): c for c in range(table.GetNumberOfColumns())}
    assert list(column)[:3] == ["side", "finding", "confidence"]  # the key finding first, in the report's words
    assert table.GetValue(1, column["finding"]).ToString() == "Left hip: not found: prosthesis: metal in the joint"
    assert table.GetValue(0, column["necrotic_ratio"]).ToString() == "21.0 %"
    assert table.GetValue(0, column["collapse_36m"]).ToString() == "30 %"
    assert table.GetValue(1, column["found"]).ToString() == "no"
    assert table.GetValue(1, column["note"]).ToString() == analysis["hips"][1]["reason"]
    assert table.GetValue(0, column["reliability"]).ToString() == (
        "not reliable: scan unlike the training data (score 35.2 above 15.4)")
    assert table.GetValue(1, column["reliability"]).ToString() == ""  # a hip not found has nothing to judge

    assert nodes["chart"].GetNumberOfPlotSeriesNodes() == 1
    for node in (nodes["segmentation"], nodes["table"], roi):
        assert node.GetAttribute("ONFH.segmentation.sha256") == "ab" * 32
        assert node.GetAttribute("ONFH.segmentation.version") == "1.0.0"


@pytest.fixture(scope="module")
def demo_analysis(tmp_path_factory):
    """The shipped models' analysis of the demo scan (computed once for the tests that load it)."""
    out = tmp_path_factory.mktemp("demo-analysis")
    Analyzer("cpu").analyze(demo_case.image_path(), out)
    return out


def test_analyze_output_of_the_demo_loads_into_the_scene(demo_analysis, tmp_path):
    out = demo_analysis
    scene = mrml.new_scene()
    volume = mrml.add_volume(scene, io.read_image(demo_case.image_path()), "ONFH input")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    study = sh.CreateStudyItem(sh.CreateSubjectItem(sh.GetSceneItemID(), "P007"), "hip MRI")
    sh.CreateItem(study, volume)  # as a DICOM import places a series under its study
    nodes = mrml.load_analysis(scene, out, volume)
    segments = nodes["segmentation"].GetSegmentation()
    assert [segments.GetNthSegment(i).GetName() for i in range(segments.GetNumberOfSegments())] == [
        "Pelvis", "Femur", "Necrosis"]
    assert len(nodes["rois"]) == 2 and nodes["table"].GetTable().GetNumberOfRows() == 2
    assert [m.GetName() for m in nodes["maps"]] == ["ONFH input SRANet attention", "ONFH input Grad-CAM"]
    assert nodes["chart"].GetNumberOfPlotSeriesNodes() == 1  # only the hip with ONFH has a risk curve
    source = io.read_image(demo_case.image_path())
    for node in (nodes["input"], *nodes["maps"]):  # every volume on the scan's own grid
        image = mrml.volume_to_sitk(node)
        assert image.GetSize() == source.GetSize()
        assert np.allclose(image.GetOrigin(), source.GetOrigin(), atol=1e-6)
        assert np.allclose(image.GetDirection(), source.GetDirection(), atol=1e-9)
        assert np.allclose(image.GetSpacing(), source.GetSpacing(), atol=1e-9)
    for node in (nodes["segmentation"], nodes["table"], nodes["chart"], *nodes["maps"], *nodes["rois"]):
        assert sh.GetItemParent(sh.GetItemByDataNode(node)) == study, node.GetName()  # under the input's study

    # The annotator's "Add to training dataset": volume + current segmentation + typed outcome per hip.
    data = tmp_path / "dataset"
    scan = mrml.add_to_dataset(scene, nodes["segmentation"], nodes["input"], out, data, "P007",
                               {"R": "time_months=30, event=1, arco=2", "L": "time_months=30,event=0"})
    assert dataset.validate(data).ok
    hips = dataset.read_hips(data).set_index("side")
    assert hips.loc["R", "event"] == "1" and hips.loc["R", "arco"] == "2" and hips.loc["L", "event"] == "0"
    for side in ("R", "L"):
        centre = [float(hips.loc[side, c]) for c in ("head_x", "head_y", "head_z")]
        expected = next(row for row in demo_case.truth() if row["side"] == side)
        assert np.linalg.norm(np.array(centre) - [expected[c] for c in ("head_x", "head_y", "head_z")]) < 2.0
    written = io.read_image(dataset.find_volume(data / "labels", scan))
    assert np.array_equal(sitk.GetArrayViewFromImage(written),
                          sitk.GetArrayViewFromImage(io.read_image(out / "labels.nii.gz")))
    truth = {row["side"]: row for row in demo_case.truth()}
    for roi, side in zip(nodes["rois"], ("R", "L")):
        centre_lps = np.array(roi.GetCenter()) * [-1, -1, 1]
        expected = [truth[side][c] for c in ("head_x", "head_y", "head_z")]
        assert np.linalg.norm(centre_lps - expected) < 2.0
    assert nodes["segmentation"].GetAttribute("ONFH.segmentation.name") == "onfh-segmentation"


def _table_values(node) -> list[list[str]]:
    table = node.GetTable()
    return [[table.GetValue(r, c).ToString() for c in range(table.GetNumberOfColumns())]
            for r in range(table.GetNumberOfRows())]


CLASSES = ("vtkMRMLScalarVolumeNode", "vtkMRMLSegmentationNode", "vtkMRMLMarkupsROINode", "vtkMRMLTableNode",
           "vtkMRMLPlotChartNode", "vtkMRMLPlotSeriesNode")


def _names(scene, cls) -> list[str]:
    return sorted(scene.GetNthNodeByClass(i, cls).GetName() for i in range(scene.GetNumberOfNodesByClass(cls)))


@pytest.mark.parametrize("kind", ["mrb", "folder"])
def test_demo_scene_saves_and_reloads_with_every_node_and_voxel(demo_analysis, tmp_path, kind):
    scene = mrml.new_scene()
    nodes = mrml.load_analysis(scene, demo_analysis)
    mrml.set_layer_visibility(scene, nodes["segmentation"], True, 0.4)
    path = mrml.save_scene(scene, tmp_path / ("case.mrb" if kind == "mrb" else "case"))
    with pytest.raises(InputError, match="already exists"):
        mrml.save_scene(scene, path)  # a second save never overwrites the first
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary folder left beside it

    again = mrml.open_scene(path)
    for cls in CLASSES:
        assert _names(again, cls) == _names(scene, cls), cls
    seg = again.GetFirstNodeByName(nodes["segmentation"].GetName())
    volume = again.GetFirstNodeByName(nodes["input"].GetName())
    # A reloaded volume may come back with its axes in another sense (the demo's z axis runs inferior; Slicer's
    # reader returns it running superior): the same voxels in space, so everything is compared in LPS order.
    label_file = sitk.DICOMOrient(io.read_image(demo_analysis / "labels.nii.gz"), "LPS")
    exported = sitk.DICOMOrient(mrml.segmentation_to_label(again, seg, volume), "LPS")
    assert np.allclose(exported.GetOrigin(), label_file.GetOrigin(), atol=1e-3)
    assert np.allclose(exported.GetDirection(), label_file.GetDirection())
    assert np.array_equal(sitk.GetArrayFromImage(exported), sitk.GetArrayFromImage(label_file))
    segments = seg.GetSegmentation()
    terms = mrml.label_terms()
    for i in range(segments.GetNumberOfSegments()):
        segment = segments.GetNthSegment(i)
        assert np.allclose(segment.GetColor(), terms[segment.GetLabelValue()][1], atol=1e-6)
    assert seg.GetDisplayNode().GetOpacity() == pytest.approx(0.4)
    for before in [nodes["input"], *nodes["maps"]]:
        after, before = (sitk.DICOMOrient(mrml.volume_to_sitk(n), "LPS")
                         for n in (again.GetFirstNodeByName(before.GetName()), before))
        assert np.array_equal(sitk.GetArrayFromImage(after), sitk.GetArrayFromImage(before))
        assert np.allclose(after.GetOrigin(), before.GetOrigin(), atol=1e-3)
        assert np.allclose(after.GetDirection(), before.GetDirection())
    for before in nodes["rois"]:
        after = again.GetFirstNodeByName(before.GetName())
        assert np.allclose(after.GetCenter(), before.GetCenter()) and np.allclose(after.GetSize(), before.GetSize())
    table = again.GetFirstNodeByName(nodes["table"].GetName())
    assert _table_values(table) == _table_values(nodes["table"])
    assert table.GetAttribute("ONFH.segmentation.sha256") == nodes["table"].GetAttribute("ONFH.segmentation.sha256")
    assert seg.GetAttribute("ONFH.segmentation.name") == "onfh-segmentation"


def test_maps_get_their_colour_maps_and_layers_show_hide_and_fade(tmp_path):
    image = _oblique_image(np.zeros((6, 7, 8), np.int16))
    _analysis_folder(tmp_path, image)
    scene = mrml.new_scene()
    views = [scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(3)]
    nodes = mrml.load_analysis(scene, tmp_path, mrml.add_volume(scene, image, "patient"))
    (attention,) = nodes["maps"]
    assert attention.GetDisplayNode().GetColorNodeID() == mrml.MAP_COLOURS["attention"]
    other = mrml.add_volume(scene, image, "other map")

    mrml.set_layer_visibility(scene, attention, True, 0.6)
    assert [v.GetForegroundVolumeID() for v in views] == [attention.GetID()] * 3
    assert [v.GetForegroundOpacity() for v in views] == pytest.approx([0.6] * 3)
    mrml.set_layer_visibility(scene, other, True)  # only one foreground: the other map replaces it
    mrml.set_layer_visibility(scene, attention, False)  # hiding a map that is not shown changes nothing
    assert [v.GetForegroundVolumeID() for v in views] == [other.GetID()] * 3
    mrml.set_layer_visibility(scene, other, False)
    assert [v.GetForegroundVolumeID() for v in views] == [None] * 3

    seg = nodes["segmentation"]
    mrml.set_layer_visibility(scene, seg, False, 0.25)
    assert not seg.GetDisplayNode().GetVisibility() and seg.GetDisplayNode().GetOpacity() == pytest.approx(0.25)
    mrml.set_layer_visibility(scene, seg, True)
    assert seg.GetDisplayNode().GetVisibility() and seg.GetDisplayNode().GetOpacity() == pytest.approx(0.25)
    with pytest.raises(InputError, match="between 0 and 1"):
        mrml.set_layer_visibility(scene, seg, True, 1.5)


def test_a_corrected_segmentation_is_the_final_label_and_the_models_own_is_kept_as_original(demo_analysis, tmp_path):
    """Like MONAI Label's datastore: labels/<scan> is the annotator's final label map (what training reads),
    labels/original/<scan> the model's output as it came."""
    from ONFHAssistLib.training.scans import list_scans

    scene = mrml.new_scene()
    nodes = mrml.load_analysis(scene, demo_analysis)
    segmentation = nodes["segmentation"].GetSegmentation()
    segmentation.RemoveSegment(segmentation.GetSegmentIdBySegmentName("Necrosis"))  # the annotator's correction
    data = tmp_path / "dataset"
    scan = mrml.add_to_dataset(scene, nodes["segmentation"], nodes["input"], demo_analysis, data, "P008",
                               {"R": "time_months=12,event=1", "L": "time_months=12,event=0"})
    assert dataset.validate(data).ok

    model_output = sitk.GetArrayFromImage(io.read_image(demo_analysis / "labels.nii.gz"))
    assert (model_output == 3).sum() > 0  # the demo's lesion is segmented, so the correction changes voxels
    corrected = np.where(model_output == 3, 0, model_output)
    final = sitk.GetArrayFromImage(io.read_image(data / "labels" / f"{scan}.nii.gz"))
    original = sitk.GetArrayFromImage(io.read_image(data / dataset.ORIGINAL_LABELS / f"{scan}.nii.gz"))
    assert np.array_equal(final, corrected) and np.array_equal(original, model_output)
    (listed,) = list_scans(data)
    assert listed.label_path == data / "labels" / f"{scan}.nii.gz"  # training reads the final label


def test_add_case_refuses_an_original_label_on_another_grid(tmp_path):
    image = _oblique_image(np.zeros((6, 7, 8), np.int16))
    image.SetSpacing((12.0, 12.0, 12.0))  # large enough to hold a hip: the grid is what must be refused
    io.write_image(image, tmp_path / "image.nrrd")
    label = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    label.CopyInformation(image)
    io.write_image(label, tmp_path / "label.nrrd")
    shifted = sitk.Image(label)
    shifted.SetOrigin([v + 1.0 for v in label.GetOrigin()])
    io.write_image(shifted, tmp_path / "original.nrrd")
    with pytest.raises(InputError, match="original.nrrd: the label map's grid"):
        dataset.add_case(tmp_path / "data", tmp_path / "image.nrrd", tmp_path / "label.nrrd", "P1",
                         [{"side": "R"}], original_label_path=tmp_path / "original.nrrd")
    assert not (tmp_path / "data").exists()  # nothing written


def test_save_analysis_copies_the_folder_and_the_scene_with_the_correction(demo_analysis, tmp_path):
    scene = mrml.new_scene()
    nodes = mrml.load_analysis(scene, demo_analysis)
    segmentation = nodes["segmentation"].GetSegmentation()
    segmentation.RemoveSegment(segmentation.GetSegmentIdBySegmentName("Necrosis"))
    dest = mrml.save_analysis(scene, demo_analysis, tmp_path / "saved" / "case 1")
    assert sorted(p.name for p in dest.iterdir()) == ["analysis", "scene.mrb"]
    assert [p.name for p in (tmp_path / "saved").iterdir()] == ["case 1"]  # no partial folder left
    for source in demo_analysis.iterdir():
        if source.is_file():
            assert (dest / "analysis" / source.name).read_bytes() == source.read_bytes(), source.name
    again = mrml.open_scene(dest / "scene.mrb")
    seg = again.GetFirstNodeByName(nodes["segmentation"].GetName())
    names = [seg.GetSegmentation().GetNthSegment(i).GetName() for i in range(seg.GetSegmentation().GetNumberOfSegments())]
    assert names == ["Pelvis", "Femur"]  # the scene as corrected, not as analysed

    with pytest.raises(InputError, match="not empty"):
        mrml.save_analysis(scene, demo_analysis, dest)
    with pytest.raises(InputError, match="no analysis.json"):
        mrml.save_analysis(scene, tmp_path, tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()


def _column(table_node, name) -> np.ndarray:
    table = table_node.GetTable()
    column = table.GetColumnByName(name)
    return np.array([column.GetValue(i) for i in range(column.GetNumberOfTuples())], float)


def test_metric_plot_grows_with_each_batch_of_streamed_events():
    from ONFHAssistLib.progress import parse_line

    lines = ['{"event":"metric","stage":"train seg","epoch":0,"train_loss":0.9}',
             '{"event":"progress","stage":"train seg","fraction":0.5}',
             '{"event":"metric","stage":"train seg","epoch":1,"train_loss":0.7,"val_dice":0.41}']
    scene = mrml.new_scene()
    chart = mrml.update_metric_plot(scene, [parse_line(line) for line in lines])
    chart = mrml.update_metric_plot(scene, [
        {"event": "metric", "stage": "cv", "epoch": 0, "train_loss": 0.8, "val_dice": 0.5, "lr": 1e-3},
        {"event": "metric", "stage": "cv survival", "fold": 0, "model": "CoxPH", "harrell_c": 0.7},  # a CV row
        {"event": "log", "stage": "cv", "message": "fold 1"}], chart)
    table = scene.GetNodeByID(chart.GetAttribute(mrml.METRICS_TABLE))
    assert np.array_equal(_column(table, "step"), [1, 2, 3])
    assert np.array_equal(_column(table, "epoch"), [1, 2, 1])  # restarts with the next fold
    assert np.array_equal(_column(table, "train_loss"), [0.9, 0.7, 0.8])
    assert np.array_equal(_column(table, "val_dice"), [np.nan, 0.41, 0.5], equal_nan=True)
    assert np.array_equal(_column(table, "lr"), [np.nan, np.nan, 1e-3], equal_nan=True)
    series = [chart.GetNthPlotSeriesNode(i) for i in range(chart.GetNumberOfPlotSeriesNodes())]
    assert [(s.GetName(), s.GetXColumnName(), s.GetYColumnName()) for s in series] == [
        ("train_loss", "step", "train_loss"), ("val_dice", "step", "val_dice"), ("lr", "step", "lr")]
    assert scene.GetNumberOfNodesByClass("vtkMRMLPlotChartNode") == 1


def test_cv_results_give_mean_sd_per_model_and_step_shaped_km_curves(tmp_path):
    import pandas as pd

    from ONFHAssistLib.training.survival_recipe import training_km, write_table

    rng = np.random.default_rng(5)
    per_fold = pd.DataFrame([{"fold": f, "model": m, "harrell_c": rng.uniform(0.5, 0.9), "ibs": rng.uniform(0.1, 0.3)}
                             for f in range(4) for m in ("CoxPH (grades)", "tri-stream + SLE")])
    write_table(per_fold, tmp_path, 40, 18, 30)
    time, event = rng.uniform(1, 120, 40).round(), rng.integers(0, 2, 40)
    high = rng.random(40) > 0.5
    km = {"CoxPH (grades)": training_km(time, event, high)}
    (tmp_path / "km.json").write_text(json.dumps(km))

    scene = mrml.new_scene()
    nodes = mrml.load_cv_results(scene, tmp_path)
    table = nodes["table"].GetTable()
    columns = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    assert columns == ["model", "harrell_c", "ibs"]
    for r in range(table.GetNumberOfRows()):
        model = table.GetValue(r, 0).ToString()
        for c, metric in enumerate(columns[1:], start=1):
            values = per_fold.loc[per_fold.model == model, metric].to_numpy()
            expected = f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"
            assert table.GetValue(r, c).ToString() == expected
    chart = nodes["chart"]
    assert chart.GetNumberOfPlotSeriesNodes() == 2
    low = chart.GetNthPlotSeriesNode(0)
    assert low.GetName() == f"CoxPH (grades): low risk (n={int((~high).sum())})"
    data = low.GetTableNode()
    xs, ys = _column(data, "months"), _column(data, "survival")
    curve = km["CoxPH (grades)"]["low"]
    assert np.all(np.diff(xs) >= 0) and np.all(np.diff(ys) <= 1e-12)  # a non-increasing step function
    for t, s in zip(curve["months"], curve["survival"]):  # every KM point is a corner of the drawn steps
        assert np.any((xs == t) & np.isclose(ys, s))
    with pytest.raises(InputError, match="no table.json"):
        mrml.load_cv_results(scene, tmp_path / "nothing")


def test_cv_results_with_undefined_metrics_are_strict_json_and_read_n_a(tmp_path):
    """A Cox fit that never converged has no C-index, and one fold has no sd: table.json holds null (strict
    JSON), and table.md and the Slicer table say 'n/a' or give the mean alone."""
    import pandas as pd

    from ONFHAssistLib.training.survival_recipe import write_table

    per_fold = pd.DataFrame([{"fold": 0, "model": "never converged", "harrell_c": np.nan},
                             {"fold": 1, "model": "never converged", "harrell_c": np.nan},
                             {"fold": 0, "model": "one fold", "harrell_c": 0.7123}])
    write_table(per_fold, tmp_path, 10, 4, 10)

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    table = json.loads((tmp_path / "table.json").read_text(encoding="utf-8"), parse_constant=refuse)
    assert table == {"never converged": {"harrell_c": {"mean": None, "sd": None}},
                     "one fold": {"harrell_c": {"mean": 0.7123, "sd": None}}}
    markdown = (tmp_path / "table.md").read_text(encoding="utf-8")
    assert "| never converged | n/a |" in markdown and "| one fold | 0.712 |" in markdown
    node = mrml.load_cv_results(mrml.new_scene(), tmp_path)["table"].GetTable()
    assert [node.GetValue(r, 1).ToString() for r in range(2)] == ["n/a", "0.712"]


def test_a_segment_the_user_added_is_refused_by_name(demo_analysis, tmp_path):
    scene = mrml.new_scene()
    nodes = mrml.load_analysis(scene, demo_analysis)
    nodes["segmentation"].GetSegmentation().AddEmptySegment("cement", "Bone cement")
    data = tmp_path / "dataset"
    with pytest.raises(InputError, match="'Bone cement' are not ONFH labels"):
        mrml.add_to_dataset(scene, nodes["segmentation"], nodes["input"], demo_analysis, data, "P009",
                            {"R": "time_months=12,event=1", "L": "time_months=12,event=0"})
    assert not data.exists()  # nothing written


def test_results_follow_the_inputs_parent_transform(demo_analysis):
    scene = mrml.new_scene()
    volume = mrml.add_volume(scene, io.read_image(demo_case.image_path()), "moved input")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "patient shift")
    volume.SetAndObserveTransformNodeID(transform.GetID())
    nodes = mrml.load_analysis(scene, demo_analysis, volume)
    placed = [nodes["segmentation"], *nodes["maps"], *nodes["rois"]]
    assert len(placed) == 1 + 2 + 2
    assert all(node.GetTransformNodeID() == transform.GetID() for node in placed)
    assert nodes["input"].GetTransformNodeID() == transform.GetID()  # the input itself is left where the user put it


def test_an_anonymised_analysis_needs_its_scan_loaded_first(tmp_path):
    """--anonymise records only 'anonymised.nii.gz' as the input: loading must ask for the scan, not open a file
    of that name in the current folder."""
    (tmp_path / "anonymised.nii.gz").write_bytes(b"")  # a decoy the old code would have tried to read
    (tmp_path / "analysis.json").write_text(json.dumps({"input": {"path": "anonymised.nii.gz"},
                                                         "patient": {"anonymised": True}, "files": {}, "hips": []}))
    with pytest.raises(InputError, match="anonymised analysis does not record where its scan is"):
        mrml.load_analysis(mrml.new_scene(), tmp_path)
