"""The out-of-distribution score (`analysis/ood.py`): Mahalanobis distance against scipy, the threshold as the
stated percentile of held-out distances, the shipped statistics read as plain JSON, and the flag in
analysis.json and the report of the demo scan."""
import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis

from ONFHAssistLib.analysis import ood
from ONFHAssistLib.analysis.pipeline import Analyzer, _ood_stats
from ONFHAssistLib.errors import InputError
from ONFHAssistLib.models import store as modelstore
from ONFHAssistLib.slicer import demo_case

SEGMENTATION = modelstore.SHIPPED_STORE / "onfh-segmentation"


@pytest.fixture(scope="module")
def gaussian():
    """A fit and a held-out sample of one 6-dimensional Gaussian with correlated features."""
    rng = np.random.default_rng(3)
    mixing = rng.normal(size=(6, 6))
    draw = lambda n: rng.normal(size=(n, 6)) @ mixing + np.arange(6.0)  # noqa: E731
    return draw(40), draw(30)


def test_mahalanobis_agrees_with_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    precision, mean = np.linalg.inv(a @ a.T + np.eye(5)), rng.normal(size=5)
    for x in rng.normal(size=(10, 5)):
        assert ood.mahalanobis(x, mean, precision) == pytest.approx(scipy_mahalanobis(x, mean, precision), rel=1e-12)


def test_precision_inverts_the_ledoit_wolf_covariance(gaussian):
    fit, held = gaussian
    stats, record = ood.fit_stats(fit, held)
    sample = np.cov(fit, rowvar=False, bias=True)
    shrunk = (1 - record["shrinkage"]) * sample + record["shrinkage"] * np.trace(sample) / 6 * np.eye(6)
    np.testing.assert_allclose(stats.precision @ shrunk, np.eye(6), atol=1e-8)
    np.testing.assert_allclose(stats.mean, fit.mean(0), atol=1e-12)
    assert 0 < record["shrinkage"] < 1


def test_threshold_is_the_percentile_of_held_out_distances(gaussian):
    fit, held = gaussian
    stats, record = ood.fit_stats(fit, held, percentile=90.0)
    distances = [scipy_mahalanobis(x, stats.mean, stats.precision) for x in held]
    assert stats.threshold == pytest.approx(np.percentile(distances, 90.0), rel=1e-12)
    np.testing.assert_allclose(record["held_out_distances"], distances, rtol=1e-12)
    # in-sample distances are smaller, so a threshold taken on them would differ
    assert stats.threshold > np.percentile(record["fit_distances"], 90.0)


def test_the_training_mean_is_reliable_and_a_shifted_crop_is_flagged(gaussian):
    stats, _ = ood.fit_stats(*gaussian)
    centre = stats.assess(stats.mean)
    assert centre["score"] == pytest.approx(0.0, abs=1e-9) and centre["reliable"]
    shifted = stats.assess(stats.mean + 5 * gaussian[0].std(0))
    assert shifted["score"] > stats.threshold and not shifted["reliable"]
    assert shifted["threshold"] == pytest.approx(stats.threshold, abs=1e-3)


