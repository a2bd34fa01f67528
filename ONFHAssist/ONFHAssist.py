"""ONFH Assist: the clinical module. Thin Slicer shell; the science lives in ONFHAssistLib."""
import importlib
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

WHEELHOUSE_SETTING = "ONFHAssist/WheelhouseFolder"
DATASET_SETTING = "ONFH/DatasetFolder"  # shared by both ONFH panels; empty means "not chosen"
LAYERS = ("segmentation", "attention", "gradcam")

CITATIONS = """
<p>Methods from:</p>
<ol>
<li>Tri-stream survival network with a Spatial Label Encoder for femoral-head collapse prediction (C-index 0.847).</li>
<li>SRANet: patch attention with a structure regulariser for ONFH on CT.</li>
<li>A radiomics and deep-learning nomogram for femoral-head collapse.</li>
<li>3D-ONFHNet: femoral-head detection, multi-pool DenseNet staging and 3D Grad-CAM.</li>
</ol>
"""


class ONFHAssist(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "ONFH Assist"
        self.parent.categories = ["ONFH"]
        self.parent.dependencies = []
        self.parent.contributors = ["ONFH Assist developers"]
        self.parent.helpText = (
            "Segments pelvis, femur and necrotic lesion on a hip MRI or CT, finds both femoral heads, stages "
            "each hip, shows where SRANet looks and predicts the risk of femoral-head collapse. The bundled "
            "models are trained on phantoms and are not for clinical use. " + self.getDefaultModuleDocumentationLink())
        self.parent.acknowledgementText = CITATIONS
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Sample Data → ONFH demo hip: the bundled phantom scan, so a demo is one click away."""
    import SampleData
    from ONFHAssistLib.slicer import demo_case
    icon = str(Path(__file__).parent / "Resources" / "Icons" / "ONFHAssist.png")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(thumbnailFileName=icon, **demo_case.sample_data_source())


@parameterNodeWrapper
class ONFHAssistParameterNode:
    """The panel's settings, saved with the scene; widgets bind by their SlicerParameterName property."""

    inputVolume: vtkMRMLScalarVolumeNode
    modality: Annotated[str, Choice(["auto", "mr_t1", "ct"])] = "auto"
    sides: Annotated[str, Choice(["both", "right", "left"])] = "both"
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"
    rightGrades: str = ""
    leftGrades: str = ""
    segmentationVisible: bool = True
    segmentationOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    attentionVisible: bool = False
    attentionOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    gradcamVisible: bool = False
    gradcamOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    patientId: str = ""
    rightOutcome: str = ""
    leftOutcome: str = ""


def reloadLib():
    """Reload every loaded ONFHAssistLib module (submodules first) so Reload picks up edited core code."""
    names = sorted((n for n in sys.modules if n == "ONFHAssistLib" or n.startswith("ONFHAssistLib.")),
                   key=lambda n: -n.count("."))
    for name in names:
        importlib.reload(sys.modules[name])


def bindDatasetFolder(pathEdit) -> None:
    """The dataset folder field remembers the last folder chosen in either ONFH panel (application settings,
    not the scene), and starts empty until one is chosen."""
    pathEdit.currentPath = qt.QSettings().value(DATASET_SETTING, "")
    pathEdit.currentPathChanged.connect(lambda path: qt.QSettings().setValue(DATASET_SETTING, path))


class _Install:
    running = False  # a second click while pip runs must not start a nested install


def ensureDependencies(report=lambda line: None) -> bool:
    """torch through the PyTorch extension, the rest from requirements.txt after one confirmation listing every
    package; Slicer's own packages are never replaced (constraints file). Shared by both ONFH panels; call it
    inside `slicer.util.tryWithErrorDisplay` so that a failed install is shown. pip's output lines go to
    `report` (the panel's log) while the GUI stays live. False while an install is already running."""
    from ONFHAssistLib.slicer import dependencies as deps
    if _Install.running:
        return False
    _Install.running = True
    try:
        return _installDependencies(deps, report)
    finally:
        _Install.running = False


def _installDependencies(deps, report) -> bool:
    if importlib.util.find_spec("torch") is None:
        try:
            import PyTorchUtils
        except ImportError:
            slicer.util.errorDisplay("ONFH Assist needs the PyTorch extension: install it from the Extensions Manager.")
            return False
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True) is None:
            return False
    plan = deps.plan(deps.read_requirements())
    if not plan.install:
        if plan.protected_unmet:
            slicer.util.warningDisplay(deps.confirmation_text(plan))
        return True
    if not slicer.util.confirmOkCancelDisplay(deps.confirmation_text(plan), "ONFH Assist: Python packages"):
        return False
    wheelhouse = deps.check_wheelhouse(qt.QSettings().value(WHEELHOUSE_SETTING, ""))
    ensure = _pipEnsure()
    if ensure is not None and wheelhouse is None:
        ensure(plan.install, skip_packages=list(deps.PROTECTED), requester="ONFHAssist")
    else:
        with tempfile.TemporaryDirectory(prefix="onfh-pip-") as tmp:
            constraints = Path(tmp) / "constraints.txt"
            constraints.write_text(deps.constraints_text(), encoding="utf-8")
            _pipInChild(deps.pip_args(plan.install, constraints, wheelhouse), report)
    importlib.invalidate_caches()
    return not deps.plan(deps.read_requirements()).install


