"""Tiny training runs learn: the loss falls and the network segments its own training hips."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from ONFHAssistLib.models import networks
from ONFHAssistLib.phantom.cohort import write_cohort
from ONFHAssistLib.analysis.segment import INFER_SPEC, predict_crop
from ONFHAssistLib.training import TrainSettings, crop_cache, recipe
from ONFHAssistLib.training.evaluation import dice_per_class
from ONFHAssistLib.devices import seed_everything
from ONFHAssistLib.models.segmentation import build_segmenter
from ONFHAssistLib.training.segmentation_recipe import FEATURES, TRAIN_SPEC, _centre


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("tiny") / "data", 3, seed=77, modality="mr_t1")


def _history(model_folder):
    return json.loads((model_folder / "model.json").read_text(encoding="utf-8"))["history"]


def _femur_dice(network, table):
    scores = []
    for path in table.crop:
        image, label = crop_cache.load(path)
        probs = predict_crop(network, _centre(image, INFER_SPEC.size), torch.device("cpu"))
        scores.append(dice_per_class(np.argmax(probs, 0), _centre(label, INFER_SPEC.size))[1])
    return float(np.mean(scores))


def test_segmentation_learns_its_training_hips(cohort, tmp_path):
    settings = TrainSettings(task="segmentation", data=cohort, out=tmp_path, epochs=8, device="cpu", lr=5e-3)
    seed_everything(settings.seed)  # the recipe seeds the same way before building its network
    untrained = build_segmenter(FEATURES).eval()
    result = recipe("segmentation").train(settings, reporter=None)
    history = _history(tmp_path / "model")
    assert history[-1]["train_loss"] < 0.8 * history[0]["train_loss"]
    network, _ = networks.load("segmentation", result["model"], torch.device("cpu"))
    table = crop_cache.build(cohort, TRAIN_SPEC, tmp_path / "cache")
    before, after = _femur_dice(untrained, table), _femur_dice(network, table)
    assert after > 0.4 and after > before + 0.2, (before, after)


def test_localizer_loss_falls(cohort, tmp_path):
    settings = TrainSettings(task="localizer", data=cohort, out=tmp_path, epochs=6, device="cpu", lr=3e-3)
    recipe("localizer").train(settings, reporter=None)
    history = _history(tmp_path / "model")
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]


@pytest.mark.parametrize("task, options", [("staging", dict(system="binary", epochs=10, lr=1e-3)),
                                           ("sranet", dict(epochs=6, lr=5e-4, alpha=1.0))])
def test_staging_and_sranet_training_loss_falls(cohort, tmp_path, task, options):
    settings = TrainSettings(task=task, data=cohort, out=tmp_path, device="cpu", batch_size=2, **options)
    recipe(task).train(settings, reporter=None)
    losses = [epoch["train_loss"] for epoch in _history(tmp_path / "model")]
    assert min(losses[-2:]) < 0.8 * losses[0], losses


@pytest.mark.parametrize("task", ["localizer", "staging", "sranet"])
def test_init_starts_training_from_a_given_model(cohort, tmp_path, task):
    """Fine-tuning: with a vanishing learning rate the result keeps the shipped weights (SRANet skips its
    patch warm-up, which would move them) and the card names the model it started from."""
    shipped, entry = networks.load(task, None, torch.device("cpu"))
    settings = TrainSettings(task=task, data=cohort, out=tmp_path / "tuned", device="cpu", epochs=1, lr=1e-12,
                             batch_size=2, system=entry.card.get("system"), init=entry.name)
    result = recipe(task).train(settings, reporter=None)
    tuned, tuned_entry = networks.load(task, result["model"], torch.device("cpu"))
    assert tuned_entry.card["initialised_from"]["sha256"] == entry.card["sha256"]
    for (name, got), want in zip(tuned.named_parameters(), shipped.parameters()):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0, msg=name)


def test_init_refuses_a_mismatched_network_or_task(cohort, tmp_path, capsys):
    """A model of another shape, or --init for a task that cannot start from one, gets one line and exit 2."""
    from ONFHAssistLib.cli import main

    _, entry = networks.load("staging", None, torch.device("cpu"))
    base = ["train", "staging", "--data", str(cohort), "--out", str(tmp_path / "bad"), "--init", entry.name]
    assert main(base + ["--system", "binary", "--epochs", "1"]) == 2
    assert "--init onfh-staging" in capsys.readouterr().err
    assert main(["train", "survival", "--data", str(cohort), "--init", entry.name]) == 2
    assert "--init works with" in capsys.readouterr().err


def test_staging_evaluation_crops_as_the_model_was_trained(cohort, tmp_path):
    """A model card from before 1.2.0 (96 mm box at 1.5 mm) is evaluated on its own crop, not the recipe's."""
    from ONFHAssistLib.models import store as modelstore
    from ONFHAssistLib.imaging.crops import CropSpec
    from ONFHAssistLib.models.staging import MulPoolDenseNet

    old_crop = CropSpec(96.0, 1.5).to_json()
    card = {"name": "staging-old-crop", "task": "staging", "version": "0.0.1", "system": "binary", "classes": 2,
            "architecture": dict(growth=4, blocks=[2, 2], init_features=8), "input": 64, "crop": old_crop}
    folder = modelstore.save_model(tmp_path / "model", MulPoolDenseNet(2, growth=4, blocks=(2, 2), init_features=8),
                                   card).folder
    settings = TrainSettings(task="staging", data=cohort, out=tmp_path / "eval", device="cpu", model=str(folder))
    recipe("staging").evaluate(settings, reporter=None)
    assert json.loads((tmp_path / "eval" / "cache" / "spec.json").read_text(encoding="utf-8")) == old_crop
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text(encoding="utf-8"))
    assert summary["hips"] == 6
    lesion_hips = int((pd.read_csv(cohort / "hips.csv").ficat > 0).sum())
    assert summary["gradcam"]["lesion_hips"] == lesion_hips > 0
    assert all(0.0 <= summary["gradcam"][k] <= 1.0 for k in ("peak_in_head", "peak_on_lesion"))


