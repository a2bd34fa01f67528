"""SRANet: patch order, attention weights, batched encoder, structure loss."""
import numpy as np
import pytest
import torch

from ONFHAssistLib.imaging import io
from ONFHAssistLib.models.sranet_patches import bone_patches, coarse_bone_mask
from ONFHAssistLib.imaging.crops import CropSpec, crop_arrays
from ONFHAssistLib.dataset import read_hips
from ONFHAssistLib.models.sranet import (
    N_PATCHES, PATCH, SRANet, attention_weights, patch_map_to_volume, sranet_loss, structure_loss, to_patches)
from ONFHAssistLib.phantom.cohort import write_cohort
from ONFHAssistLib.training.sranet_recipe import attention_mass_loss, attention_on_bone, patch_lesion_loss


def test_patch_order_is_16i_4j_k_and_round_trips():
    volume = torch.zeros(1, 1, 128, 128, 128)
    for i, j, k in np.ndindex(4, 4, 4):
        volume[0, 0, i * 32:(i + 1) * 32, j * 32:(j + 1) * 32, k * 32:(k + 1) * 32] = 16 * i + 4 * j + k
    patches = to_patches(volume)
    assert patches.shape == (1, N_PATCHES, 1, PATCH, PATCH, PATCH)
    assert torch.equal(patches[0].flatten(1).amax(1), torch.arange(64, dtype=torch.float32))
    assert torch.equal(patch_map_to_volume(torch.arange(64, dtype=torch.float32)[None]), volume[:, 0])


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return SRANet(hidden=32, attention=16).eval()


def test_weights_sum_to_one_and_never_nan(net):
    out = net(torch.randn(2, 1, 128, 128, 128))
    assert torch.allclose(out["weights"].sum(1), torch.ones(2), atol=1e-6)
    assert torch.isfinite(out["weights"]).all() and (out["weights"] >= 0).all()
    flat = net(torch.zeros(1, 1, 128, 128, 128))  # every patch identical: equal scores
    assert torch.allclose(flat["weights"], torch.full((1, 64), 1 / 64), atol=1e-6)


def test_batched_encoder_equals_a_per_patch_loop(net):
    volume = torch.randn(1, 1, 128, 128, 128)
    patches = to_patches(volume)[0]
    with torch.no_grad():
        batched = net.encoder(patches)
        looped = torch.cat([net.encoder(patches[p:p + 1]) for p in range(N_PATCHES)])
    assert torch.allclose(batched, looped, atol=1e-5)


def test_structure_loss_prefers_attention_on_bone():
    bone = torch.zeros(1, 64)
    bone[0, :8] = 1
    on_bone = torch.full((1, 64), -5.0)
    on_bone[0, :8] = 5.0
    assert structure_loss(on_bone, bone) < structure_loss(-on_bone, bone)
    out = {"logits": torch.zeros(1, 2), "scores": on_bone}
    assert float(sranet_loss(out, torch.tensor([1]), None)) == pytest.approx(np.log(2))
    assert float(sranet_loss(out, torch.tensor([1]), bone, alpha=1.0)) == pytest.approx(np.log(2))


def test_bone_mask_finds_the_phantom_femur_patches(tmp_path):
    data = write_cohort(tmp_path / "d", 1, seed=3, modality="ct")
    row = read_hips(data).iloc[0]
    image = io.read_image(next((data / "images").iterdir()))
    label = io.read_image(next((data / "labels").iterdir()))
    centre = [float(row[c]) for c in ("head_x", "head_y", "head_z")]
    crop, lab = crop_arrays(image, centre, row.side, CropSpec(128 * 0.75, 0.75), "ct", label)
    flags = bone_patches(coarse_bone_mask(crop))
    truth = bone_patches(np.isin(lab, (1, 2, 3)), min_fraction=0.05)
    assert flags[truth].mean() > 0.9  # patches that are mostly bone are found
    assert 0 < flags.sum() < 64


def test_attention_on_bone_is_the_mass_on_the_patch_holding_the_bright_block():
    """A 16³ bright block in the middle of patch (1, 1, 1) = 21 stays inside it after erosion and dilation."""
    image = np.random.default_rng(0).normal(0.0, 0.05, (128, 128, 128))
    image[40:56, 40:56, 40:56] = 1.0
    weights = np.full(N_PATCHES, 0.7 / (N_PATCHES - 1))
    weights[21] = 0.3
    assert attention_on_bone(weights[None], image[None]) == pytest.approx([0.3])


def test_lesion_patches_flag_the_patch_that_holds_necrosis():
    from ONFHAssistLib.models.sranet_patches import lesion_patches

    label = np.zeros((128, 128, 128), np.uint8)
    label[40, 70, 100] = 3  # patch (i, j, k) = (1, 2, 3) → p = 16 + 8 + 3
    label[5, 5, 5] = 2  # femur is not lesion
    flags = lesion_patches(label)
    assert flags.shape == (64,) and np.flatnonzero(flags).tolist() == [27]


def test_attention_mass_loss_is_minus_log_mass_and_pulls_weight_onto_lesion(net):
    """The bag-phase lesion term: −log(mass on lesion) for positive hips only; one step raises that mass."""
    lesion = torch.zeros(2, 64, dtype=torch.bool)
    lesion[:, 20:24] = True
    weights = torch.full((2, 64), 1 / 64)
    expected = -np.log(4 / 64 + 1e-6)
    assert float(attention_mass_loss(weights, lesion, torch.tensor([1.0, 0.0]))) == pytest.approx(expected, rel=1e-6)
    assert float(attention_mass_loss(weights, lesion, torch.tensor([0.0, 0.0]))) == 0.0
    torch.manual_seed(1)
    model = SRANet(hidden=32, attention=16)
    h = torch.relu(torch.randn(1, 64, 32))  # patch features, fixed: the term trains the attention scorer
    optimizer = torch.optim.Adam([*model.v.parameters(), *model.u.parameters(), *model.w.parameters()], lr=1e-2)
    before = float(attention_weights(model.score(h))[0, lesion[0]].sum())
    for _ in range(20):
        loss = attention_mass_loss(attention_weights(model.score(h)), lesion[:1], torch.tensor([1.0]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(attention_weights(model.score(h))[0, lesion[0]].sum()) > 2 * before


def test_patch_lesion_loss_balances_classes(net):
    """Lesion patches are rare in a hip: both classes weigh half whatever their counts."""
    h = torch.randn(1, 64, 32)
    flags = torch.zeros(1, 64, dtype=torch.bool)
    flags[0, :4] = True
    per_patch = (torch.nn.functional.cross_entropy(net.classifier(h[0]), flags[0].long(), reduction="none")
                 + torch.nn.functional.binary_cross_entropy_with_logits(net.score(h[0]), flags[0].float(), reduction="none"))
    expected = 0.5 * per_patch[:4].mean() + 0.5 * per_patch[4:].mean()
    assert float(patch_lesion_loss(net, h, flags)) == pytest.approx(float(expected), rel=1e-5)
