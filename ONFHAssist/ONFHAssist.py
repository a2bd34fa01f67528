"""ONFH Assist: the clinical module. Thin Slicer shell; the science lives in ONFHAssistLib."""
import shutil
import sys
import tempfile
from pathlib import Path

import qt
import slicer
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

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
    from ONFHAssistLib import demo_case
    icon = str(Path(__file__).parent / "Resources" / "Icons" / "ONFHAssist.png")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(thumbnailFileName=icon, **demo_case.sample_data_source())


class ONFHAssistWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.timer = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        panel = slicer.util.loadUI(self.resourcePath("UI/ONFHAssist.ui"))
        self.layout.addWidget(panel)
        self.ui = slicer.util.childWidgetVariables(panel)
        panel.setMRMLScene(slicer.mrmlScene)
        self.logic = ONFHAssistLogic()
        self.ui.inputVolumeSelector.currentNodeChanged.connect(self.updateStatus)
        self.ui.segmentButton.clicked.connect(self.onSegment)
        self.ui.cancelButton.clicked.connect(self.onCancel)
        self.ui.reportButton.clicked.connect(self.onOpenReport)
        self.ui.addToDatasetButton.clicked.connect(self.onAddToDataset)
        self.timer = qt.QTimer()
        self.timer.setInterval(200)
        self.timer.timeout.connect(self.onTick)
        self.updateStatus()
        self.ui.deviceLabel.text = "Checking torch and the compute device…"
        self.logic.startDeviceCheck()
        self.deviceTimer = qt.QTimer()
        self.deviceTimer.setInterval(300)
        self.deviceTimer.timeout.connect(self.onDeviceTick)
        self.deviceTimer.start()

    def onDeviceTick(self):
        line = self.logic.pollDeviceCheck()
        if line is not None:
            self.ui.deviceLabel.text = line
            self.deviceTimer.stop()

    def cleanup(self):
        self.onCancel()

    def updateStatus(self, *_):
        node = self.ui.inputVolumeSelector.currentNode()
        self.ui.segmentButton.enabled = node is not None and not self.logic.running
        self.ui.statusLabel.text = self.logic.status(node)

    def onSegment(self):
        with slicer.util.tryWithErrorDisplay("Could not start the analysis.", waitCursor=True):
            grades = {"R": self.ui.rightGradesEdit.text, "L": self.ui.leftGradesEdit.text}
            self.logic.startSegmentation(self.ui.inputVolumeSelector.currentNode(), self.ui.modalityComboBox.currentText,
                                         self.ui.deviceComboBox.currentText, grades)
            self.ui.segmentButton.enabled, self.ui.cancelButton.enabled = False, True
            self.ui.statusLabel.text = "Finding the femoral heads…"
            self.timer.start()

    def onOpenReport(self):
        if self.logic.report is not None and self.logic.report.exists():
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(self.logic.report)))

    def onAddToDataset(self):
        with slicer.util.tryWithErrorDisplay("Could not add the case to the dataset.", waitCursor=True):
            entries = {"R": self.ui.rightOutcomeEdit.text, "L": self.ui.leftOutcomeEdit.text}
            scan = self.logic.addToDataset(self.ui.datasetPathEdit.currentPath, self.ui.patientIdEdit.text, entries)
            self.ui.statusLabel.text = f"Added {scan} to {self.ui.datasetPathEdit.currentPath}."

    def onCancel(self):
        if self.logic is not None and self.logic.running:
            self.logic.cancel()
            self.ui.statusLabel.text = "Cancelled."
        self._stopped()

    def onTick(self):
        messages, finished = self.logic.poll()
        if messages:
            self.ui.statusLabel.text = messages[-1]
        if finished is not None:
            self.ui.statusLabel.text = finished
            self._stopped()

    def _stopped(self):
        if self.timer is not None:
            self.timer.stop()
        self.ui.cancelButton.enabled = False
        self.ui.segmentButton.enabled = self.ui.inputVolumeSelector.currentNode() is not None
        self.ui.reportButton.enabled = self.logic.report is not None
        self.ui.addToDatasetButton.enabled = self.logic.nodes is not None


