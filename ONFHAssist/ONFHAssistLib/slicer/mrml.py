"""Slicer scene bridge: an analysis folder in, MRML nodes out; a segmentation out as a dataset label map.

Works on the real Slicer (`slicer.mrmlScene`) and on the `slicer-core` wheel (a real MRML scene
without Qt), so the whole bridge is tested in plain pytest. This is the only module that converts
between the files' LPS millimetres and Slicer's RAS.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from vtk.util import numpy_support

from ..analysis.findings import collapse_text, key_findings, percent_text, probability_text
from ..analysis.results import mean_sd_text, unreliable_text
from .. import resources
from ..errors import InputError
from ..imaging import io

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
TERMS_FILE = resources.TERMS
LABELS = {1: ("Pelvis", (0.95, 0.80, 0.20)), 2: ("Femur", (0.20, 0.60, 1.00)), 3: ("Necrosis", (0.95, 0.15, 0.15))}
PROVENANCE_KEYS = ("name", "version", "sha256")
# Colour maps of the two heat maps (IDs of Slicer's default colour nodes): hot for attention, rainbow for Grad-CAM.
MAP_COLOURS = {"attention": "vtkMRMLPETProceduralColorNodePET-Heat", "gradcam": "vtkMRMLColorTableNodeRainbow"}


def new_scene() -> "slicer.vtkMRMLScene":
    """A scene prepared like Slicer's app does at start-up: segmentations and markups logics registered
    (their storage nodes are what lets a saved scene be read back) and the selection singleton they expect."""
    scene = slicer.vtkMRMLScene()
    selection = slicer.vtkMRMLSelectionNode()
    selection.SetSingletonTag("Singleton")
    scene.AddNode(selection)
    logics = [slicer.vtkSlicerSegmentationsModuleLogic(), slicer.vtkSlicerMarkupsLogic(), slicer.vtkMRMLColorLogic()]
    for logic in logics:
        logic.SetMRMLScene(scene)
    scene._onfh_segmentation_logic = logics[0]  # keep the logics alive as long as the scene
    scene._onfh_logics = logics
    return scene


def _application_logic(scene):
    """Slicer's own application logic for its scene; a private one for a slicer-core scene."""
    app = getattr(slicer, "app", None)
    if app is not None and scene is getattr(slicer, "mrmlScene", None):
        return app.applicationLogic()
    return _scene_logic(scene, "_onfh_app_logic", slicer.vtkMRMLApplicationLogic)


def _scene_logic(scene, attribute: str, factory):
    """A logic object set on `scene` once and kept alive on it (slicer-core has no app to own it)."""
    logic = getattr(scene, attribute, None)
    if logic is None:
        logic = factory()
        logic.SetMRMLScene(scene)
        setattr(scene, attribute, logic)
    return logic


