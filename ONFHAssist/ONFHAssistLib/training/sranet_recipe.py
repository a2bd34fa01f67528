"""Train and evaluate SRANet (necrosis vs none) on 128³ head crops, with or without the structure regulariser.

Crops are cached 12 mm larger than the 96 mm input so random 128³ windows add the localiser's jitter.
The coarse bone mask behind the structure term is computed once per cached crop (training only) and cut
with the same window as the image. `--alpha 1` trains the ablation without the regulariser.

Departure from seed 001, for CPU budgets: the patch encoder is first warmed up on single patches
(lesion / no lesion), and the attention scores get a second per-patch target next to the bone mask,
the lesion mask (weight LESION_WEIGHT). Both use the lesion labels every dataset here carries.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from .. import modelstore
from ..atomic import atomic_write_text
from ..bone_mask import bone_patches, coarse_bone_mask, lesion_patches
from ..crops import CropSpec
from ..devices import resolve_device, seed_everything
from ..figures import confusion_png, roc_png
from ..models.sranet import CROP, GRID, N_PATCHES, PATCH, SRANet, sranet_loss, structure_loss
from ..networks import load
from . import crop_cache
from .crop_cache import centre_crop
from .engine import Trainer
from .scans import list_scans, split_scans
from .staging_recipe import per_class_table, target

INFER_SPEC = CropSpec(96.0, 0.75)
TRAIN_SPEC = CropSpec(108.0, 0.75)
EPOCHS, BATCH, ALPHA = 8, 2, 0.7
WARMUP_STEPS, WARMUP_PATCHES = 150, 16
LESION_WEIGHT = 0.5  # attention guided toward lesion patches (see train())
ARCHITECTURE = dict(hidden=500, attention=128)


def attention_on_lesion(weights: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per hip, the share of attention mass on patches that contain lesion."""
    return np.array([float(w[lesion_patches(lab)].sum()) for w, lab in zip(weights, labels)])


