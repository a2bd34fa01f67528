"""Save axial / coronal / sagittal PNGs through each femoral head of a phantom cohort, to look at.

Usage: .venv/bin/python Resources/preview_phantom.py DATASET_DIR OUT_DIR [N_SCANS]
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

from ONFHAssistLib import io  # noqa: E402

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
        window = (-200, 1400) if modality == "ct" else (0, 1000)
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


if __name__ == "__main__":
    for p in preview(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 4):
        print(p)
