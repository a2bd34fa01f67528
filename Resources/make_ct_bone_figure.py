"""Show what the CT bone step (`analysis/ct_bone.py`) changes on the real CT's right hip.

Usage: .venv/bin/python Resources/make_ct_bone_figure.py
Writes Resources/Screenshots/ct_bone_real_ct.png: the shipped segmentation's labels from one network pass,
post-processed without and with the Hounsfield-scale step, beside TotalSegmentator's labels, in three planes
through the fitted head centre. The real CT is a test case only; this script draws, it fits nothing.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import SimpleITK as sitk
import torch
from ONFHAssistLib.analysis import segment
from ONFHAssistLib.analysis.hipfinder import find_and_segment
from ONFHAssistLib.analysis.pipeline import load_models
from ONFHAssistLib.atomic import atomic_path
from ONFHAssistLib.imaging.crops import hip_crop, in_view, normalise

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real" / "totalsegmentator_example"
OUT = ROOT / "Resources" / "Screenshots" / "ct_bone_real_ct.png"
TS_FEMUR, TS_PELVIS = (76,), (78, 25)  # femur_right; hip_right + sacrum (as `Testing/real_ct_oracle.py`)
WINDOW = (-200, 1000)


def main() -> None:
    device = torch.device("cpu")
    image = sitk.ReadImage(str(REAL / "example_ct.nii.gz"), sitk.sitkFloat32)
    models = load_models({}, device, [])
    network = models["segmentation"].network
    finding = find_and_segment(models["localizer"].network, network, image, "ct", device, sides=("R",))[0][0]
    centre = finding.coarse_center_lps
    crop = hip_crop(image, centre, "R", segment.INFER_SPEC)
    hounsfield = sitk.GetArrayFromImage(crop)
    raw = np.argmax(segment.predict_crop(network, normalise(hounsfield, "ct"), device), 0).astype(np.uint8)
    origin, spacing = np.array(crop.GetOrigin()), np.array(crop.GetSpacing())
    view = in_view(image, centre, "R", segment.INFER_SPEC)
    start = np.asarray(centre, float)
    alone, _ = segment.postprocess(raw, origin, spacing, start, view)
    recovered, sphere = segment.postprocess(raw, origin, spacing, start, view, hounsfield=hounsfield)
    truth = sitk.GetArrayFromImage(hip_crop(sitk.ReadImage(str(REAL / "example_seg_fast_force_split.nii.gz")),
                                            centre, "R", segment.INFER_SPEC, label=True))
    index = np.round((sphere.center_xyz - origin) / spacing).astype(int)  # x, y, z
    planes = {"axial": (index[2], slice(None), slice(None)), "coronal": (slice(None), index[1], slice(None)),
              "sagittal": (slice(None), slice(None), index[0])}
    fig, axes = plt.subplots(2, 3, figsize=(13, 9))
    for row, (labels, title) in zip(axes, ((alone, "network, head rules"), (recovered, "+ CT bone step"))):
        for ax, (plane, cut) in zip(row, planes.items()):
            ax.imshow(hounsfield[cut], cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], origin="lower")
            ax.contour(np.isin(truth[cut], TS_FEMUR), [0.5], colors="magenta", linewidths=1.0, linestyles="dashed")
            ax.contour(np.isin(truth[cut], TS_PELVIS), [0.5], colors="orange", linewidths=1.0, linestyles="dashed")
            ax.contour(np.isin(labels[cut], (2, 3)), [0.5], colors="cyan", linewidths=1.2)
            ax.contour(labels[cut] == 1, [0.5], colors="yellow", linewidths=1.2)
            ax.set_title(f"{title}: {plane}", fontsize=12)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Real CT, right hip (96 mm crop, 1.5 mm, CT W 1200 / L 400): femur cyan, pelvis yellow;\n"
                 "TotalSegmentator femur magenta, hip bone + sacrum orange (dashed)", fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.93), h_pad=2.0)
    with atomic_path(OUT) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    print(OUT)


if __name__ == "__main__":
    main()
