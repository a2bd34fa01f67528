"""The Slicer extension's shell: CMake lists every file, module classes and texts, panels, icons."""
import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("ONFHAssist", "ONFHTraining")
PAPERS = ("Spatial Label Encoder", "SRANet", "nomogram", "3D-ONFHNet")


def _cmake_list(module: str, variable: str) -> list[str]:
    text = (ROOT / module / "CMakeLists.txt").read_text(encoding="utf-8")
    body = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S).group(1)
    return [item.replace("${MODULE_NAME}", module) for item in body.split()]


def test_extension_cmake_is_a_slicer_extension():
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    for needle in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                   "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", 'set(EXTENSION_DEPENDS "PyTorch")',
                   "find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(ONFHAssist)",
                   "add_subdirectory(ONFHTraining)", "${Slicer_EXTENSION_GENERATE_CONFIG}", "${Slicer_EXTENSION_CPACK}"):
        assert needle in text, needle
    screenshots = re.search(r'set\(EXTENSION_SCREENSHOTURLS "([^"]*)"\)', text).group(1).split()
    prefix = "https://raw.githubusercontent.com/onfh-assist/SlicerONFHAssist/main/"
    assert screenshots and all(url.startswith(prefix) and (ROOT / url[len(prefix):]).is_file() for url in screenshots)
    assert "Slicer 5.10 or newer" in text


def test_module_cmake_lists_every_python_file_and_resource():
    for module in MODULES:
        folder = ROOT / module
        on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*.py") if "__pycache__" not in p.parts}
        assert set(_cmake_list(module, "MODULE_PYTHON_SCRIPTS")) == on_disk
        resources = _cmake_list(module, "MODULE_PYTHON_RESOURCES")
        assert all((folder / r).is_file() for r in resources), resources
        text = (folder / "CMakeLists.txt").read_text(encoding="utf-8")
        assert "WITH_GENERIC_TESTS" in text and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


def test_module_files_define_module_widget_logic_and_test():
    for module in MODULES:
        source = (ROOT / module / f"{module}.py").read_text(encoding="utf-8")
        tree = ast.parse(source)
        classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
        assert {module, f"{module}Widget", f"{module}Logic", f"{module}Test"} <= classes
        assert 'categories = ["ONFH"]' in source and f"UI/{module}.ui" in source
    citations = (ROOT / "ONFHAssist" / "ONFHAssist.py").read_text(encoding="utf-8")
    assert all(paper in citations for paper in PAPERS)
    assert "CITATIONS" in (ROOT / "ONFHTraining" / "ONFHTraining.py").read_text(encoding="utf-8")


def test_panels_hold_every_widget_the_module_uses():
    for module in MODULES:
        tree = ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui")
        names = {w.get("name") for w in tree.iter("widget")}
        used = set(re.findall(r"self\.ui\.(\w+)", (ROOT / module / f"{module}.py").read_text(encoding="utf-8")))
        assert used and used <= names, used - names
        assert {"titleLabel", "statusLabel"} <= names


def test_icons_are_128_pixel_pngs():
    for path in (ROOT / "ONFHAssist.png", ROOT / "ONFHAssist/Resources/Icons/ONFHAssist.png",
                 ROOT / "ONFHTraining/Resources/Icons/ONFHTraining.png"):
        with Image.open(path) as icon:
            assert icon.format == "PNG" and icon.size == (128, 128)


def _parameter_fields(module: str) -> dict[str, ast.AnnAssign]:
    """Fields of the module's @parameterNodeWrapper class, by name."""
    tree = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    (wrapper,) = [node for node in tree.body if isinstance(node, ast.ClassDef)
                  and any(getattr(d, "id", "") == "parameterNodeWrapper" for d in node.decorator_list)]
    return {f.target.id: f for f in wrapper.body if isinstance(f, ast.AnnAssign)}


def _choices(field: ast.AnnAssign, module: str) -> list[str] | None:
    for call in ast.walk(field.annotation):
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "Choice":
            arg = call.args[0]
            if isinstance(arg, ast.Name):  # a module-level constant such as TASKS
                tree = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
                arg = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == arg.id)
            return [ast.literal_eval(e) for e in arg.elts]
    return None


def test_every_bound_widget_names_a_parameter_of_a_type_it_can_hold():
    """connectGui binds widgets by their SlicerParameterName: each must name a field, a combo box needs a
    Choice listing its items (the wrapper refills it from the Choice), and every field is shown somewhere."""
    kinds = {"QComboBox": "str", "QLineEdit": "str", "QCheckBox": "bool", "QSpinBox": "int", "QDoubleSpinBox": "float",
             "ctkSliderWidget": "float", "ctkPathLineEdit": "Path", "qMRMLNodeComboBox": "vtkMRML"}
    for module in MODULES:
        fields = _parameter_fields(module)
        tree = ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui")
        bound = {}
        for widget in tree.iter("widget"):
            prop = widget.find("property[@name='SlicerParameterName']")
            if prop is None:
                continue
            name = prop.find("string").text
            assert name in fields, (module, name)
            bound[name] = widget
            annotation = ast.unparse(fields[name].annotation)
            assert kinds[widget.get("class")] in annotation, (module, name, annotation)
            if widget.get("class") == "QComboBox":
                items = [i.find("property/string").text for i in widget.findall("item")]
                assert _choices(fields[name], module) == items, (module, name)
        assert set(bound) == set(fields), (module, set(fields) - set(bound))
