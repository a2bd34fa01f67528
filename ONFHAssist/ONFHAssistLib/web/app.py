"""The web page: trame-slicer's scene and four views (axial, coronal, sagittal, 3D) beside a panel that picks a
scan, runs `onfh analyze` as a child, follows its progress, and shows the results through the Slicer
module's own bridge (`mrml.load_analysis`, `mrml.set_layer_visibility`) with a card per hip.

The server holds one scene and one run; every visitor's page shows the same state, so a second visitor sees
the running job instead of starting another into the same scene.
"""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

# VTK renders offscreen through Mesa's EGL: no X server, and no X attempt before it (set before VTK loads).
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

from trame.app import TrameApp  # noqa: E402
from trame.ui.vuetify3 import SinglePageWithDrawerLayout  # noqa: E402
from trame.widgets import html  # noqa: E402
from trame.widgets import vuetify3 as v  # noqa: E402
from trame_server.utils.asynchronous import create_task  # noqa: E402
from trame_slicer.core import LayoutManager, SlicerApp  # noqa: E402
from trame_slicer.app.ui import create_vertical_slice_view_gutter_ui, create_vertical_view_gutter_ui  # noqa: E402
from trame_slicer.rca_view import register_rca_factories  # noqa: E402

from ..slicer import demo_case, mrml  # noqa: E402
from . import access, runner  # noqa: E402
from .cards import hip_cards  # noqa: E402

RESULTS_ROUTE = "onfh-results"  # the analyses folder served over HTTP (report links)
ROI_COLOUR = (0.2, 0.85, 0.9)  # cyan: never mistaken for the necrosis red on a slice
BANNER = "Phantom-trained demo models — not for clinical use."
VR_PRESETS = {"mr_t1": "MR-Default", "ct": "CT-Bone"}
# Screen edges (left, right, top, bottom) of each slice view in radiological convention (patient right on
# screen left), the way SlicerApp sets up its orientation presets.
EDGE_LABELS = {"Axial": "RLAP", "Coronal": "RLSI", "Sagittal": "APSI"}
EDGE_STYLE = "position: absolute; color: #ffd54f; font: bold 14px sans-serif; pointer-events: none;"
EDGE_PLACES = ("left: 6px; top: 50%;", "right: 6px; top: 50%;", "top: 4px; left: 50%;", "bottom: 28px; left: 50%;")
HEAT_MAPS = {"none": None, "attention": "SRANet attention", "gradcam": "Grad-CAM"}
# 3D opacity per segment (times the segmentation's opacity): the bones translucent, so the necrosis inside the
# femoral head shows through them.
SURFACE_OPACITY = {"Pelvis": 0.25, "Femur": 0.4, "Necrosis": 1.0}


