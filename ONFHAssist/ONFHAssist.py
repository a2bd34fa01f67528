"""ONFH Assist: the clinical module. Thin Slicer shell; the science lives in ONFHAssistLib."""
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


class ONFHAssistWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        panel = slicer.util.loadUI(self.resourcePath("UI/ONFHAssist.ui"))
        self.layout.addWidget(panel)
        self.ui = slicer.util.childWidgetVariables(panel)
        panel.setMRMLScene(slicer.mrmlScene)
        self.logic = ONFHAssistLogic()
        self.ui.inputVolumeSelector.currentNodeChanged.connect(self.updateStatus)
        self.updateStatus()

    def updateStatus(self, *_):
        self.ui.statusLabel.text = self.logic.status(self.ui.inputVolumeSelector.currentNode())


class ONFHAssistLogic(ScriptedLoadableModuleLogic):
    """Facade the panel calls; every step is delegated to ONFHAssistLib."""

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