def save_scene(scene, path: str | Path) -> Path:
    """Save the whole scene with its data: `X.mrb` (one zip, what File → Save writes) or a folder holding
    `<folder>.mrml` and `Data/`. A bundle is packed in a temporary folder and renamed into place, so a
    failed save never leaves half a scene."""
    import shutil
    import tempfile

    path = Path(path)
    if path.exists():
        raise InputError(f"{path} already exists; choose a new name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".onfh-scene-", dir=path.parent) as tmp:
        bundle = Path(tmp) / (path.stem if path.suffix == ".mrb" else path.name)
        bundle.mkdir()
        logic = _application_logic(scene)
        if not logic.SaveSceneToSlicerDataBundleDirectory(str(bundle)):
            raise RuntimeError(f"{path}: Slicer could not save the scene.")
        if path.suffix == ".mrb":
            packed = Path(tmp) / path.name
            if not logic.Zip(str(packed), str(bundle)):
                raise RuntimeError(f"{path}: Slicer could not pack the scene bundle.")
            bundle = packed
        shutil.move(str(bundle), str(path))
    return path


def save_analysis(scene, analysis_dir: str | Path, dest: str | Path) -> Path:
    """The panel's "Save analysis": a new folder holding a copy of the analysis folder (`analysis/`: report,
    maps, analysis.json) and the scene as it is now (`scene.mrb`: input, segmentation with any corrections,
    maps, ROIs, table, chart). Built in a hidden sibling folder and renamed into place, so a failure leaves
    nothing; an existing non-empty folder is never written into."""
    import shutil
    import tempfile

    analysis_dir, dest = Path(analysis_dir), Path(dest)
    if not (analysis_dir / "analysis.json").is_file():
        raise InputError(f"{analysis_dir}: no analysis.json here; run an analysis first.")
    if dest.exists() and any(dest.iterdir()):
        raise InputError(f"{dest}: the folder is not empty; choose a new or empty folder.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        shutil.copytree(analysis_dir, staging / "analysis")
        save_scene(scene, staging / "scene.mrb")
        if dest.exists():
            dest.rmdir()  # empty, checked above
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def open_scene(path: str | Path) -> "slicer.vtkMRMLScene":
    """A new scene read from a `.mrb` or a saved scene folder (the reverse of `save_scene`)."""
    import tempfile

    path = Path(path)
    scene = new_scene()
    logic = _application_logic(scene)
    if path.suffix == ".mrb":
        scene._onfh_unpacked = tempfile.TemporaryDirectory(prefix="onfh-mrb-")  # data files are read lazily
        ok = logic.OpenSlicerDataBundle(str(path), scene._onfh_unpacked.name)
    else:
        mrml_files = sorted(path.glob("*.mrml"))
        if not mrml_files:
            raise FileNotFoundError(f"{path}: no .mrml scene file in this folder.")
        scene.SetURL(str(mrml_files[0]))
        ok = scene.Connect()
    if not ok:
        raise RuntimeError(f"{path}: Slicer could not read the scene.")
    return scene


def _segmentation_logic(scene):
    return _scene_logic(scene, "_onfh_segmentation_logic", slicer.vtkSlicerSegmentationsModuleLogic)


def label_terms() -> dict[int, tuple[str, tuple[float, float, float]]]:
    """Segment names and colours by label value from ONFH.term.json, falling back to defaults."""
    terms = dict(LABELS)
    if not TERMS_FILE.exists():
        return terms
    for term in _walk(json.loads(TERMS_FILE.read_text(encoding="utf-8"))):
        if {"labelValue", "CodeMeaning", "recommendedDisplayRGBValue"} <= term.keys():
            rgb = tuple(float(c) / 255.0 for c in term["recommendedDisplayRGBValue"])
            terms[int(term["labelValue"])] = (term["CodeMeaning"], rgb)
    return terms


def _walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def ijk_to_ras(image: sitk.Image) -> vtk.vtkMatrix4x4:
    """The IJK→RAS matrix of an ITK (LPS) image."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    m = LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    origin = LPS_TO_RAS @ np.array(image.GetOrigin())
    mat = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            mat.SetElement(r, c, float(m[r, c]))
        mat.SetElement(r, 3, float(origin[r]))
    return mat


def add_volume(scene, image: sitk.Image, name: str, class_name: str = "vtkMRMLScalarVolumeNode"):
    """A volume node holding the image's voxels on its exact grid (LPS → RAS)."""
    array = sitk.GetArrayFromImage(image)
    vtk_image = vtk.vtkImageData()
    vtk_image.SetDimensions(*image.GetSize())
    flat = np.ascontiguousarray(array).reshape(-1)
    scalars = numpy_support.numpy_to_vtk(flat, deep=True)
    vtk_image.GetPointData().SetScalars(scalars)
    node = scene.AddNewNodeByClass(class_name, name)
    node.SetAndObserveImageData(vtk_image)
    node.SetIJKToRASMatrix(ijk_to_ras(image))
    node.CreateDefaultDisplayNodes()
    return node


def volume_to_sitk(node) -> sitk.Image:
    """A volume node back as an ITK image (RAS → LPS), voxels and geometry exact."""
    vtk_image = node.GetImageData()
    dims = vtk_image.GetDimensions()
    array = numpy_support.vtk_to_numpy(vtk_image.GetPointData().GetScalars()).reshape(dims[::-1])
    image = sitk.GetImageFromArray(array.copy())
    mat = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(mat)
    m = np.array([[mat.GetElement(r, c) for c in range(4)] for r in range(4)])
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (LPS_TO_RAS @ m[:3, :3] / spacing).ravel()])
    image.SetOrigin([float(v) for v in LPS_TO_RAS @ m[:3, 3]])
    return image


def set_provenance(node, models: list[dict]) -> None:
    """Record which models produced a node (name, version, sha256 of each)."""
    for model in models:
        prefix = f"ONFH.{model.get('task', 'model')}"
        for key in PROVENANCE_KEYS:
            node.SetAttribute(f"{prefix}.{key}", str(model.get(key, "")))