class OnfhWebApp(TrameApp):
    def __init__(self, results_root: Path, server=None):
        super().__init__(server=server)
        self.results_root = Path(results_root)
        self.server.serve[RESULTS_ROUTE] = str(self.results_root)
        self.slicer_app = SlicerApp()
        register_rca_factories(self.slicer_app.view_manager, self.server, slice_view_ui_f=_slice_view_ui,
                               three_d_view_ui_f=_threed_view_ui)
        self.layout_manager = LayoutManager(self.slicer_app.scene, self.slicer_app.view_manager, self.server)
        self.layout_manager.register_layout_dict(LayoutManager.default_grid_configuration())
        self.layout_manager.set_layout("Quad View")
        self.run: runner.Run | None = None
        self.nodes: dict = {}
        self.added_ids: set[str] = set()
        self.analysis: dict = {}
        self._init_state()
        self._build_ui()
        self.ctrl.on_client_connected.add(lambda *_, **__: create_task(self._render_soon()))

    def render_all(self, slices_only: bool = False) -> None:
        """Ask the views for a new frame: a view sends one only after a render, so a page that connects or a
        scene changed outside an interaction would otherwise keep showing an old (or no) image. What changes only
        the slice views leaves the 3D view alone (a CPU volume rendering takes seconds)."""
        manager = self.slicer_app.view_manager
        for view in manager.get_slice_views() if slices_only else manager.get_views():
            view.schedule_render()

    async def _render_soon(self) -> None:
        await asyncio.sleep(1.0)  # the page's views register with the server just after it connects
        self.render_all()

    @property
    def scene(self):
        return self.slicer_app.scene

    def _init_state(self) -> None:
        s = self.state
        s.update({"source": "demo", "server_path": "", "upload_name": "", "modality": "auto", "sides": "both",
                  "running": False, "fraction": 0.0, "stage_line": "", "log_text": "", "error": "", "cards": [],
                  "out_dir": "", "report_url": "", "show_seg": True, "seg_opacity": 0.5, "heatmap": "none",
                  "heat_opacity": 0.5, "show_rois": True, "show_vr": False, "has_results": False})
        s.change("show_seg", "seg_opacity")(self._on_segmentation_display)
        s.change("heatmap", "heat_opacity")(self._on_heatmap_display)
        s.change("show_rois")(self._on_roi_display)
        s.change("show_vr")(self._on_volume_rendering)

    # ---- the analysis ------------------------------------------------------------------------------------
    def analyse(self) -> None:
        """Start an analysis unless one is running (then the page already shows it)."""
        if self.run is not None and self.run.running:
            return
        try:
            image = self._chosen_image()
        except (ValueError, OSError) as error:
            self.state.error = str(error)
            return
        self.run = runner.start(image, self.results_root, modality=self.state.modality, sides=self.state.sides)
        self.state.update({"running": True, "fraction": 0.0, "stage_line": "starting", "log_text": "", "error": "",
                           "out_dir": str(self.run.out), "report_url": ""})
        create_task(self._follow(self.run))

    def _chosen_image(self) -> Path:
        source = self.state.source
        if source == "demo":
            return demo_case.image_path()
        name = self.state.server_path if source == "path" else self.state.upload_name
        path = Path(name or "").expanduser()
        if not name or not path.is_file():
            raise ValueError(f"{name or 'no file'}: choose a scan file that exists on the server." if source == "path"
                             else "Upload a scan first.")
        return path

    async def _follow(self, run: runner.Run) -> None:
        while True:
            done = run.update()
            with self.state:
                self.state.update({"fraction": round(100 * run.fraction, 1), "stage_line": run.stage,
                                   "log_text": "\n".join(run.log[-40:]), "error": run.error})
            if done:
                break
            await asyncio.sleep(0.3)
        with self.state:
            try:
                if run.succeeded:
                    self.state.stage_line = "loading results into the views"
                    self.state.flush()
                    self._show_results(run.out)
                elif run.cancelled:
                    self.state.stage_line = "cancelled"
            except Exception as error:  # noqa: BLE001 - the page shows it; the server stays up for the next visitor
                self.state.error = f"the results could not be shown: {error}"
            finally:
                self.state.running = False

    async def cancel(self) -> None:
        if self.run is not None and self.run.running:
            await asyncio.to_thread(self.run.cancel)

    async def upload(self, files: list[dict]) -> None:
        """Save an uploaded scan under the results folder; the page then analyses it by name."""
        if not files:
            return
        try:
            path = runner.save_upload(self.results_root / "uploads", files[0].get("name", ""), files[0]["content"])
        except ValueError as error:
            self.state.error = str(error)
            return
        self.state.update({"upload_name": str(path), "source": "upload", "error": ""})

    # ---- results in the scene -----------------------------------------------------------------------------
    def _node_ids(self) -> set[str]:
        return {self.scene.GetNthNode(i).GetID() for i in range(self.scene.GetNumberOfNodes())}

    def _clear_results(self) -> None:
        for node_id in self.added_ids:
            node = self.scene.GetNodeByID(node_id)
            if node is not None:
                self.scene.RemoveNode(node)
        self.added_ids, self.nodes = set(), {}

    def _show_results(self, out: Path) -> None:
        self._clear_results()
        before = self._node_ids()
        self.analysis = json.loads((out / "analysis.json").read_text(encoding="utf-8"))
        self.nodes = mrml.load_analysis(self.scene, out)
        display = self.slicer_app.display_manager
        # The input in the slice views (and volume-rendered in 3D on request: the body's outer fat hides the rest),
        # the segmentation as surfaces in 3D, the head boxes outlining where each hip was read.
        segmentation = self.nodes.get("segmentation")
        if segmentation is not None:
            mrml.add_closed_surface(segmentation)
            surfaces = segmentation.GetDisplayNode()
            for index in range(segmentation.GetSegmentation().GetNumberOfSegments()):
                segment = segmentation.GetSegmentation().GetNthSegment(index)
                surfaces.SetSegmentOpacity3D(segmentation.GetSegmentation().GetNthSegmentID(index),
                                             SURFACE_OPACITY.get(segment.GetName(), 1.0))
        display.show_volume(self.nodes["input"], vr_preset=VR_PRESETS.get(self.analysis["input"]["modality"], ""))
        self.added_ids = self._node_ids() - before  # results and volume-rendering nodes: the next load removes them
        for view in self.slicer_app.view_manager.get_threed_views():
            # Depth peeling through Mesa's EGL drops translucent surfaces (and hides the volume behind them);
            # plain alpha blending draws both.
            view.renderer().SetUseDepthPeeling(False)
        for roi in self.nodes["rois"]:
            roi_display = roi.GetDisplayNode()
            roi_display.SetSelectedColor(*ROI_COLOUR)
            roi_display.SetColor(*ROI_COLOUR)
            roi_display.SetFillVisibility(False)
            roi_display.SetPropertiesLabelVisibility(False)
            roi_display.SetHandlesInteractive(False)
        display.reset_views()
        self._on_segmentation_display()
        self._on_heatmap_display()
        self._on_roi_display()
        self._on_volume_rendering()
        report = f"/{RESULTS_ROUTE}/{out.relative_to(self.results_root).as_posix()}/{self.analysis['files']['report']}"
        self.state.update({"cards": hip_cards(self.analysis), "has_results": True,
                           "report_url": report, "stage_line": "done", "fraction": 100.0})
        self.render_all()

    def focus(self, side: str) -> None:
        """Centre every slice view on a femoral head and fit it and the 3D view to the hip's analysis box; a
        volume rendering shows only what lies inside that box (the body's outer fat would hide the hip)."""
        hip = next((h for h in self.analysis.get("hips", []) if h["side"] == side and h["found"]), None)
        roi = next((r for r in self.nodes.get("rois", []) if r.GetName().endswith(f" {side}")), None)
        if hip is None or roi is None:
            return
        centre = [0.0, 0.0, 0.0]
        roi.GetCenter(centre)
        size = float((hip.get("box") or {}).get("size_mm") or 4.0 * hip["radius_mm"])
        for view in self.slicer_app.view_manager.get_slice_views():
            node = view.get_view_node()
            node.JumpSliceByCentering(*centre)
            width, height = node.GetDimensions()[:2]
            scale = size / max(min(width, height), 1)
            node.SetFieldOfView(width * scale, height * scale, node.GetFieldOfView()[2])
        volume_display = self.slicer_app.volume_rendering.get_vr_display_node(self.nodes["input"])
        if volume_display is not None:
            volume_display.SetAndObserveROINodeID(roi.GetID())
            volume_display.SetCroppingEnabled(True)
        bounds = [0.0] * 6
        roi.GetRASBounds(bounds)
        for view in self.slicer_app.view_manager.get_threed_views():
            view.renderer().ResetCamera(bounds)
        self.render_all()

    def _on_segmentation_display(self, **_) -> None:
        segmentation = self.nodes.get("segmentation")
        if segmentation is not None:
            shown, opacity = bool(self.state.show_seg), float(self.state.seg_opacity)
            mrml.set_layer_visibility(self.scene, segmentation, shown, opacity)
            self.render_all()

    def _on_heatmap_display(self, **_) -> None:
        chosen = HEAT_MAPS.get(self.state.heatmap)
        for node in self.nodes.get("maps", []):
            shown = chosen is not None and node.GetName().endswith(chosen)
            mrml.set_layer_visibility(self.scene, node, shown, float(self.state.heat_opacity) if shown else None)
        self.render_all(slices_only=True)

    def _on_volume_rendering(self, **_) -> None:
        if "input" not in self.nodes:
            return
        volume_display = self.slicer_app.volume_rendering.get_vr_display_node(self.nodes["input"])
        if volume_display is not None:
            volume_display.SetVisibility(bool(self.state.show_vr))
            self.render_all()

    def _on_roi_display(self, **_) -> None:
        for roi in self.nodes.get("rois", []):
            roi.GetDisplayNode().SetVisibility(bool(self.state.show_rois))
        self.render_all()

    # ---- the page -------------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        with SinglePageWithDrawerLayout(self.server, theme="dark") as layout:
            layout.title.set_text("ONFH Assist Web")
            layout.drawer.width = 380
            with layout.toolbar:
                v.VSpacer()
                v.VChip(BANNER, color="warning", variant="flat", classes="mr-4", raw_attrs=_testid("banner"))
            with layout.drawer:
                self._build_panel()
            with layout.content:
                self.layout_manager.initialize_layout_grid(layout)
        self.ui = layout

    def _build_panel(self) -> None:
        with html.Div(classes="pa-3 d-flex flex-column", style="gap: 8px;"):
            v.VSelect(label="Scan", v_model=("source",), density="compact", hide_details=True,
                      raw_attrs=_testid("source"), items=("[{title: 'Bundled demo hip (MR)', value: 'demo'},"
                             " {title: 'Upload a file', value: 'upload'},"
                             " {title: 'Path on the server', value: 'path'}]",))
            v.VTextField(v_if="source === 'path'", label="Scan path on the server", v_model=("server_path",),
                         density="compact", hide_details=True)
            v.VFileInput(v_if="source === 'upload'", label="Scan file (NIfTI, NRRD, MHA)", density="compact",
                         hide_details=True,
                         change=(f"trigger('{self.ctrl.trigger_name(self.upload)}', [$event.target.files])"))
            html.Div("Scan to analyse: {{ upload_name }}", v_if="source === 'upload' && upload_name",
                     classes="text-caption", raw_attrs=_testid("upload-name"))
            with html.Div(classes="d-flex", style="gap: 8px;"):
                v.VSelect(label="Modality", v_model=("modality",), items=("['auto', 'mr_t1', 'ct']",),
                          density="compact", hide_details=True)
                v.VSelect(label="Hips", v_model=("sides",), items=("['both', 'right', 'left']",), density="compact",
                          hide_details=True)
            with html.Div(classes="d-flex", style="gap: 8px;"):
                v.VBtn("Analyse", click=self.analyse, disabled=("running",), color="primary",
                       raw_attrs=_testid("analyse"))
                v.VBtn("Cancel", click=self.cancel, disabled=("!running",), color="error", raw_attrs=_testid("cancel"))
            v.VProgressLinear(model_value=("fraction",), height=8, color="primary", v_show="running || fraction > 0")
            html.Div("{{ stage_line }}", classes="text-caption", raw_attrs=_testid("stage-line"))
            v.VAlert("{{ error }}", v_if="error", type="error", density="compact", raw_attrs=_testid("error"))
            html.Pre("{{ log_text }}", v_if="log_text", raw_attrs=_testid("log"),
                     style="max-height: 90px; overflow: auto; font-size: 11px; white-space: pre-wrap;")
            with html.Div(v_if="has_results"):
                self._build_overlay_controls()
                self._build_cards()
                html.A("Open the HTML report", href=("report_url",), target="_blank", raw_attrs=_testid("report"))
                html.Div("{{ out_dir }}", classes="text-caption", raw_attrs=_testid("out-dir"))

    def _build_overlay_controls(self) -> None:
        with html.Div(classes="d-flex align-center", style="gap: 8px;"):
            v.VSwitch(label="Segmentation", v_model=("show_seg",), density="compact", hide_details=True,
                      color="primary",
                      raw_attrs=_testid("toggle-seg"))
            v.VSlider(v_model=("seg_opacity",), min=0, max=1, step=0.05, density="compact", hide_details=True)
        with html.Div(classes="d-flex align-center", style="gap: 8px;"):
            v.VSelect(label="Heat map", v_model=("heatmap",), density="compact", hide_details=True,
                      raw_attrs=_testid("heatmap"),
                      items=("[{title: 'none', value: 'none'}, {title: 'SRANet attention', value: 'attention'},"
                             " {title: 'Grad-CAM', value: 'gradcam'}]",))
            v.VSlider(v_model=("heat_opacity",), min=0, max=1, step=0.05, density="compact", hide_details=True)
        with html.Div(classes="d-flex align-center", style="gap: 8px;"):
            v.VSwitch(label="Head boxes", v_model=("show_rois",), density="compact", hide_details=True,
                      color="primary")
            v.VSwitch(label="Volume rendering", v_model=("show_vr",), density="compact", hide_details=True,
                      color="primary", raw_attrs=_testid("toggle-vr"))

    def _build_cards(self) -> None:
        with v.VCard(v_for="card in cards", key="card.side", classes="my-2", variant="tonal",
                     raw_attrs=_testid("`card-${card.side}`", bound=True)):
            v.VCardTitle("{{ card.title }}")
            with v.VCardText():
                html.Div("{{ card.finding }}", v_if="card.finding", classes="font-weight-bold",
                         raw_attrs=_testid("finding"))
                html.Div("{{ card.confidence }}", v_if="card.confidence", classes="text-caption mb-2")
                html.Div("Not found: {{ card.reason }}", v_if="!card.found", raw_attrs=_testid("not-found"))
                with html.Div(v_if="card.found"):
                    with html.Div(v_for="stage in card.stages", key="stage.key"):
                        html.Span("{{ stage.system }} stage ", classes="font-weight-bold")
                        html.Span("{{ stage.text }}", raw_attrs=_testid("`stage-${stage.key}`", bound=True))
                        html.Div("{{ stage.probabilities }}", classes="text-caption")
                    html.Div("SRANet necrosis probability {{ card.sranet }}", v_if="card.sranet")
                    html.Div("Collapse risk: {{ card.risk }}", raw_attrs=_testid("risk"))
                    html.Div("Collapse by {{ c.horizon }}: {{ c.text }}", v_for="c in card.collapse", key="c.horizon")
                    html.Div("Survival without collapse, 0–120 months", v_if="card.survival", classes="text-caption")
                    html.Div(v_if="card.survival", v_html=("`<svg width='240' height='80' style='background:#222'>"
                                                           "<polyline fill='none' stroke='#4fc3f7' stroke-width='2' "
                                                           "points='${card.survival}'/></svg>`",))
                    html.Div("{{ card.note }}", v_if="card.note", classes="text-warning")
                    v.VBtn("Centre views on this hip", size="small", classes="mt-2",
                           click=(self.focus, "[card.side]"), raw_attrs=_testid("`focus-${card.side}`", bound=True))


