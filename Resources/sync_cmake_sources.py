"""Rewrite the MODULE_PYTHON_SCRIPTS and MODULE_PYTHON_RESOURCES lists in ONFHAssist/CMakeLists.txt from
the files on disk:

    python Resources/sync_cmake_sources.py

Slicer installs only what these lists name, so every Python file of ONFHAssistLib is a script and every
file under the module's `Resources/` (models, demo, radiomics parameters, terms, UI, icons) or a JSON file
of the library (the analysis schema) is a resource. Run after adding or removing such a file;
Testing/test_slicer_module.py and Testing/test_packaged_layout.py fail until you do.
"""
import re
from pathlib import Path

MODULE = Path(__file__).resolve().parents[1] / "ONFHAssist"


def _files(pattern: str, folder: Path) -> list[str]:
    return sorted(str(p.relative_to(MODULE)) for p in folder.rglob(pattern)
                  if p.is_file() and "__pycache__" not in p.parts)


def _replace(text: str, variable: str, items: list[str]) -> str:
    body = "".join(f"  {s}\n" for s in items)
    return re.sub(rf"(set\({variable}\n).*?(  \))", lambda m: m.group(1) + body + m.group(2), text, flags=re.S)


def main() -> None:
    cmake = MODULE / "CMakeLists.txt"
    text = cmake.read_text(encoding="utf-8")
    text = _replace(text, "MODULE_PYTHON_SCRIPTS", ["${MODULE_NAME}.py"] + _files("*.py", MODULE / "ONFHAssistLib"))
    text = _replace(text, "MODULE_PYTHON_RESOURCES",
                    _files("*", MODULE / "Resources") + _files("*.json", MODULE / "ONFHAssistLib"))
    cmake.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
