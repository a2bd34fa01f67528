"""Train and evaluate SRANet (necrosis vs none) on 128³ head crops, with or without the structure regulariser.

Crops are cached 12 mm larger than the 96 mm input so random 128³ windows add the localiser's jitter.
The coarse bone mask behind the structure term is computed once per cached CT crop (training only; on
MR-T1 a threshold finds fat, not bone, so MR hips skip the term) and cut with the same window as the
image. `--alpha 1` trains the ablation without the regulariser; `--guidance 0` drops the lesion term of 2.

Departure from seed 001, for CPU budgets (end-to-end MIL from scratch stayed at validation AUC ≈ 0.5
after 1000 hips seen): every dataset here carries lesion labels, and the recipe uses them twice.
1. Warm-up on single patches: the encoder, the attention scorer and the classifier learn lesion vs no
   lesion. Positives hold at least 1 % lesion (a sliver at a patch's edge looks like normal head);
   three quarters of the negatives are femur patches without lesion (the head of a healthy hip), so
   the features separate necrosis from normal head, not head from soft tissue.
2. In the bag phase, next to α·CE + (1 − α)·structure: on positive hips, −log of the attention mass
   on lesion patches. The attention weights are linear in the scores (shift by the minimum), so a
   per-patch BCE on the scores leaves the mass spread; the mass term asks for the quantity we report.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..analysis.figures import confusion_png, roc_png
from ..atomic import atomic_write_json
from ..devices import resolve_device, seed_everything
from ..errors import InputError
from ..imaging.crops import CropSpec
from ..models.networks import initialise_from, load
from ..models.sranet import CROP, GRID, N_PATCHES, PATCH, SRANet, sranet_loss
from ..models.sranet_patches import bone_patches, coarse_bone_mask, femur_patches, lesion_patches
from . import crop_cache, distributed
from .crop_cache import centre_crop
from .engine import Trainer
from .model_identity import identity
from .scans import list_scans, split_scans
from .staging_recipe import auc_by_modality, macro_auc, necrosis_endpoints, per_class_table, target

INFER_SPEC = CropSpec(96.0, 0.75)
TRAIN_SPEC = CropSpec(108.0, 0.75)
EPOCHS, BATCH, ALPHA = 8, 2, 0.9
WARMUP_STEPS, WARMUP_PATCHES, WARMUP_PASSES = 500, 16, 16
CLEAR_LESION_SHARE = 0.01  # warm-up positives: patches at least this much lesion
MASS_WEIGHT = 0.5  # lesion guidance in the bag phase (module docstring, 2.)
ARCHITECTURE = dict(hidden=500, attention=128)


def attention_on_lesion(weights: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per hip, the share of attention mass on patches that contain lesion."""
    return np.array([float(w[lesion_patches(lab)].sum()) for w, lab in zip(weights, labels)])


