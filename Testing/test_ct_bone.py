"""`analysis.ct_bone.recover_bone` against hand-built CT crops whose bone is known voxel by voxel."""
import numpy as np

from ONFHAssistLib.analysis import ct_bone

SPACING = (1.5, 1.5, 1.5)


def _ball(shape, centre, radius_vox):
    zz, yy, xx = np.indices(shape)
    return (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius_vox ** 2


def _ct(bone: np.ndarray, bone_hu: float, seed: int = 0) -> np.ndarray:
    """Muscle (50 HU) with CT noise of 30 HU, the bone at `bone_hu`."""
    hu = np.random.default_rng(seed).normal(50.0, 30.0, bone.shape)
    hu[bone] = bone_hu
    return hu.astype(np.float32)


def test_a_dim_half_head_the_network_missed_comes_back_and_muscle_stays_out():
    head = _ball((40, 40, 40), (20, 20, 20), 10)
    labels = np.where(head & (np.indices(head.shape)[0] >= 20), 2, 0).astype(np.uint8)  # network: upper half only
    out = ct_bone.recover_bone(labels, _ct(head, 140.0), SPACING)
    femur = out == 2
    assert (femur & head).sum() / head.sum() > 0.97  # the fatty lower half (140 HU) is bone again
    assert (femur & ~head).sum() < 0.02 * head.sum()  # noisy muscle around it stays soft tissue
    assert not (out == 1).any()


def test_recovered_bone_joins_the_nearer_bone_and_the_network_decides_nothing_else():
    femur, pelvis = _ball((40, 40, 60), (20, 20, 14), 9), _ball((40, 40, 60), (20, 20, 46), 9)
    labels = np.zeros(femur.shape, np.uint8)
    labels[femur & (np.indices(femur.shape)[2] <= 14)] = 2
    labels[pelvis & (np.indices(femur.shape)[2] >= 46)] = 1
    labels[20, 20, 12] = 3  # a necrosis voxel stays what it is
    out = ct_bone.recover_bone(labels, _ct(femur | pelvis, 200.0), SPACING)
    assert (out[femur] >= 2).mean() > 0.97 and (out[pelvis] == 1).mean() > 0.97
    assert out[20, 20, 12] == 3 and np.array_equal(out[labels > 0], labels[labels > 0])


def test_bright_voxels_beyond_reach_are_not_bone_of_the_hip():
    head = _ball((40, 40, 60), (20, 20, 14), 9)
    vessel = np.zeros(head.shape, bool)
    vessel[18:23, 18:23, 40:50] = True  # a calcified vessel 12 voxels (18 mm) from the head's surface
    labels = np.where(head, 2, 0).astype(np.uint8)
    out = ct_bone.recover_bone(labels, _ct(head | vessel, 400.0), SPACING)
    assert not out[vessel].any()


def test_fatty_marrow_inside_the_cortex_is_femur():
    """A neck in cross-section: a cortex ring (700 HU) the network drew, marrow at 20 HU inside it."""
    zz, yy, xx = np.indices((30, 40, 40))
    radius = np.hypot(yy - 20, xx - 20)
    cortex, marrow = (radius <= 12) & (radius > 9), radius <= 9
    hu = np.where(cortex, 700.0, np.where(marrow, 20.0, 50.0)).astype(np.float32)
    out = ct_bone.recover_bone(np.where(cortex, 2, 0).astype(np.uint8), hu, SPACING)
    assert (out[marrow] == 2).all() and not out[radius > 12.5].any()


def test_marrow_behind_a_gap_in_the_cortex_is_femur_but_a_wider_opening_stays_open():
    """The same neck with its ring broken where a thin cortex reads like soft tissue (80 HU, partial volume): a
    one-voxel (1.5 mm) gap is bridged (CORTEX_GAP_MM) and the marrow filled; an opening of twice CORTEX_GAP_MM
    is a concavity of the bone, not a gap in its cortex, and what lies inside it stays background."""
    zz, yy, xx = np.indices((30, 40, 40))
    radius = np.hypot(yy - 20, xx - 20)
    cortex, marrow = (radius <= 12) & (radius > 9), radius <= 9
    for half_width_mm, bridged in ((0.0, True), (2 * ct_bone.CORTEX_GAP_MM, False)):
        broken = cortex & (np.abs(yy - 20) * SPACING[1] <= half_width_mm) & (xx > 20)
        hu = np.where(cortex & ~broken, 700.0, np.where(broken, 80.0, np.where(marrow, 20.0, 50.0)))
        out = ct_bone.recover_bone(np.where(cortex & ~broken, 2, 0).astype(np.uint8), hu.astype(np.float32), SPACING)
        far_side = marrow & (np.abs(yy - 20) * SPACING[1] <= half_width_mm) & (xx > 23)
        assert (out[marrow] == 2).all() if bridged else not out[far_side].any(), half_width_mm


def test_an_image_without_bone_labels_is_returned_unchanged():
    labels = np.zeros((10, 10, 10), np.uint8)
    assert ct_bone.recover_bone(labels, np.full(labels.shape, 500.0, np.float32), SPACING) is labels
