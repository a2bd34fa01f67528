"""Staging network: MulPoolFusion halves the grid on every branch; Grad-CAM comes back on the crop grid."""
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score, recall_score, roc_auc_score
from monai.visualize import GradCAM

from ONFHAssistLib.models.staging import SYSTEMS, MulPoolDenseNet, MulPoolFusion
from ONFHAssistLib.training import staging_recipe


@pytest.mark.parametrize("size", [16, 32, 48])
def test_mulpoolfusion_halves_every_even_grid(size):
    fusion = MulPoolFusion(6, 3)
    assert fusion(torch.randn(2, 6, size, size, size)).shape == (2, 3, size // 2, size // 2, size // 2)


def test_logits_per_system_and_gradcam_on_the_input_grid():
    torch.manual_seed(0)
    net = MulPoolDenseNet(SYSTEMS["ficat3"], growth=4, blocks=(2, 2), init_features=8).eval()
    x = torch.randn(1, 1, 32, 32, 32)
    assert net(x).shape == (1, 3)
    cam = GradCAM(nn_module=net, target_layers=net.cam_layer)(x, class_idx=1)
    assert cam.shape == (1, 1, 32, 32, 32) and torch.isfinite(cam).all()


def test_grading_targets_and_macro_auc():
    table = pd.DataFrame({"ficat": ["0", "1", "2", "3", "4", ""], "arco": ["0", "1", "2", "3", "4", ""]})
    assert staging_recipe.target(table, "binary").tolist() == [0, 1, 1, 1, 1, -1]  # blank: unknown, left out
    assert staging_recipe.target(table, "ficat3").tolist() == [0, 1, 2, -1, -1, -1]
    assert staging_recipe.target(table, "arco").tolist() == [0, 1, 2, 3, 4, -1]
    y = np.array([0, 1, 2, 0, 1, 2])
    p = np.random.default_rng(0).dirichlet(np.ones(3), size=6)
    expected = roc_auc_score(y, p, multi_class="ovr", average="macro")
    assert staging_recipe.macro_auc(y, p) == pytest.approx(expected)


def test_per_class_table_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=40)
    p = rng.dirichlet(np.ones(3), size=40)
    p[np.arange(40), y] += rng.random(40)  # better than chance, not perfect
    table, cm = staging_recipe.per_class_table(y, p, 3)
    pred = p.argmax(1)
    assert np.allclose(table.sensitivity, recall_score(y, pred, average=None))
    assert np.allclose(table.f1, f1_score(y, pred, average=None))
    specificity = [recall_score(y != k, pred != k) for k in range(3)]
    assert np.allclose(table.specificity, specificity)
    assert np.allclose(table.auc, [roc_auc_score(y == k, p[:, k]) for k in range(3)])
    assert cm.sum() == 40 and table.n.tolist() == np.bincount(y, minlength=3).tolist()


def test_auc_by_modality_matches_sklearn_per_subset():
    rng = np.random.default_rng(2)
    modality = np.array(["ct", "mr_t1"] * 20)
    y = rng.integers(0, 2, 40)
    score = y + rng.normal(0, 0.8, 40)
    by = staging_recipe.auc_by_modality(modality, y, score)
    for m in ("ct", "mr_t1"):
        keep = modality == m
        assert by[m] == {"hips": 20, "auc": pytest.approx(roc_auc_score(y[keep], score[keep]))}
    one_class = staging_recipe.auc_by_modality(np.array(["ct"] * 3), np.array([1, 1, 1]), np.ones(3))
    assert one_class["ct"]["hips"] == 3 and np.isnan(one_class["ct"]["auc"])


def test_padding_mode_reaches_every_3x3_conv_and_old_cards_keep_zeros():
    """Replicate padding (shipped since 1.2.0) applies to the stem and every dense layer; a card without it
    builds the zero-padded network its weights were trained with."""
    def modes(net):
        return {m.padding_mode for m in net.modules() if isinstance(m, torch.nn.Conv3d) and m.kernel_size == (3, 3, 3)}
    assert modes(MulPoolDenseNet(3, growth=4, blocks=(2, 2), init_features=8, padding="replicate")) == {"replicate"}
    assert modes(MulPoolDenseNet(3, growth=4, blocks=(2, 2), init_features=8)) == {"zeros"}
