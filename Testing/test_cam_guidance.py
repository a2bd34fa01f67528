"""Staging localisation term: the class-activation map is Grad-CAM's, and the term moves its mass onto the evidence."""
import numpy as np
import pytest
import torch
from monai.visualize import GradCAM
from scipy.special import softmax

from ONFHAssistLib.analysis.maps import unit_range
from ONFHAssistLib.models.staging import MulPoolDenseNet
from ONFHAssistLib.training.cam_guidance import (
    FEMUR, HEAD_RADIUS_MM, NECROSIS, evidence_cells, evidence_region, gradcam_peaks, localisation_loss)


def _small_net():
    torch.manual_seed(0)
    return MulPoolDenseNet(3, growth=4, blocks=(2, 2), init_features=8).eval()


def test_class_activation_averages_to_the_logit_and_peaks_where_gradcam_does():
    net, x = _small_net(), torch.randn(2, 1, 32, 32, 32)
    classes = torch.tensor([1, 2])
    with torch.no_grad():
        logits, activation = net.logits_and_activation(x, classes)
    bias = net.classifier.bias[classes].detach()
    np.testing.assert_allclose(activation.mean(dim=(1, 2, 3)) + bias, logits[torch.arange(2), classes], atol=1e-5)
    grid = activation.shape[1:]
    cam = GradCAM(nn_module=net, target_layers=net.cam_layer, upsampler=lambda size: (lambda m: m),
                  postprocessing=unit_range)(x[:1], class_idx=1)
    assert cam.shape[2:] == grid  # without upsampling: MONAI's map on the same cells
    assert int(cam[0, 0].argmax()) == int(activation[0].argmax())


def test_evidence_is_the_lesion_or_else_the_femoral_head():
    label = np.zeros((21, 21, 21), np.uint8)
    label[:, :, 5:] = FEMUR
    head = evidence_region(label, spacing_mm=2.0)
    far = np.zeros_like(head)
    far[10, 10, 10 + int(HEAD_RADIUS_MM / 2.0) + 1:] = True  # beyond a head's radius along x
    assert head[10, 10, 10] and not head[10, 10, 0] and not (head & far).any()
    label[9:12, 9:12, 12:15] = NECROSIS
    lesion = evidence_region(label, spacing_mm=2.0)
    assert lesion.sum() == 27 and lesion[10, 10, 13]
    assert evidence_region(None, 1.0) is None


def test_evidence_cells_mark_every_cell_the_region_touches():
    region = torch.zeros(1, 16, 16, 16, dtype=torch.bool)
    region[0, 0, 0, 0] = region[0, 9, 9, 9] = True
    cells = evidence_cells(region, (4, 4, 4))
    assert cells.sum() == 2 and cells[0, 0, 0, 0] and cells[0, 2, 2, 2]


def test_localisation_loss_is_minus_log_softmax_mass_and_ignores_hips_without_evidence():
    rng = np.random.default_rng(0)
    activation = rng.normal(size=(3, 4, 4, 4))
    cells = np.zeros((3, 4, 4, 4), bool)
    cells[0, 1, 2, 3] = cells[0, 0, 0, 0] = True
    cells[2, 3, 3] = True
    expected = np.mean([-np.log(softmax(activation[i].ravel())[cells[i].ravel()].sum()) for i in (0, 2)])
    a = torch.tensor(activation, requires_grad=True)
    loss = localisation_loss(a, torch.from_numpy(cells))
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert torch.isfinite(a.grad).all() and (a.grad[1] == 0).all()
    assert (a.grad[0][torch.from_numpy(cells[0])] < 0).all()  # descending raises the evidence cells


def test_no_evidence_anywhere_gives_a_zero_loss_with_a_gradient():
    a = torch.randn(2, 4, 4, 4, requires_grad=True)
    loss = localisation_loss(a, torch.zeros(2, 4, 4, 4, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and (a.grad == 0).all()


def test_unit_range_keeps_the_strongest_evidence_brightest():
    maps = torch.tensor([[[0.0, 2.0], [4.0, 1.0]], [[3.0, 3.0], [3.0, 3.0]]])[:, None]
    scaled = unit_range(maps)
    np.testing.assert_allclose(scaled[0, 0], [[0.0, 0.5], [1.0, 0.25]])
    assert (scaled[1] == 0).all()


def test_gradcam_peaks_are_counted_in_the_head_and_on_the_lesion_of_lesion_hips_only():
    label = np.zeros((9, 9, 9), np.uint8)
    label[4, 4, 6] = NECROSIS  # 2 voxels from the centre
    peaks = iter([(4, 4, 6), (0, 0, 0)])
    asked = []

    def fake_cam(x, class_idx):
        asked.append(class_idx)
        heat = torch.zeros(1, 1, *x.shape[2:])
        heat[(0, 0, *next(peaks))] = 1.0
        return heat

    images = np.zeros((3, 9, 9, 9), np.float32)
    probabilities = np.array([[0.1, 0.2, 0.7], [0.5, 0.4, 0.1], [0.9, 0.05, 0.05]])
    result = gradcam_peaks(fake_cam, images, [label, label, np.zeros_like(label)], probabilities,
                           np.array([3.0, 3.0, 3.0]), spacing_mm=1.0, device="cpu")
    assert result == {"lesion_hips": 2, "peak_in_head": 0.5, "peak_on_lesion": 0.5}
    assert asked == [2, 1]  # the most probable stage above 0, as analyze shows a hip with a lesion
