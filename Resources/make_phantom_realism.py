"""Compare the realistic phantom with a real hip CT: a figure of slices and a table of tissue medians.

Usage: .venv/bin/python Resources/make_phantom_realism.py [SEED]
Writes Resources/Screenshots/phantom_vs_real_ct.png and phantom_tissue_table.md. The real CT
(TotalSegmentator's example, ../shared/data/real/totalsegmentator_example) is a test case only: nothing
in the generator is fitted to it; this script only shows both and measures both the same way.
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import SimpleITK as sitk
from ONFHAssistLib.atomic import atomic_path, atomic_write_text
from ONFHAssistLib.phantom import cohort, realistic
from ONFHAssistLib.phantom.habitus import sample_habitus
from ONFHAssistLib.phantom.protocols import T
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real" / "totalsegmentator_example"
OUT = ROOT / "Resources" / "Screenshots"
FEMUR_R, FEMUR_L, BLADDER, GLUTEAL = 76, 75, 21, range(80, 86)
SOFT, BONE = (-160, 240), (-500, 1500)  # soft-tissue (W400 L40) and bone (W2000 L500) windows


def head_centre(label: np.ndarray, image: sitk.Image, value: int) -> np.ndarray:
    """Centre of the largest ball inside the top 60 mm of one femur label (LPS mm)."""
    mask = label == value
    zs = np.nonzero(mask.any(axis=(1, 2)))[0]
    top = zs.max() if image.GetDirection()[8] > 0 else zs.min()
    sz = image.GetSpacing()[2]
    keep = np.zeros_like(mask)
    lo, hi = sorted((top, top - np.sign(image.GetDirection()[8]) * int(60 / sz)))
    keep[max(lo, 0): hi + 1] = True
    dist = ndimage.distance_transform_edt(mask & keep, sampling=image.GetSpacing()[::-1])
    idx = np.unravel_index(np.argmax(dist), dist.shape)
    return np.array(image.TransformIndexToPhysicalPoint([int(v) for v in idx[::-1]]))


def plane(image: sitk.Image, centre, axes: str, extent=(400.0, 330.0), step=1.0, interp=sitk.sitkLinear):
    """Resample a 2D LPS-aligned plane ('axial': x-y at centre z; 'coronal': x-z at centre y)."""
    nx, ny = int(extent[0] / step), int(extent[1] / step)
    if axes == "axial":
        direction = (1, 0, 0, 0, 1, 0, 0, 0, 1)
        origin = np.asarray(centre) + np.array([-extent[0] / 2, -extent[1] / 2 + 20, 0])
    else:  # rows run from superior (top of the picture) down
        direction = (1, 0, 0, 0, 0, 1, 0, -1, 0)
        origin = np.asarray(centre) + np.array([-extent[0] / 2, 0, 160.0])
    ref = sitk.Image([nx, ny, 1], sitk.sitkFloat32)
    ref.SetSpacing([step] * 3)
    ref.SetDirection(direction)
    ref.SetOrigin([float(v) for v in origin])
    fill = -1000.0 if image.GetPixelID() != sitk.sitkUInt8 else 0.0
    out = sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), ref, sitk.Transform(), interp, fill)
    return sitk.GetArrayFromImage(out)[0]


def phantom_scans(seed: int):
    """CT and MR-T1 of one realistic patient, L4 to mid-femur at 1.5 mm, same anatomy and habitus."""
    rng = cohort.patient_rng(seed, 0)
    anat = cohort.sample_anatomy(rng)
    hab = sample_habitus(rng.spawn(1)[0], anat.head_separation_mm)
    spec = cohort.ScanSpec((280, 210, 260), (1.5, 1.5, 1.5),
                           center_offset_mm=tuple(anat.rotation() @ (np.array([0.0, 18.0, 15.0]) - cohort.FOV_CENTRE_ANATOMY)))
    ct = realistic.render(anat, hab, spec, "ct", cohort.patient_rng(seed, 1))
    mr = realistic.render(anat, hab, spec, "mr_t1", cohort.patient_rng(seed, 2))
    centres = [anat.head_center_lps(hip) for hip in anat.hips]
    return anat, hab, ct, mr, centres


def _median(values: np.ndarray) -> str:
    return f"{np.median(values):.0f} (n={values.size})" if values.size else "n/a"


def real_regions(img: np.ndarray, seg: np.ndarray, spacing, head_r: np.ndarray, head_idx) -> dict:
    """Tissue masks of the real CT from its TotalSegmentator labels (rules in the table's notes)."""
    body = ndimage.binary_fill_holes(img > -300, structure=np.ones((1, 3, 3)))
    depth = ndimage.distance_transform_edt(body, sampling=spacing)
    fat = body & (depth <= 30) & (seg == 0) & (img > -190) & (img < -30)
    glut = ndimage.binary_erosion(np.isin(seg, list(GLUTEAL)))
    femur = seg == FEMUR_R
    zz, yy, xx = np.indices(seg.shape)
    near = ((zz - head_idx[2]) * spacing[0]) ** 2 + ((yy - head_idx[1]) * spacing[1]) ** 2 + (
        (xx - head_idx[0]) * spacing[2]) ** 2 < 18.0 ** 2
    cancellous = ndimage.binary_erosion(femur, iterations=2) & near
    bone = np.isin(seg, (FEMUR_R, 77, 78, 25))
    cortex = bone & (img >= 600) & (img < 2000)
    return {"fat": fat, "muscle": glut, "cancellous": cancellous, "cortex": cortex,
            "urine": ndimage.binary_erosion(seg == BLADDER)}


def phantom_regions(tissue: np.ndarray, label: np.ndarray, spacing, anat, image: sitk.Image) -> dict:
    """The same tissues from the phantom's own tissue map (its ground truth)."""
    body = tissue != T["air"]
    depth = ndimage.distance_transform_edt(body, sampling=spacing)
    zz, yy, xx = np.indices(tissue.shape)
    heads = np.zeros(tissue.shape, bool)
    for hip in anat.hips:
        idx = image.TransformPhysicalPointToContinuousIndex([float(v) for v in anat.head_center_lps(hip)])
        heads |= ((zz - idx[2]) * spacing[0]) ** 2 + ((yy - idx[1]) * spacing[1]) ** 2 + (
            (xx - idx[0]) * spacing[2]) ** 2 < (hip.head_radius_mm - 4.0) ** 2
    return {"fat": ndimage.binary_erosion(tissue == T["fat"]) & (depth <= 30),
            "muscle": ndimage.binary_erosion(tissue == T["muscle"]),
            "cancellous": (tissue == T["cancellous"]) & (label == 2) & heads,
            "cortex": (tissue == T["cortex"]) & (label == 2),
            "urine": ndimage.binary_erosion(tissue == T["urine"])}


def tissue_table(real_img, seg, real_img_sitk, ph_img, ph_tissue, ph_label, anat) -> str:
    centre = head_centre(seg, real_img_sitk, FEMUR_R)
    head_idx = real_img_sitk.TransformPhysicalPointToIndex([float(v) for v in centre])
    real = real_regions(real_img, seg, real_img_sitk.GetSpacing()[::-1], centre, head_idx)
    arr = sitk.GetArrayFromImage(ph_img)
    ph = phantom_regions(sitk.GetArrayFromImage(ph_tissue), sitk.GetArrayFromImage(ph_label),
                         ph_img.GetSpacing()[::-1], anat, ph_img)
    published = {"fat": "-120 … -60", "muscle": "35 … 60", "cancellous": "150 … 450", "cortex": "900 … 1800",
                 "urine": "0 … 20"}
    rows = ["| tissue | published HU | phantom CT median HU | real CT median HU |", "|---|---|---|---|"]
    for name, hu in published.items():
        rows.append(f"| {name} | {hu} | {_median(arr[ph[name]])} | {_median(real_img[real[name]])} |")
    notes = (
        "\nHow each tissue is found. Phantom: its own tissue map (ground truth), measured on the rendered "
        "CT (1.5 mm, with blur and noise). Real CT (3 mm, TotalSegmentator labels): fat = body voxels within "
        "30 mm of the skin, outside every label, between -190 and -30 HU (phantom: fat class within 30 mm of "
        "the skin, eroded one voxel); muscle = gluteal labels 80-85 "
        "eroded one voxel (phantom: all muscle, eroded one voxel); cancellous = right femur label eroded two "
        "voxels within 18 mm of its head centre (largest inscribed ball; the left femur holds a screw) "
        "(phantom: cancellous class inside the femoral heads, 4 mm in from the surface); cortex = voxels of "
        "the right femur, hip and sacrum labels between 600 and 2000 HU (its femur label holds no diaphysis and "
        "3 mm voxels blur the 1-3 mm cortex of head, neck and pelvis into marrow, so only cortex-dominated "
        "voxels are kept; the threshold biases this median upwards) (phantom: cortex class of the femur); urine = "
        "bladder label 21 eroded one voxel.\n")
    return "\n".join(rows) + "\n" + notes


def figure(real, seg, centres_real, ct, mr, centres_ph, path: Path) -> None:
    cols = [("real CT (TotalSegmentator example, 3 mm)", real, centres_real, "ct"),
            ("phantom CT (realistic generator)", ct, centres_ph, "ct"),
            ("phantom MR-T1 (realistic generator)", mr, centres_ph, "mr")]
    rows = [("axial through femoral heads", "axial", SOFT, "soft-tissue W400 L40"),
            ("axial through femoral heads", "axial", BONE, "bone W2000 L500"),
            ("coronal through femoral heads", "coronal", SOFT, "soft-tissue W400 L40"),
            ("coronal through femoral heads", "coronal", BONE, "bone W2000 L500")]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(15, 17))
    for j, (title, img, centres, kind) in enumerate(cols):
        centre = np.mean(centres, axis=0)
        for i, (what, axes_name, window, wname) in enumerate(rows):
            sl = plane(img, centre, axes_name)
            if kind == "mr":
                lo, hi = np.percentile(sl, [1, 99.5])
                window, wname = ((lo, hi * (0.55 if window == BONE else 1.0)),
                                 "MR-T1 " + ("narrow" if window == BONE else "full") + " window")
            ax = axes[i, j]
            ax.imshow(sl, cmap="gray", vmin=window[0], vmax=window[1], interpolation="bilinear")
            ax.set_title(f"{title}\n{what}, {wname}", fontsize=10)
            ax.axis("off")
    fig.suptitle("Realistic phantom vs a real CT (R on the left of each image; the real CT is a test case only)",
                 fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.975))  # keep the suptitle clear of the first row's titles
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def main(seed: int = 7) -> None:
    real = sitk.ReadImage(str(REAL / "example_ct.nii.gz"))
    seg_img = sitk.ReadImage(str(REAL / "example_seg_fast_force_split.nii.gz"))
    seg = sitk.GetArrayFromImage(seg_img)
    centres_real = [head_centre(seg, real, FEMUR_R), head_centre(seg, real, FEMUR_L)]
    anat, _, (ct, ct_label, ct_tissue), (mr, _, _), centres_ph = phantom_scans(seed)
    figure(real, seg, centres_real, ct, mr, centres_ph, OUT / "phantom_vs_real_ct.png")
    table = tissue_table(sitk.GetArrayFromImage(real).astype(float), seg, real, ct, ct_tissue, ct_label, anat)
    atomic_write_text(OUT / "phantom_tissue_table.md", "# Realistic phantom vs real CT: median HU per tissue\n\n" + table)
    print(table)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
