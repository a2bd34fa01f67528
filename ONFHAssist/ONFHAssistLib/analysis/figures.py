"""PNG figures a user (or a reviewer of this code) looks at: the report's key images of each hip (three
planes through the lesion with orientation letters, a modality window and fixed colour scales), label
overlays through each femoral head, ROC and confusion matrices. The survival CV's figures (Kaplan–Meier,
calibration, decision curves) are drawn for papers in `survival/figures.py`."""
from __future__ import annotations

import io as bytes_io
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import ListedColormap, Normalize  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Circle  # noqa: E402
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from ..imaging import io  # noqa: E402
from ..survival.figures import save_figure  # noqa: E402

LABEL_COLOURS = ListedColormap([(0, 0, 0, 0), (0.95, 0.8, 0.2, 0.45), (0.2, 0.6, 1.0, 0.45), (0.95, 0.15, 0.15, 0.7)])


def coronal_overlay_png(image: sitk.Image, label: sitk.Image, hips: list[dict], path: str | Path, title: str) -> Path:
    """Coronal slices (1 mm, LPS-aligned, patient's right on the viewer's left) through each found head,
    with the label map, the fitted head circle, orientation letters and a 20 mm bar (as the key images); a
    missing head is named with its reason."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.5))
    for ax, hip in zip(axes, sorted(hips, key=lambda h: h["side"] != "R")):
        ax.set_axis_off()
        centre = hip["center_lps"] if hip["found"] else hip.get("candidate_lps")
        if not hip["found"]:
            ax.set_title(f"{hip['side']} hip: not found (× where it was expected)\n" + textwrap.fill(hip["reason"], 60),
                         fontsize=9)
        if centre is None:
            continue
        box = (160.0, 1.0, 160.0)
        img = io.crop_box(image, centre, box, 1.0)
        lab = io.crop_box(label, centre, box, 1.0, label=True)
        mid = img.GetSize()[1] // 2
        a = sitk.GetArrayViewFromImage(img)[:, mid, :]
        b = sitk.GetArrayViewFromImage(lab)[:, mid, :]
        lo, hi = np.percentile(a, (1, 99.5))
        extent = (-80, 80, -80, 80)
        ax.imshow(a, cmap="gray", vmin=lo, vmax=hi, origin="lower", extent=extent)
        ax.imshow(b, cmap=LABEL_COLOURS, vmin=0, vmax=3, origin="lower", extent=extent, interpolation="nearest")
        _decorate(ax, edge_letters(img.GetDirection(), PLANES["coronal"]), scale_bar=True)
        if not hip["found"]:
            ax.plot([0], [0], marker="x", color="orange", markersize=14, mew=2.5)
        else:
            ax.add_patch(Circle((0, 0), hip["radius_mm"], fill=False, color="lime", lw=1.2))
            ratio = hip.get("necrotic_ratio")
            extra = f", lesion {100 * ratio:.1f} % of the head" if ratio is not None else ""
            ax.set_title(f"{hip['side']} hip: head r = {hip['radius_mm']:.1f} mm{extra}", fontsize=10)
    fig.suptitle(title + "\n(coronal, patient's right on the left; yellow pelvis, blue femur, red necrosis, "
                 "green fitted head)", fontsize=10)
    return _save_png(fig, path)


# ---- key images: three planes through the lesion (or head) centre, for the report --------------------------

VIEW_MM = 100.0  # field of each panel
PIXEL_MM = 0.5  # display pixels (linear interpolation from the scan)
CT_BONE_WINDOW = (1200.0, 300.0)  # width, level in HU: marrow fat, trabecular bone, sclerosis and cortex distinct
MR_PERCENTILES = (1.0, 99.5)  # of the displayed pixels inside the scan
KEY_DPI = 120  # an 11.2-inch figure: 1344 px, ≈ 180 dpi across the 7.5-inch text width of an A4 page; 200 dpi took 2.5× as long
NECROSIS = 3
LPS_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))  # (negative, positive) end of LPS x, y, z


@dataclass(frozen=True)
class Plane:
    """A slice plane of the LPS-aligned display grid: which LPS axis runs across, which up, and whether
    array rows run down the screen (axial: anterior up) or up (coronal, sagittal: superior up)."""
    normal: int
    across: int
    up: int
    rows_down: bool


PLANES = {"axial": Plane(2, 0, 1, True), "coronal": Plane(1, 0, 2, False), "sagittal": Plane(0, 1, 2, False)}


@dataclass
class KeyImages:
    """The PNG and every quantity it was drawn with, so a test (or a reader) can check them."""
    png: bytes
    centre_lps: tuple[float, float, float]
    through: str  # "lesion" or "head"
    window: tuple[float, float]
    limits: dict[str, tuple[float, float]]
    letters: dict[str, dict[str, str]]
    slice_index: dict[str, tuple[int, int]]  # plane → (0-based voxel index of the scan, slices on that axis)
    gradcam_evidence: bool


def lesion_centre(label: sitk.Image, hip: dict) -> np.ndarray | None:
    """Centroid (LPS mm) of the necrosis voxels within 1.2 head radii of this hip's centre; None without one."""
    centre, reach = np.asarray(hip["center_lps"], float), 1.2 * float(hip["radius_mm"])
    corners = centre + reach * np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)])
    start, size = io.index_box(label, corners)
    if min(size) <= 0:
        return None
    region = sitk.RegionOfInterest(label, [int(s) for s in size], [int(s) for s in start])
    zyx = np.argwhere(sitk.GetArrayViewFromImage(region) == NECROSIS)
    if not len(zyx):
        return None
    direction = np.array(region.GetDirection()).reshape(3, 3)
    points = np.array(region.GetOrigin()) + (zyx[:, ::-1] * np.array(region.GetSpacing())) @ direction.T
    points = points[np.linalg.norm(points - centre, axis=1) <= reach]
    return points.mean(0) if len(points) else None


