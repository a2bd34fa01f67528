"""Seed 000's search over input combinations: a withheld input carries no information into the risk, a withheld
label map stays the segmentation target, the rows are named and ordered, wrong combinations are refused, and the
table names each method's best combination."""
import numpy as np
import pandas as pd
import pytest
import torch
from ONFHAssistLib.errors import InputError
from ONFHAssistLib.models.modality_subset import MISSING_GRADE, ModalitySubset, shown
from ONFHAssistLib.models.survival import GRADE_SYSTEMS, SurvivalConfig
from ONFHAssistLib.models.survival_zoo import build
from ONFHAssistLib.training import survival_modalities as modalities
from ONFHAssistLib.training import survival_recipe as recipe
from ONFHAssistLib.training.survival_data import HipSet

SMALL = SurvivalConfig(crop_size=16, resnet_planes=(4, 8, 8, 8), d_img=8, d_lbl=8, d_grade=8, d_fusion=12,
                       sle_channels=4, sle_patch=8, sle_heads=2, sle_layers=1, grade_skip=True)


def _batch(seed=0, n=4, size=16):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 1, size, size, size, generator=g), torch.randint(0, 4, (n, size, size, size), generator=g),
            torch.stack([torch.randint(0, k - 1, (n,), generator=g) for k in GRADE_SYSTEMS.values()], 1))


@pytest.mark.parametrize("variant", ["survrnc", "xsurv", "full", "no_sle"])
def test_a_withheld_input_does_not_move_the_risk_and_a_kept_one_does(variant):
    image, labels, grades = _batch()
    other_image, other_labels, other_grades = _batch(seed=7)
    for keep in ({"image", "grades"}, {"image", "labels"}, {"labels", "grades"}):
        net = ModalitySubset(build(variant, SMALL).eval(), frozenset(keep))
        risk = net(image, labels, grades)[0]
        for name, changed in (("image", (other_image, labels, grades)), ("labels", (image, other_labels, grades)),
                              ("grades", (image, labels, other_grades))):
            moved = not torch.allclose(risk, net(*changed)[0])
            assert moved == (name in keep), (variant, keep, name)


def test_withheld_grades_are_the_missing_token_and_a_withheld_label_map_is_still_the_target():
    image, labels, grades = _batch()
    net = build("deepmts", SMALL).eval()
    missing = torch.tensor(MISSING_GRADE).expand_as(grades)
    assert MISSING_GRADE == tuple(k - 1 for k in GRADE_SYSTEMS.values())
    assert torch.equal(ModalitySubset(net, frozenset({"image"}))(image, labels, grades)[0],
                       net(image, labels, missing)[0])
    xsurv = ModalitySubset(build("xsurv", SMALL), frozenset({"image", "grades"}))
    seg = xsurv(image, labels, grades)[2]
    regions = torch.stack([labels >= 2, labels == 3], 1).float()
    assert float(xsurv.auxiliary_loss(40 * regions - 20, labels)) < 0.01  # scored against the real label map
    assert shown(net, None) is net and shown(net, frozenset(modalities.READS["XSurv"])) is net
    assert seg.shape[1] == 2


def test_rows_are_named_ordered_and_wrong_combinations_refused():
    rows = recipe.chosen_models("tri-stream[labels+grades], cox-grades, survrnc[image+grades], survrnc")
    assert rows == ["CoxPH (grades)", "SurvRNC", "SurvRNC [image + grades]", "tri-stream + SLE [labels + grades]"]
    assert recipe.chosen_models("radiomics-svm[radiomics+grades]") == ["survival SVM (radiomics) [radiomics + grades]"]
    assert recipe.chosen_models("survrnc[image+labels+grades]") == ["SurvRNC"]  # every input: the plain row
    for bad in ("survrnc[radiomics]", "cox-grades[grades]", "radiomics-svm[grades]", "deepmts[labels]",
                "survrnc[]", "xsurv[image+nonsense]"):
        with pytest.raises(InputError, match="--models"):
            recipe.chosen_models(bad)
    every = recipe.chosen_models("every-combination")
    counts = {m: sum(modalities.split_row(r)[0] == m for r in every) for m in modalities.READS}
    assert counts == {"DeepMTS": 3, "XSurv": 7, "SurvRNC": 7, "SurvRNC + SLE": 7, "tri-stream, no SLE": 7,
                      "tri-stream + SLE": 7, "survival SVM (radiomics)": 2}
    assert set(recipe.chosen_models("all")) <= set(every) and len(set(every)) == len(every)
    assert every.index("DLRC nomogram") > every.index("tri-stream + SLE")  # DLRC reads the fold's tri-stream
    assert set(modalities.READS) <= set(recipe.MODEL_IDS.values())
    for row in every:
        method, keep = modalities.split_row(row)
        assert keep is None or modalities.row_name(method, keep) == row


def test_best_combination_per_method_by_mean_c():
    means = {"SurvRNC": 0.70, "SurvRNC [image + grades]": 0.74, "SurvRNC [image]": float("nan"),
             "XSurv": 0.71, "CoxPH (grades)": 0.80, "DeepMTS": 0.60, "DeepMTS [image]": 0.65}
    best = modalities.best_per_method(means)
    assert best == [("SurvRNC", "SurvRNC [image + grades]", 0.74, 3), ("DeepMTS", "DeepMTS [image]", 0.65, 2)]
    per_fold = pd.DataFrame({"fold": [0, 1, 0, 1], "model": ["SurvRNC", "SurvRNC", "SurvRNC [image]", "SurvRNC [image]"],
                             "harrell_c": [0.6, 0.7, 0.8, 0.7]})
    lines = recipe._best_combination_lines(per_fold.groupby("model")["harrell_c"].mean().to_dict())
    assert lines[-1] == "| SurvRNC | image | 0.750 | 2 |"


def test_a_network_without_its_grades_trains_without_the_grade_warm_start():
    """The wide term starts from Cox on the grades; a run that withholds the grades must not start from them."""
    rng = np.random.default_rng(0)
    n = 12
    hips = HipSet(pd.DataFrame({"patient_id": [f"P{i}" for i in range(n)]}),
                  rng.normal(size=(n, 1, 16, 16, 16)).astype(np.float32), rng.integers(0, 4, (n, 16, 16, 16)).astype(np.uint8),
                  np.stack([rng.integers(0, k - 1, n) for k in GRADE_SYSTEMS.values()], 1).astype(np.int64),
                  rng.uniform(1, 60, n), (np.arange(n) % 2).astype(int))
    preset = {"config": SMALL, "epochs": 1, "batch": 6, "lr": 0.0, "weight_decay": 0.0, "patience": 5}
    cpu = torch.device("cpu")
    kept = recipe.fit_network(hips, "full", preset, 0, cpu, None, validation=False)[0]
    withheld = recipe.fit_network(hips, "full", preset, 0, cpu, None, validation=False,
                                  keep=frozenset({"image", "labels"}))[0]
    assert float(kept.grade_linear.weight.detach().abs().sum()) > 0
    assert isinstance(withheld, ModalitySubset) and float(withheld.net.grade_linear.weight.detach().abs().sum()) == 0
    assert np.isfinite(recipe.predict_risk(withheld, hips, cpu)).all()
