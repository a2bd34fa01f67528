"""Save PNGs of phantom hips to look at: slices through each head of a cohort, or one lesion by stage.

Usage: .venv/bin/python Resources/preview_phantom.py DATASET_DIR OUT_DIR [N_SCANS]
       .venv/bin/python Resources/preview_phantom.py --stages SEED PATIENT OUT_DIR
The second form renders one patient's lesion hip at stages I, II and III on MR-T1 and CT (same
geometry and noise), axial and coronal through the lesion, so the stage signs can be compared.
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from dataclasses import replace  # noqa: E402

from ONFHAssistLib.imaging import io
from ONFHAssistLib.phantom import cohort as phantom  # noqa: E402

WINDOWS = {"ct": (-200, 1400), "mr_t1": (0, 1000)}
COLOURS = np.array([[0, 0, 0, 0], [0.95, 0.8, 0.2, 0.45], [0.2, 0.6, 1.0, 0.35], [1.0, 0.1, 0.1, 0.7]])


def preview(root: Path, out: Path, n: int = 4) -> list[Path]:
    table = pd.read_csv(root / "hips.csv")
    written = []
    for scan in list(dict.fromkeys(table.scan_id))[:n]:
        image = io.canonical(io.read_image(root / "images" / f"{scan}.nii.gz"))
        label = io.canonical(io.read_image(root / "labels" / f"{scan}.nii.gz"))
        arr, lab = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(label)
        rows = table[table.scan_id == scan]
        modality = rows.modality.iloc[0]
        window = WINDOWS[modality]
        fig, axes = plt.subplots(len(rows), 4, figsize=(17, 4.3 * len(rows)))
        for r, (_, hip) in enumerate(rows.iterrows()):
            i, j, k = image.TransformPhysicalPointToIndex([hip.head_x, hip.head_y, hip.head_z])
            sp = image.GetSpacing()
            views = [("axial", arr[k], lab[k], sp[1] / sp[0]),
                     ("coronal", arr[:, j][::-1], lab[:, j][::-1], sp[2] / sp[0]),
                     ("sagittal", arr[:, :, i][::-1], lab[:, :, i][::-1], sp[2] / sp[1])]
            views.append(("coronal + labels", *views[1][1:]))
            grade = f"JIC {hip.jic_type} stage {hip.jic_stage}" if hip.jic_stage else "healthy"
            for c, (name, img, seg, aspect) in enumerate(views):
                ax = axes[r, c]
                ax.imshow(img, cmap="gray", vmin=window[0], vmax=window[1], aspect=aspect)
                if c == 3:
                    ax.imshow(COLOURS[seg], aspect=aspect, interpolation="nearest")
                ax.set_title(f"{scan} {modality} {hip.side} hip, {name}: {grade}", fontsize=9)
                ax.axis("off")
        fig.tight_layout()
        path = out / f"phantom_{scan}.png"
        out.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=70)
        plt.close(fig)
        written.append(path)
    return written


def compare_stages(seed: int, patient: int, out: Path, stages=(1, 2, 3)) -> Path:
    """One lesion hip re-rendered at each stage on both modalities, sliced through the lesion centre."""
    anat = phantom.sample_anatomy(phantom.patient_rng(seed, patient))
    hip = next(h for h in anat.hips if h.has_lesion)
    rows = [(m, s) for m in phantom.MODALITIES for s in stages]
    fig, axes = plt.subplots(len(rows), 3, figsize=(11, 3.7 * len(rows)))
    for r, (modality, stage) in enumerate(rows):
        collapse = (hip.collapse_mm or 2.5) if stage >= 3 else 0.0
        staged = replace(hip, jic_stage=stage, collapse_mm=collapse)
        one = replace(anat, hips=[staged if h is hip else h for h in anat.hips])
        image, label = phantom.render(one, phantom.head_scan_spec(one, staged), modality, np.random.default_rng(0))
        arr, lab = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(label)
        k, j, _ = np.round(np.argwhere(lab == 3).mean(0)).astype(int)
        views = [("axial", arr[k], lab[k]), ("coronal", arr[:, j][::-1], lab[:, j][::-1])]
        views.append(("coronal + labels", *views[1][1:]))
        for c, (name, img, seg) in enumerate(views):
            ax = axes[r, c]
            ax.imshow(img, cmap="gray", vmin=WINDOWS[modality][0], vmax=WINDOWS[modality][1])
            if c == 2:
                ax.imshow(COLOURS[seg], interpolation="nearest")
            ax.set_title(f"{modality} {hip.side} JIC {hip.jic_type} stage {stage}: {name}", fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"stages_seed{seed}_P{patient}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


if __name__ == "__main__":
    if sys.argv[1] == "--stages":
        print(compare_stages(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])))
        sys.exit()
    for p in preview(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 4):
        print(p)