def edge_letters(direction, plane: Plane) -> dict[str, str]:
    """Patient directions at the left, right, top and bottom edge of a slice of a grid with this direction
    matrix (columns: voxel axes in LPS), taken from the dominant LPS component of each displayed axis."""
    d = np.asarray(direction, float).reshape(3, 3)

    def ends(axis: int) -> tuple[str, str]:  # letters at the (low, high) index end of a voxel axis
        lps = int(np.argmax(np.abs(d[:, axis])))
        negative, positive = LPS_LETTERS[lps]
        return (negative, positive) if d[lps, axis] > 0 else (positive, negative)

    left, right = ends(plane.across)
    low, high = ends(plane.up)
    return {"left": left, "right": right, "top": low if plane.rows_down else high,
            "bottom": high if plane.rows_down else low}


def display_window(modality: str, pixels: np.ndarray) -> tuple[float, float]:
    """Grey-level limits: the CT bone window, or for MR the 1st–99.5th percentile of the shown pixels."""
    if modality == "ct":
        width, level = CT_BONE_WINDOW
        return level - width / 2, level + width / 2
    values = pixels[np.isfinite(pixels)]
    if not values.size:
        return 0.0, 1.0
    lo, hi = np.percentile(values, MR_PERCENTILES)
    return float(lo), float(max(hi, lo + 1e-6))


def colour_limits(key: str, volume: sitk.Image) -> tuple[float, float]:
    """One colour scale per map for the whole scan: Grad-CAM 0..1 (as scaled by `maps.unit_range`),
    SRANet attention 0..its maximum over the scan (both hips), so equal colours mean equal values."""
    if key == "gradcam":
        return 0.0, 1.0
    return 0.0, max(float(sitk.GetArrayViewFromImage(volume).max()), 1e-6)


