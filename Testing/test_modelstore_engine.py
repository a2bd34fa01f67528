"""Model store (checksums, safetensors only, zip slip) and the shared training engine (resume, best)."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from ONFHAssistLib.models import store as modelstore
from ONFHAssistLib.imaging.crops import CropSpec, hip_crop, uncrop
from ONFHAssistLib.errors import InputError
from ONFHAssistLib.training.engine import Trainer


def _tiny():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))


def test_save_load_verify_and_tamper(tmp_path):
    model = _tiny()
    entry = modelstore.save_model(tmp_path / "m", model, {"name": "tiny", "task": "toy", "version": "1.0"})
    assert entry.card["parameters"] == 21 and len(entry.card["sha256"]) == 64
    loaded = modelstore.load_weights(modelstore.read_entry(tmp_path / "m"), _tiny().apply(lambda m: None))
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(InputError, match="cannot be used for"):
        modelstore.load_weights(entry, _tiny(), task="segmentation")
    weights = tmp_path / "m" / modelstore.WEIGHTS
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="checksum mismatch"):
        modelstore.load_weights(entry, _tiny())


def test_bad_model_folders(tmp_path):
    with pytest.raises(InputError, match="not a model folder"):
        modelstore.read_entry(tmp_path)
    (tmp_path / modelstore.CARD).write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        modelstore.read_entry(tmp_path)
    (tmp_path / modelstore.CARD).write_text(json.dumps({"name": "x", "task": "t", "version": "1", "sha256": "0"}))
    (tmp_path / "weights.pt").write_bytes(b"pickle would be here")
    with pytest.raises(InputError, match="only safetensors"):
        modelstore.read_entry(tmp_path)
    entry = modelstore.save_model(tmp_path / "wrong", torch.nn.Linear(2, 2), {"name": "w", "task": "toy", "version": "1"})
    with pytest.raises(InputError, match="do not fit"):
        modelstore.load_weights(entry, _tiny())


def test_zip_round_trip_and_zip_slip(tmp_path, monkeypatch):
    monkeypatch.setenv("ONFH_MODELS", str(tmp_path / "store"))
    entry = modelstore.save_model(tmp_path / "src", _tiny(), {"name": "tiny", "task": "toy", "version": "2.1"})
    zipped = modelstore.export_zip(entry, tmp_path / "tiny.zip")
    imported = modelstore.import_zip(zipped)
    assert imported.folder.parent == tmp_path / "store" and imported.card["sha256"] == entry.card["sha256"]
    assert modelstore.find_model("toy").version == "2.1"
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside/model.json", "{}")
        zf.writestr("../outside/weights.safetensors", "")
    with pytest.raises(InputError, match="escape"):
        modelstore.import_zip(evil)
    assert not (tmp_path / "outside").exists()
    with pytest.raises(InputError, match="already in the store"):
        modelstore.import_zip(zipped)


def test_newest_compatible_version_is_chosen(tmp_path, monkeypatch):
    monkeypatch.setenv("ONFH_MODELS", str(tmp_path))
    for v in ("1.9", "1.10", "1.2"):
        modelstore.save_model(tmp_path / f"t-{v}", _tiny(), {"name": "tiny", "task": "toy", "version": v})
    assert modelstore.find_model("toy").version == "1.10"
    assert modelstore.find_model("toy", "tiny@1.2").version == "1.2"
    with pytest.raises(InputError, match="no toy model named"):
        modelstore.find_model("toy", "other")


def _regression_setup(init_seed=0):
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    model = _tiny()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(init_seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)

    def loss(m, batch):
        return torch.nn.functional.mse_loss(m(batch[0]), batch[1])

    def validate(m):
        return {"val_loss": float(loss(m, (x, y)))}

    batches = lambda epoch: [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    return model, opt, loss, validate, batches


def test_engine_learns_keeps_best_and_resumes_exactly(tmp_path):
    model, opt, loss, validate, batches = _regression_setup()
    full = Trainer(model, opt, loss, validate, "val_loss", "min", tmp_path / "a").fit(12, batches)
    assert full.history[-1]["val_loss"] < 0.5 * full.history[0]["val_loss"]
    assert full.best_metric == min(h["val_loss"] for h in full.history)

    model, opt, loss, validate, batches = _regression_setup()
    Trainer(model, opt, loss, validate, "val_loss", "min", tmp_path / "b").fit(5, batches)  # "killed" after 5
    model, opt, loss, validate, batches = _regression_setup(init_seed=1)  # fresh process, different init
    resumed = Trainer(model, opt, loss, validate, "val_loss", "min", tmp_path / "b").fit(12, batches)
    assert resumed.resumed_from == 5
    np.testing.assert_allclose([h["val_loss"] for h in resumed.history], [h["val_loss"] for h in full.history],
                               rtol=1e-5)


def test_a_resumed_run_draws_the_same_random_batches_as_an_uninterrupted_one(tmp_path):
    """Batches drawn from the recipe's generator, numpy's global and Python's `random`: all three states are
    checkpointed (rng.json), so every resumed epoch trains on the uninterrupted run's batches, loss for loss."""
    import random

    def run(folder, epochs, init_seed=0):
        model, opt, loss, validate, _ = _regression_setup(init_seed)
        x, y = torch.randn(64, 3, generator=torch.Generator().manual_seed(5)), torch.randn(64, 1)
        rng = np.random.default_rng(7)

        def batches(epoch):
            order = rng.permutation(64)[: 16 + np.random.randint(0, 16) + random.randint(0, 8)]
            return [(x[order], y[order])]

        fit = Trainer(model, opt, loss, validate, "val_loss", "min", folder, rng=rng).fit(epochs, batches)
        return [h["train_loss"] for h in fit.history]

    np.random.seed(3), random.seed(3)
    uninterrupted = run(tmp_path / "a", 6)
    np.random.seed(3), random.seed(3)
    run(tmp_path / "b", 3)  # "killed" after 3 epochs
    np.random.seed(99), random.seed(99)  # a fresh process: other global states, other initial weights
    resumed = run(tmp_path / "b", 6, init_seed=1)
    assert resumed == uninterrupted and len(set(uninterrupted)) == 6
    assert json.loads((tmp_path / "b" / "rng.json").read_text())["generator"]["bit_generator"] == "PCG64"


