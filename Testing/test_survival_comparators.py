"""The Table 1 comparison networks (DeepMTS, XSurv, SurvRNC ± SLE): shapes, gradients, which inputs each reads,
their segmentation targets, the SurvRNC loss by hand, and their registration as CV rows."""
import numpy as np
import pandas as pd
import pytest
import torch
from ONFHAssistLib.models.losses import cox_nll, survrnc_loss
from ONFHAssistLib.models.survival import GRADE_SYSTEMS, SurvivalConfig
from ONFHAssistLib.models.survival_zoo import COMPARATORS, build
from ONFHAssistLib.training import survival_recipe as recipe
from ONFHAssistLib.training.survival_data import HipSet

SMALL = SurvivalConfig(crop_size=16, resnet_planes=(4, 8, 8, 8), d_img=8, d_lbl=8, d_grade=8, d_fusion=12,
                       sle_channels=4, sle_patch=8, sle_heads=2, sle_layers=1)


def _batch(n=4, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(n, 1, size, size, size, generator=g)
    labels = torch.randint(0, 4, (n, size, size, size), generator=g)
    grades = torch.stack([torch.randint(0, k, (n,), generator=g) for k in GRADE_SYSTEMS.values()], 1)
    return image, labels, grades


@pytest.mark.parametrize("variant", list(COMPARATORS))
def test_comparators_give_one_risk_per_hip_and_finite_gradients(variant):
    net = build(variant, SMALL)
    image, labels, grades = _batch()
    risk, z, *segmentation = net(image, labels, grades)
    assert risk.shape == (4,) and z.shape == (4, 12)
    loss = cox_nll(risk, torch.tensor([3.0, 5.0, 5.0, 9.0]), torch.tensor([1, 1, 0, 1]))
    if segmentation:
        assert segmentation[0].shape[0] == 4 and segmentation[0].shape[2:] == (16, 16, 16)
        loss = loss + net.auxiliary_loss(segmentation[0], labels)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_each_comparator_reads_its_inputs():
    """DeepMTS takes the label map as its segmentation target only; XSurv and SurvRNC read it as a modality."""
    image, labels, grades = _batch()
    other_labels, other_grades = _batch(seed=5)[1], (grades + 1) % 3
    for variant, label_is_input in (("deepmts", False), ("xsurv", True), ("survrnc", True), ("survrnc_sle", True)):
        net = build(variant, SMALL).eval()
        risk = net(image, labels, grades)[0]
        assert (not torch.allclose(risk, net(image, other_labels, grades)[0])) == label_is_input, variant
        assert not torch.allclose(risk, net(image, labels, other_grades)[0]), variant
        assert not torch.allclose(risk, net(image + 1.0, labels, grades)[0]), variant


def test_segmentation_targets_are_the_label_map_and_its_two_regions():
    """A segmentation equal to the target scores a near-zero loss, its complement a large one: DeepMTS segments
    the four label values, XSurv the femoral head (labels 2-3) and the lesion (label 3)."""
    labels = _batch()[1]
    onehot = torch.nn.functional.one_hot(labels, 4).permute(0, 4, 1, 2, 3).float()
    deepmts = build("deepmts", SMALL)
    assert float(deepmts.auxiliary_loss(40 * onehot - 20, labels)) < 0.01
    assert float(deepmts.auxiliary_loss(20 - 40 * onehot, labels)) > 1.0
    regions = torch.stack([labels >= 2, labels == 3], 1).float()
    xsurv = build("xsurv", SMALL)
    assert float(xsurv.auxiliary_loss(40 * regions - 20, labels)) < 0.01
    assert float(xsurv.auxiliary_loss(20 - 40 * regions, labels)) > 0.9


def test_survrnc_loss_by_hand_on_three_collapses():
    """Times 1, 2, 4 months, all collapsed, 1-D embeddings 0, 1, 3, τ = 1 (s = −distance). Anchor 1: positive 2
    has candidate 3 to its right (weight 1): −s(1,2) + s(2,3) = 1 − 2; positive 3's only candidate lies between
    (weight 0): skipped. Anchor 2: positive 1, candidate 3 right of |d|: 1 − 3. Anchor 3: positive 2, candidate 1
    left (weight 1): 2 − 1; positive 1's candidate between: skipped. Loss = mean(−1, −2, 1) = −2/3; τ = 2
    halves it."""
    z = torch.tensor([[0.0], [1.0], [3.0]])
    time, event = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1, 1, 1])
    assert float(survrnc_loss(z, time, event, temperature=1.0)) == pytest.approx(-2 / 3, abs=1e-6)
    assert float(survrnc_loss(z, time, event, temperature=2.0)) == pytest.approx(-1 / 3, abs=1e-6)


def test_comparators_are_cv_rows_with_stable_ids_and_train():
    rows = recipe.chosen_models("deepmts,xsurv,survrnc,survrnc-sle")
    assert rows == ["DeepMTS", "XSurv", "SurvRNC", "SurvRNC + SLE"]
    assert {recipe.NETWORK_MODELS[r] for r in rows} == set(COMPARATORS)
    rng = np.random.default_rng(0)
    n = 12
    hips = HipSet(pd.DataFrame({"patient_id": [f"P{i}" for i in range(n)]}),
                  rng.normal(size=(n, 1, 16, 16, 16)).astype(np.float32),
                  rng.integers(0, 4, (n, 16, 16, 16)).astype(np.uint8),
                  np.stack([rng.integers(0, k, n) for k in GRADE_SYSTEMS.values()], 1).astype(np.int64),
                  rng.uniform(1, 60, n), rng.integers(0, 2, n))
    preset = {"config": SMALL, "epochs": 1, "batch": 6, "lr": 1e-3, "weight_decay": 0.0, "patience": 5}
    for variant in COMPARATORS:
        model, _, fit = recipe.fit_network(hips, variant, preset, 0, torch.device("cpu"), None, validation=False)
        risk = recipe.predict_risk(model, hips, torch.device("cpu"))
        assert risk.shape == (n,) and np.isfinite(risk).all() and fit.selection.startswith("no selection split")