def gradcam_is_evidence(hip: dict) -> bool:
    """Grad-CAM reads as evidence only for a predicted ONFH stage on a hip with a segmented lesion; otherwise
    it shows what the network looked at to call the hip normal, which must not look like a finding."""
    stage = next(iter((hip.get("stage") or {}).values()), None)
    necrosis = (hip.get("volumes_ml") or {}).get("necrosis") or 0.0
    return bool(stage and stage["index"] > 0 and necrosis > 0)


def plane_slice(image: sitk.Image, centre, plane: Plane, label: bool = False, default: float = 0.0) -> np.ndarray:
    """A VIEW_MM square slice through `centre` on the LPS-aligned display grid, resampled from the scan's own
    geometry (its direction cosines included), rows and columns as `plane` says."""
    size = [VIEW_MM] * 3
    spacing = [PIXEL_MM] * 3
    size[plane.normal], spacing[plane.normal] = 1.0, 1.0
    grid = io.crop_box(image, centre, size, spacing, label=label, default=default)
    return np.take(sitk.GetArrayFromImage(grid), 0, axis=2 - plane.normal)  # (z, y, x): rows `up`, columns `across`


def slice_position(image: sitk.Image, centre, plane: Plane) -> tuple[int, int]:
    """The scan's own slice through `centre`: 0-based index on the voxel axis nearest the plane normal, and
    how many slices that axis has."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    axis = int(np.argmax(np.abs(direction[plane.normal])))
    index = io.physical_to_index(image, centre)[axis]
    return int(round(float(index))), int(image.GetSize()[axis])


def _position_text(centre, plane: Plane) -> str:
    """Plane position as radiology viewers write it: 'S 12.4 mm', 'P 3.0 mm', 'R 70.1 mm' (LPS origin)."""
    value = float(centre[plane.normal])
    negative, positive = LPS_LETTERS[plane.normal]
    return f"{positive if value >= 0 else negative} {abs(value):.1f} mm"


def key_images(image: sitk.Image, maps: dict[str, sitk.Image], hip: dict, modality: str,
               dpi: int = KEY_DPI) -> KeyImages:
    """Axial, coronal and sagittal slices through the lesion's centroid (the head's centre without a lesion):
    the image in its window, the segmentation, SRANet attention and Grad-CAM, each panel with its patient
    directions, the maps on one colour scale per map for the whole scan."""
    lesion = lesion_centre(maps["labels"], hip)
    centre = lesion if lesion is not None else np.asarray(hip["center_lps"], float)
    grey_image = sitk.Cast(image, sitk.sitkFloat32)
    greys = {name: plane_slice(grey_image, centre, plane, default=np.nan) for name, plane in PLANES.items()}
    window = display_window(modality, np.concatenate([g.ravel() for g in greys.values()]))
    columns = ["image", "labels", *(key for key in ("attention", "gradcam") if key in maps)]
    limits = {key: colour_limits(key, maps[key]) for key in columns[2:]}
    evidence = gradcam_is_evidence(hip)
    grid_direction = io.grid_reference(centre, 1.0, 1.0).GetDirection()
    letters = {name: edge_letters(grid_direction, plane) for name, plane in PLANES.items()}
    slices = {name: slice_position(image, centre, plane) for name, plane in PLANES.items()}
    fig = plt.figure(figsize=(2.8 * len(columns), 9.6))
    grid = fig.add_gridspec(4, len(columns), height_ratios=[1, 1, 1, 0.07], hspace=0.12, wspace=0.05, top=0.88,
                            bottom=0.08, left=0.08, right=0.99)
    for row, (name, plane) in enumerate(PLANES.items()):
        for col, key in enumerate(columns):
            ax = fig.add_subplot(grid[row, col])
            overlay = None if key == "image" else plane_slice(maps[key], centre, plane, label=key == "labels")
            _panel(ax, plane, greys[name], window, key, overlay, limits.get(key), evidence, hip, centre)
            _decorate(ax, letters[name], scale_bar=col == 0)
            if col == 0:
                index, count = slices[name]
                ax.set_ylabel(f"{name}  {_position_text(centre, plane)}\nscan slice {index + 1} of {count}",
                              fontsize=11)
            if row == 0:
                ax.set_title(_column_title(key, hip, evidence), fontsize=11)
    for col, key in enumerate(columns):
        _colour_key(fig, fig.add_subplot(grid[3, col]), key, limits.get(key), evidence)
    side = "Right" if hip["side"] == "R" else "Left"
    point = "the centre of the segmented lesion" if lesion is not None else "the head centre (no lesion segmented)"
    fig.suptitle(f"{side} hip: slices through {point}\n{VIEW_MM:.0f} mm field, patient's right on the viewer's left; "
                 f"{_window_text(modality, window)}", fontsize=13, y=0.975)
    buffer = bytes_io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return KeyImages(buffer.getvalue(), tuple(float(v) for v in centre), "lesion" if lesion is not None else "head",
                     window, limits, letters, slices, evidence)


def _panel(ax, plane: Plane, grey: np.ndarray, window, key: str, overlay, limits, evidence: bool, hip: dict,
           centre) -> None:
    """One panel: the windowed slice (black outside the scan) and its overlay, in mm from the panel centre."""
    half = VIEW_MM / 2
    show = {"origin": "upper" if plane.rows_down else "lower",
            "extent": (-half, half, half, -half) if plane.rows_down else (-half, half, -half, half)}
    ax.set_facecolor("black")
    ax.imshow(grey, cmap="gray", vmin=window[0], vmax=window[1], interpolation="bilinear", **show)
    if key == "labels":
        _draw_labels(ax, overlay, hip, centre, plane, show)
    elif key == "attention":  # constant per SRANet patch: drawn as blocks
        ax.imshow(overlay, cmap=_fading("inferno"), vmin=limits[0], vmax=limits[1], interpolation="nearest", **show)
    elif key == "gradcam" and evidence:
        ax.imshow(overlay, cmap=_fading("inferno"), vmin=limits[0], vmax=limits[1], interpolation="bilinear", **show)
    elif key == "gradcam" and overlay.max() > 0.5:  # outlines only: nothing that reads as a finding
        ax.contour(overlay, levels=[0.5, 0.75], colors="cyan", linewidths=1.0, linestyles="dashed", **show)


def _fading(name: str) -> ListedColormap:
    """A colour map whose low end is transparent, so the anatomy shows where a map is weak."""
    colours = plt.get_cmap(name)(np.linspace(0.0, 1.0, 256))
    colours[:, 3] = 0.65 * np.linspace(0.0, 1.0, 256) ** 0.6
    return ListedColormap(colours)


def _draw_labels(ax, labels: np.ndarray, hip: dict, centre, plane: Plane, show: dict) -> None:
    """Outlines of pelvis and femur, the lesion filled and outlined, and the fitted head sphere's cut."""
    for value, colour in ((1, "gold"), (2, "deepskyblue"), (NECROSIS, "red")):
        mask = (labels == value).astype(float)
        if mask.any():
            ax.contour(mask, levels=[0.5], colors=colour, linewidths=1.3, **show)
    lesion = np.ma.masked_not_equal(labels, NECROSIS)
    ax.imshow(lesion, cmap=ListedColormap([(1.0, 0.1, 0.1, 0.35)]), interpolation="nearest", **show)
    offset = np.asarray(hip["center_lps"], float) - np.asarray(centre, float)
    depth = abs(offset[plane.normal])
    if depth < hip["radius_mm"]:
        ax.add_patch(Circle((offset[plane.across], offset[plane.up]), np.sqrt(hip["radius_mm"] ** 2 - depth ** 2),
                            fill=False, color="lime", lw=1.0, ls="--"))


