"""The extension as Slicer installs it: only what the CMake lists name, copied into a
`qt-scripted-modules/` folder, must run the demo and load its result into an MRML scene.

`slicerMacroBuildScriptedModule` installs the listed SCRIPTS and RESOURCES (relative paths kept) and
nothing else, so a file the code reads but CMake does not list does not exist in a user's Slicer:
this test fails on it, the way an installed extension would."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("ONFHAssist", "ONFHTraining")


def cmake_list(module: str, variable: str) -> list[str]:
    text = (ROOT / module / "CMakeLists.txt").read_text(encoding="utf-8")
    body = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S).group(1)
    return [item.replace("${MODULE_NAME}", module) for item in body.split()]


def install_tree(target: Path) -> Path:
    """What `slicerMacroBuildScriptedModule` puts in lib/Slicer-X.Y/qt-scripted-modules."""
    modules = target / "lib" / "Slicer-5.10" / "qt-scripted-modules"
    for module in MODULES:
        for item in cmake_list(module, "MODULE_PYTHON_SCRIPTS") + cmake_list(module, "MODULE_PYTHON_RESOURCES"):
            destination = modules / item
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / module / item, destination)
    return modules


def test_every_file_under_resources_is_listed():
    listed = set(cmake_list("ONFHAssist", "MODULE_PYTHON_RESOURCES"))
    folder = ROOT / "ONFHAssist"
    on_disk = {str(p.relative_to(folder)) for p in (folder / "Resources").rglob("*") if p.is_file()}
    on_disk |= {str(p.relative_to(folder)) for p in (folder / "ONFHAssistLib").rglob("*.json")}
    assert on_disk <= listed, sorted(on_disk - listed)


@pytest.mark.slow
def test_installed_layout_runs_the_demo_and_loads_it_into_a_scene(tmp_path):
    pytest.importorskip("slicer")
    modules = install_tree(tmp_path / "install")
    env = {**os.environ, "PYTHONPATH": str(modules), "ONFH_MODELS": str(tmp_path / "user-models")}
    out = tmp_path / "demo"
    script = f"""
import sys, ONFHAssistLib
assert ONFHAssistLib.__file__.startswith({str(modules)!r}), ONFHAssistLib.__file__
from ONFHAssistLib.cli import main
code = main(["demo", "--out", {str(out)!r}, "--device", "cpu"])
from ONFHAssistLib.imaging import io
from ONFHAssistLib.slicer import demo_case, mrml
scene = mrml.new_scene()
volume = mrml.add_volume(scene, io.read_image(demo_case.image_path()), "ONFH input")
nodes = mrml.load_analysis(scene, {str(out)!r}, volume)
print("NODES", sorted(nodes), nodes["segmentation"].GetSegmentation().GetNumberOfSegments())
sys.exit(code)
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                         encoding="utf-8")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "NODES" in run.stdout and run.stdout.split("NODES", 1)[1].split()[-1] == "3"
    analysis = json.loads((out / "analysis.json").read_text(encoding="utf-8"))
    assert [h["found"] for h in analysis["hips"]] == [True, True]
    assert {m["name"] for m in analysis["models"]} >= {"onfh-localizer", "onfh-segmentation"}