def add_segmentation(scene, label: sitk.Image, reference_node, name: str):
    """Segmentation node from a label map: named, coloured segments; geometry of the reference volume."""
    label_node = add_volume(scene, sitk.Cast(label, sitk.sitkUInt8), f"{name} labelmap", "vtkMRMLLabelMapVolumeNode")
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    seg_node.CreateDefaultDisplayNodes()
    seg_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
    if not _segmentation_logic(scene).ImportLabelmapToSegmentationNode(label_node, seg_node):
        raise RuntimeError("Slicer could not import the label map into a segmentation.")
    scene.RemoveNode(label_node)
    terms = label_terms()
    present = sorted(int(v) for v in np.unique(sitk.GetArrayViewFromImage(label)) if v > 0)
    segmentation = seg_node.GetSegmentation()
    for index, value in enumerate(present):
        segment = segmentation.GetNthSegment(index)
        segment_name, colour = terms.get(value, (f"Label {value}", (0.5, 0.5, 0.5)))
        segment.SetName(segment_name)
        segment.SetColor(*colour)
        segment.SetLabelValue(value)
    return seg_node


def add_closed_surface(seg_node) -> None:
    """Give a segmentation the closed-surface representation the 3D view draws (Slicer's own label map → surface
    rule: flying edges, decimation, smoothing). Slicer's Segmentations module makes it when a user clicks *Show
    3D*; an imported label map has only the label-map representation, so the 3D view stays empty without this.
    The rule is registered by the segmentations logic that `new_scene` (and trame-slicer's app) creates."""
    if not seg_node.CreateClosedSurfaceRepresentation():
        raise RuntimeError("Slicer could not make surfaces from the segmentation.")


def add_head_roi(scene, hip: dict, name: str):
    """A markups ROI around a femoral head (box of the per-hip crop), in RAS."""
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", name)
    roi.SetCenter(*[float(v) for v in LPS_TO_RAS @ np.array(hip["center_lps"])])
    size = hip.get("box", {}).get("size_mm") or 2.0 * float(hip["radius_mm"])
    roi.SetSize(*np.broadcast_to(np.asarray(size, float), (3,)).tolist())
    return roi


def add_results_table(scene, analysis: dict, name: str):
    """Table node with one row per hip: its key finding and confidence line first (the report's words), then
    the numbers a clinician reads, shares and probabilities as percentages."""
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    hips = sorted(analysis["hips"], key=lambda h: h["side"] != "R")  # key_findings' order
    rows = [_table_row(h, f) for h, f in zip(hips, key_findings(analysis))]
    columns = list(rows[0])  # the row's own keys, in order
    for col in columns:
        array = vtk.vtkStringArray()
        array.SetName(col)
        for row in rows:
            array.InsertNextValue(row.get(col, ""))
        table.AddColumn(array)
    return table


def _fmt(value, digits=3) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _percent(value, digits: int = 1) -> str:
    return "" if value is None else percent_text(value, digits)


def _table_row(hip: dict, finding: dict) -> dict:
    risk = hip.get("risk")
    collapse = {key: collapse_text(risk, key) if risk else "" for key in ("12", "36", "60")}
    sranet = (hip.get("sranet") or {}).get("probability")
    return {"side": hip["side"], "finding": finding["sentence"], "confidence": finding["confidence"],
            "found": "yes" if hip["found"] else "no",
            "radius_mm": _fmt(hip.get("radius_mm"), 1), "necrotic_ratio": _percent(hip.get("necrotic_ratio")),
            "necrotic_angle_deg": _fmt(hip.get("necrotic_angle_deg"), 0),
            "sranet_probability": "" if sranet is None else probability_text(sranet),
            "collapse_12m": collapse["12"], "collapse_36m": collapse["36"], "collapse_60m": collapse["60"],
            "reliability": _reliability(hip),
            "note": hip.get("reason") or ""}


def _reliability(hip: dict) -> str:
    """The out-of-distribution verdict in the words the report uses, so the panel says what the report says."""
    ood = hip.get("ood")
    if not hip["found"]:
        return ""
    if ood is None:
        return "not checked"
    if not ood["reliable"]:
        return unreliable_text(hip)
    return f"like the training data (score {ood['score']:.1f}, limit {ood['threshold']:.1f})"