def _testid(name: str, bound: bool = False) -> list[str]:
    """The `data-testid` the browser test finds an element by; `bound`: a Vue expression (per card)."""
    return [f':data-testid="{name}"' if bound else f'data-testid="{name}"']


def _view_marker(view_id: str, view) -> None:
    """Which view this is, for a test or a person reading the page (`data-view` = Slicer's view name)."""
    html.Span(classes="onfh-view", raw_attrs=[f'data-view="{view.get_singleton_tag()}"', f'data-trame-id="{view_id}"'])


def _slice_view_ui(server, view_id: str, view) -> None:
    create_vertical_slice_view_gutter_ui(server, view_id, view)
    _view_marker(view_id, view)
    for letter, place in zip(EDGE_LABELS.get(view.get_orientation(), ""), EDGE_PLACES):
        html.Span(letter, classes="onfh-edge", style=EDGE_STYLE + place)


def _threed_view_ui(server, view_id: str, view) -> None:
    create_vertical_view_gutter_ui(server, view_id, view)
    _view_marker(view_id, view)


def serve(host: str = "127.0.0.1", port: int = 0, results_root: Path | None = None, token: str | None = None) -> None:
    """Serve the page until interrupted, printing its URL (with the access token, `access.choose_token`: asked
    for, or made up when served beyond this machine); `port` 0 picks a free one."""
    import shutil
    import sys
    import tempfile
    from urllib.parse import quote

    owned = results_root is None
    root = Path(results_root or tempfile.mkdtemp(prefix="onfh-web-"))
    root.mkdir(parents=True, exist_ok=True)
    sys.argv = sys.argv[:1]  # trame parses the command line itself; ours has been read already
    app = OnfhWebApp(root)
    token = access.choose_token(host, token)
    if token is not None:  # wslink's aiohttp app exists once bound, before it starts (middlewares still open)
        app.server.controller.on_server_bind.add(lambda web_server: web_server.app.middlewares.append(
            access.middleware(token)))
    query = "" if token is None else f"?{access.QUERY}={quote(token)}"

    def announce(**_):
        print(f"ONFH Assist Web: http://{host}:{app.server.port}/{query}  (results in {root})", flush=True)

    app.server.controller.on_server_ready.add(announce)
    try:
        app.server.start(host=host, port=port, open_browser=False, show_connection_info=False, timeout=0)
    finally:
        if app.run is not None:
            app.run.cancel()
        if owned:
            shutil.rmtree(root, ignore_errors=True)