def warm_up_encoder(model: SRANet, images: np.ndarray, labels: np.ndarray, rng, device, steps: int = WARMUP_STEPS):
    """Teach the patch encoder lesion vs no lesion on balanced single patches (a throw-away linear head).

    End-to-end MIL from scratch did not learn on CPU budgets (validation AUC ≈ 0.5 after 1000 hips seen);
    every dataset here carries lesion labels, and 150 steps of patch-level supervision give the encoder
    features the attention can then pick from.
    """
    flags = np.stack([lesion_patches(centre_crop(lab, CROP)) for lab in labels]).reshape(-1)
    positive, negative = np.flatnonzero(flags), np.flatnonzero(~flags)
    if len(positive) == 0:
        return
    head = torch.nn.Linear(model.classifier.in_features, 1).to(device)
    optimizer = torch.optim.Adam([*model.encoder.parameters(), *head.parameters()], lr=1e-3)
    half = WARMUP_PATCHES // 2
    for _ in range(steps):
        chosen = np.r_[rng.choice(positive, half), rng.choice(negative, half)]
        patches = [_patch(images[n // N_PATCHES], n % N_PATCHES) for n in chosen]
        x = torch.from_numpy(np.stack(patches).astype(np.float32))[:, None].to(device)
        target = torch.from_numpy(flags[chosen].astype(np.float32)).to(device)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(model.encoder(x)).squeeze(1), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _patch(image: np.ndarray, p: int) -> np.ndarray:
    """Patch p = 16i + 4j + k of the central 128³ window of a cached crop."""
    i, j, k = p // (GRID * GRID), (p // GRID) % GRID, p % GRID
    window = centre_crop(image, CROP)
    return window[i * PATCH:(i + 1) * PATCH, j * PATCH:(j + 1) * PATCH, k * PATCH:(k + 1) * PATCH]


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
    out = Path(settings.out)
    table = crop_cache.build(settings.data, TRAIN_SPEC, out / "cache", reporter)
    y_all = target(table, "binary")
    train_scans, val_scans = split_scans(list_scans(settings.data), Path(settings.data), settings.seed)
    in_val = table.scan_id.isin({s.scan_id for s in val_scans}).to_numpy()
    x_train, l_train, y_train = _load(table[~in_val], y_all[~in_val])
    x_val, l_val, y_val = _load(table[in_val], y_all[in_val])
    bone = np.stack([coarse_bone_mask(x.astype(np.float32)) for x in x_train]) if alpha < 1 else None
    model = SRANet(**ARCHITECTURE).to(device)
    rng = np.random.default_rng(settings.seed)
    if not (settings.resume and (out / "checkpoints" / "last.safetensors").exists()):  # a resumed run is past it
        warm_up_encoder(model, x_train, l_train, rng, device)
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
            flags = None if bone is None else torch.from_numpy(
                np.stack([bone_patches(centre_crop(bone[i], CROP, o)) for i, o in zip(index, offsets)])).to(device)
            lesion = torch.from_numpy(
                np.stack([lesion_patches(centre_crop(l_train[i], CROP, o)) for i, o in zip(index, offsets)])).to(device)
            yield (torch.from_numpy(np.stack(crops))[:, None].to(device), torch.from_numpy(y_train[index]).to(device),
                   flags, lesion)

    def batch_loss(net, batch):
        out = net(batch[0])
        return sranet_loss(out, batch[1], batch[2], alpha=alpha) + LESION_WEIGHT * structure_loss(out["scores"], batch[3])

    def validate(net):
        p, w = predict(net, x_val, device)
        positive = y_val == 1
        return {"val_auc": float(roc_auc_score(y_val, p)) if 0 < positive.sum() < len(y_val) else float("nan"),
                "val_attention_on_lesion": float(attention_on_lesion(
                    w[positive], [centre_crop(lab, CROP) for lab in l_val[positive]]).mean())}

    trainer = Trainer(model, optimizer, batch_loss, validate, monitor="val_auc", mode="max",
                      checkpoint_dir=out / "checkpoints", patience=6, reporter=reporter, stage="train sranet")
    fit = trainer.fit(settings.epochs or EPOCHS, batches, resume=settings.resume)
    card = {"name": "onfh-sranet" if alpha < 1 else "onfh-sranet-nostructure", "task": "sranet", "version": "1.0.0",
            "classes": 2, "architecture": ARCHITECTURE, "alpha": alpha, "input": CROP, "crop": INFER_SPEC.to_json(),
            "seed": settings.seed, "best_epoch": fit.best_epoch, "history": fit.history,
            "trained_on": {"data": str(settings.data), "train_hips": int(len(y_train)), "val_hips": int(len(y_val))}}
    entry = modelstore.save_model(out / "model", model, card)
    return {"model": str(entry.folder), "val_auc": fit.best_metric}


def evaluate(settings, reporter):
    """AUC, accuracy, sensitivity, specificity, F1, attention mass on lesion, size (seed 001 Table II layout)."""
    device = resolve_device(settings.device)
    model, entry = load("sranet", settings.model, device)
    out = Path(settings.out)
    table = crop_cache.build(settings.data, INFER_SPEC, out / "cache-sranet", reporter)
    images, labels, y = _load(table, target(table, "binary"))
    p, w = predict(model, images, device)
    probs = np.c_[1 - p, p]
    per_class, cm = per_class_table(y, probs, 2)
    positive = y == 1
    summary = {"hips": int(len(y)), "auc": float(roc_auc_score(y, p)), "accuracy": float((probs.argmax(1) == y).mean()),
               "sensitivity": float(per_class.sensitivity[1]), "specificity": float(per_class.specificity[1]),
               "f1": float(per_class.f1[1]),
               "attention_on_lesion": float(attention_on_lesion(w[positive], labels[positive]).mean()),
               "confusion_matrix": cm.tolist(), "parameters": entry.card["parameters"],
               "size_mb": entry.card["size_mb"], "model": entry.provenance()}
    out.mkdir(parents=True, exist_ok=True)
    roc_png(y, p, out / "roc.png", f"SRANet ({entry.name}): necrosis vs none")
    confusion_png(cm, ["none", "necrosis"], out / "confusion.png", f"SRANet ({entry.name})")
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return {"summary": str(out / "summary.json"), "auc": summary["auc"],
            "attention_on_lesion": summary["attention_on_lesion"]}