def add_survival_chart(scene, analysis: dict, name: str):
    """Plot chart node with one series per analysed hip: S(t) against months."""
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.SetTitle("Femoral-head survival (no collapse)")
    chart.SetXAxisTitle("months")
    chart.SetYAxisTitle("probability")
    for hip in analysis["hips"]:
        curve = ((hip.get("risk") or {}).get("survival")) or None
        if not curve:
            continue
        table = _double_table(scene, f"{name} {hip['side']} data",
                              {"months": curve["months"], "survival": curve["probability"]})
        _add_series(scene, chart, table, f"{hip['side']} hip", "months", "survival", "Scatter")
    return chart


def _double_table(scene, name: str, columns: dict[str, list[float]]):
    """A table node of double columns (what plot series read)."""
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    for col, values in columns.items():
        array = vtk.vtkDoubleArray()
        array.SetName(col)
        for v in values:
            array.InsertNextValue(float(v))
        table.AddColumn(array)
    return table


def _add_series(scene, chart, table, name: str, x: str, y: str, plot_type: str = "Line"):
    series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", name)
    series.SetAndObserveTableNodeID(table.GetID())
    series.SetXColumnName(x)
    series.SetYColumnName(y)
    series.SetPlotType(getattr(series, f"PlotType{plot_type}"))
    chart.AddAndObservePlotSeriesNodeID(series.GetID())
    return series


METRICS_TABLE = "ONFH.metricsTable"


