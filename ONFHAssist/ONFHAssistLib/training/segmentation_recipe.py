"""Train and evaluate the per-hip DynUNet (pelvis, femur, necrosis) on cached crops.

Crops are cached 16 voxels larger than the inference crop, so random 48³ patches drawn from them
include the head-centre jitter the localiser will cause. Patches are drawn by class with necrosis
weighted up, so a small lesion is seen in most batches.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai import transforms as T
from monai.losses import DiceCELoss

from ..analysis.segment import INFER_SPEC, PATCH, predict_crop
from ..devices import resolve_device, seed_everything
from ..imaging.crops import CropSpec
from ..models.networks import initialise_from
from ..models.segmentation import CLASSES, build_segmenter
from . import crop_cache, distributed
from .engine import Trainer
from .model_identity import identity
from .evaluation import dice_per_class, evaluate_task
from .scans import list_scans, split_scans

FEATURES = (8, 16, 32, 64)
TRAIN_SPEC = CropSpec(box_mm=INFER_SPEC.box_mm + 24.0, spacing_mm=INFER_SPEC.spacing_mm)
CLASS_RATIOS = (1, 1, 1, 3)
CLASS_WEIGHTS = (1.0, 1.0, 1.0, 4.0)  # the lesion is a few percent of a crop; unweighted, it is learnt last
# (`--necrosis-weight` replaces the last: every missed lesion voxel costs that much more than a false one)
EPOCHS = 40
HIPS_PER_BATCH, PATCHES_PER_HIP = 2, 2


def augmentation(seed: int) -> T.Compose:
    keys = ("image", "label")
    pipeline = T.Compose([
        T.RandCropByLabelClassesd(keys, label_key="label", spatial_size=(PATCH,) * 3, ratios=list(CLASS_RATIOS),
                                  num_classes=len(CLASSES), num_samples=PATCHES_PER_HIP, warn=False),
        T.RandAffined(keys, prob=0.4, rotate_range=(0.2, 0.2, 0.2), scale_range=(0.1, 0.1, 0.1),
                      mode=("bilinear", "nearest"), padding_mode="border"),
        # a scan acquired at up to 5 mm, resampled to the crop's 1.5 mm as inference does (averaged down,
        # interpolated up): real hip CTs and MRs come at 0.6-5 mm and the answer must not depend on it
        T.RandSimulateLowResolutiond("image", prob=0.3, downsample_mode="area", upsample_mode="trilinear",
                                     zoom_range=(0.3, 1.0)),
        T.RandScaleIntensityd("image", factors=0.15, prob=0.8),
        T.RandShiftIntensityd("image", offsets=0.1, prob=0.8),
        T.RandAdjustContrastd("image", gamma=(0.7, 1.5), prob=0.4),
        T.RandGaussianSmoothd("image", sigma_x=(0.2, 0.8), sigma_y=(0.2, 0.8), sigma_z=(0.2, 0.8), prob=0.2),
        T.RandGaussianNoised("image", std=0.04, prob=0.5),
    ])
    pipeline.set_random_state(seed=seed)
    return pipeline


def _centre(array: np.ndarray, size: int) -> np.ndarray:
    start = [(n - size) // 2 for n in array.shape]
    return array[tuple(slice(s, s + size) for s in start)]


def _hips(table, scans):
    ids = {s.scan_id for s in scans}
    return [(r.crop) for _, r in table.iterrows() if r.scan_id in ids]


def invisible_lesions(table, data: Path) -> set[str]:
    """Crops whose necrosis the image cannot show: phantom CT hips at stage I. ARCO stage I is normal on CT by
    definition, and the phantom draws it so (interior 25 HU under the marrow); trained to find it anyway, the
    network draws lesions into healthy CT heads (the real CT's dense central trabeculae, README *Real scans*).
    For training such a lesion is labelled femur; evaluation keeps the truth. An annotator's own label map
    (no phantom) is trusted as drawn."""
    stage = table.get("true_jic_stage", table.get("jic_stage"))
    if stage is None or not _is_phantom(data):
        return set()
    return set(table.crop[(table.modality == "ct") & (pd.to_numeric(stage, errors="coerce") == 1)])


def _is_phantom(data: Path) -> bool:
    """Whether `onfh phantom` wrote the dataset (its dataset.json says so; an unreadable one is a user's)."""
    try:
        meta = json.loads((data / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("generator") == "ONFHAssistLib.phantom"


def _visible(crop: tuple, hidden: bool) -> tuple:
    image, label = crop
    return image, (np.where(label == 3, 2, label) if hidden else label)


def train(settings, reporter):
    device = resolve_device(settings.device)
    seed_everything(settings.seed)
    out = Path(settings.out)
    table = crop_cache.build(settings.data, TRAIN_SPEC, out / "cache", reporter)
    train_scans, val_scans = split_scans(list_scans(settings.data), Path(settings.data), settings.seed, settings.folds)
    hidden = invisible_lesions(table, Path(settings.data))
    train_data = [dict(zip(("image", "label"), _visible(crop_cache.load(p), p in hidden)))
                  for p in _hips(table, train_scans)]
    val_data = [_visible(crop_cache.load(p), p in hidden) for p in _hips(table, val_scans)]
    network = build_segmenter(FEATURES)
    initialised = initialise_from(network, "segmentation", settings.init) if settings.init else None
    network = network.to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=settings.lr or 2e-3, weight_decay=1e-4)
    weights = CLASS_WEIGHTS[:-1] + ((settings.necrosis_weight or CLASS_WEIGHTS[-1]),)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, weight=torch.tensor(weights, device=device))
    augment = augmentation(settings.seed)
    rng = np.random.default_rng(settings.seed)

    def batches(epoch):
        order = rng.permutation(len(train_data))
        for start in range(0, len(order), HIPS_PER_BATCH):
            patches = []
            for i in order[start:start + HIPS_PER_BATCH]:
                item = train_data[i]
                patches += augment({"image": item["image"][None], "label": item["label"][None]})
            yield (torch.stack([torch.as_tensor(p["image"]) for p in patches]).float().to(device),
                   torch.stack([torch.as_tensor(p["label"]) for p in patches]).long().to(device))

    def batch_loss(model, batch):
        return loss_fn(model(batch[0]), batch[1])

    def validate(model):
        scores = np.array([dice_per_class(np.argmax(predict_crop(model, _centre(img, INFER_SPEC.size), device), 0),
                                          _centre(lab, INFER_SPEC.size)) for img, lab in val_data])
        means = np.nanmean(scores, axis=0)
        return {"val_dice_pelvis": float(means[0]), "val_dice_femur": float(means[1]),
                "val_dice_necrosis": float(means[2]), "val_dice_mean": float(np.nanmean(means))}

    trainer = Trainer(network, optimizer, batch_loss, validate if val_data else None, monitor="val_dice_mean", mode="max",
                      checkpoint_dir=out / "checkpoints", patience=8, reporter=reporter, stage="train segmentation",
                      rng=rng)
    fit = trainer.fit(settings.epochs or EPOCHS, batches, resume=settings.resume)
    best = next((h for h in fit.history if h["epoch"] == fit.best_epoch), {})
    card = {**identity(settings, "segmentation"), "task": "segmentation", "features": list(FEATURES),
            "classes": list(CLASSES), "crop": INFER_SPEC.to_json(), "patch": PATCH, "seed": settings.seed,
            "class_weights": list(weights),
            "trained_on": {"data": str(settings.data), "train_hips": len(train_data), "val_hips": len(val_data),
                           "lesions_labelled_femur": len(hidden)},
            "best_epoch": fit.best_epoch, "selection": fit.selection, "validation": best, "history": fit.history,
            "initialised_from": initialised}
    entry = distributed.save_model_once(out / "model", network, card)
    return {"model": str(entry.folder), "best_epoch": fit.best_epoch, "val_dice_mean": fit.best_metric}


def evaluate(settings, reporter):
    return evaluate_task("segmentation", settings, reporter)