class ONFHAssistLogic(ScriptedLoadableModuleLogic):
    """Facade the panel calls; every step is delegated to ONFHAssistLib. Torch runs in a child process."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.job, self.work, self.out, self.input_node, self.report = None, None, None, None, None
        self.device_job, self.nodes = None, None

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.poll() is None

    def startDeviceCheck(self):
        """Ask a child process (`onfh info`) for torch, CUDA and GPU: torch is never imported in the GUI."""
        from ONFHAssistLib import jobs
        python = shutil.which("PythonSlicer") or sys.executable
        self.device_job = jobs.Job(jobs.onfh_command(["info", "--progress", "jsonl"], python), env=jobs.child_env()).start()

    def pollDeviceCheck(self):
        """The diagnostics line once the child has answered, else None."""
        code = self.device_job.poll()
        if code is not None:
            self.device_job.wait()
        for event in self.device_job.drain():
            if event.get("event") == "result":
                return event["summary"]
        if code is not None:
            return "Device check failed: " + (self.device_job.error_message or f"exit code {code}")
        return None

    def startSegmentation(self, volume_node, modality="auto", device="auto", grades=None):
        """Write the volume to a temporary file and run `onfh analyze` on it in the background; the output
        folder (report, maps, analysis.json) is kept under ~/.onfh/analyses."""
        from ONFHAssistLib import io, jobs, mrml
        self.work, self.input_node = Path(tempfile.mkdtemp(prefix="onfh-analyze-")), volume_node
        self.out = jobs.analysis_folder(volume_node.GetName())
        io.write_image(mrml.volume_to_sitk(volume_node), self.work / "input.nrrd")
        python = shutil.which("PythonSlicer") or sys.executable
        argv = jobs.onfh_command(jobs.analyze_args(self.work / "input.nrrd", self.out, modality, device, grades), python)
        self.job = jobs.Job(argv, env=jobs.child_env()).start()

    def poll(self):
        """(new log messages, final status or None while running); loads the results when the child succeeds."""
        from ONFHAssistLib import mrml
        messages = [e.get("message", "") for e in self.job.drain() if e.get("message")]
        code = self.job.poll()
        if code is None:
            return messages, None
        self.job.wait()
        if code != 0:
            status = self.job.error_message or f"The analysis stopped (exit code {code})."
            shutil.rmtree(self.out, ignore_errors=True)  # nothing half-written is left behind
        else:
            self.nodes = mrml.load_analysis(slicer.mrmlScene, self.out, self.input_node)
            self.report, self.analysis_dir = self.out / "report.html", self.out
            status = ("Done: segmentation, attention and Grad-CAM maps, femoral-head ROIs, the results table and the "
                      f"survival chart are in the scene; report and files kept in {self.out}.")
        self._clean()
        return messages, status

    def addToDataset(self, folder: str, patient_id: str, entries: dict) -> str:
        """The last analysis's volume, its (possibly corrected) segmentation and the typed rows into a dataset."""
        from ONFHAssistLib import mrml
        if not folder:
            raise ValueError("Choose a dataset folder first.")
        return mrml.add_to_dataset(slicer.mrmlScene, self.nodes["segmentation"], self.nodes["input"],
                                   self.analysis_dir, folder, patient_id.strip(), entries)

    def cancel(self):
        self.job.cancel()
        if self.out is not None:
            shutil.rmtree(self.out, ignore_errors=True)
        self._clean()

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
        from ONFHAssistLib import demo_case
        return slicer.util.loadVolume(str(demo_case.image_path()))


class ONFHAssistTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_status_names_the_input()

    def test_status_names_the_input(self):
        logic = ONFHAssistLogic()
        self.assertIn("Select", logic.status(None))
        node = logic.loadDemoCase()
        self.assertIn(node.GetName(), logic.status(node))
        self.delayDisplay("ONFH Assist status line names the loaded demo case")