def _pipInChild(args: list[str], report) -> None:
    """`pip install ARGS` in a child process, as `slicer.util.pip_install` runs it, but with each output line
    sent to `report` and Slicer's event loop kept running: the panel shows progress instead of freezing."""
    from ONFHAssistLib import jobs
    job = jobs.Job([pythonSlicer(), "-m", "pip", "install", *args]).start()
    while job.poll() is None:
        for event in job.drain():
            report(event.get("message", ""))
        slicer.app.processEvents()
        time.sleep(0.1)
    if job.wait() != 0:
        raise RuntimeError(f"pip could not install the packages: {job.error_message or 'see the log'}")


def pythonSlicer() -> str:
    """The interpreter for child processes: PythonSlicer when installed (same packages as Slicer)."""
    return shutil.which("PythonSlicer") or sys.executable


class ParameterNodeGuiMixin:
    """The Slicer 5 parameter-node pattern both ONFH panels share: bind the widgets on enter, unbind on
    exit, observe the node, rebind after a scene close. The widget provides `ui`,
    `initializeParameterNode` and `onParametersChanged`."""

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParametersChanged)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def setParameterNode(self, parameterNode):
        if parameterNode is not None and self._parameterNode is not None and \
                parameterNode.parameterNode is self._parameterNode.parameterNode:
            return  # already bound: binding again would stack a second set of GUI connections
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParametersChanged)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParametersChanged)
            self.onParametersChanged()


