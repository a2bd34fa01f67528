"""Train and evaluate the staging network (3D MulPool DenseNet, focal loss, class weights) on per-hip crops.

Crops come from the dataset's head centres (truth for phantoms, pipeline centres for added cases), cached
24 mm larger than the 64 mm input so that random 64³ crops add the localiser's jitter. The input box is
tight around the head (1 mm voxels, the head ≈ 50 mm across): finer voxels for the thin stage-I band
and little tissue beyond the joint (the earlier 96 mm box at 1.5 mm separated necrosis less well).
Next to the focal loss, a localisation term keeps the class evidence (what Grad-CAM shows) on the
lesion or head (`cam_guidance`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.losses import FocalLoss
from sklearn.metrics import confusion_matrix, roc_auc_score

from ..analysis.figures import confusion_png, roc_png
from ..analysis.maps import gradcam_for
from ..atomic import atomic_write_json, atomic_write_text
from ..devices import resolve_device, seed_everything
from ..errors import InputError
from ..imaging.crops import CropSpec
from ..models.networks import initialise_from, load
from ..models.staging import SYSTEMS, MulPoolDenseNet
from . import crop_cache, distributed
from .cam_guidance import HEAD_RADIUS_MM, evidence_cells, evidence_region, gradcam_peaks, localisation_loss
from .crop_cache import centre_crop
from .engine import Trainer
from .model_identity import identity
from .scans import list_scans, split_scans

INFER_SPEC = CropSpec(box_mm=64.0, spacing_mm=1.0)
INPUT = INFER_SPEC.size  # 64³
TRAIN_SPEC = CropSpec(box_mm=INFER_SPEC.box_mm + 24.0, spacing_mm=INFER_SPEC.spacing_mm)
EPOCHS, BATCH = 30, 8
ARCHITECTURE = dict(growth=12, blocks=(4, 4, 4), init_features=24, padding="replicate")
LOCALISATION_WEIGHT = 0.2  # keeps the class evidence on the lesion / head (cam_guidance)


def target(table: pd.DataFrame, system: str) -> np.ndarray:
    """Class index per hip for a grading system; -1 for hips outside it (ficat III/IV in `ficat3`) and for hips
    whose grade is blank (unknown is not "no necrosis")."""
    if system not in SYSTEMS:
        raise InputError(f"--system {system!r}: use one of {', '.join(SYSTEMS)}.")
    if system in ("binary", "ficat3"):
        ficat = pd.to_numeric(table.ficat, errors="coerce").fillna(-1).astype(int).to_numpy()
        graded = (ficat > 0).astype(int) if system == "binary" else np.where(ficat <= 2, ficat, -1)
        return np.where(ficat < 0, -1, graded)
    return pd.to_numeric(table[system], errors="coerce").fillna(-1).astype(int).to_numpy()


def _load(table, classes):
    """Images, classes and label crops (None where the dataset has no labels) of the hips a system grades."""
    keep = classes >= 0
    crops = [crop_cache.load(p) for p in table.crop[keep]]
    return np.stack([image for image, _ in crops]), classes[keep], [label for _, label in crops]


def probabilities(model, images: np.ndarray, device, batch: int = 8) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(images), batch):
            x = torch.from_numpy(np.stack([centre_crop(i, INPUT) for i in images[s:s + batch]]))[:, None].to(device)
            out.append(torch.softmax(model(x), 1).cpu().numpy())
    return np.concatenate(out)


def macro_auc(y: np.ndarray, p: np.ndarray) -> float:
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    if p.shape[1] == 2:
        return float(roc_auc_score(y, p[:, 1]))
    return float(np.mean([roc_auc_score(y == k, p[:, k]) for k in present]))


def auc_by_modality(modality: np.ndarray, y: np.ndarray, score: np.ndarray) -> dict:
    """Necrosis-vs-none AUC and hip count per modality (NaN where a modality has one class only)."""
    out = {}
    for m in sorted(set(modality)):
        keep = modality == m
        both = len(np.unique(y[keep])) == 2
        out[m] = {"hips": int(keep.sum()), "auc": float(roc_auc_score(y[keep], score[keep])) if both else float("nan")}
    return out


def necrosis_endpoints(modality: np.ndarray, arco: np.ndarray, necrosis: np.ndarray, score: np.ndarray) -> dict:
    """Necrosis-vs-none AUC on the primary endpoint, MR-T1 hips at every stage plus CT hips at ARCO 0 or >= II,
    and, apart, CT ARCO I vs healthy: ARCO defines stage I as invisible on CT (and radiographs), so no CT
    reader is expected to see it and it is reported, not hidden inside the primary figure."""
    ct = modality == "ct"
    groups = {"primary": ~ct | (arco == 0) | (arco >= 2), "ct_stage_I_vs_none": ct & (arco <= 1) & (arco >= 0)}
    out = {}
    for name, keep in groups.items():
        both = len(np.unique(necrosis[keep])) == 2
        out[name] = {"hips": int(keep.sum()), "necrosis": int(necrosis[keep].sum()),
                     "auc": float(roc_auc_score(necrosis[keep], score[keep])) if both else float("nan")}
    return out


def early_stages(ficat3: np.ndarray, p: np.ndarray, modality: np.ndarray) -> dict:
    """`ficat3` (Ficat-Arlet 0/I/II, seed 003's task) read from a five-stage network: the hips truly at
    stage 0-II, with the probabilities of stages 0/I/II renormalised (ARCO and Ficat agree up to stage II)."""
    keep = ficat3 >= 0
    y, q = ficat3[keep], p[keep, :3] / p[keep, :3].sum(1, keepdims=True)
    accuracy = float((q.argmax(1) == y).mean()) if keep.any() else float("nan")  # no early hips: undefined
    return {"hips": int(keep.sum()), "macro_auc": macro_auc(y, q), "accuracy": accuracy,
            "macro_auc_by_modality": {m: macro_auc(y[modality[keep] == m], q[modality[keep] == m])
                                      for m in sorted(set(modality[keep]))}}


def per_class_table(y: np.ndarray, p: np.ndarray, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Per class (one vs rest, argmax decision): n, sensitivity, specificity, F1, AUC; and the confusion matrix."""
    pred = p.argmax(1)
    cm = confusion_matrix(y, pred, labels=list(range(n)))
    rows = []
    for k in range(n):
        tp, fn = cm[k, k], cm[k].sum() - cm[k, k]
        fp, tn = cm[:, k].sum() - cm[k, k], cm.sum() - cm[k].sum() - cm[:, k].sum() + cm[k, k]
        rows.append({"class": k, "n": int(cm[k].sum()), "sensitivity": tp / max(tp + fn, 1),
                     "specificity": tn / max(tn + fp, 1), "f1": 2 * tp / max(2 * tp + fp + fn, 1),
                     "auc": float(roc_auc_score(y == k, p[:, k])) if 0 < (y == k).sum() < len(y) else float("nan")})
    return pd.DataFrame(rows), cm


def train(settings, reporter):
    device = resolve_device(settings.device)
    seed_everything(settings.seed)
    system = settings.system or "ficat3"
    out = Path(settings.out)
    table = crop_cache.build(settings.data, TRAIN_SPEC, out / "cache", reporter)
    classes = target(table, system)
    train_scans, val_scans = split_scans(list_scans(settings.data), Path(settings.data), settings.seed, settings.folds)
    in_val = table.scan_id.isin({s.scan_id for s in val_scans}).to_numpy()
    x_train, y_train, labels = _load(table[~in_val], classes[~in_val])
    x_val, y_val, _ = _load(table[in_val], classes[in_val]) if in_val.any() else (None, None, None)
    regions = [np.ones(x.shape, bool) if region is None else region  # no label: nothing to localise
               for x, region in zip(x_train, (evidence_region(lab, TRAIN_SPEC.spacing_mm) for lab in labels))]
    n_classes = SYSTEMS[system]
    counts = np.bincount(y_train, minlength=n_classes).astype(float)
    weights = torch.tensor(counts.sum() / np.maximum(counts, 1) / n_classes, dtype=torch.float32, device=device)
    model = MulPoolDenseNet(n_classes, **ARCHITECTURE)
    initialised = initialise_from(model, "staging", settings.init) if settings.init else None
    model = model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr or 1e-3, weight_decay=1e-4)
    loss_fn = FocalLoss(to_onehot_y=True, use_softmax=True, gamma=2.0, weight=weights)
    rng = np.random.default_rng(settings.seed)
    jitter = (TRAIN_SPEC.size - INPUT) // 2
    batch_size = settings.batch_size or BATCH

    def batches(epoch):
        order = rng.permutation(len(y_train))
        for s in range(0, len(order), batch_size):
            index = order[s:s + batch_size]
            offsets = [rng.integers(-jitter, jitter + 1, 3) for _ in index]
            crops = [centre_crop(x_train[i], INPUT, offset=o) * rng.uniform(0.85, 1.15) + rng.uniform(-0.1, 0.1)
                     for i, o in zip(index, offsets)]
            where = [centre_crop(regions[i], INPUT, offset=o) for i, o in zip(index, offsets)]
            yield (torch.from_numpy(np.stack(crops).astype(np.float32))[:, None].to(device),
                   torch.from_numpy(y_train[index])[:, None].to(device), torch.from_numpy(np.stack(where)).to(device))

    def batch_loss(net, batch):
        x, y, where = batch
        logits, activation = net.logits_and_activation(x, y[:, 0])
        cells = evidence_cells(where, tuple(activation.shape[1:]))
        return loss_fn(logits, y) + LOCALISATION_WEIGHT * localisation_loss(activation, cells)

    def validate(net):
        return {"val_macro_auc": macro_auc(y_val, probabilities(net, x_val, device))}

    trainer = Trainer(model, optimizer, batch_loss, validate if in_val.any() else None, monitor="val_macro_auc", mode="max",
                      checkpoint_dir=out / "checkpoints", patience=10, reporter=reporter, stage=f"train staging ({system})",
                      rng=rng)
    fit = trainer.fit(settings.epochs or EPOCHS, batches, resume=settings.resume)
    card = {**identity(settings, "staging", f"-{system}"), "task": "staging", "system": system,
            "classes": n_classes, "architecture": ARCHITECTURE, "input": INPUT,
            "crop": INFER_SPEC.to_json(), "seed": settings.seed, "localisation_weight": LOCALISATION_WEIGHT,
            "trained_on": {"data": str(settings.data), "train_hips": int(len(y_train)),
                           "val_hips": 0 if y_val is None else int(len(y_val))},
            "best_epoch": fit.best_epoch, "selection": fit.selection, "history": fit.history,
            "initialised_from": initialised}
    entry = distributed.save_model_once(out / "model", model, card)
    return {"model": str(entry.folder), "val_macro_auc": fit.best_metric}