def attention_on_bone(weights: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Per hip, the share of attention mass on patches the structure term calls bone (its coarse mask)."""
    return np.array([float(w[bone_patches(coarse_bone_mask(i.astype(np.float32)))].sum()) for w, i in zip(weights, images)])


def warm_up(model: SRANet, images: np.ndarray, labels: np.ndarray, rng, device):
    """Single-patch lesion training of encoder, attention scorer and classifier (module docstring, 1.).

    About WARMUP_PASSES looks at every clear lesion patch, at most WARMUP_STEPS steps (a 60-patient cohort
    reaches the cap; a tiny test cohort takes a few dozen steps).
    """
    windows = [centre_crop(lab, CROP) for lab in labels]
    lesion = np.stack([lesion_patches(w) for w in windows]).reshape(-1)
    femur = np.stack([femur_patches(w) for w in windows]).reshape(-1)
    clear = np.stack([lesion_patches(w, CLEAR_LESION_SHARE) for w in windows]).reshape(-1)
    positive, hard, other = np.flatnonzero(clear), np.flatnonzero(femur & ~lesion), np.flatnonzero(~lesion)
    if len(positive) == 0 or len(other) == 0:
        return
    hard = hard if len(hard) else other
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    n_hard = 3 * WARMUP_PATCHES // 8
    steps = min(WARMUP_STEPS, WARMUP_PASSES * len(positive) // (WARMUP_PATCHES // 2))
    for _ in range(steps):
        chosen = np.r_[rng.choice(positive, WARMUP_PATCHES // 2), rng.choice(hard, n_hard),
                       rng.choice(other, WARMUP_PATCHES // 2 - n_hard)]
        patches = [_patch(images[n // N_PATCHES], n % N_PATCHES) for n in chosen]
        x = torch.from_numpy(np.stack(patches).astype(np.float32))[:, None].to(device)
        flags = torch.from_numpy(lesion[chosen]).to(device)
        loss = patch_lesion_loss(model, model.encoder(x), flags)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def patch_lesion_loss(model: SRANet, h: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
    """Per-patch lesion vs none, through the classifier and through the attention score (classes balanced)."""
    h, flags = h.reshape(-1, h.shape[-1]), flags.reshape(-1)
    share = flags.float().mean().clamp(0.05, 0.95)
    weight = torch.where(flags, 0.5 / share, 0.5 / (1 - share))
    ce = torch.nn.functional.cross_entropy(model.classifier(h), flags.long(), reduction="none")
    bce = torch.nn.functional.binary_cross_entropy_with_logits(model.score(h), flags.float(), reduction="none")
    return ((ce + bce) * weight).mean()


def attention_mass_loss(weights: torch.Tensor, lesion: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """−log(attention mass on lesion patches), averaged over the positive hips of a batch (0 without any)."""
    mass = (weights * lesion.float()).sum(1)
    return -(torch.log(mass + 1e-6) * positive).sum() / positive.sum().clamp(min=1)


def _patch(image: np.ndarray, p: int) -> np.ndarray:
    """Patch p = 16i + 4j + k of the central 128³ window of a cached crop."""
    i, j, k = p // (GRID * GRID), (p // GRID) % GRID, p % GRID
    window = centre_crop(image, CROP)
    return window[i * PATCH:(i + 1) * PATCH, j * PATCH:(j + 1) * PATCH, k * PATCH:(k + 1) * PATCH]


def _graded(table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The hips with a known Ficat grade and their necrosis flag (a blank grade is left out, not negative)."""
    y = target(table, "binary")
    known = y >= 0
    if not known.any():
        raise InputError("no hip in hips.csv has a Ficat grade: SRANet needs graded hips (necrosis or none).")
    return table[known].reset_index(drop=True), y[known]


def _load(table, y):
    images, labels = [], []
    for path in table.crop:
        image, label = crop_cache.load(path)
        images.append(image.astype(np.float16))
        labels.append(label)
    return np.stack(images), np.stack(labels), y


def predict(model, images: np.ndarray, device) -> tuple[np.ndarray, np.ndarray]:
    """(P(necrosis) per hip, attention weights (N, 64)) on the central 128³ window."""
    model.eval()
    probs, weights = [], []
    with torch.no_grad():
        for image in images:
            x = torch.from_numpy(centre_crop(image, CROP).astype(np.float32))[None, None].to(device)
            out = model(x)
            probs.append(torch.softmax(out["logits"], 1)[0, 1].item())
            weights.append(out["weights"][0].cpu().numpy())
    return np.array(probs), np.stack(weights)


def train(settings, reporter):
    device = resolve_device(settings.device)
    seed_everything(settings.seed)
    alpha = ALPHA if settings.alpha is None else float(settings.alpha)
    guidance = MASS_WEIGHT if settings.guidance is None else float(settings.guidance)
    out = Path(settings.out)
    table, y_all = _graded(crop_cache.build(settings.data, TRAIN_SPEC, out / "cache", reporter))
    train_scans, val_scans = split_scans(list_scans(settings.data), Path(settings.data), settings.seed, settings.folds)
    in_val = table.scan_id.isin({s.scan_id for s in val_scans}).to_numpy()
    x_train, l_train, y_train = _load(table[~in_val], y_all[~in_val])
    x_val, l_val, y_val = _load(table[in_val], y_all[in_val]) if in_val.any() else (None, None, None)
    is_ct = (table[~in_val].modality == "ct").to_numpy()
    bone = [coarse_bone_mask(x.astype(np.float32)) if ct else None for x, ct in zip(x_train, is_ct)] if alpha < 1 else None
    model = SRANet(**ARCHITECTURE)
    initialised = initialise_from(model, "sranet", settings.init) if settings.init else None
    model = model.to(device)
    rng = np.random.default_rng(settings.seed)
    resumed = settings.resume and (out / "checkpoints" / "last.safetensors").exists()
    if not (resumed or initialised):  # a resumed or fine-tuned network is past the warm-up
        warm_up(model, x_train, l_train, rng, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr or 2e-4, weight_decay=1e-4)
    jitter = (TRAIN_SPEC.size - CROP) // 2
    batch_size = settings.batch_size or BATCH

    def batches(epoch):
        order = rng.permutation(len(y_train))
        for s in range(0, len(order), batch_size):
            index = order[s:s + batch_size]
            offsets = [rng.integers(-jitter, jitter + 1, 3) for _ in index]
            crops = [centre_crop(x_train[i], CROP, o).astype(np.float32) * rng.uniform(0.85, 1.15) for i, o in
                     zip(index, offsets)]
            flags = None if bone is None else torch.from_numpy(np.stack(
                [bone_patches(centre_crop(bone[i], CROP, o)) if is_ct[i] else np.zeros(N_PATCHES, bool)
                 for i, o in zip(index, offsets)])).to(device)
            lesion = torch.from_numpy(
                np.stack([lesion_patches(centre_crop(l_train[i], CROP, o)) for i, o in zip(index, offsets)])).to(device)
            yield (torch.from_numpy(np.stack(crops))[:, None].to(device), torch.from_numpy(y_train[index]).to(device),
                   flags, lesion, torch.from_numpy(is_ct[index].astype(np.float32)).to(device))

    def batch_loss(net, batch):
        out = net(batch[0])
        return (sranet_loss(out, batch[1], batch[2], alpha=alpha, hips=batch[4])
                + guidance * attention_mass_loss(out["weights"], batch[3], (batch[1] == 1).float()))

    def validate(net):
        p, w = predict(net, x_val, device)
        positive = y_val == 1
        return {"val_auc": macro_auc(y_val, np.c_[1 - p, p]),
                "val_attention_on_lesion": float(attention_on_lesion(
                    w[positive], [centre_crop(lab, CROP) for lab in l_val[positive]]).mean())}

    trainer = Trainer(model, optimizer, batch_loss, validate if in_val.any() else None, monitor="val_auc", mode="max",
                      checkpoint_dir=out / "checkpoints", patience=6, reporter=reporter, stage="train sranet", rng=rng)
    fit = trainer.fit(settings.epochs or EPOCHS, batches, resume=settings.resume)
    card = {**identity(settings, "sranet", "" if alpha < 1 else "-nostructure"), "task": "sranet",
            "classes": 2, "architecture": ARCHITECTURE, "alpha": alpha, "guidance": guidance, "input": CROP, "crop": INFER_SPEC.to_json(),
            "seed": settings.seed, "best_epoch": fit.best_epoch, "selection": fit.selection,
            "history": fit.history,
            "trained_on": {"data": str(settings.data), "train_hips": int(len(y_train)),
                           "val_hips": 0 if y_val is None else int(len(y_val))},
            "initialised_from": initialised}
    entry = distributed.save_model_once(out / "model", model, card)
    return {"model": str(entry.folder), "val_auc": fit.best_metric}


def evaluate(settings, reporter):
    """AUC, accuracy, sensitivity, specificity, F1, attention mass on lesion (and, for CT hips, on the structure
    term's bone patches), size (seed 001 Table II layout)."""
    device = resolve_device(settings.device)
    model, entry = load("sranet", settings.model, device)
    out = Path(settings.out)
    table, y = _graded(crop_cache.build(settings.data, INFER_SPEC, out / "cache-sranet", reporter))
    images, labels, y = _load(table, y)
    p, w = predict(model, images, device)
    probs = np.c_[1 - p, p]
    per_class, cm = per_class_table(y, probs, 2)
    positive = y == 1
    share = attention_on_lesion(w[positive], labels[positive])
    modality = table.modality.to_numpy()
    by_modality = auc_by_modality(modality, y, p)
    for m, stats in by_modality.items():  # the structure term acts on CT hips only: compare per modality
        here = modality[positive] == m
        stats["attention_on_lesion"] = float(share[here].mean()) if here.any() else float("nan")
    if "ct" in by_modality:  # what the structure term asks for, on the hips it acts on
        by_modality["ct"]["attention_on_bone"] = float(attention_on_bone(w[modality == "ct"], images[modality == "ct"]).mean())
    summary = {"hips": int(len(y)), "auc": macro_auc(y, probs), "accuracy": float((probs.argmax(1) == y).mean()),
               "sensitivity": float(per_class.sensitivity[1]), "specificity": float(per_class.specificity[1]),
               "f1": float(per_class.f1[1]), "attention_on_lesion": float(share.mean()), "by_modality": by_modality,
               "endpoints": necrosis_endpoints(modality, target(table, "arco"), y, p),
               "confusion_matrix": cm.tolist(), "parameters": entry.card["parameters"],
               "size_mb": entry.card["size_mb"], "model": entry.provenance()}
    out.mkdir(parents=True, exist_ok=True)
    roc_png(y, p, out / "roc.png", f"SRANet ({entry.name}): necrosis vs none")
    confusion_png(cm, ["none", "necrosis"], out / "confusion.png", f"SRANet ({entry.name})")
    atomic_write_json(out / "summary.json", summary)
    return {"summary": str(out / "summary.json"), "auc": summary["auc"],
            "attention_on_lesion": summary["attention_on_lesion"]}
