"""The layout is the architecture: which room may import which, checked on every import statement
(lazy imports inside functions included), so a wrong-way arrow fails here instead of in review."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "ONFHAssist" / "ONFHAssistLib"
MODULE_FILES = [ROOT / "ONFHAssist" / "ONFHAssist.py", ROOT / "ONFHTraining" / "ONFHTraining.py"]
PACKAGE = "ONFHAssistLib"


def module_name(path: Path, lib: Path = LIB) -> str:
    parts = list(path.relative_to(lib.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, lib: Path = LIB) -> set[str]:
    """Absolute names of everything `path` imports, `from X import y` counted as X and X.y."""
    name = module_name(path, lib)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    return found


def lib_files() -> list[Path]:
    return sorted(p for p in LIB.rglob("*.py") if "__pycache__" not in p.parts)


def imports_of(room: str) -> dict[str, set[str]]:
    return {module_name(p): imported_modules(p) for p in lib_files()
            if module_name(p) == f"{PACKAGE}.{room}" or module_name(p).startswith(f"{PACKAGE}.{room}.")}


def offenders(imports: dict[str, set[str]], forbidden: list[str]) -> list[str]:
    return sorted(f"{module} imports {name}" for module, names in imports.items() for name in names
                  if any(name == f or name.startswith(f + ".") for f in forbidden))


def test_resolver_sees_relative_and_lazy_imports(tmp_path):
    """The checker itself: a relative import two levels up inside a function resolves to its absolute name."""
    probe = tmp_path / PACKAGE / "survival" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("import numpy\ndef f():\n    from ..analysis import results\n", encoding="utf-8")
    names = imported_modules(probe, tmp_path / PACKAGE)
    assert names == {"numpy", "ONFHAssistLib.analysis", "ONFHAssistLib.analysis.results"}
    assert offenders({"probe": names}, [f"{PACKAGE}.analysis"]) == [
        "probe imports ONFHAssistLib.analysis", "probe imports ONFHAssistLib.analysis.results"]


@pytest.mark.parametrize("room", ["imaging", "models", "survival", "phantom"])
def test_lower_rooms_never_import_upper_rooms(room):
    forbidden = [f"{PACKAGE}.{r}" for r in ("analysis", "training", "slicer", "cli")]
    if room == "phantom":
        forbidden.append(f"{PACKAGE}.models")
    assert imports_of(room), f"room {room} is empty"
    assert offenders(imports_of(room), forbidden) == []


def test_nothing_below_imports_cli():
    everything = {module_name(p): imported_modules(p) for p in lib_files()
                  if module_name(p) not in (f"{PACKAGE}.cli", f"{PACKAGE}.__main__")}
    assert offenders(everything, [f"{PACKAGE}.cli"]) == []


def test_web_room_imports_only_what_it_may_and_only_cli_imports_it():
    """ONFH Assist Web is a room of its own on top: it shows analyses (analysis/), through the scene bridge
    (slicer/), run as children (jobs, progress), saving uploads whole (atomic, imaging's file types); it reaches
    Slicer's core only through trame-slicer and mrml."""
    web = imports_of("web")
    assert web, "the web room is empty"
    ours = {name for names in web.values() for name in names if name.startswith(f"{PACKAGE}.")}
    allowed = [f"{PACKAGE}.{r}" for r in ("web", "analysis", "slicer", "jobs", "progress", "atomic",
                                                  "imaging")]
    assert sorted(n for n in ours if not any(n == a or n.startswith(a + ".") for a in allowed)) == []
    assert offenders(web, ["slicer", "vtk", "vtkmodules", "qt", "ctk", "torch"]) == []
    others = {module_name(p): imported_modules(p) for p in lib_files()
              if not module_name(p).startswith(f"{PACKAGE}.web") and module_name(p) != f"{PACKAGE}.cli"}
    assert offenders(others, [f"{PACKAGE}.web"]) == []


def test_model_store_knows_nothing_of_training():
    assert offenders({"store": imported_modules(LIB / "models" / "store.py")}, [f"{PACKAGE}.training"]) == []


def test_only_the_slicer_room_and_module_files_import_slicer_qt_ctk():
    outside = {module_name(p): imported_modules(p) for p in lib_files()
               if not module_name(p).startswith(f"{PACKAGE}.slicer")}
    assert offenders(outside, ["slicer", "qt", "ctk", "vtk"]) == []
    slicer_room = imports_of("slicer")
    assert offenders(slicer_room, ["qt", "ctk", "slicer.ScriptedLoadableModule"]) == []
    assert any("slicer" in names for names in slicer_room.values()), "mrml is expected to import slicer"


def test_every_room_says_what_it_owns():
    for room in ("imaging", "phantom", "analysis", "survival", "models", "training", "slicer", "web"):
        doc = ast.get_docstring(ast.parse((LIB / room / "__init__.py").read_text(encoding="utf-8")))
        assert doc and len(doc.split()) >= 15, f"{room}/__init__.py needs a docstring"
