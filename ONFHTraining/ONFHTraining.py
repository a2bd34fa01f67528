"""ONFH Training: dataset curation, training and cross-validation from the UI. Thin Slicer shell."""
import shutil
import sys
from pathlib import Path

import qt
import slicer
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)

from ONFHAssist import CITATIONS


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


class ONFHTrainingWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        panel = slicer.util.loadUI(self.resourcePath("UI/ONFHTraining.ui"))
        self.layout.addWidget(panel)
        self.ui = slicer.util.childWidgetVariables(panel)
        panel.setMRMLScene(slicer.mrmlScene)
        self.logic = ONFHTrainingLogic()
        self.ui.datasetPathLineEdit.currentPathChanged.connect(self.onDatasetChanged)
        self.ui.validateButton.clicked.connect(self.onValidate)
        self.ui.startButton.clicked.connect(self.onStartStop)
        self.ui.publishButton.clicked.connect(self.onPublish)
        self.timer = qt.QTimer()
        self.timer.setInterval(250)
        self.timer.timeout.connect(self.onTick)
        self.ui.statusLabel.text = "Ready. Choose a dataset folder."

    def cleanup(self):
        if self.logic.running:
            self.logic.stop()

    def onDatasetChanged(self, path):
        self.ui.validateButton.enabled = self.ui.startButton.enabled = bool(path)

    def onStartStop(self):
        if self.logic.running:
            self.logic.stop()
            self.ui.statusLabel.text = f"Stopped. Start with the same settings resumes from the last epoch ({self.logic.out})."
            self._idle()
            return
        with slicer.util.tryWithErrorDisplay("Could not start the run.", waitCursor=True):
            self.logic.start(self.ui.modeComboBox.currentText, self.ui.taskComboBox.currentText,
                             self.ui.datasetPathLineEdit.currentPath, self.ui.epochsSpinBox.value,
                             self.ui.trainDeviceComboBox.currentText, self.ui.foldsSpinBox.value)
            self.ui.logTextEdit.clear()
            self.ui.trainingProgressBar.value = 0
            self.ui.startButton.text, self.ui.publishButton.enabled = "Stop", False
            self.ui.statusLabel.text = f"Running; output in {self.logic.out}"
            self.timer.start()

    def onTick(self):
        lines, fraction, finished = self.logic.poll()
        for line in lines:
            self.ui.logTextEdit.appendPlainText(line)
        if fraction is not None:
            self.ui.trainingProgressBar.value = int(100 * fraction)
        if finished is not None:
            self.ui.statusLabel.text = finished
            self._idle()
            self.ui.publishButton.enabled = self.logic.model_folder() is not None

    def onPublish(self):
        with slicer.util.tryWithErrorDisplay("Could not publish the model.", waitCursor=True):
            self.ui.statusLabel.text = self.logic.publish()

    def _idle(self):
        self.timer.stop()
        self.ui.startButton.text = "Start"

    def onValidate(self):
        with slicer.util.tryWithErrorDisplay("Dataset validation failed.", waitCursor=True):
            self.ui.statusLabel.text = self.logic.validationSummary(self.ui.datasetPathLineEdit.currentPath)


class ONFHTrainingLogic(ScriptedLoadableModuleLogic):
    """Facade the panel calls; every step is delegated to ONFHAssistLib. Training runs in a child process."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.job, self.out, self.stopped_key, self.current_key = None, None, None, None

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.poll() is None

    def start(self, verb: str, task: str, data: str, epochs: int, device: str, folds: int):
        from ONFHAssistLib import jobs
        key = (verb, task, data, epochs, folds)
        if key != self.stopped_key:  # the same settings after Stop continue in the same folder (resume)
            self.out = jobs.run_folder(f"{verb}-{task}")
        self.stopped_key, self.current_key = None, key
        python = shutil.which("PythonSlicer") or sys.executable
        argv = jobs.onfh_command(jobs.training_args(verb, task, Path(data), self.out, epochs, device, folds), python)
        self.job = jobs.Job(argv, env=jobs.child_env()).start()

    def poll(self):
        """(new log lines, latest progress fraction or None, final status or None while running)."""
        lines, fraction = [], None
        for event in self.job.drain():
            if event.get("event") == "metric":
                lines.append(", ".join(f"{k} {v}" for k, v in event.items() if k not in ("event", "stage")))
            elif event.get("event") == "progress":
                fraction = event.get("fraction")
            elif event.get("message"):
                lines.append(event["message"])
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

    def model_folder(self):
        folder = self.out / "model" if self.out is not None else None
        return folder if folder is not None and (folder / "model.json").exists() else None

    def publish(self) -> str:
        from ONFHAssistLib import modelstore
        entry = modelstore.publish_folder(self.model_folder())
        return f"Published {entry.name} {entry.version} to {entry.folder}; ONFH Assist can use it now."

    def validationSummary(self, folder: str) -> str:
        from ONFHAssistLib import dataset
        return dataset.validate(folder).headline()


class ONFHTrainingTest(ScriptedLoadableModuleTest):
    def runTest(self):
        self.test_missing_folder_is_reported()

    def test_missing_folder_is_reported(self):
        message = ONFHTrainingLogic().validationSummary("/nonexistent/onfh-dataset")
        self.assertIn("no such dataset folder", message)
        self.delayDisplay("A missing dataset folder is reported in one sentence")