class ONFHAssistWidget(ParameterNodeGuiMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.timer = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._shownInput = False  # no volume named in the status line yet

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        panel = slicer.util.loadUI(self.resourcePath("UI/ONFHAssist.ui"))
        self.layout.addWidget(panel)
        self.ui = slicer.util.childWidgetVariables(panel)
        panel.setMRMLScene(slicer.mrmlScene)
        self.logic = ONFHAssistLogic()
        self.ui.segmentButton.clicked.connect(self.onSegment)
        self.ui.cancelButton.clicked.connect(self.onCancel)
        self.ui.reportButton.clicked.connect(self.onOpenReport)
        self.ui.addToDatasetButton.clicked.connect(self.onAddToDataset)
        self.ui.saveAnalysisButton.clicked.connect(self.onSaveAnalysis)
        self.ui.showSurvivalButton.clicked.connect(self.onShowSurvival)
        self.ui.refreshModelsButton.clicked.connect(self.startDeviceCheck)
        self.ui.installDependenciesButton.clicked.connect(self.onInstallDependencies)
        bindDatasetFolder(self.ui.datasetPathEdit)
        self.ui.wheelhousePathEdit.currentPath = qt.QSettings().value(WHEELHOUSE_SETTING, "")
        self.ui.wheelhousePathEdit.currentPathChanged.connect(
            lambda path: qt.QSettings().setValue(WHEELHOUSE_SETTING, path))
        self.timer = qt.QTimer()
        self.timer.setInterval(200)
        self.timer.timeout.connect(self.onTick)
        self.deviceTimer = qt.QTimer()
        self.deviceTimer.setInterval(300)
        self.deviceTimer.timeout.connect(self.onDeviceTick)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()
        self.startDeviceCheck()

    # Parameter node (the usual Slicer 5 pattern) ------------------------------------------------------------
    def cleanup(self):
        self.onCancel()
        self.removeObservers()

    def onSceneStartClose(self, caller, event):
        self.onCancel()
        self.logic.forgetResults()
        self._stopped()  # the result buttons go grey with the nodes they act on
        self.setParameterNode(None)

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def onParametersChanged(self, caller=None, event=None):
        node = self._parameterNode.inputVolume if self._parameterNode else None
        if not self.logic.running:
            self.ui.segmentButton.enabled = node is not None
            if node is not self._shownInput:  # keep the last result message while only display settings change
                self._shownInput = node
                self.ui.statusLabel.text = self.logic.status(node)
        if self._parameterNode:
            self.logic.applyDisplay(self._parameterNode)

    # Device line and model sets, from a child `onfh info` -----------------------------------------------------
    def startDeviceCheck(self):
        self.ui.deviceLabel.text = "Checking torch, the compute device and the installed models…"
        self.logic.startDeviceCheck()
        self.deviceTimer.start()

    def onDeviceTick(self):
        try:
            line = self.logic.pollDeviceCheck()
        except Exception as error:  # one message, not one every 300 ms
            self.deviceTimer.stop()
            self.ui.deviceLabel.text = f"Device check failed: {error}"
            return
        if line is None:
            return
        self.deviceTimer.stop()
        self.ui.deviceLabel.text = line
        current = self.ui.modelSetComboBox.currentText
        self.ui.modelSetComboBox.clear()
        for label in self.logic.modelSets:
            self.ui.modelSetComboBox.addItem(label)
        if current in self.logic.modelSets:
            self.ui.modelSetComboBox.currentText = current

    # Analysis ------------------------------------------------------------------------------------------------
    def onSegment(self):
        with slicer.util.tryWithErrorDisplay("Could not start the analysis.", waitCursor=True):
            if not ensureDependencies(self._showInstallLine):
                self.ui.statusLabel.text = ("ONFH Assist needs its Python packages first (Settings → Check / install "
                                            "dependencies).")
                return
            params = self._parameterNode
            grades = {"R": params.rightGrades, "L": params.leftGrades}
            note = self.logic.startSegmentation(params.inputVolume, params.modality, params.device, grades,
                                                self.ui.modelSetComboBox.currentText, params.sides)
            self.ui.segmentButton.enabled, self.ui.cancelButton.enabled = False, True
            self.ui.analysisProgressBar.value = 0
            self.ui.logTextEdit.clear()
            if note:
                self.ui.logTextEdit.appendPlainText(note)
            self.ui.statusLabel.text = note or "Finding the femoral heads…"
            self.timer.start()

    def onTick(self):
        try:
            messages, fraction, finished = self.logic.poll()
        except Exception as error:  # one message and the job stopped, not one every 200 ms
            self.onCancel()
            slicer.util.errorDisplay(f"The analysis could not be followed and was stopped: {error}")
            return
        for message in messages:
            self.ui.logTextEdit.appendPlainText(message)
        if messages and finished is None:
            self.ui.statusLabel.text = messages[-1]
        if fraction is not None:
            self.ui.analysisProgressBar.value = int(100 * fraction)
        if finished is not None:
            self.ui.statusLabel.text = finished
            self.ui.logTextEdit.appendPlainText(finished)
            if self.logic.nodes is not None:
                self.ui.analysisProgressBar.value = 100
                self.ui.resultsTableView.setMRMLTableNode(self.logic.nodes["table"])
                self.logic.applyDisplay(self._parameterNode)
            self._stopped()

    def onCancel(self):
        if self.logic is not None and self.logic.running:
            self.logic.cancel()
            self.ui.statusLabel.text = "Cancelled; nothing was kept."
        if self.timer is not None:
            self._stopped()

    def _stopped(self):
        self.timer.stop()
        self.ui.cancelButton.enabled = False
        self.ui.segmentButton.enabled = bool(self._parameterNode and self._parameterNode.inputVolume)
        have = self.logic.nodes is not None
        self.ui.reportButton.enabled = self.logic.report is not None
        self.ui.addToDatasetButton.enabled = self.ui.saveAnalysisButton.enabled = have
        self.ui.showSurvivalButton.enabled = have

    # Results ------------------------------------------------------------------------------------------------
    def onOpenReport(self):
        if self.logic.report is not None and self.logic.report.exists():
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(self.logic.report)))

    def onShowSurvival(self):
        slicer.modules.plots.logic().ShowChartInLayout(self.logic.nodes["chart"])

    def onSaveAnalysis(self):
        folder = qt.QFileDialog.getSaveFileName(self.parent, "Save analysis to a new folder", str(Path.home()))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay("Could not save the analysis.", waitCursor=True):
            self.ui.statusLabel.text = f"Saved the analysis and the scene to {self.logic.saveAnalysis(folder)}."

    def onAddToDataset(self):
        with slicer.util.tryWithErrorDisplay("Could not add the case to the dataset.", waitCursor=True):
            params = self._parameterNode
            folder = self.ui.datasetPathEdit.currentPath
            entries = {"R": params.rightOutcome, "L": params.leftOutcome}
            scan = self.logic.addToDataset(folder, params.patientId, entries)
            self.ui.statusLabel.text = (f"Added {scan} to {folder}: your segmentation as the final label, the "
                                        "model's as labels/original.")

    def onInstallDependencies(self):
        with slicer.util.tryWithErrorDisplay("Could not install the dependencies.", waitCursor=True):
            done = ensureDependencies(self._showInstallLine)
            self.ui.statusLabel.text = ("All Python packages ONFH Assist needs are installed." if done else
                                        "Dependencies not installed.")
            self.startDeviceCheck()

    def _showInstallLine(self, line: str):
        if line:
            self.ui.logTextEdit.appendPlainText(line)
            self.ui.statusLabel.text = f"Installing Python packages: {line}"

    def onReload(self):
        reloadLib()
        ScriptedLoadableModuleWidget.onReload(self)

    def onReloadAndTest(self, **kwargs):
        ScriptedLoadableModuleWidget.onReloadAndTest(self, full=True, **kwargs)


