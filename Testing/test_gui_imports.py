"""What Slicer's GUI process imports before the first-use install: the two module files, the Logic classes
their `setup()` builds, the Sample Data registration and the dependency plan must need nothing Slicer does
not ship. Run in a clean interpreter where those packages cannot be imported and the Slicer application's
GUI modules (qt, ctk, ScriptedLoadableModule, parameterNodeWrapper) are stand-ins."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_SHIPPED = ("psutil", "pandas", "sklearn", "torch", "monai", "jsonschema", "lifelines", "sksurv",
               "safetensors", "radiomics", "matplotlib")

SCRIPT = textwrap.dedent('''
    import importlib.abc, sys, types, unittest
    NOT_SHIPPED = set(sys.argv[1].split(","))

    class NotShipped(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in NOT_SHIPPED:
                raise ImportError(f"{name} is not shipped with Slicer")
    sys.meta_path.insert(0, NotShipped())

    class Anything:
        """Any Qt object, signal or call of the real application."""
        def __init__(self, *args, **kwargs): pass
        def __call__(self, *args, **kwargs): return Anything()
        def __getattr__(self, name): return Anything()

    def stand_in(name, **attributes):
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        module.__getattr__ = lambda attribute: Anything()
        sys.modules[name] = module
        return module

    import slicer  # the slicer-core wheel: a real MRML library, no application
    class Logic:
        def __init__(self, parent=None): pass
        def getParameterNode(self): return Anything()
    Module, Widget, Mixin = (type(name, (), {}) for name in ("Module", "Widget", "VTKObservationMixin"))
    gui = {"ScriptedLoadableModule": stand_in("slicer.ScriptedLoadableModule", ScriptedLoadableModule=Module,
                                              ScriptedLoadableModuleLogic=Logic, ScriptedLoadableModuleWidget=Widget,
                                              ScriptedLoadableModuleTest=unittest.TestCase),
           "parameterNodeWrapper": stand_in("slicer.parameterNodeWrapper", parameterNodeWrapper=lambda cls: cls),
           "util": stand_in("slicer.util", VTKObservationMixin=Mixin)}
    for name, module in gui.items():
        setattr(slicer, name, module)
    slicer.app = Anything()
    for name in ("qt", "ctk", "SampleData"):
        stand_in(name)

    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    import ONFHAssist, ONFHTraining
    logic = ONFHAssist.ONFHAssistLogic()
    assert "Select a hip MRI or CT" in logic.status(None)
    ONFHAssist.registerSampleData()
    logic.startDeviceCheck()  # starts `onfh info` in a child; the child may import torch, the GUI may not
    logic.device_job.cancel()  # before the install there is no psutil: the child alone is stopped
    ONFHTraining.ONFHTrainingLogic()
    from ONFHAssistLib.slicer import dependencies as deps
    deps.plan(deps.read_requirements())
    lines = []  # the first-use install: pip runs in a child and each of its lines reaches the panel
    ONFHAssist._pipInChild(["--no-index", "packaging"], lines.append)  # already satisfied: nothing fetched
    assert any("already satisfied" in line for line in lines), lines
    try:
        ONFHAssist._pipInChild(["--no-index", "onfh-no-such-package"], lines.append)
        raise AssertionError("a failed pip install passed silently")
    except RuntimeError as error:
        assert "pip could not install" in str(error)
    loaded = sorted(n for n in sys.modules if n.split(".")[0] in NOT_SHIPPED)
    print("GUI OK", loaded)
''')


def test_module_files_and_their_setup_import_only_what_slicer_ships():
    run = subprocess.run([sys.executable, "-c", SCRIPT, ",".join(NOT_SHIPPED), str(ROOT / "ONFHAssist"),
                          str(ROOT / "ONFHTraining")], capture_output=True, encoding="utf-8", cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "GUI OK []" in run.stdout


def test_the_stand_in_blocker_does_block():
    """The check above can fail: importing a blocked package through the same blocker raises."""
    probe = SCRIPT.split("class Anything")[0]
    run = subprocess.run([sys.executable, "-c", probe + "import psutil\n", "psutil", "", ""], capture_output=True,
                         encoding="utf-8", timeout=60)
    assert run.returncode != 0 and "psutil is not shipped with Slicer" in run.stderr
