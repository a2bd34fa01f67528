"""Train and evaluate the femoral-head localiser (heatmap regression on a coarse LPS grid)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..analysis.localization import (
    GRID_MM,
    HEATMAP_SIGMA_MM,
    assign_sides,
    body_midline_x,
    decode_peaks,
    heatmap_target,
    localizer_input,
)
from ..atomic import atomic_path
from ..devices import resolve_device, seed_everything
from ..models.localizer import build_localizer
from ..models.networks import initialise_from
from ..progress import Steps
from . import distributed
from .engine import Trainer
from .evaluation import evaluate_task
from .hard_negatives import PACKAGE_SLICES, negative_sources
from .model_identity import identity
from .scans import list_scans, split_scans

FEATURES = (8, 16, 32, 64, 64, 8)
EPOCHS = 40
PEAK_LEVEL = 0.05
NEGATIVE_SHARE = 0.5  # hard negatives per epoch, relative to the training scans (`_negative_sample`)


def _cached_inputs(scans, cache: Path, reporter=None) -> list[dict]:
    """Localiser input and target per scan, computed once (npz, no pickle); progress names the scan (i/N)."""
    cache.mkdir(parents=True, exist_ok=True)
    items = []
    steps = Steps(reporter, "prepare", len(scans))
    for n, scan in enumerate(scans):
        path = cache / f"{scan.scan_id}.npz"
        with steps.step(f"scan {n + 1}/{len(scans)}: {scan.scan_id}", cached=path.exists()):
            if not path.exists():
                image = scan.image()
                array, grid = localizer_input(image, scan.modality(image))
                target = heatmap_target(grid, scan.centres().values())
                with atomic_path(path) as tmp, open(tmp, "wb") as f:
                    np.savez_compressed(f, image=array, target=target, origin=np.array(grid.GetOrigin()),
                                        midline_x=body_midline_x(image))
            with np.load(path, allow_pickle=False) as d:
                items.append({"scan": scan, **{k: d[k] for k in ("image", "target", "origin", "midline_x")}})
    return items


def _cached_negatives(scans, cache: Path, reporter=None) -> list[dict]:
    """Hard negatives (`hard_negatives`) with an all-zero target, cached like the scans; a source with no
    volume (no room above the heads, a file the package does not ship) is left out."""
    cache.mkdir(parents=True, exist_ok=True)
    sources = negative_sources(scans)
    items = []
    steps = Steps(reporter, "prepare hard negatives", len(sources))
    for n, (name, load_volume) in enumerate(sources):
        path = cache / f"negative_{name}.npz"
        with steps.step(f"negative {n + 1}/{len(sources)}: {name}", cached=path.exists()):
            if not path.exists():
                image, modality = load_volume()
                if image is None:
                    continue
                array, grid = localizer_input(image, modality)
                with atomic_path(path) as tmp, open(tmp, "wb") as f:
                    np.savez_compressed(f, image=array, target=heatmap_target(grid, []))
            with np.load(path, allow_pickle=False) as d:
                items.append({"negative": name, "image": d["image"], "target": d["target"]})
    return items


def _negative_sample(negatives: list[dict], positives: int, rng: np.random.Generator) -> list[dict]:
    """A fresh draw of NEGATIVE_SHARE × positives hard negatives (at least one) for one epoch: the heads stay
    the majority of what the localiser sees, and over the epochs it sees every negative."""
    if not negatives:
        return []
    n = min(len(negatives), max(1, round(NEGATIVE_SHARE * positives)))
    return [negatives[i] for i in rng.choice(len(negatives), size=n, replace=False)]


def _augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Contrast, brightness, gamma and noise: the scanner differences a localiser must ignore."""
    out = image * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1)
    if rng.random() < 0.5:
        out = np.sign(out) * np.abs(out) ** rng.uniform(0.7, 1.4)
    return (out + rng.normal(0, rng.uniform(0, 0.05), out.shape)).astype(np.float32)


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error averaged separately over the peaks and the background, so the near-empty
    background cannot win by predicting zeros everywhere; a target without a peak (a hard negative) is
    scored on its background alone."""
    peak = target > PEAK_LEVEL
    error = (pred - target) ** 2
    background = error[~peak].mean()
    return background + error[peak].mean() if peak.any() else background  # a hard negative has no peak


# A head with no candidate counts as this error in validation (worse than any found one on a phantom).
MISSED_HEAD_ERROR_MM = 100.0


def _centre_errors(network, items, device) -> list[float]:
    errors = []
    for item in items:
        heat = network(torch.from_numpy(item["image"])[None, None].to(device))[0].cpu().numpy()
        sides = assign_sides(decode_peaks(heat, _grid_like(item)), float(item["midline_x"]))
        for side, truth in item["scan"].centres().items():
            found = np.array(sides[side][0]) if side in sides else None
            errors.append(MISSED_HEAD_ERROR_MM if found is None else float(np.linalg.norm(found - truth)))
    return errors


def _grid_like(item):
    import SimpleITK as sitk

    grid = sitk.Image([int(n) for n in item["image"].shape[::-1]], sitk.sitkUInt8)
    grid.SetSpacing([GRID_MM] * 3)
    grid.SetOrigin([float(v) for v in item["origin"]])
    return grid


def train(settings, reporter):
    device = resolve_device(settings.device)
    seed_everything(settings.seed)
    scans = list_scans(settings.data)
    train_scans, val_scans = split_scans(scans, Path(settings.data), settings.seed, settings.folds)
    out = Path(settings.out)
    cache = out / "cache"
    train_items = _cached_inputs(train_scans, cache, reporter)
    val_items = _cached_inputs(val_scans, cache, reporter)
    negatives = _cached_negatives(train_scans, cache, reporter)
    network = build_localizer(FEATURES)
    initialised = initialise_from(network, "localizer", settings.init) if settings.init else None
    network = network.to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=settings.lr or 2e-3, weight_decay=1e-4)
    rng = np.random.default_rng(settings.seed)

    def batches(epoch):
        items = train_items + _negative_sample(negatives, len(train_items), rng)
        for i in rng.permutation(len(items)):
            item = items[i]
            image, target = _augment(item["image"], rng), item["target"]
            if rng.random() < 0.5:  # left-right flip: the heatmap marks both heads alike
                image, target = image[..., ::-1], target[..., ::-1]
            yield (torch.from_numpy(image.copy())[None, None].to(device), torch.from_numpy(target.copy())[None].to(device))

    def batch_loss(model, batch):
        return heatmap_loss(model(batch[0]), batch[1])

    def validate(model):
        errors = _centre_errors(model, val_items, device)
        return {"val_median_mm": float(np.median(errors)), "val_max_mm": float(np.max(errors))}

    trainer = Trainer(network, optimizer, batch_loss, validate if val_items else None, monitor="val_median_mm", mode="min",
                      checkpoint_dir=out / "checkpoints", patience=10, reporter=reporter, stage="train localizer", rng=rng)
    fit = trainer.fit(settings.epochs or EPOCHS, batches, resume=settings.resume)
    card = {**identity(settings, "localizer"), "task": "localizer", "features": list(FEATURES),
            "grid_mm": GRID_MM, "heatmap_sigma_mm": HEATMAP_SIGMA_MM, "seed": settings.seed,
            "trained_on": {"data": str(settings.data), "train_scans": len(train_scans), "val_scans": len(val_scans),
                           "hard_negatives": [item["negative"] for item in negatives],
                           "hard_negative_sources": {f"package_{k}": f"pydicom test file: {v}" for k, v in PACKAGE_SLICES.items()}},
            "best_epoch": fit.best_epoch, "selection": fit.selection,
            "validation": next((h for h in fit.history if h["epoch"] == fit.best_epoch), {}), "history": fit.history,
            "initialised_from": initialised}
    entry = distributed.save_model_once(out / "model", network, card)
    return {"model": str(entry.folder), "best_epoch": fit.best_epoch, "val_median_mm": fit.best_metric}


def evaluate(settings, reporter):
    return evaluate_task("localizer", settings, reporter)