def _decorate(ax, letters: dict[str, str], scale_bar: bool) -> None:
    """Orientation letters at the four edges and, on the first column, a 20 mm scale bar."""
    ax.set_xticks([])
    ax.set_yticks([])
    outline = [patheffects.withStroke(linewidth=2.5, foreground="black")]
    places = {"left": (0.02, 0.5, "left", "center"), "right": (0.98, 0.5, "right", "center"),
              "top": (0.5, 0.98, "center", "top"), "bottom": (0.5, 0.02, "center", "bottom")}
    for edge, (x, y, ha, va) in places.items():
        ax.text(x, y, letters[edge], transform=ax.transAxes, ha=ha, va=va, color="white", fontsize=13,
                fontweight="bold", path_effects=outline)
    if scale_bar:
        ax.add_artist(AnchoredSizeBar(ax.transData, 20.0, "20 mm", "lower right", pad=0.4, color="white",
                                      frameon=False, size_vertical=0.8, fontproperties={"size": 10}))


def _column_title(key: str, hip: dict, evidence: bool) -> str:
    if key == "image":
        return "image"
    if key == "labels":
        return "segmentation"
    if key == "attention":
        p = (hip.get("sranet") or {}).get("probability")
        return "SRANet attention" + (f"\n(its P(necrosis) {p:.2f})" if p is not None else "")
    stage = next(iter((hip.get("stage") or {}).values()), None)
    system = next(iter(hip.get("stage") or {}), "")
    if evidence:
        return f"Grad-CAM\nevidence for {system.upper()} {stage['label']}"
    return "Grad-CAM: where it looked\n(no ONFH: not a finding)"