def test_staging_evaluation_scores_ficat3_from_the_shipped_arco_network(cohort, tmp_path):
    """seed 003's 0/I/II task read from the five-stage network agrees with scikit-learn's one-vs-rest macro AUC
    on the renormalised probabilities of the hips truly at stage 0-II."""
    from sklearn.metrics import roc_auc_score
    from ONFHAssistLib.imaging.crops import CropSpec
    from ONFHAssistLib.training.staging_recipe import probabilities

    settings = TrainSettings(task="staging", data=cohort, out=tmp_path, device="cpu", model="onfh-staging-arco")
    recipe("staging").evaluate(settings, reporter=None)
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    network, entry = networks.load("staging", "onfh-staging-arco", torch.device("cpu"))
    table = crop_cache.build(cohort, CropSpec(**entry.card["crop"]), tmp_path / "cache")
    early = table.ficat.astype(int).to_numpy() <= 2
    p = probabilities(network, np.stack([crop_cache.load(c)[0] for c in table.crop[early]]), torch.device("cpu"))[:, :3]
    p /= p.sum(1, keepdims=True)
    ficat = table.ficat.astype(int).to_numpy()[early]
    assert len(set(ficat)) == 3 and summary["ficat3"]["hips"] == early.sum()
    assert summary["ficat3"]["macro_auc"] == pytest.approx(roc_auc_score(ficat, p, multi_class="ovr"), abs=1e-9)
    assert summary["ficat3"]["accuracy"] == pytest.approx(np.mean(p.argmax(1) == ficat))
    assert summary["ficat3"]["macro_auc_by_modality"]["mr_t1"] == pytest.approx(summary["ficat3"]["macro_auc"])


def test_ficat3_of_a_cohort_without_early_stages_is_undefined_not_an_error():
    """Every hip at stage III-IV: no hips to score, so the metrics are NaN (null in summary.json), silently."""
    import warnings
    from ONFHAssistLib.training.staging_recipe import early_stages

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = early_stages(np.array([-1, -1]), np.full((2, 5), 0.2), np.array(["ct", "ct"]))
    assert result["hips"] == 0 and np.isnan(result["macro_auc"]) and np.isnan(result["accuracy"])
    assert result["macro_auc_by_modality"] == {}


def test_sranet_evaluation_reports_attention_per_modality(cohort, tmp_path):
    """On a one-modality cohort the per-modality entry is the whole cohort's numbers."""
    settings = TrainSettings(task="sranet", data=cohort, out=tmp_path, device="cpu")
    recipe("sranet").evaluate(settings, reporter=None)
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert list(summary["by_modality"]) == ["mr_t1"]
    mr = summary["by_modality"]["mr_t1"]
    assert mr["hips"] == summary["hips"] == 6 and "attention_on_bone" not in mr  # the structure term is CT-only
    assert mr["attention_on_lesion"] == pytest.approx(summary["attention_on_lesion"])
    assert mr["auc"] == summary["auc"] is None or mr["auc"] == pytest.approx(summary["auc"])  # null: one class


def test_sranet_evaluation_leaves_out_hips_with_a_blank_grade(cohort, tmp_path):
    """An ungraded hip is unknown, not "no necrosis": it is neither scored nor counted as a negative."""
    data = tmp_path / "data"
    shutil.copytree(cohort, data)
    hips = pd.read_csv(data / "hips.csv", dtype=str)
    hips.loc[0, "ficat"] = ""
    hips.to_csv(data / "hips.csv", index=False)
    settings = TrainSettings(task="sranet", data=data, out=tmp_path / "eval", device="cpu")
    recipe("sranet").evaluate(settings, reporter=None)
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text(encoding="utf-8"))
    graded = pd.to_numeric(hips.ficat, errors="coerce").dropna()
    assert summary["hips"] == len(graded) == 5
    assert sum(summary["confusion_matrix"][1]) == int((graded > 0).sum())  # rows: true class


def test_sranet_evaluation_attention_on_bone_agrees_with_the_phantom_bone_labels(tmp_path):
    """End to end on CT: the summary's attention on the structure term's (Otsu) bone patches is within 0.02 of
    the attention on the patches the phantom's own bone labels fill."""
    from ONFHAssistLib.models.sranet_patches import bone_patches
    from ONFHAssistLib.models.sranet import CROP
    from ONFHAssistLib.training.sranet_recipe import INFER_SPEC, predict

    data = write_cohort(tmp_path / "ct", 1, seed=3, modality="ct")
    settings = TrainSettings(task="sranet", data=data, out=tmp_path / "eval", device="cpu")
    recipe("sranet").evaluate(settings, reporter=None)
    ct = json.loads((tmp_path / "eval" / "summary.json").read_text(encoding="utf-8"))["by_modality"]["ct"]
    table = crop_cache.build(data, INFER_SPEC, tmp_path / "eval" / "cache-sranet")
    crops = [crop_cache.load(path) for path in table.crop]
    network, _ = networks.load("sranet", None, torch.device("cpu"))
    _, weights = predict(network, np.stack([image for image, _ in crops]), torch.device("cpu"))
    bone = [bone_patches(np.isin(crop_cache.centre_crop(label, CROP), (1, 2, 3))) for _, label in crops]
    truth = np.mean([w[flags].sum() for w, flags in zip(weights, bone)])
    assert ct["attention_on_bone"] == pytest.approx(truth, abs=0.02)