def evaluate(settings, reporter):
    """Per-class sensitivity, specificity, F1 and AUC, macro/weighted accuracy, confusion matrix (seed 003 layout),
    where Grad-CAM peaks on the hips with a labelled lesion, and for a five-stage network seed 003's `ficat3`."""
    device = resolve_device(settings.device)
    model, entry = load("staging", settings.model, device)
    system = entry.card["system"]
    out = Path(settings.out)
    # the model's own crop (cards before 1.2.0 used 96 mm at 1.5 mm), cut at its input size
    table = crop_cache.build(settings.data, CropSpec(**entry.card["crop"]), out / "cache", reporter)
    classes = target(table, system)
    images, y, labels = _load(table, classes)
    modality = table.modality.to_numpy()[classes >= 0]
    p = probabilities(model, images, device)
    pred = p.argmax(1)
    n = entry.card["classes"]
    per_class, cm = per_class_table(y, p, n)
    summary = {"system": system, "hips": int(len(y)), "accuracy": float((pred == y).mean()),
               "macro_accuracy": float(per_class.sensitivity[per_class.n > 0].mean()), "macro_auc": macro_auc(y, p),
               "confusion_matrix": cm.tolist(), "parameters": entry.card["parameters"], "size_mb": entry.card["size_mb"],
               "model": entry.provenance()}
    radii = (pd.to_numeric(table.head_radius_mm, errors="coerce").fillna(HEAD_RADIUS_MM).to_numpy()[classes >= 0]
             if "head_radius_mm" in table else np.full(len(y), HEAD_RADIUS_MM))
    summary["gradcam"] = gradcam_peaks(gradcam_for(model), [centre_crop(i, INPUT) for i in images],
                                       [None if lab is None else centre_crop(lab, INPUT) for lab in labels], p, radii,
                                       entry.card["crop"]["spacing_mm"], device)
    out.mkdir(parents=True, exist_ok=True)
    confusion_png(cm, [str(k) for k in range(n)], out / "confusion.png", f"{entry.name}: {system}")
    if len(np.unique(y > 0)) == 2:  # necrosis (any stage above 0) vs none, from the class-0 probability
        summary["binary_auc"] = float(roc_auc_score(y > 0, 1.0 - p[:, 0]))
        summary["binary_auc_by_modality"] = auc_by_modality(modality, y > 0, 1.0 - p[:, 0])
        summary["endpoints"] = necrosis_endpoints(modality, target(table, "arco")[classes >= 0], y > 0, 1.0 - p[:, 0])
        roc_png(y > 0, 1.0 - p[:, 0], out / "roc.png", f"{entry.name}: necrosis vs none")
    if system in ("arco", "ficat") and "ficat" in table:  # also score seed 003's early-stage task
        summary["ficat3"] = early_stages(target(table, "ficat3")[classes >= 0], p, modality)
    atomic_write_text(out / "per_class.csv", per_class.to_csv(index=False, float_format="%.4f"))
    atomic_write_json(out / "summary.json", summary)
    return {"summary": str(out / "summary.json"), "macro_auc": summary["macro_auc"], "accuracy": summary["accuracy"]}
