"""Head sphere fit, volumes, necrotic ratio and Kerboul angle against analytic geometry."""
import numpy as np
import pytest

from sklearn.metrics import f1_score

from ONFHAssistLib.analysis import measure
from ONFHAssistLib.training.evaluation import dice_per_class

SPACING = np.array([1.0, 1.0, 1.0])
ORIGIN = np.array([-40.0, -40.0, -40.0])


def _grid(n=81):
    axis = ORIGIN[0] + np.arange(n) * SPACING[0]
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")  # arrays are (z, y, x)
    return x, y, z


def _femur(centre, radius):
    """Ball plus a neck leaving laterally (-x) and inferiorly (-z), as in a right-hip crop."""
    x, y, z = _grid()
    ball = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= radius ** 2
    axis = np.array([-1.0, 0.0, -1.0]) / np.sqrt(2)
    rel = np.stack([x - centre[0], y - centre[1], z - centre[2]], -1)
    along = rel @ axis
    perp = np.linalg.norm(rel - along[..., None] * axis, axis=-1)
    neck = (along > 0) & (along < 45) & (perp < 0.65 * radius)
    return ball | neck


@pytest.mark.parametrize("centre,radius", [((1.3, -2.2, 0.7), 22.0), ((-3.0, 2.5, 4.1), 25.5)])
def test_sphere_fit_ignores_the_neck(centre, radius):
    femur = _femur(centre, radius)
    start = np.array(centre) + [4.0, -3.0, 2.0]  # a coarse localiser error
    sphere = measure.fit_head_sphere(femur, ORIGIN, SPACING, start)
    assert np.linalg.norm(sphere.center_xyz - centre) < 0.5
    assert sphere.radius_mm == pytest.approx(radius, abs=0.5)


def test_sphere_fit_ignores_where_the_scan_ends():
    """An abdomen-pelvis CT may stop inside the head: its last slice cuts the ball flat. The cut is not the
    head's surface; with the scan's extent given, the fit uses the dome alone."""
    centre, radius = np.array([0.5, -1.0, 0.3]), 24.0
    _, _, z = _grid()
    in_view = z > centre[2] - 4.0  # the scan ends 4 mm below the head centre
    femur = _femur(centre, radius) & in_view
    start = centre + [3.0, 2.0, -2.0]
    fitted = measure.fit_head_sphere(femur, ORIGIN, SPACING, start, in_view=in_view)
    assert np.linalg.norm(fitted.center_xyz - centre) < 0.2 and fitted.radius_mm == pytest.approx(radius, abs=0.2)
    blind = measure.fit_head_sphere(femur, ORIGIN, SPACING, start)
    assert np.linalg.norm(blind.center_xyz - centre) > 1.0  # what the flat cut does to a fit that keeps it (1.3 mm)


def test_ratio_volume_and_angle_of_a_superior_cap():
    """Lesion = head above the plane z = c_z + h: ratio and arcs have closed forms."""
    centre, radius, h = np.array([0.0, 0.0, 0.0]), 24.0, 8.5  # voxel faces sit at half-integers
    x, y, z = _grid()
    femur = _femur(centre, radius)
    labels = np.where(femur, 2, 0).astype(np.uint8)
    labels[femur & (z > h) & (x ** 2 + y ** 2 + z ** 2 <= radius ** 2)] = 3
    sphere = measure.HeadSphere(centre, radius, 0)
    m = measure.measure_head(labels, sphere, ORIGIN, SPACING)
    cap = np.pi * (radius - h) ** 2 * (2 * radius + h) / 3.0
    assert m.necrotic_ratio == pytest.approx(cap / (4 / 3 * np.pi * radius ** 3), abs=0.01)
    assert m.head_volume_ml == pytest.approx(4 / 3 * np.pi * radius ** 3 / 1000, rel=0.02)
    # On each mid-plane the cap covers the arc where (r - inset) cos(psi) > h.
    arc = 2 * np.degrees(np.arccos(h / (radius - measure.KERBOUL_INSET_MM)))
    assert m.necrotic_angle_deg == pytest.approx(2 * arc, abs=3.0)


def test_boundary_points_lie_on_the_surface():
    x, y, z = _grid()
    ball = x ** 2 + y ** 2 + z ** 2 <= 20.0 ** 2
    pts = measure.boundary_points(ball, ORIGIN, SPACING)
    assert np.abs(np.linalg.norm(pts, axis=1) - 20.0).max() < 0.9


def test_largest_component_keeps_the_big_one():
    mask = np.zeros((10, 10, 10), bool)
    mask[1:3, 1:3, 1:3] = True
    mask[5:9, 5:9, 5:9] = True
    kept = measure.largest_component(mask)
    assert kept.sum() == 64 and not kept[1, 1, 1]


def test_dice_per_class_equals_sklearn_f1():
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 4, size=(6, 7, 8))
    pred = np.where(rng.random(truth.shape) < 0.7, truth, rng.integers(0, 4, size=truth.shape))
    expected = f1_score(truth.ravel(), pred.ravel(), labels=[1, 2, 3], average=None)
    assert np.allclose(dice_per_class(pred, truth), expected)
    assert np.isnan(dice_per_class(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))[2])