def _colour_key(fig, cax, key: str, limits, evidence: bool) -> None:
    """Under each column: the colour bar of its map, or a legend of its outlines."""
    cax.set_axis_off()
    if key == "labels":
        handles = [Line2D([], [], color=c, lw=2, label=t) for c, t in
                   (("gold", "pelvis"), ("deepskyblue", "femur"), ("red", "necrosis"), ("lime", "fitted head"))]
        cax.legend(handles=handles, loc="center", ncol=2, fontsize=10, frameon=False, handlelength=1.2,
                   columnspacing=0.8)
    elif key == "image":
        cax.text(0.5, 0.5, "every panel is centred on\nthe point named in the title", ha="center", va="center",
                 fontsize=10)
    elif key == "gradcam" and not evidence:
        cax.text(0.5, 0.5, "dashed lines: Grad-CAM 0.5\nand 0.75 (1 = its strongest)", ha="center", va="center",
                 fontsize=10)
    else:
        inset = cax.inset_axes([0.08, 0.0, 0.84, 1.0])  # room between neighbouring bars' end labels
        bar = fig.colorbar(ScalarMappable(Normalize(*limits), cmap="inferno"), cax=inset, orientation="horizontal")
        bar.set_label("attention weight (64 patches\nsum to 1), 0 to scan maximum" if key == "attention"
                      else "Grad-CAM evidence\n(0 none, 1 strongest)", fontsize=10)
        bar.ax.tick_params(labelsize=9)


def _window_text(modality: str, window: tuple[float, float]) -> str:
    if modality == "ct":
        width, level = CT_BONE_WINDOW
        return f"CT bone window W {width:.0f} / L {level:.0f} HU"
    return f"MR grey levels {window[0]:.0f}–{window[1]:.0f} (1st–99.5th percentile)"


def roc_png(y, p, path: str | Path, title: str) -> Path:
    """ROC curve of a binary score with its AUC (sklearn) in the legend; 300 dpi PNG + SVG, as every paper figure."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.plot(fpr, tpr, color="tab:red", lw=2, label=f"AUC = {roc_auc_score(y, p):.3f} (n = {len(y)})")
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def confusion_png(cm, names: list[str], path: str | Path, title: str) -> Path:
    """Confusion matrix with counts in each cell (rows: truth, columns: prediction); 300 dpi PNG + SVG."""
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 1.1 * len(names) + 2))
    ax.imshow(cm, cmap="Blues")
    for (i, j), value in np.ndenumerate(cm):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > cm.max() / 2 else "black")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def _save_png(fig, path: str | Path) -> Path:
    """Write a figure atomically (a reader never sees half a PNG) and free it."""
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path
