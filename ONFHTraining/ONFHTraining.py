"""ONFH Training: dataset curation, training and cross-validation from the UI. Thin Slicer shell."""
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
        self.ui.statusLabel.text = "Ready. Choose a dataset folder."

    def onDatasetChanged(self, path):
        self.ui.validateButton.enabled = bool(path)

    def onValidate(self):
        with slicer.util.tryWithErrorDisplay("Dataset validation failed.", waitCursor=True):
            self.ui.statusLabel.text = self.logic.validationSummary(self.ui.datasetPathLineEdit.currentPath)


class ONFHTrainingLogic(ScriptedLoadableModuleLogic):
    """Facade the panel calls; every step is delegated to ONFHAssistLib."""

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
