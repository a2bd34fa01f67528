"""Can Slicer's Python install the module's requirements from binary wheels on every OS?

    make slicer-deps        (needs the package index; not part of `make test`)

For CPython 3.12 (Slicer 5.10) on Linux, Windows and macOS, pip resolves ONFHAssist/Resources/requirements.txt
(plus torch, which the PyTorch extension installs, and pyradiomics, which is left out on purpose) with
`--only-binary=:all:` as a dry run (metadata only, nothing is downloaded), one requirement at a time with
its dependencies, and prints a Markdown table: package × OS, the wheel version pip would install, or
"no wheel" and pip's reason (which may be a dependency's).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[1] / "ONFHAssist" / "Resources" / "requirements.txt"
PLATFORMS = {"Linux x86_64": ["manylinux_2_28_x86_64", "manylinux2014_x86_64"], "Windows x64": ["win_amd64"],
             "macOS arm64": ["macosx_14_0_arm64", "macosx_11_0_arm64"]}
EXTRA = ["torch", "pyradiomics>=3.0.1"]


def resolve(requirements: list[str], platforms: list[str]) -> dict[str, str]:
    """{package: version} pip would install from wheels, or {requirement: 'no wheel: …'} when it cannot."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                "--report", f"{tmp}/report.json", "--target", f"{tmp}/target", "--only-binary=:all:",
                "--python-version", "3.12", *[a for p in platforms for a in ("--platform", p)], *requirements]
        run = subprocess.run(argv, capture_output=True, text=True)
        if run.returncode != 0:
            last = [line for line in run.stderr.splitlines() if line.startswith("ERROR")]
            return {requirements[0]: "no wheel" + (f" ({last[0][7:90]})" if last else "")}
        report = json.loads(Path(f"{tmp}/report.json").read_text(encoding="utf-8"))
    return {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in report["install"]}


def main() -> None:
    lines = [line.split("#")[0].strip() for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines()]
    wanted = [line for line in lines if line]
    print("| package | " + " | ".join(PLATFORMS) + " |")
    print("|---|" + "---|" * len(PLATFORMS))
    for requirement in wanted + EXTRA:
        name = requirement.split(">")[0].split("=")[0].split("<")[0].lower()
        cells = []
        for platforms in PLATFORMS.values():
            found = resolve([requirement], platforms)
            cells.append(found.get(name) or found.get(requirement) or "no wheel")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
