"""First-use dependency plan: what is missing, what is never touched (Slicer's own), and pip arguments pip accepts."""
import importlib.metadata
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

from ONFHAssistLib.slicer import dependencies as deps
from ONFHAssistLib.errors import InputError


def _versions(table: dict[str, str]):
    def version_of(name):
        for key, value in table.items():
            if key.lower().replace("_", "-") == name.lower().replace("_", "-"):
                return value
        raise importlib.metadata.PackageNotFoundError(name)
    return version_of


def test_requirements_file_parses_and_every_line_names_a_package_to_install():
    requirements = deps.read_requirements()
    names = [r.name for r in requirements]
    assert "monai" in names and "scikit-survival" in names
    assert not any(deps.is_protected(n) for n in names)  # the shipped file never asks pip for Slicer's own
    assert deps.plan(requirements).nothing_to_do  # this test environment has them all (pyproject's list)


def test_plan_sorts_missing_too_old_and_protected_and_skips_foreign_markers():
    requirements = [Requirement(t) for t in (
        "monai>=1.3", "lifelines>=0.27", "psutil>=5.9", "torch>=2.2", "SimpleITK>=2.3", "scikit_survival>=0.22",
        "pywin32>=300; sys_platform == 'nonexistent-os'")]
    installed = _versions({"monai": "1.2.0", "lifelines": "0.30.0", "torch": "2.1.0", "simpleitk": "2.4.0",
                           "scikit-survival": "0.23.0rc1"})
    plan = deps.plan(requirements, installed)
    assert [str(r) for r in plan.install] == ["monai>=1.3", "psutil>=5.9"]  # too old, missing
    assert [str(r) for r in plan.protected_unmet] == ["torch>=2.2"]  # reported, never pip-installed
    text = deps.confirmation_text(plan)
    assert "• monai>=1.3" in text and "• psutil>=5.9" in text and "PyTorch extension" in text
    assert text.index("monai") < text.index("torch")


def test_constraints_pin_the_protected_packages_that_are_installed():
    text = deps.constraints_text(_versions({"SimpleITK": "2.4.0", "numpy": "1.26.4", "requests": "2.32.0"}))
    assert text.splitlines() == ["SimpleITK==2.4.0", "requests==2.32.0", "numpy==1.26.4"]
    assert deps.constraints_text(_versions({})) == ""
    slicer_owned = deps.constraints_text(_versions({"scipy": "1.14.1", "pillow": "11.0.0", "packaging": "24.2"}))
    assert slicer_owned.splitlines() == ["scipy==1.14.1", "Pillow==11.0.0", "packaging==24.2"]


def test_requirements_have_no_source_build_and_nothing_slicer_owns():
    names = {r.name.lower() for r in deps.read_requirements()}
    assert "pyradiomics" not in names  # no wheel for Python >= 3.10: installed on demand (radiomics baselines)
    assert not names & {p.lower() for p in deps.PROTECTED}


def test_pip_args_with_wheelhouse_and_constraints_and_refusals(tmp_path):
    requirements = [Requirement("monai>=1.3"), Requirement("psutil>=5.9")]
    assert deps.pip_args(requirements) == ["monai>=1.3", "psutil>=5.9"]
    args = deps.pip_args(requirements, tmp_path / "c.txt", str(tmp_path))
    assert args == ["monai>=1.3", "psutil>=5.9", "-c", str(tmp_path / "c.txt"), "--no-index", "--find-links", str(tmp_path)]
    with pytest.raises(InputError, match="does not exist"):
        deps.pip_args(requirements, wheelhouse=tmp_path / "missing")
    assert deps.pip_args(requirements, wheelhouse="  ") == ["monai>=1.3", "psutil>=5.9"]  # an unset setting
    with pytest.raises(ValueError, match="protected"):
        deps.pip_args([Requirement("SimpleITK>=2")])
    bad = tmp_path / "requirements.txt"
    bad.write_text("monai>=1.3\n\n# comment\nnot a requirement!!\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 4"):
        deps.read_requirements(bad)


def test_pip_accepts_the_offline_arguments_without_the_network(tmp_path):
    """The arguments as pip sees them: an offline install of something already present, pinned by the
    constraints file, succeeds against an empty wheelhouse (no index is contacted)."""
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(deps.constraints_text(), encoding="utf-8")
    assert "numpy==" in constraints.read_text(encoding="utf-8")
    args = deps.pip_args([Requirement("psutil>=5.9")], constraints, tmp_path)
    run = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--disable-pip-version-check", *args],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "already satisfied" in run.stdout
    missing = deps.pip_args([Requirement("onfh-no-such-package-xyz")], constraints, tmp_path)
    run = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--disable-pip-version-check", *missing],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "onfh-no-such-package-xyz" in run.stderr
