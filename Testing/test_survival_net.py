"""Tri-stream survival network: every variant runs, uses exactly its streams, and learns from gradients."""
import pytest
import torch

from ONFHAssistLib.models.losses import cox_nll
from ONFHAssistLib.models.survival import GRADE_SYSTEMS, VARIANTS, SurvivalConfig, TriStreamSurvival

SMALL = dict(crop_size=32, resnet_planes=(4, 8, 8, 8), d_img=16, d_lbl=16, d_grade=8, d_fusion=16, sle_patch=8,
             sle_heads=2, sle_layers=1)


def _batch(n=4, size=32):
    g = torch.Generator().manual_seed(0)
    image = torch.randn(n, 1, size, size, size, generator=g)
    labels = torch.randint(0, 4, (n, size, size, size), generator=g)
    grades = torch.stack([torch.randint(0, k, (n,), generator=g) for k in GRADE_SYSTEMS.values()], 1)
    return image, labels, grades


@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_give_one_risk_per_hip_and_finite_gradients(variant):
    net = TriStreamSurvival(SurvivalConfig(variant=variant, **SMALL))
    risk, z = net(*_batch())
    assert risk.shape == (4,) and z.shape == (4, 16)
    cox_nll(risk, torch.tensor([3.0, 5.0, 5.0, 9.0]), torch.tensor([1, 1, 0, 1])).backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_each_variant_listens_to_its_inputs_only():
    image, labels, grades = _batch()
    other_labels = torch.randint(0, 4, labels.shape, generator=torch.Generator().manual_seed(5))
    for variant, label_matters in (("full", True), ("no_sle", True), ("image", False)):
        net = TriStreamSurvival(SurvivalConfig(variant=variant, **SMALL)).eval()
        changed = not torch.allclose(net(image, labels, grades)[0], net(image, other_labels, grades)[0])
        assert changed == label_matters, variant
    net = TriStreamSurvival(SurvivalConfig(variant="grades", **SMALL)).eval()
    assert torch.allclose(net(image, labels, grades)[0], net(image * 0, labels * 0, grades)[0])


def test_wide_term_starts_at_the_lifelines_cox_fit_on_the_grades():
    """With the deep head silenced, the warm-started network's risk is lifelines' Cox linear predictor."""
    import numpy as np
    import pandas as pd
    from lifelines import CoxPHFitter

    from ONFHAssistLib.training.survival_baselines import COX_PENALIZER
    from ONFHAssistLib.training.survival_data import HipSet
    from ONFHAssistLib.training.survival_recipe import warm_start_grade_term

    rng = np.random.default_rng(3)
    n = 40
    grades = np.stack([rng.integers(1, k - 1, n) for k in GRADE_SYSTEMS.values()], 1)  # levels, none missing
    time = rng.exponential(60 / np.exp(0.5 * grades[:, 0])) + 1
    event = (rng.random(n) < 0.7).astype(int)
    hips = HipSet(pd.DataFrame({"patient_id": range(n)}), np.zeros((n, 1, 32, 32, 32), np.float32),
                  np.zeros((n, 32, 32, 32), np.uint8), grades.astype(np.int64), time, event)
    net = TriStreamSurvival(SurvivalConfig(variant="full", grade_skip=True, **SMALL)).eval()
    torch.nn.init.zeros_(net.risk.weight), torch.nn.init.zeros_(net.risk.bias)
    warm_start_grade_term(net, hips)
    image, labels, _ = _batch(n)
    risk = net(image, labels, torch.from_numpy(hips.grades))[0].detach().numpy()
    frame = pd.DataFrame(grades, columns=list(GRADE_SYSTEMS)).assign(time=time, event=event)
    cox = CoxPHFitter(penalizer=COX_PENALIZER).fit(frame, "time", "event")
    expected = grades @ cox.params_[list(GRADE_SYSTEMS)].to_numpy()
    np.testing.assert_allclose(risk - risk.mean(), expected - expected.mean(), atol=1e-4)


def test_a_missing_grade_adds_nothing_to_the_wide_term_and_has_its_own_token():
    image, labels, grades = _batch()
    grades = grades.clamp(max=2)
    net = TriStreamSurvival(SurvivalConfig(variant="full", grade_skip=True, **SMALL)).eval()
    torch.nn.init.constant_(net.grade_linear.weight, 1.0)
    missing, zero = grades.clone(), grades.clone()
    missing[:, 0], zero[:, 0] = GRADE_SYSTEMS["jic_stage"] - 1, 0
    assert not torch.allclose(net(image, labels, missing)[0], net(image, labels, zero)[0])  # not read as stage 0
    torch.nn.init.zeros_(net.risk.weight), torch.nn.init.zeros_(net.risk.bias)  # risk = the wide term alone
    assert torch.equal(net(image, labels, missing)[0], net(image, labels, zero)[0])  # missing adds 0, as level 0
    top = torch.tensor([[4, 4, 4, 6, 4]])  # each system's top level reads 1.0
    assert torch.allclose(net(image[:1], labels[:1], top)[0], torch.tensor([5.0]))


def test_wide_term_is_off_by_default_so_older_model_cards_still_load():
    net = TriStreamSurvival(SurvivalConfig(variant="full", **SMALL))
    assert not hasattr(net, "grade_linear")
    assert not any(name.startswith("grade_linear") for name in net.state_dict())