class ONFHAssistLogic(ScriptedLoadableModuleLogic):
    """Facade the panel calls; every step is delegated to ONFHAssistLib. Torch runs in a child process."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.job, self.work, self.out, self.input_node, self.report = None, None, None, None, None
        self.device_job, self.nodes, self.analysis_dir, self.device_info = None, None, None, None
        from ONFHAssistLib import jobs
        self.modelSets = jobs.model_sets([])

    def getParameterNode(self):
        return ONFHAssistParameterNode(super().getParameterNode())

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.poll() is None

    # Device check -------------------------------------------------------------------------------------------
    def startDeviceCheck(self):
        """Ask a child process (`onfh info`) for torch, CUDA, GPU and the installed models: torch is never
        imported in the GUI."""
        from ONFHAssistLib import jobs
        self.device_job = jobs.Job(jobs.onfh_command(["info", "--progress", "jsonl"], pythonSlicer()),
                                   env=jobs.child_env()).start()

    def pollDeviceCheck(self):
        """The diagnostics line once the child has answered (model sets updated), else None."""
        from ONFHAssistLib import jobs
        code = self.device_job.poll()
        if code is not None:
            self.device_job.wait()
        for event in self.device_job.drain():
            if event.get("event") == "result":
                self.device_info = event.get("device")
                self.modelSets = jobs.model_sets(event.get("models", []))
                return event["summary"]
        if code is not None:
            return "Device check failed: " + (self.device_job.error_message or f"exit code {code}")
        return None

    # Analysis -----------------------------------------------------------------------------------------------
    def startSegmentation(self, volume_node, modality="auto", device="auto", grades=None, model_set=None,
                          sides="both") -> str:
        """Write the volume to a temporary file and run `onfh analyze` on it in the background; the output
        folder (report, maps, analysis.json) is kept under ~/.onfh/analyses. Returns a note for the user
        (the CPU fallback when CUDA was asked for on a machine without a GPU), else ''."""
        from ONFHAssistLib.imaging import io
        from ONFHAssistLib import jobs
        from ONFHAssistLib.slicer import mrml
        if volume_node is None:
            raise ValueError("Select an input volume first.")
        device, note = jobs.effective_device(device, self.device_info)
        self.work, self.input_node = Path(tempfile.mkdtemp(prefix="onfh-analyze-")), volume_node
        self.out = jobs.analysis_folder(volume_node.GetName())
        io.write_image(mrml.volume_to_sitk(volume_node), self.work / "input.nrrd")
        models = self.modelSets.get(model_set, [])
        args = jobs.analyze_args(self.work / "input.nrrd", self.out, modality, device, grades, models, sides)
        self.job = jobs.Job(jobs.onfh_command(args, pythonSlicer()), env=jobs.child_env()).start()
        return note

    def poll(self):
        """(new log messages, latest progress fraction or None, final status or None while running); loads
        the results into the scene when the child succeeds."""
        from ONFHAssistLib.analysis.findings import summary_text
        from ONFHAssistLib.slicer import mrml
        messages, fraction = [], None
        for event in self.job.drain():
            if event.get("event") == "progress":
                fraction = event.get("fraction")
            if event.get("message"):
                messages.append(event["message"])
        code = self.job.poll()
        if code is None:
            return messages, fraction, None
        self.job.wait()
        if code != 0:
            status = self.job.error_message or f"The analysis stopped (exit code {code})."
            shutil.rmtree(self.out, ignore_errors=True)  # nothing half-written is left behind
        else:
            self.nodes = mrml.load_analysis(slicer.mrmlScene, self.out, self.input_node)
            self.report, self.analysis_dir = self.out / "report.html", self.out
            status = ("Done: segmentation, attention and Grad-CAM maps, femoral-head ROIs, the results table and the "
                      f"survival chart are in the scene; report and files kept in {self.out}.")
            analysis = json.loads((self.out / "analysis.json").read_text(encoding="utf-8"))
            status = summary_text(analysis) + "\n\n" + status  # the key findings first, in the report's words
        self._clean()
        return messages, fraction, status

    def applyDisplay(self, params):
        """Show/hide and fade the segmentation and the two heat maps as the panel's check boxes and sliders say."""
        from ONFHAssistLib.slicer import mrml
        if self.nodes is None:
            return
        layers = {"segmentation": self.nodes.get("segmentation")}
        for node in self.nodes["maps"]:
            layers["gradcam" if node.GetName().endswith("Grad-CAM") else "attention"] = node
        for show in (False, True):  # hide first, so a map that is ticked ends up as the foreground
            for layer in LAYERS:
                node = layers.get(layer)
                if node is not None and bool(getattr(params, f"{layer}Visible")) == show:
                    mrml.set_layer_visibility(slicer.mrmlScene, node, show, getattr(params, f"{layer}Opacity"))

    def saveAnalysis(self, folder: str) -> Path:
        from ONFHAssistLib.slicer import mrml
        return mrml.save_analysis(slicer.mrmlScene, self.analysis_dir, folder)

    def addToDataset(self, folder: str, patient_id: str, entries: dict) -> str:
        """The last analysis's volume, its (possibly corrected) segmentation and the typed rows into a dataset."""
        from ONFHAssistLib.slicer import mrml
        if not folder:
            raise ValueError("Choose a dataset folder first.")
        return mrml.add_to_dataset(slicer.mrmlScene, self.nodes["segmentation"], self.nodes["input"],
                                   self.analysis_dir, folder, patient_id.strip(), entries)

    def cancel(self):
        self.job.cancel()
        if self.out is not None:
            shutil.rmtree(self.out, ignore_errors=True)
        self._clean()

    def forgetResults(self):
        """The scene is closing: its nodes are gone, so the panel no longer offers to save or add them."""
        self.nodes, self.report, self.analysis_dir = None, None, None

    def _clean(self):
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
        self.job, self.work = None, None

    def status(self, volume_node) -> str:
        from ONFHAssistLib import __version__
        if volume_node is None:
            return f"Ready (core {__version__}). Select a hip MRI or CT."
        dims = volume_node.GetImageData().GetDimensions() if volume_node.GetImageData() else (0, 0, 0)
        return f"Ready (core {__version__}). Input: {volume_node.GetName()} ({dims[0]}×{dims[1]}×{dims[2]})."

    def loadDemoCase(self):
        """Load the bundled demo hip MRI into the scene."""
        from ONFHAssistLib.slicer import demo_case
        return slicer.util.loadVolume(str(demo_case.image_path()))