def update_metric_plot(scene, events: list[dict], chart=None):
    """Append a run's streamed metric events (one per epoch: `epoch`, `train_loss`, validation metrics) to
    a table node and keep a plot chart with one series per metric against the running epoch count
    (`step`: epochs of every fold and stage in order, since `epoch` restarts). Metrics that appear later
    (validation every k epochs) get a column filled with NaN before their first value. Returns the chart,
    to pass back in with the next batch of events."""
    if chart is None:
        chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", "ONFH training metrics")
        chart.SetTitle("Training loss and validation metrics")
        chart.SetXAxisTitle("epoch (all folds and stages in order)")
        table = _double_table(scene, "ONFH training metrics data", {"step": [], "epoch": []})
        chart.SetAttribute(METRICS_TABLE, table.GetID())
    table_node = scene.GetNodeByID(chart.GetAttribute(METRICS_TABLE))
    table = table_node.GetTable()
    for event in events:
        if event.get("event") != "metric" or "epoch" not in event:
            continue
        values = {k: float(v) for k, v in event.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch"}
        values.update(step=table.GetNumberOfRows() + 1, epoch=float(event["epoch"]) + 1)
        for name in values:
            if table.GetColumnByName(name) is None:
                array = vtk.vtkDoubleArray()
                array.SetName(name)
                for _ in range(table.GetNumberOfRows()):
                    array.InsertNextValue(float("nan"))
                table.AddColumn(array)
                if name not in ("step", "epoch"):
                    _add_series(scene, chart, table_node, name, "step", name)
        for c in range(table.GetNumberOfColumns()):
            column = table.GetColumn(c)
            column.InsertNextValue(values.get(column.GetName(), float("nan")))
        table.SetNumberOfRows(table.GetColumn(0).GetNumberOfTuples())
    table_node.Modified()
    return chart


def _steps(months: list[float], survival: list[float]) -> tuple[list[float], list[float]]:
    """A Kaplan–Meier curve as the corner points of its step function (drawn with straight lines)."""
    xs, ys = [months[0]], [survival[0]]
    for t, s in zip(months[1:], survival[1:]):
        xs += [t, t]
        ys += [ys[-1], s]
    return xs, ys


def load_cv_results(scene, cv_dir: str | Path) -> dict:
    """An `onfh cv survival` output folder into the scene: a table node with mean ± sd per metric and model
    (from table.json, as in table.md) and, when km.json is there, a plot chart of each model's
    out-of-fold Kaplan–Meier curves of its low- and high-risk groups."""
    cv_dir = Path(cv_dir)
    path = cv_dir / "table.json"
    if not path.is_file():
        raise InputError(f"{cv_dir}: no table.json here; is this a finished cross-validation folder?")
    summary = json.loads(path.read_text(encoding="utf-8"))
    metrics = list(dict.fromkeys(m for row in summary.values() for m in row))
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", f"ONFH CV results ({cv_dir.name})")
    for col in ["model", *metrics]:
        array = vtk.vtkStringArray()
        array.SetName(col)
        for model, row in summary.items():
            cell = row.get(col)
            array.InsertNextValue(model if col == "model" else
                                  mean_sd_text(cell["mean"], cell["sd"]) if cell else "")
        table.AddColumn(array)
    nodes = {"table": table}
    km_path = cv_dir / "km.json"
    if km_path.is_file():
        chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", f"ONFH CV Kaplan-Meier ({cv_dir.name})")
        chart.SetTitle("Out-of-fold Kaplan-Meier curves by risk group")
        chart.SetXAxisTitle("months")
        chart.SetYAxisTitle("free of collapse")
        for model, groups in json.loads(km_path.read_text(encoding="utf-8")).items():
            for group, curve in groups.items():
                xs, ys = _steps(curve["months"], curve["survival"])
                data = _double_table(scene, f"{model} {group} risk KM", {"months": xs, "survival": ys})
                _add_series(scene, chart, data, f"{model}: {group} risk (n={curve['n']})", "months", "survival")
        nodes["chart"] = chart
    return nodes


def load_analysis(scene, out_dir: str | Path, input_node=None) -> dict:
    """Load an `onfh analyze` output folder into the scene; returns the created nodes by role."""
    out_dir = Path(out_dir)
    analysis = json.loads((out_dir / "analysis.json").read_text(encoding="utf-8"))
    files = analysis.get("files", {})
    if input_node is None:
        if (analysis.get("patient") or {}).get("anonymised"):
            raise InputError(f"{out_dir}: an anonymised analysis does not record where its scan is; load the scan "
                             "first and pass it as the input volume.")
        input_node = add_volume(scene, io.read_image(analysis["input"]["path"]), "ONFH input")
    base = input_node.GetName()
    nodes: dict = {"input": input_node, "rois": [], "maps": []}
    if files.get("label_map"):
        nodes["segmentation"] = add_segmentation(scene, io.read_image(out_dir / files["label_map"]), input_node,
                                                 f"{base} ONFH segmentation")
    for kind, title in (("attention", "SRANet attention"), ("gradcam", "Grad-CAM")):
        if not files.get(kind):
            continue
        image = io.read_image(out_dir / files[kind])
        node = add_volume(scene, image, f"{base} {title}")
        display = node.GetDisplayNode()
        if display is not None:
            if scene.GetNodeByID(MAP_COLOURS[kind]) is not None:
                display.SetAndObserveColorNodeID(MAP_COLOURS[kind])
            display.AutoWindowLevelOff()
            display.SetWindowLevelMinMax(0.0, max(float(sitk.GetArrayViewFromImage(image).max()), 1e-6))
        nodes["maps"].append(node)
    for hip in analysis["hips"]:
        if hip["found"]:
            nodes["rois"].append(add_head_roi(scene, hip, f"{base} femoral head {hip['side']}"))
    nodes["table"] = add_results_table(scene, analysis, f"{base} ONFH results")
    nodes["chart"] = add_survival_chart(scene, analysis, f"{base} ONFH survival")
    for node in [nodes.get("segmentation"), nodes["table"], nodes["chart"], *nodes["maps"], *nodes["rois"]]:
        if node is not None:
            set_provenance(node, analysis.get("models", []))
    _follow_transform(input_node, [nodes.get("segmentation"), *nodes["maps"], *nodes["rois"]])
    _place_under_study(scene, input_node, nodes)
    return nodes


def _follow_transform(input_node, nodes) -> None:
    """The analysis ran on the input's own voxels (its local frame): results that lie in space go under the
    same parent transform, so they stay on the anatomy wherever the user has moved the volume."""
    transform_id = input_node.GetTransformNodeID()
    if transform_id:
        for node in nodes:
            if node is not None:
                node.SetAndObserveTransformNodeID(transform_id)


def set_layer_visibility(scene, node, visible: bool, opacity: float | None = None) -> None:
    """Show or hide one result layer in the slice views, optionally with an opacity (0–1).

    A segmentation draws itself through its display node. A heat map (attention, Grad-CAM) is shown as
    the foreground of every slice view over the input; only one map can be the foreground, so showing
    one replaces the other, and hiding a map clears it only where it is the one shown."""
    if opacity is not None and not 0.0 <= opacity <= 1.0:
        raise InputError(f"opacity {opacity} must lie between 0 and 1.")
    if node.IsA("vtkMRMLSegmentationNode"):
        display = node.GetDisplayNode()
        display.SetVisibility(bool(visible))
        if opacity is not None:
            display.SetOpacity(float(opacity))
        return
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        composite = scene.GetNthNodeByClass(index, "vtkMRMLSliceCompositeNode")
        if visible:
            composite.SetForegroundVolumeID(node.GetID())
        elif composite.GetForegroundVolumeID() == node.GetID():
            composite.SetForegroundVolumeID(None)
        if opacity is not None and composite.GetForegroundVolumeID() == node.GetID():
            composite.SetForegroundOpacity(float(opacity))


def _place_under_study(scene, input_node, nodes: dict) -> None:
    """Put the results next to the input in the subject hierarchy (under the input's study)."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if sh is None:
        return
    input_item = sh.GetItemByDataNode(input_node) or sh.CreateItem(sh.GetSceneItemID(), input_node)
    parent = sh.GetItemParent(input_item)
    for node in [nodes.get("segmentation"), nodes["table"], nodes["chart"], *nodes["maps"], *nodes["rois"]]:
        if node is None:
            continue
        item = sh.GetItemByDataNode(node)
        if item:
            sh.SetItemParent(item, parent)
        else:  # outside the app no subject hierarchy plugin makes items for new nodes: make one in place
            sh.CreateItem(parent, node)


def segmentation_to_label(scene, seg_node, reference_node) -> sitk.Image:
    """A (possibly corrected) segmentation as a label map on the reference volume's grid, values from the terms."""
    label_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "onfh-export")
    try:
        ids = vtk.vtkStringArray()
        seg_node.GetSegmentation().GetSegmentIDs(ids)
        logic = _segmentation_logic(scene)
        if not logic.ExportSegmentsToLabelmapNode(seg_node, ids, label_node, reference_node):
            raise RuntimeError("Slicer could not export the segmentation to a label map.")
        exported = volume_to_sitk(label_node)
        # Exported values are 1..n in segment order; map them back to each segment's label value.
        out = np.zeros(sitk.GetArrayViewFromImage(exported).shape, np.uint8)
        arr = sitk.GetArrayViewFromImage(exported)
        segmentation = seg_node.GetSegmentation()
        values = _label_values([segmentation.GetSegment(ids.GetValue(i)) for i in range(ids.GetNumberOfValues())])
        for index, value in enumerate(values):
            out[arr == index + 1] = value
        image = sitk.GetImageFromArray(out)
        image.CopyInformation(exported)
        return image
    finally:
        scene.RemoveNode(label_node)