def test_shipped_stats_load_without_pickle_and_match_their_record(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the statistics must not be unpickled")

    for owner, name in ((pickle, "load"), (pickle, "loads"), (torch, "load"), (np, "load")):
        monkeypatch.setattr(owner, name, refuse)
    card = modelstore.read_entry(SEGMENTATION).card
    stats = ood.load_stats(SEGMENTATION, card["sha256"])
    doc = json.loads((SEGMENTATION / ood.STATS_FILE).read_text(encoding="utf-8"))
    assert stats.mean.shape == (card["features"][-1],) and stats.precision.shape == (stats.mean.size,) * 2
    np.testing.assert_allclose(stats.precision, stats.precision.T, rtol=1e-6, atol=1e-9)
    assert np.all(np.linalg.eigvalsh(stats.precision) > 0)
    assert stats.threshold == pytest.approx(np.percentile(doc["held_out"]["distances"], doc["percentile"]), abs=2e-3)
    assert not set(doc["fit"]["seeds"]) & set(doc["held_out"]["seeds"]) and doc["weights_sha256"] == card["sha256"]


def test_missing_foreign_or_damaged_stats(tmp_path, gaussian):
    assert ood.load_stats(tmp_path, "0" * 64) is None
    stats, _ = ood.fit_stats(*gaussian)
    (tmp_path / ood.STATS_FILE).write_text(json.dumps(ood.stats_json(stats, "a" * 64)), encoding="utf-8")
    assert ood.load_stats(tmp_path, "b" * 64) is None  # statistics of other weights are never applied
    loaded = ood.load_stats(tmp_path, "a" * 64)
    x = gaussian[1][0]
    assert loaded.assess(x)["score"] == pytest.approx(stats.assess(x)["score"], abs=1e-3)
    (tmp_path / ood.STATS_FILE).write_text('{"weights_sha256": "' + "a" * 64 + '", "mean": [1, 2]}', encoding="utf-8")
    with pytest.raises(InputError, match="out-of-distribution"):
        ood.load_stats(tmp_path, "a" * 64)


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer("cpu")


@pytest.fixture(scope="module")
def demo(analyzer, tmp_path_factory):
    return analyzer.analyze(demo_case.image_path(), tmp_path_factory.mktemp("demo"))


def test_demo_hips_are_within_the_training_data(demo, analyzer):
    assert [h["side"] for h in demo["hips"]] == ["R", "L"]
    for hip in demo["hips"]:
        assert hip["ood"]["reliable"] and 0 < hip["ood"]["score"] < hip["ood"]["threshold"], hip["side"]
        assert hip["ood"]["threshold"] == pytest.approx(analyzer.ood.threshold, abs=1e-3)
    assert not any("unlike the training data" in w for w in demo["warnings"])


def test_a_hip_above_the_threshold_keeps_its_results_and_is_named_not_reliable(demo, analyzer, tmp_path, monkeypatch):
    """The right hip alone, with the threshold just under its demo score: flagged, its stage kept."""
    before = next(h for h in demo["hips"] if h["side"] == "R")
    threshold = before["ood"]["score"] - 0.05
    monkeypatch.setattr(analyzer, "ood", dataclasses.replace(analyzer.ood, threshold=threshold))
    monkeypatch.setattr(analyzer, "sides", ("R",))
    result = analyzer.analyze(demo_case.image_path(), tmp_path)
    hip = result["hips"][0]
    assert not hip["ood"]["reliable"] and hip["stage"] == before["stage"] and hip["risk"] == before["risk"]
    assert [w for w in result["warnings"] if "unlike the training data" in w] == [
        f"R hip: scan unlike the training data (score {before['ood']['score']:.1f} above {threshold:.1f}): "
        "stage and risk are not reliable"]
    card = (tmp_path / "report.html").read_text(encoding="utf-8").split("<h2>Right hip</h2>")[1]
    assert "not reliable: scan unlike the training data" in card and f"score {before['ood']['score']:.1f}" in card


def test_without_stats_the_score_is_null_and_said_so(analyzer, tmp_path, monkeypatch):
    monkeypatch.setattr(ood, "STATS_FILE", "absent.json")
    warnings = []
    assert _ood_stats(analyzer.models["segmentation"].entry, warnings) is None
    assert len(warnings) == 1 and warnings[0].startswith("no out-of-distribution statistics")
    monkeypatch.setattr(analyzer, "ood", None)
    monkeypatch.setattr(analyzer, "sides", ("R",))
    result = analyzer.analyze(demo_case.image_path(), tmp_path)
    assert result["hips"][0]["found"] and result["hips"][0]["ood"] is None
    assert "unlike the training data" not in (tmp_path / "report.html").read_text(encoding="utf-8")