def _pipEnsure():
    """`pip_ensure` of Slicer's packaging helpers (Slicer ≥ 5.11 names the module slicer.pydeps), or None."""
    for name in ("slicer.pydeps", "slicer.packaging"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "pip_ensure"):
            return module.pip_ensure
    return None


def waitUntilFinished(poll, stop, timeout_s: float, what: str) -> str:
    """Drive a running child job to its end inside Slicer (a self-test has no timer loop of its own);
    `poll` is the logic's (messages, fraction, final status) call, `stop` kills the job on time-out."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        slicer.app.processEvents()
        _, _, finished = poll()
        if finished is not None:
            return finished
        time.sleep(0.2)
    stop()
    raise TimeoutError(f"{what} did not finish within {timeout_s:.0f} s")


class ONFHAssistTest(ScriptedLoadableModuleTest):
    """The whole clinical flow on the demo case inside Slicer: Reload and Test, or ctest in an extension build."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self, full: bool = False):
        """ctest runs the fast part (seconds, no torch, no PyTorch extension); Reload and Test adds the whole
        flow (`full`, minutes: the first-use install and an analysis in a child process)."""
        self.setUp()
        self.test_status_names_the_input()
        self.test_dependency_plan_reads_the_installed_requirements()
        if full:
            self.setUp()
            self.test_demo_flow_analyse_display_save_and_add_to_dataset()

    def test_status_names_the_input(self):
        logic = ONFHAssistLogic()
        self.assertIn("Select", logic.status(None))
        node = logic.loadDemoCase()
        self.assertIn(node.GetName(), logic.status(node))
        self.delayDisplay("ONFH Assist status line names the loaded demo case")

    def test_dependency_plan_reads_the_installed_requirements(self):
        from ONFHAssistLib.slicer import dependencies as deps
        requirements = deps.read_requirements()
        self.assertTrue(any(r.name == "monai" for r in requirements))
        self.assertFalse(any(deps.is_protected(r.name) for r in requirements))
        self.delayDisplay("The first-use requirements are installed with the module and readable")

    def test_demo_flow_analyse_display_save_and_add_to_dataset(self):
        from ONFHAssistLib import dataset
        from ONFHAssistLib.slicer import demo_case, mrml
        from ONFHAssistLib.imaging import io
        import numpy as np
        import SimpleITK as sitk

        logic = ONFHAssistLogic()
        self.assertTrue(ensureDependencies())
        volume = logic.loadDemoCase()
        logic.startSegmentation(volume, "auto", "cpu", {"R": "", "L": ""})
        status = waitUntilFinished(logic.poll, logic.cancel, 900.0, "the analysis")
        self.assertIsNotNone(logic.nodes, status)
        self.delayDisplay("Demo analysed in a child process")

        segments = logic.nodes["segmentation"].GetSegmentation()
        names = [segments.GetNthSegment(i).GetName() for i in range(segments.GetNumberOfSegments())]
        self.assertEqual(names, ["Pelvis", "Femur", "Necrosis"])
        self.assertEqual(len(logic.nodes["rois"]), 2)
        self.assertEqual(logic.nodes["table"].GetTable().GetNumberOfRows(), 2)
        self.assertTrue(logic.nodes["segmentation"].GetAttribute("ONFH.segmentation.sha256"))
        truth = {row["side"]: row for row in demo_case.truth()}
        for roi, side in zip(logic.nodes["rois"], ("R", "L")):
            centre = np.array(roi.GetCenter()) * [-1, -1, 1]
            self.assertLess(np.linalg.norm(centre - [truth[side][c] for c in ("head_x", "head_y", "head_z")]), 2.0)
        # Compared in LPS order: a reader may return the demo's inferior-running z axis reversed (same voxels).
        label = mrml.segmentation_to_label(slicer.mrmlScene, logic.nodes["segmentation"], volume)
        label = sitk.DICOMOrient(label, "LPS")
        expected = sitk.DICOMOrient(io.read_image(logic.analysis_dir / "labels.nii.gz"), "LPS")
        self.assertTrue(np.array_equal(sitk.GetArrayFromImage(label), sitk.GetArrayFromImage(expected)))

        params = logic.getParameterNode()
        params.segmentationOpacity, params.gradcamVisible = 0.3, True
        logic.applyDisplay(params)
        self.assertAlmostEqual(logic.nodes["segmentation"].GetDisplayNode().GetOpacity(), 0.3)
        composite = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
        self.assertEqual(composite.GetForegroundVolumeID(), logic.nodes["maps"][-1].GetID())
        self.delayDisplay("Segmentation faded, Grad-CAM shown")

        work = Path(tempfile.mkdtemp(prefix="onfh-selftest-"))
        saved = logic.saveAnalysis(str(work / "saved"))
        self.assertTrue((saved / "scene.mrb").is_file() and (saved / "analysis" / "analysis.json").is_file())
        scan = logic.addToDataset(str(work / "dataset"), "SELFTEST1",
                                  {"R": "time_months=24,event=1", "L": "time_months=24,event=0"})
        self.assertTrue(dataset.validate(work / "dataset").ok)
        self.assertTrue((work / "dataset" / dataset.ORIGINAL_LABELS / f"{scan}.nii.gz").is_file())
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(logic.analysis_dir, ignore_errors=True)
        self.delayDisplay("Analysis saved and the case added to a dataset")