def add_to_dataset(scene, seg_node, volume_node, analysis_dir: str | Path, dataset_dir: str | Path,
                   patient_id: str, entries: dict[str, str]) -> str:
    """The panel's "Add to training dataset": the volume, the current (possibly corrected) segmentation as the
    final label map, the analysis's own label map as the original (`labels/original`), and one row per found
    hip (head centre from the analysis, outcome and grades as typed) into a dataset folder, through
    `dataset.add_case` (files first, hips.csv last, each atomically). Returns the scan id."""
    import tempfile

    from .. import dataset

    analysis = json.loads((Path(analysis_dir) / "analysis.json").read_text(encoding="utf-8"))
    rows = dataset.rows_from_analysis(analysis, entries)
    with tempfile.TemporaryDirectory(prefix="onfh-add-") as tmp:
        image_path, label_path = Path(tmp) / "image.nrrd", Path(tmp) / "label.nrrd"
        io.write_image(volume_to_sitk(volume_node), image_path)
        io.write_image(segmentation_to_label(scene, seg_node, volume_node), label_path)
        original = analysis.get("files", {}).get("label_map")
        return dataset.add_case(dataset_dir, image_path, label_path, patient_id, rows,
                                original_label_path=Path(analysis_dir) / original if original else None)


def _label_values(segments) -> list[int]:
    """Each segment's label value by its name in the ONFH terms; a segment with another name (one the user
    added) is refused by name rather than written into a dataset under a value it does not mean."""
    terms = {name.lower(): value for value, (name, _) in label_terms().items()}
    unknown = [s.GetName() for s in segments if s.GetName().lower() not in terms]
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        raise InputError(f"segment(s) {names} are not ONFH labels ({', '.join(n for n, _ in label_terms().values())}): "
                         "rename them to one of these or delete them before adding the case.")
    return [terms[s.GetName().lower()] for s in segments]
