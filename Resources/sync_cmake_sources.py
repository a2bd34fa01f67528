"""Rewrite MODULE_PYTHON_SCRIPTS in ONFHAssist/CMakeLists.txt from the files on disk.

    python Resources/sync_cmake_sources.py

Run after adding or removing a file in ONFHAssistLib; Testing/test_slicer_module.py fails until you do.
"""
import re
from pathlib import Path

MODULE = Path(__file__).resolve().parents[1] / "ONFHAssist"


def main() -> None:
    scripts = ["${MODULE_NAME}.py"] + sorted(
        str(p.relative_to(MODULE)) for p in (MODULE / "ONFHAssistLib").rglob("*.py") if "__pycache__" not in p.parts)
    cmake = MODULE / "CMakeLists.txt"
    body = "".join(f"  {s}\n" for s in scripts)
    text = re.sub(r"(set\(MODULE_PYTHON_SCRIPTS\n).*?(  \))", lambda m: m.group(1) + body + m.group(2),
                  cmake.read_text(encoding="utf-8"), flags=re.S)
    cmake.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
