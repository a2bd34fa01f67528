"""First-use dependencies for the Slicer modules: what is missing, and the pip arguments that install it.

Slicer ships its own SimpleITK, numpy and requests, and torch comes from the PyTorch extension; pip
replacing any of them (as a dependency of MONAI or pyradiomics, say) can break Slicer itself. So the
plan never installs a protected package, and the pip call pins the protected packages already present
with a constraints file. The module file only asks once (listing everything) and makes the Slicer
calls; the decisions live here, testable without Slicer.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .. import resources
from ..errors import InputError

REQUIREMENTS_FILE = resources.REQUIREMENTS
# Slicer's own Python packages (its SuperBuild External_python-*.cmake, 5.10) and torch (the PyTorch
# extension's): never installed by pip here, and pinned in the constraints file so that no dependency of
# what we install can upgrade them under Slicer.
PROTECTED = ("SimpleITK", "torch", "requests", "numpy", "scipy", "urllib3", "certifi", "idna", "charset-normalizer",
             "Pillow", "packaging", "pydicom", "dicomweb-client", "pip", "setuptools", "wheel")
VersionOf = Callable[[str], str]


def read_requirements(path: str | Path = REQUIREMENTS_FILE) -> list[Requirement]:
    """The requirement lines of a requirements file (comments and blank lines skipped)."""
    path = Path(path)
    requirements = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            requirements.append(Requirement(text))
        except InvalidRequirement:
            raise InputError(f"{path} line {number}: {text!r} is not a valid requirement.") from None
    return requirements


def installed_version(name: str, version_of: VersionOf = importlib.metadata.version) -> str | None:
    try:
        return version_of(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def is_satisfied(requirement: Requirement, version_of: VersionOf = importlib.metadata.version) -> bool:
    """Installed in a version the specifier allows (pre-releases count, as in Slicer's nightly builds)."""
    version = installed_version(requirement.name, version_of)
    return version is not None and requirement.specifier.contains(version, prereleases=True)


def is_protected(name: str) -> bool:
    return canonicalize_name(name) in {canonicalize_name(p) for p in PROTECTED}


@dataclass
class Plan:
    """What to install (never a protected package) and which protected packages are missing or too old
    (for the user to update Slicer or the PyTorch extension, not for pip)."""

    install: list[Requirement] = field(default_factory=list)
    protected_unmet: list[Requirement] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        return not self.install and not self.protected_unmet


def plan(requirements: list[Requirement], version_of: VersionOf = importlib.metadata.version) -> Plan:
    """Sort the unmet requirements (whose environment markers apply here) into installable and protected."""
    result = Plan()
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        if is_satisfied(requirement, version_of):
            continue
        (result.protected_unmet if is_protected(requirement.name) else result.install).append(requirement)
    return result


def constraints_text(version_of: VersionOf = importlib.metadata.version) -> str:
    """A pip constraints file pinning every protected package that is installed, so that no dependency
    of what we install can upgrade or replace it."""
    lines = [f"{name}=={version}" for name in PROTECTED if (version := installed_version(name, version_of))]
    return "\n".join(lines) + ("\n" if lines else "")


def check_wheelhouse(folder: str | Path | None) -> Path | None:
    """The offline wheel folder from the settings, or None when unset; a set folder must exist."""
    if folder is None or not str(folder).strip():
        return None
    path = Path(str(folder).strip()).expanduser()
    if not path.is_dir():
        raise InputError(f"wheelhouse folder {path} does not exist; fix it in the ONFH Assist settings or clear it.")
    return path


def pip_args(requirements: list[Requirement], constraints_file: str | Path | None = None,
             wheelhouse: str | Path | None = None) -> list[str]:
    """Arguments after `pip install`: the requirements, the constraints file, and for an offline site
    `--no-index --find-links WHEELHOUSE` so pip never reaches for the network."""
    if any(is_protected(r.name) for r in requirements):
        raise ValueError("a protected package (Slicer's own) was about to be installed with pip.")
    args = [str(r) for r in requirements]
    if constraints_file is not None:
        args += ["-c", str(constraints_file)]
    folder = check_wheelhouse(wheelhouse)
    if folder is not None:
        args += ["--no-index", "--find-links", str(folder)]
    return args


def confirmation_text(install_plan: Plan) -> str:
    """The one question the user answers before anything is installed, listing every package."""
    lines = []
    if install_plan.install:
        lines.append("ONFH Assist needs these Python packages, which will be installed into Slicer's Python now:")
        lines += [f"  • {r}" for r in install_plan.install]
    if install_plan.protected_unmet:
        lines.append("These come with Slicer or the PyTorch extension and are not installed by ONFH Assist "
                     "(update Slicer or use the PyTorch extension):")
        lines += [f"  • {r}" for r in install_plan.protected_unmet]
    return "\n".join(lines)