def test_crop_and_uncrop_put_a_left_hip_back_exactly():
    import SimpleITK as sitk

    img = sitk.Image([60, 40, 30], sitk.sitkUInt8)
    img.SetSpacing((2.0, 2.0, 3.0))
    img.SetOrigin((-60.0, -40.0, -45.0))
    arr = np.zeros((30, 40, 60), np.uint8)
    arr[12:16, 18:22, 40:50] = 3  # a block on the patient's left (+x)
    lab = sitk.GetImageFromArray(arr)
    lab.CopyInformation(img)
    centre = lab.TransformContinuousIndexToPhysicalPoint((44.5, 19.5, 13.5))
    spec = CropSpec(box_mm=40, spacing_mm=1.0)
    crop = hip_crop(lab, centre, "L", spec, label=True)
    carr = sitk.GetArrayFromImage(crop)
    # Mirrored: the block's lateral edge now points to -x (the right-hip convention).
    xs = np.nonzero(carr.any(axis=(0, 1)))[0]
    assert xs.min() < spec.size / 2 < xs.max()
    back = sitk.GetArrayFromImage(uncrop(crop, "L", centre, lab, label=True))
    np.testing.assert_array_equal(back, arr)


def test_publish_copies_a_verified_model_into_the_user_store_once(tmp_path):
    from ONFHAssistLib.models.staging import MulPoolDenseNet

    card = {"name": "my-staging", "task": "staging", "version": "2.0.0", "system": "binary", "classes": 2,
            "architecture": dict(growth=4, blocks=[2, 2], init_features=8), "crop": {}}
    trained = modelstore.save_model(tmp_path / "run" / "model", MulPoolDenseNet(2, growth=4, blocks=(2, 2),
                                                                                init_features=8), card)
    published = modelstore.publish_folder(trained.folder, tmp_path / "store")
    assert published.folder == tmp_path / "store" / "my-staging-2.0.0"
    assert published.card["sha256"] == trained.card["sha256"]
    with pytest.raises(InputError, match="already in the store"):
        modelstore.publish_folder(trained.folder, tmp_path / "store")
    (trained.folder / modelstore.WEIGHTS).write_bytes(b"tampered")
    with pytest.raises(InputError, match="checksum mismatch"):
        modelstore.publish_folder(trained.folder, tmp_path / "other")
    assert not (tmp_path / "other").exists() or not any((tmp_path / "other").iterdir())
