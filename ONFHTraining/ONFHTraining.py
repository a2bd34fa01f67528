"""ONFH Training: dataset curation, training and cross-validation from the UI. Thin Slicer shell."""
import os
import tempfile
from pathlib import Path
from typing import Annotated

import qt
import slicer
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from ONFHAssist import (CITATIONS, ParameterNodeGuiMixin, bindDatasetFolder, ensureDependencies, pythonSlicer,
                        reloadLib, waitUntilFinished)

TASKS = ["segmentation", "localizer", "staging", "sranet", "survival"]


class ONFHTraining(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "ONFH Training"
        self.parent.categories = ["ONFH"]
        self.parent.dependencies = ["ONFHAssist"]
        self.parent.contributors = ["ONFH Assist developers"]
        self.parent.helpText = (
            "Turns corrected ONFH Assist cases into a dataset (images, labels, hips.csv), validates it, and runs "
            "training and patient-level cross-validation as background jobs. " + self.getDefaultModuleDocumentationLink())
        self.parent.acknowledgementText = CITATIONS


@parameterNodeWrapper
class ONFHTrainingParameterNode:
    """The training panel's settings (0 or 'default' = the recipe's own value), saved with the scene."""

    task: Annotated[str, Choice(TASKS)] = "segmentation"
    mode: Annotated[str, Choice(["train", "cv"])] = "train"
    epochs: Annotated[int, WithinRange(0, 1000)] = 0
    folds: Annotated[int, WithinRange(2, 20)] = 5
    learningRate: Annotated[float, WithinRange(0.0, 1.0)] = 0.0
    batchSize: Annotated[int, WithinRange(0, 512)] = 0
    preset: Annotated[str, Choice(["default", "cpu", "paper"])] = "default"
    initModel: str = ""  # train segmentation/staging/sranet from this installed model (fine-tuning); blank = scratch
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"


class ONFHTrainingWidget(ParameterNodeGuiMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        panel = slicer.util.loadUI(self.resourcePath("UI/ONFHTraining.ui"))
        self.layout.addWidget(panel)
        self.ui = slicer.util.childWidgetVariables(panel)
        panel.setMRMLScene(slicer.mrmlScene)
        self.logic = ONFHTrainingLogic()
        bindDatasetFolder(self.ui.datasetPathLineEdit)
        self.ui.datasetPathLineEdit.currentPathChanged.connect(lambda path: self.onParametersChanged())
        self.ui.validateButton.clicked.connect(self.onValidate)
        self.ui.startButton.clicked.connect(self.onStartStop)
        self.ui.publishButton.clicked.connect(self.onPublish)
        self.ui.showMetricsButton.clicked.connect(self.onShowMetrics)
        self.ui.loadResultsButton.clicked.connect(self.onLoadResults)
        self.timer = qt.QTimer()
        self.timer.setInterval(250)
        self.timer.timeout.connect(self.onTick)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()
        self.ui.statusLabel.text = "Ready. Choose a dataset folder."

    # Parameter node -----------------------------------------------------------------------------------------
    def cleanup(self):
        if self.logic.running:
            self.logic.stop()
        self.removeObservers()

    def onSceneStartClose(self, caller, event):
        self.logic.chart = None  # its nodes go with the scene
        self.ui.resultsTableView.setMRMLTableNode(None)
        self.setParameterNode(None)

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())

    def onParametersChanged(self, caller=None, event=None):
        folder = self.ui.datasetPathLineEdit.currentPath
        self.ui.validateButton.enabled = bool(folder)
        self.ui.startButton.enabled = bool(folder) or self.logic.running

    # Runs ---------------------------------------------------------------------------------------------------
    def onStartStop(self):
        if self.logic.running:
            self.logic.stop()
            self.ui.statusLabel.text = f"Stopped. Start with the same settings resumes from the last epoch ({self.logic.out})."
            self._idle()
            return
        with slicer.util.tryWithErrorDisplay("Could not start the run.", waitCursor=True):
            if not ensureDependencies(self._showInstallLine):
                self.ui.statusLabel.text = "ONFH Training needs ONFH Assist's Python packages first."
                return
            self.logic.start(self._parameterNode, self.ui.datasetPathLineEdit.currentPath)
            self.ui.logTextEdit.clear()
            self.ui.trainingProgressBar.value = 0
            self.ui.startButton.text, self.ui.publishButton.enabled = "Stop", False
            self.ui.statusLabel.text = f"Running; output in {self.logic.out}"
            self.timer.start()

    def onTick(self):
        try:
            lines, fraction, finished = self.logic.poll()
        except Exception as error:  # one message and the run stopped, not one every 250 ms
            self.logic.stop()
            self._idle()
            slicer.util.errorDisplay(f"The run could not be followed and was stopped: {error}")
            return
        for line in lines:
            self.ui.logTextEdit.appendPlainText(line)
        if fraction is not None:
            self.ui.trainingProgressBar.value = int(100 * fraction)
        if finished is not None:
            self.ui.statusLabel.text = finished
            self._idle()
            self.ui.publishButton.enabled = self.logic.model_folder() is not None
            if self.logic.cv_finished():
                self._showResults(self.logic.loadResults(self.logic.out))

    def onShowMetrics(self):
        if self.logic.chart is not None:
            slicer.modules.plots.logic().ShowChartInLayout(self.logic.chart)

    def onLoadResults(self):
        folder = qt.QFileDialog.getExistingDirectory(self.parent, "Cross-validation output folder",
                                                     str(self.logic.out or Path.home()))
        if folder:
            with slicer.util.tryWithErrorDisplay("Could not load the results.", waitCursor=True):
                self._showResults(self.logic.loadResults(folder))

    def _showResults(self, nodes):
        self.ui.resultsTableView.setMRMLTableNode(nodes["table"])
        if "chart" in nodes:
            slicer.modules.plots.logic().ShowChartInLayout(nodes["chart"])

    def onPublish(self):
        with slicer.util.tryWithErrorDisplay("Could not publish the model.", waitCursor=True):
            self.ui.statusLabel.text = self.logic.publish()

    def _idle(self):
        self.timer.stop()
        self.ui.startButton.text = "Start"

    def onValidate(self):
        with slicer.util.tryWithErrorDisplay("Dataset validation failed.", waitCursor=True):
            if not ensureDependencies(self._showInstallLine):
                self.ui.statusLabel.text = "ONFH Training needs ONFH Assist's Python packages first."
                return
            self.ui.statusLabel.text = self.logic.validationSummary(self.ui.datasetPathLineEdit.currentPath)

    def _showInstallLine(self, line: str):
        if line:
            self.ui.logTextEdit.appendPlainText(line)
            self.ui.statusLabel.text = f"Installing Python packages: {line}"

    def onReload(self):
        reloadLib()
        ScriptedLoadableModuleWidget.onReload(self)

    def onReloadAndTest(self, **kwargs):
        ScriptedLoadableModuleWidget.onReloadAndTest(self, full=True, **kwargs)


class ONFHTrainingLogic(ScriptedLoadableModuleLogic):
    """Facade the panel calls; every step is delegated to ONFHAssistLib. Training runs in a child process."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.job, self.out, self.stopped_key, self.current_key, self.chart = None, None, None, None, None
        self.verb = None

    def getParameterNode(self):
        return ONFHTrainingParameterNode(super().getParameterNode())

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.poll() is None

    def start(self, params, data: str):
        """Start `onfh train|cv` with the panel's settings; the same settings after Stop resume in the same folder."""
        from ONFHAssistLib import jobs
        if not data:
            raise ValueError("Choose a dataset folder first.")
        key = (params.mode, params.task, data, params.epochs, params.folds, params.learningRate, params.batchSize,
               params.preset, params.initModel)
        if key != self.stopped_key:  # a new run: new folder and a new metric plot; a resumed one continues both
            self.out, self.chart = jobs.run_folder(f"{params.mode}-{params.task}"), None
        self.stopped_key, self.current_key, self.verb = None, key, params.mode
        args = jobs.training_args(params.mode, params.task, Path(data), self.out, params.epochs, params.device,
                                  params.folds, params.learningRate, params.batchSize, params.preset, params.initModel)
        self.job = jobs.Job(jobs.onfh_command(args, pythonSlicer()), env=jobs.child_env()).start()

    def poll(self):
        """(new log lines, latest progress fraction or None, final status or None while running); metric
        events also go to the live plot as they arrive."""
        from ONFHAssistLib.slicer import mrml
        lines, fraction = [], None
        events = self.job.drain()
        for event in events:
            if event.get("event") == "metric":
                lines.append(", ".join(f"{k} {v}" for k, v in event.items() if k not in ("event", "stage")))
            elif event.get("event") == "progress":
                fraction = event.get("fraction")
            elif event.get("message"):
                lines.append(event["message"])
        if any(e.get("event") == "metric" and "epoch" in e for e in events):
            self.chart = mrml.update_metric_plot(slicer.mrmlScene, events, self.chart)
        code = self.job.poll()
        if code is None:
            return lines, fraction, None
        self.job.wait()
        status = f"Finished; results in {self.out}." if code == 0 else (
            self.job.error_message or f"The run stopped (exit code {code}).")
        return lines, fraction, status

    def stop(self):
        self.job.cancel()
        self.stopped_key = self.current_key

    def cv_finished(self) -> bool:
        return self.verb == "cv" and self.out is not None and (self.out / "table.json").is_file()

    def loadResults(self, folder):
        from ONFHAssistLib.slicer import mrml
        return mrml.load_cv_results(slicer.mrmlScene, folder)

    def model_folder(self):
        folder = self.out / "model" if self.out is not None else None
        return folder if folder is not None and (folder / "model.json").exists() else None

    def publish(self) -> str:
        """Copy the trained model into the user store in a child (`onfh models publish`): the store checks the
        weights with torch, which never runs in Slicer's GUI process."""
        from ONFHAssistLib import jobs
        if self.model_folder() is None:
            raise ValueError("No trained model to publish yet.")
        line = jobs.run_short(["models", "publish", str(self.model_folder())], pythonSlicer())
        return f"{line[0].upper()}{line[1:]}; ONFH Assist offers it after Refresh (no restart)."

    def validationSummary(self, folder: str) -> str:
        from ONFHAssistLib import dataset
        return dataset.validate(folder).headline()


class ONFHTrainingTest(ScriptedLoadableModuleTest):
    """Dataset → 1-epoch training in a child process → live metric plot → publish, inside Slicer
    (Reload and Test, or ctest in an extension build)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self, full: bool = False):
        """ctest runs the fast part; Reload and Test adds the training run (`full`, minutes, needs torch)."""
        self.setUp()
        self.test_the_chosen_task_reaches_the_training_command()
        if full:
            self.setUp()
            self.test_missing_folder_is_reported()
            self.setUp()
            self.test_one_epoch_training_run_and_publish()

    def test_the_chosen_task_reaches_the_training_command(self):
        from ONFHAssistLib import jobs
        params = ONFHTrainingLogic().getParameterNode()
        params.task, params.mode = "staging", "cv"
        args = jobs.training_args(params.mode, params.task, Path("data"), Path("out"), params.epochs, params.device,
                                  params.folds, params.learningRate, params.batchSize, params.preset, params.initModel)
        self.assertEqual(args[:2], ["cv", "staging"])
        self.delayDisplay("The panel's task and mode reach the command line")

    def test_missing_folder_is_reported(self):
        message = ONFHTrainingLogic().validationSummary("/nonexistent/onfh-dataset")
        self.assertIn("no such dataset folder", message)
        self.delayDisplay("A missing dataset folder is reported in one sentence")

    def test_one_epoch_training_run_and_publish(self):
        from ONFHAssistLib import dataset, jobs
        from ONFHAssistLib.slicer import demo_case
        from ONFHAssistLib.models import store as modelstore

        work = Path(tempfile.mkdtemp(prefix="onfh-training-selftest-"))
        data = work / "dataset"
        phantom = jobs.Job(jobs.onfh_command(["phantom", "--out", str(data), "--patients", "3", "--seed", "7",
                                              "--progress", "jsonl"], pythonSlicer()), env=jobs.child_env()).start()
        self.assertEqual(phantom.wait(timeout=600), 0, phantom.error_message)
        truth = demo_case.truth()
        rows = [{"side": r["side"], "time_months": "24", "event": "0",
                 **{c: f"{r[c]:.2f}" for c in ("head_x", "head_y", "head_z")}} for r in truth]
        dataset.add_case(data, demo_case.image_path(), demo_case.label_path(), "DEMO", rows)  # the demo case joins
        self.assertTrue(dataset.validate(data).ok)
        self.delayDisplay("Dataset: 3 phantom patients + the demo case")

        logic = ONFHTrainingLogic()
        params = logic.getParameterNode()
        params.task, params.mode, params.epochs, params.device = "segmentation", "train", 1, "cpu"
        logic.start(params, str(data))
        status = waitUntilFinished(logic.poll, logic.stop, 1800.0, "the run")
        self.assertIsNotNone(logic.model_folder(), status)
        table = slicer.mrmlScene.GetNodeByID(logic.chart.GetAttribute("ONFH.metricsTable"))
        self.assertEqual(table.GetTable().GetNumberOfRows(), 1)  # one epoch, one row in the live plot
        self.delayDisplay("One epoch trained in a child process; the metric plot has its row")

        os.environ["ONFH_MODELS"] = str(work / "models")
        try:
            message = logic.publish()
            published = modelstore.list_models("segmentation")
            self.assertTrue(any(str(e.folder).startswith(str(work / "models")) for e in published), message)
        finally:
            del os.environ["ONFH_MODELS"]
        self.delayDisplay("Model published to a user store")
