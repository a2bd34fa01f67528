"""Where the installed module's files live: everything the code reads at run time sits under the module's
own `Resources/` folder and is listed in its CMake RESOURCES, so the source tree and a Slicer install
(`lib/Slicer-X.Y/qt-scripted-modules/`) resolve the same paths (`Testing/test_packaged_layout.py`)."""
from pathlib import Path

MODULE_RESOURCES = Path(__file__).resolve().parents[1] / "Resources"
MODELS = MODULE_RESOURCES / "Models"
DEMO = MODULE_RESOURCES / "Demo"
RADIOMICS_PARAMS = MODULE_RESOURCES / "Radiomics" / "onfh_radiomics_v1.yaml"
TERMS = MODULE_RESOURCES / "ONFH.term.json"
REQUIREMENTS = MODULE_RESOURCES / "requirements.txt"
