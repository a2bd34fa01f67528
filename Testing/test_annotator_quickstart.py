"""The README's annotator quick start runs as written (issue 24): three cases added from the command line with
their head centres found by the localiser, a brief fine-tune without validation, an evaluation on a held-out
case, and a model card that says who the model is and what it was trained on."""
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def quickstart_block() -> str:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Annotator quick start", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def test_readme_quickstart_runs_as_written(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "ONFH_MODELS": str(tmp_path / "store"), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", quickstart_block()], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"train segmentation: wrote {tmp_path / 'runs' / 'seg-mine'}" in run.stdout
    assert f"evaluate segmentation: wrote {tmp_path / 'runs' / 'seg-mine-heldout'}" in run.stdout

    # head centres found by the localiser against the phantom's truth (sub-voxel at 3 mm)
    truth = pd.read_csv(tmp_path / "scans" / "hips.csv")
    mine = pd.read_csv(tmp_path / "mine" / "hips.csv")
    assert len(mine) == 6 and mine.arco.tolist()[:2] == [0, 2]  # 'arco=II' stored as the code 2
    for (_, row), (_, true) in zip(mine.iterrows(), truth[truth.patient_id != "P0050003"].iterrows()):
        error = np.linalg.norm(row[["head_x", "head_y", "head_z"]].to_numpy(float)
                               - true[["head_x", "head_y", "head_z"]].to_numpy(float))
        assert error < 3.0, (row.scan_id, row.side, error)

    card = json.loads((tmp_path / "runs" / "seg-mine" / "model" / "model.json").read_text(encoding="utf-8"))
    assert (card["name"], card["version"], card["phantom_trained"]) == ("segmentation-mine", "1.0.0", False)
    assert "not validated for clinical use" in card["label"]
    sha = hashlib.sha256((tmp_path / "mine" / "hips.csv").read_bytes()).hexdigest()
    assert card["training_dataset"] == {"name": "mine", "cases": 3, "hips": 6, "patients": 3, "hips_csv_sha256": sha}
    assert card["initialised_from"]["name"] == "onfh-segmentation"
    assert card["class_weights"] == [1.0, 1.0, 1.0, 4.0]  # the recipe's own, no --necrosis-weight given
    assert len(card["history"]) == 2 and card["selection"] == "no validation: the last of 2 epochs is kept"

    summary = json.loads((tmp_path / "runs" / "seg-mine-heldout" / "summary.json").read_text(encoding="utf-8"))
    per_hip = pd.read_csv(tmp_path / "runs" / "seg-mine-heldout" / "per_hip.csv")
    assert len(per_hip) == 2 and per_hip.found.all()
    assert (per_hip.other_side_error_mm > per_hip.center_error_mm + 100.0).all()  # each side found on its own hip
    assert per_hip.in_view.all() and summary["found_in_view"] == summary["hips_in_view"] == 2
    assert summary["dice_femur_mean"] == pytest.approx(per_hip.dice_femur.mean(), abs=1e-4)  # the CSV has 4 decimals
    assert summary["dice_femur_mean"] > 0.8
    assert summary["radius_error_mm_median"] is None  # no phantom truth in a user's dataset: null, not a crash


def test_a_name_and_version_exist_once(tmp_path, monkeypatch, capsys):
    """`models import` refuses a second onfh-localizer 1.0.0 with other weights (it was listed twice and never
    used); a trained model's version is one above every installed model of its name."""
    import torch

    from ONFHAssistLib.cli import main
    from ONFHAssistLib.models import networks, store
    from ONFHAssistLib.training.model_identity import next_version

    monkeypatch.setenv("ONFH_MODELS", str(tmp_path / "store"))
    _, shipped = networks.load("localizer", "onfh-localizer", torch.device("cpu"))
    torch.manual_seed(1)
    other = networks.build("localizer", shipped.card)
    card = {k: v for k, v in shipped.card.items() if k not in ("sha256", "size_mb", "parameters", "created")}
    copy = store.save_model(tmp_path / "copy", other, card)
    assert copy.card["sha256"] != shipped.card["sha256"]
    store.export_zip(copy, tmp_path / "other.zip")
    assert main(["models", "import", str(tmp_path / "other.zip")]) == 2
    assert f"onfh-localizer {shipped.version} already exists at {shipped.folder} with other weights" in \
        capsys.readouterr().err
    assert [e.folder for e in store.list_models("localizer") if e.name == "onfh-localizer"] == [shipped.folder]
    store.export_zip(shipped, tmp_path / "same.zip")  # the same weights: a copy may live in the user store, once
    assert main(["models", "import", str(tmp_path / "same.zip")]) == 0
    assert main(["models", "import", str(tmp_path / "same.zip")]) == 2
    assert "a model with this name and version is already in the store" in capsys.readouterr().err
    major, minor = (int(p) for p in shipped.version.split(".")[:2])
    assert next_version("localizer", "onfh-localizer") == f"{major}.{minor + 1}.0"
    assert next_version("localizer", "localizer-mine") == "1.0.0"
