"""Train the collapse-risk network and cross-validate it against the baselines (`onfh train|cv survival`).

Loss: Cox NPLL on the risk u + λ·SurvRNC on z_out (λ = 0.5, τ = 2, only when a batch holds more than two
events). The checkpoint kept is the one with the best C-index on 20% of the training patients when that
split can rank (`survival_plan.selection_split`), else the last of a fixed number of epochs on all of them.
A small cohort is checked before training (`survival_plan.plan_folds`): fewer folds, or a refusal naming the
numbers; a metric a fold cannot define is null ("n/a") with the reason under the table.
Cross-validation is patient-level over seed 000's Table 1 rows (the comparison networks of
`models/survival_zoo.py` train here too, DeepMTS and XSurv with their segmentation loss) and columns (C, AUC at
6/12/36/60/120 months, iAUC 12–120), with SLE compared paired on the same folds (`survival_paired`); every
(fold, model) result is written as soon as it exists, so a killed run restarts from the finished ones.
Kaplan–Meier plots pool the out-of-fold risks, each fold split at its own median (training risks are not kept
for every row).
"""
from __future__ import annotations

import difflib
import json
import logging
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from lifelines.exceptions import ConvergenceError

from ..analysis.results import mean_sd_text
from ..atomic import atomic_write_json, atomic_write_text
from ..devices import resolve_device, seed_everything
from ..errors import InputError
from ..imaging.crops import CropSpec
from ..models import survival_zoo
from ..models.losses import cox_nll, survrnc_loss
from ..models.modality_subset import shown
from ..models.networks import load
from ..models.survival import SurvivalConfig, TriStreamSurvival
from ..progress import Steps
from ..survival import horizon_stats, reclassification, stats
from ..survival.curves import BreslowBaseline
from ..survival.figures import calibration_png, decision_curve_png, km_by_risk_group
from . import cv_notes, distributed, parallel_folds
from . import survival_baselines as base
from . import survival_modalities as modalities
from . import survival_paired as paired
from .engine import Trainer
from .model_identity import identity
from .survival_data import HipSet, load_hips
from .survival_plan import plan_folds, selection_split

log = logging.getLogger(__name__)
SURVRNC_WEIGHT, SURVRNC_TAU = 0.5, 2.0
PRESETS = {
    "cpu": {"spec": CropSpec(96.0, 3.0), "epochs": 40, "batch": 16, "lr": 1e-3, "weight_decay": 1e-4, "patience": 12,
            "config": SurvivalConfig(crop_size=32, resnet_planes=(8, 16, 32, 64), d_img=64, d_lbl=64, d_grade=32,
                                     d_fusion=64, sle_channels=8, sle_patch=8, sle_heads=4, sle_layers=1,
                                     grade_skip=True)},  # ≈ 70 hips: start from Cox on grades (README)
    "paper": {"spec": CropSpec(96.0, 1.5), "epochs": 310, "batch": 16, "lr": 4e-5, "weight_decay": 1e-4,
              "patience": 60, "config": SurvivalConfig(crop_size=64)},
}
NETWORK_MODELS = {"tri-stream + SLE": "full", "tri-stream, no SLE": "no_sle", "image only": "image",
                  "grades only (network)": "grades", "DeepMTS": "deepmts", "XSurv": "xsurv", "SurvRNC": "survrnc",
                  "SurvRNC + SLE": "survrnc_sle"}
# Stable ids for `cv --models` (the row names hold commas and spaces), in seed 000's Table 1 order, then ours;
# DLRC comes after tri-stream: it reads the fold's tri-stream image encoder
MODEL_IDS = {"cox-grades": base.GRADES_COX, "radiomics-svm": base.RADIOMICS_SVM, "deepmts": "DeepMTS", "xsurv": "XSurv",
             "survrnc": "SurvRNC", "survrnc-sle": "SurvRNC + SLE", "tri-stream-no-sle": "tri-stream, no SLE",
             "tri-stream": "tri-stream + SLE", "image-only": "image only", "grades-network": "grades only (network)",
             "radiomics-lasso": base.RADIOMICS_LASSO, "dlrc": base.DLRC, "cox-oracle": base.ORACLE_COX}
FIT_FAILURES = (ConvergenceError, ArithmeticError, np.linalg.LinAlgError)  # a fit small data cannot support
AUC_MONTHS = (6, 12, 36, 60, 120)  # seed 000's Table 1 columns: AUC(t) at each, and iAUC over 12–120 months
IAUC_MONTHS = tuple(range(12, 121, 12))  # the iAUC grid, cut at each fold's follow-up
METRICS = ("harrell_c", "uno_c", *(f"auc{m}" for m in AUC_MONTHS), "iauc", "ibs")
HORIZONS = (36, 60)  # calibration, decision curves, NRI/IDI
# NRI/IDI (old → new), KM-based with a patient bootstrap interval (survival/reclassification.py)
COMPARISONS = {"nri_idi_tri_stream_vs_grades_cox": (base.GRADES_COX, "tri-stream + SLE"),
               "nri_idi_sle_vs_no_sle": ("tri-stream, no SLE", "tri-stream + SLE")}
NRI_BOOTSTRAP, NRI_SEED = 1000, 0
# SLE against no SLE on the same folds, every metric (training/survival_paired.py)
PAIRED_ROWS = {"SLE in the tri-stream network": ("tri-stream, no SLE", "tri-stream + SLE"),
               "SLE in SurvRNC": ("SurvRNC", "SurvRNC + SLE")}
PAIRED_BOOTSTRAP, PAIRED_SEED = 1000, 0
EVERY_COMBINATION = "every-combination"


def _preset(settings) -> dict:
    name = settings.preset or "cpu"
    if name not in PRESETS:
        raise InputError(f"--preset {name!r}: use one of {', '.join(PRESETS)}.")
    preset = dict(PRESETS[name])
    for key, value in (("epochs", settings.epochs), ("lr", settings.lr), ("batch", settings.batch_size)):
        if value:
            preset[key] = value
    return preset


def _tensors(hips: HipSet, index, device):
    return (torch.from_numpy(hips.images[index]).to(device), torch.from_numpy(hips.labels[index]).to(device),
            torch.from_numpy(hips.grades[index]).to(device))


def predict_risk(model, hips: HipSet, device, batch: int = 32) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(hips.time), batch):
            index = np.arange(start, min(start + batch, len(hips.time)))
            out.append(model(*_tensors(hips, index, device))[0].cpu().numpy())
    return np.concatenate(out)


def warm_start_grade_term(model: TriStreamSurvival, train: HipSet) -> None:
    """Start the wide term where Cox on the training hips' grade codes ends: with ≈ 70 hips a linear grade
    effect is what the data support best, and the deep streams then only have to learn what grades miss."""
    beta = base.cox_coefficients(base.known_grades(train, train)[0], train) * model.grade_scale.cpu().numpy()
    with torch.no_grad():
        model.grade_linear.weight.copy_(torch.as_tensor(beta, dtype=torch.float32, device=model.grade_linear.weight.device)[None])


def fit_network(hips: HipSet, variant: str, preset: dict, seed: int, device, checkpoint_dir: Path, reporter=None,
                validation: bool = True, keep: frozenset[str] | None = None):
    """Train one network variant, shown only the inputs in `keep` (None: all); returns (model at its best
    validation C, or after fixed epochs when the selection split cannot rank; Breslow baseline on the training
    hips; the fit with its selection rule)."""
    seed_everything(seed)
    train_idx, val_idx, rule = (selection_split(hips.time, hips.event, hips.patients, seed) if validation else
                                (np.arange(len(hips.time)), None, f"no selection split asked for: all {len(hips.time)} hips train"))
    train = hips.subset(train_idx)
    val = hips.subset(val_idx) if val_idx is not None else None
    net = survival_zoo.build(variant, preset["config"]).to(device)
    if hasattr(net, "grade_linear") and (keep is None or modalities.GRADES in keep):
        warm_start_grade_term(net, train)
    model = shown(net, keep)
    optimizer = torch.optim.AdamW(model.parameters(), lr=preset["lr"], weight_decay=preset["weight_decay"])
    rng = np.random.default_rng(seed)
    time_t, event_t = torch.tensor(train.time, device=device), torch.tensor(train.event, device=device)

    def batches(epoch):
        order = rng.permutation(len(train.time))
        for start in range(0, len(order), preset["batch"]):
            index = order[start:start + preset["batch"]]
            if len(index) > 1:
                yield index

    def batch_loss(net, index):
        inputs = _tensors(train, index, device)
        risk, z, *segmentation = net(*inputs)
        loss = cox_nll(risk, time_t[index], event_t[index])
        if variant in survival_zoo.SURVRNC_VARIANTS and int(event_t[index].sum()) > 2:
            loss = loss + SURVRNC_WEIGHT * survrnc_loss(z, time_t[index], event_t[index], SURVRNC_TAU)
        if segmentation:  # DeepMTS, XSurv: the auxiliary segmentation of the label map
            loss = loss + net.auxiliary_loss(segmentation[0], inputs[1])
        return loss

    def validate(net):
        return {"val_c": stats.harrell_c(val.time, val.event, predict_risk(net, val, device))}

    stage = f"train survival ({variant})"
    if val is None:
        log.warning("%s: %s", stage, rule)
    trainer = Trainer(model, optimizer, batch_loss, validate if val is not None else None, monitor="val_c", mode="max",
                      checkpoint_dir=checkpoint_dir, patience=preset["patience"], reporter=reporter, stage=stage,
                      rng=rng)
    fit = trainer.fit(preset["epochs"], batches)
    fit.selection = f"{rule}; {fit.selection}"
    baseline = BreslowBaseline.fit(predict_risk(model, train, device), train.time, train.event)
    return model, baseline, fit


def train(settings, reporter):
    device = resolve_device(settings.device)
    preset = _preset(settings)
    out = Path(settings.out)
    hips = load_hips(settings.data, preset["spec"], out / "cache", reporter)
    model, baseline, fit = fit_network(hips, "full", preset, settings.seed, device, out / "checkpoints", reporter,
                                       validation=settings.folds != 0)
    train_risk = predict_risk(model, hips, device)
    card = {**identity(settings, "survival"), "task": "survival", "preset": settings.preset or "cpu",
            "config": preset["config"].to_json(), "crop": preset["spec"].to_json(), "baseline": baseline.to_json(),
            "training_km": training_km(hips.time, hips.event, train_risk > baseline.median_risk),
            "seed": settings.seed, "trained_on": {"data": str(settings.data), "hips": len(hips.time),
                                                  "events": int(hips.event.sum())},
            "best_epoch": fit.best_epoch, "validation_c": fit.best_metric, "selection": fit.selection,
            "history": fit.history}
    entry = distributed.save_model_once(out / "model", model, card)
    return {"model": str(entry.folder), "validation_c": fit.best_metric}


def evaluate(settings, reporter):
    """A trained model (default: the shipped one) on a dataset's ONFH hips, scored as Table 1 scores a test fold:
    Harrell and Uno C, AUC(t) and iAUC, and with the card's own Breslow baseline the IBS and calibration at
    HORIZONS. The card keeps the training cohort's curves, not its hips, so the censoring weights come from the
    evaluated hips themselves."""
    device = resolve_device(settings.device)
    model, entry = load("survival", settings.model, device)
    out = Path(settings.out)
    hips = load_hips(settings.data, CropSpec(**entry.card["crop"]), out / "cache", reporter)
    risk = predict_risk(model, hips, device)
    baseline = BreslowBaseline(**entry.card["baseline"])
    grid = np.arange(6.0, hips.time.max(), 6.0)
    grid = grid[grid > hips.time.min()]
    survival = np.stack([baseline.survival(r, grid) for r in risk])
    collapse = {h: np.array([1.0 - baseline.survival(r, [h])[0] for r in risk]) for h in HORIZONS}
    summary = {"hips": len(hips.time), "collapses": int(hips.event.sum()), "patients": len(set(hips.patients)),
               **_metrics(hips, hips, risk),
               "ibs": (stats.integrated_brier(hips.time, hips.event, hips.time, hips.event, survival, grid)
                       if len(grid) >= 2 else None),
               "calibration": {f"{h}": horizon_stats.calibration(hips.time, hips.event, collapse[h], h).to_dict("records")
                               for h in HORIZONS},
               "model": entry.provenance()}
    per_hip = hips.table[["scan_id", "patient_id", "side"]].assign(
        time_months=hips.time, event=hips.event, risk=risk, **{f"p_collapse_{h}m": collapse[h] for h in HORIZONS})
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "per_hip.csv", per_hip.to_csv(index=False, float_format="%.4f"))
    atomic_write_json(out / "summary.json", summary)
    return {"summary": str(out / "summary.json"), "harrell_c": summary["harrell_c"], "iauc": summary["iauc"]}


def training_km(time, event, high) -> dict:
    """Kaplan–Meier curves of the training cohort's low- and high-risk halves, for the report to draw a
    patient's own curve against."""
    from lifelines import KaplanMeierFitter

    curves = {}
    for group, mask in (("low", ~high), ("high", high)):
        km = KaplanMeierFitter().fit(time[mask], event[mask])
        curves[group] = {"months": km.survival_function_.index.tolist(),
                         "survival": km.survival_function_.iloc[:, 0].tolist(), "n": int(mask.sum())}
    return curves


def _fold_result(path: Path, compute) -> dict:
    """Read a finished (fold, model) result, or compute and write it atomically."""
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    result = compute()
    atomic_write_text(path, json.dumps(result) + "\n")
    return result


def _scored(train: HipSet, test: HipSet, train_risk: np.ndarray, risk: np.ndarray) -> dict:
    """Test risks, discrimination metrics, and calibrated collapse probabilities at the horizons + IBS; a metric
    the fold cannot define is None and `undefined` maps it to the reason."""
    metrics, horizon = _metrics(train, test, risk), _horizon_predictions(train, test, train_risk, risk)
    undefined = {**metrics.pop("undefined", {}), **horizon.pop("undefined", {})}
    return {"risk": risk.tolist(), **metrics, **horizon, **({"undefined": undefined} if undefined else {})}


def _horizon_predictions(train: HipSet, test: HipSet, train_risk: np.ndarray, risk: np.ndarray) -> dict:
    """Any risk score becomes S(t | x) the same way: a one-covariate Cox fit on the training fold sets its
    scale (an SVM score has none), then Breslow's baseline on the training hips."""
    frame = pd.DataFrame({"score": train_risk, "time": train.time, "event": train.event})
    try:
        slope = float(stats.fit_cox(frame, "time", "event").params_["score"])
    except ConvergenceError:
        return {"ibs": None, "undefined": {"ibs": "the Cox fit that turns the score into S(t) did not converge"}}
    baseline = BreslowBaseline.fit(slope * train_risk, train.time, train.event)
    out = {f"p{h}": [1.0 - float(baseline.survival(slope * r, [h])[0]) for r in risk] for h in HORIZONS}
    follow_up = min(train.time.max(), test.time.max())
    grid = np.arange(6.0, follow_up, 6.0)
    grid = grid[grid > test.time.min()]
    if len(grid) >= 2 and test.event.sum() > 0:
        survival = np.stack([baseline.survival(slope * r, grid) for r in risk])
        out["ibs"] = stats.integrated_brier(train.time, train.event, test.time, test.event, survival, grid)
        out["survival"], out["survival_months"] = survival.tolist(), grid.tolist()  # the paired bootstrap's IBS
    else:
        out["ibs"] = None
        out["undefined"] = {"ibs": "no collapse among the test hips" if test.event.sum() == 0 else
                            f"the shared follow-up ({test.time.min():.0f}-{follow_up:.0f} months) holds fewer than two "
                            "points of the 6-month grid"}
    return out


def _metrics(train: HipSet, test: HipSet, risk: np.ndarray) -> dict:
    """C-indices, AUC(t) at AUC_MONTHS and iAUC over IAUC_MONTHS of one fold; a metric the fold cannot define is
    None, with its reason in `undefined`."""
    follow_up = min(train.time.max(), test.time.max())
    collapses = f"{len(test.time)} test hips, {int(test.event.sum())} collapse(s)"
    out = {"harrell_c": stats.harrell_c(test.time, test.event, risk),
           "uno_c": stats.uno_c(train.time, train.event, test.time, test.event, risk)}
    why = {}
    if out["harrell_c"] is None:
        why["harrell_c"] = f"no comparable pair ({collapses})"
    if out["uno_c"] is None:
        why["uno_c"] = f"no comparable pair with a collapse before the last training collapse ({collapses})"
    defined = []
    for m in AUC_MONTHS:
        reason = _auc_gap(train, test, [m], follow_up)
        if reason:
            out[f"auc{m}"], why[f"auc{m}"] = None, reason
        else:
            defined.append(m)
    if defined:  # one call: each AUC(t) is computed on its own, the censoring weights fitted once
        aucs = stats.time_dependent_auc(train.time, train.event, test.time, test.event, risk, defined)[0]
        out.update({f"auc{m}": float(a) for m, a in zip(defined, aucs)})
    months = [m for m in IAUC_MONTHS if test.time.min() < m < follow_up]
    reason = (_auc_gap(train, test, months, follow_up) if months else
              f"no month of {IAUC_MONTHS[0]}-{IAUC_MONTHS[-1]} lies inside the fold's follow-up")
    out["iauc"] = None if reason else stats.time_dependent_auc(train.time, train.event, test.time, test.event, risk,
                                                                 months)[1]
    if reason:
        why["iauc"] = reason
    return {**out, "undefined": why} if why else out


def _auc_gap(train, test, months: list, follow_up: float) -> str | None:
    """Why AUC(t) is undefined at some of `months` in this fold, or None when it is defined at all of them."""
    if months[-1] >= follow_up:
        return f"{months[-1]:g} months lies beyond the fold's shared follow-up ({follow_up:.0f} months)"
    gaps = stats.auc_undefined_at(train.time, test.time, test.event, months)
    if gaps:
        return f"no collapse by, or no hip followed past, {', '.join(f'{m:g}' for m in gaps)} months"
    return None


def cv(settings, reporter):
    device = resolve_device(settings.device)
    preset = _preset(settings)
    out = Path(settings.out)
    wanted = chosen_models(settings.models)
    hips = load_hips(settings.data, preset["spec"], out / "cache", reporter)
    plan = plan_folds(hips.table, hips.time, hips.event, settings.folds or 5, settings.seed)
    settings = replace(settings, folds=plan.folds)  # what --parallel-folds children are told
    folds = np.array([plan.fold_of[p] for p in hips.patients])
    methods = {modalities.split_row(name)[0] for name in wanted}
    needs_radiomics = bool(methods & {base.RADIOMICS_LASSO, base.RADIOMICS_SVM, base.DLRC})
    radiomics = base.radiomics_features(Path(settings.data), hips, out, reporter) if needs_radiomics else None
    if settings.parallel_folds > 1 and settings.fold is None:  # children write every fold result first
        parallel_folds.run(settings, reporter, settings.parallel_folds)
    rows, pooled, horizon, undefined = [], {}, {}, []
    own_folds = [f for f in range(settings.folds) if settings.fold is None or f == settings.fold]  # a child: its own
    steps = Steps(reporter, "cv survival", len(own_folds) * len(wanted))
    for fold in own_folds:
        train_idx, test_idx = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        for k, name in enumerate(wanted):
            def compute(name=name, fold=fold, train_idx=train_idx, test_idx=test_idx):
                return {"fold": fold, "model": name,
                        **_run_model(name, fold, hips, train_idx, test_idx, radiomics, preset, settings,
                                     device, out, reporter)}

            path = out / "folds" / f"fold{fold}-{_slug(name)}.json"
            with steps.step(f"fold {fold + 1}/{settings.folds}, model {k + 1}/{len(wanted)}: {name}",
                            cached=path.exists()):
                result = _fold_result(path, compute)
            rows.append({k: result.get(k) for k in ("fold", "model", *METRICS)})
            undefined.append(result)
            if "risk" in result:
                risk = np.asarray(result["risk"])
                pooled.setdefault(name, []).append((test_idx, risk > np.median(risk)))
                for h in HORIZONS:
                    if f"p{h}" in result:
                        horizon.setdefault((name, h), []).append((test_idx, np.asarray(result[f"p{h}"])))
            if reporter is not None:
                reporter.metric("cv survival", **rows[-1])
    if settings.fold is not None:
        return {"fold": settings.fold, "results": len(rows)}
    km_curves = {}  # the same curves as data (km.json), for the Slicer panel's plot view
    for name, parts in pooled.items():
        index = np.concatenate([i for i, _ in parts])
        high = np.concatenate([h for _, h in parts])
        km_by_risk_group(hips.time[index], hips.event[index], high, f"{name}: out-of-fold risk groups",
                         out / "plots" / f"km_{_slug(name)}.png")
        km_curves[name] = training_km(hips.time[index], hips.event[index], high)
    atomic_write_json(out / "km.json", km_curves)
    nri = write_horizon_outputs(hips, horizon, out)
    paired_results = paired_comparisons(hips, folds, undefined, out)
    return write_table(pd.DataFrame(rows), out, len(hips.time), int(hips.event.sum()), len(np.unique(hips.patients)),
                       nri.get("nri_idi_sle_vs_no_sle"), plan.notes + cv_notes.footnotes(undefined, wanted),
                       paired_results)


def _paired_score(fold: paired.PairedFold, result: dict, idx: np.ndarray) -> dict:
    """A fold's metrics on its test hips `idx` (a bootstrap sample), as `_metrics` and `_horizon_predictions`
    compute them; IBS on the part of the stored 6-month grid the sample's follow-up covers."""
    if "risk" not in result:  # the fit failed on this fold
        return dict.fromkeys(METRICS)
    train = SimpleNamespace(time=fold.train_time, event=fold.train_event)
    test = SimpleNamespace(time=fold.test_time[idx], event=fold.test_event[idx])
    out = _metrics(train, test, np.asarray(result["risk"])[idx])
    out.pop("undefined", None)
    out["ibs"] = None
    if "survival" in result and test.event.sum() > 0:
        grid = np.asarray(result["survival_months"])
        keep = (grid > test.time.min()) & (grid < min(train.time.max(), test.time.max()))
        if keep.sum() >= 2:
            survival = np.asarray(result["survival"])[idx][:, keep]
            out["ibs"] = stats.integrated_brier(train.time, train.event, test.time, test.event, survival, grid[keep])
    return out


def paired_comparisons(hips: HipSet, folds: np.ndarray, results: list[dict], out: Path) -> dict:
    """PAIRED_ROWS compared on the same folds, every metric, patient bootstrap within folds (paired.json)."""
    by_key = {(r["fold"], r["model"]): r for r in results}
    summary = {}
    for label, (old, new) in PAIRED_ROWS.items():
        fold_ids = sorted({f for f, _ in by_key})
        if not fold_ids or any((f, m) not in by_key for f in fold_ids for m in (old, new)):
            continue
        parts = []
        for f in fold_ids:
            train, test = folds != f, folds == f
            parts.append(paired.PairedFold(hips.time[train], hips.event[train], hips.time[test], hips.event[test],
                                           hips.patients[test], by_key[(f, old)], by_key[(f, new)]))
        summary[label] = {"old": old, "new": new, "resamples": PAIRED_BOOTSTRAP, "seed": PAIRED_SEED,
                          "metrics": paired.compare(parts, _paired_score, METRICS, PAIRED_BOOTSTRAP, PAIRED_SEED)}
    if summary:
        atomic_write_json(out / "paired.json", summary)
    return summary


def chosen_models(text: str) -> list[str]:
    """The CV rows `--models` names: 'all', 'every-combination' (every row, and every method that has input
    combinations on each of them), or comma-separated ids of MODEL_IDS, each optionally with inputs in brackets
    ('survrnc[image+grades]'; a row name without a comma, e.g. 'CoxPH (grades)', is read too); a typo is refused
    naming the ids. Rows come in table order, each method's combinations after its plain row."""
    order = [row for name in MODEL_IDS.values()
             for row in (modalities.combinations(name) if name in modalities.READS else [name])]
    if text in ("all", EVERY_COMBINATION):
        return list(MODEL_IDS.values()) if text == "all" else order
    known = {**MODEL_IDS, **{name: name for name in MODEL_IDS.values() if "," not in name}}
    chosen = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        try:
            combination = modalities.parse_id(item, MODEL_IDS)
        except ValueError as exc:
            raise InputError(f"--models {item!r}: {exc}.") from None
        if combination is None and item not in known:
            near = difflib.get_close_matches(item, MODEL_IDS, n=1)
            raise InputError(f"--models {item!r} is not a model id{f' (did you mean {near[0]!r}?)' if near else ''}; "
                             f"use all, {EVERY_COMBINATION} or some of: {', '.join(MODEL_IDS)}.")
        chosen.append(combination or known[item])
    if not chosen:
        raise InputError(f"--models names no model; use all or some of: {', '.join(MODEL_IDS)}.")
    return [name for name in order if name in chosen]


def _pooled(horizon: dict, name: str, h: int):
    """(hip indices, collapse probabilities at h) of one model, pooled over folds in hip order; None if absent."""
    if (name, h) not in horizon:
        return None
    index = np.concatenate([i for i, _ in horizon[(name, h)]])
    p = np.concatenate([v for _, v in horizon[(name, h)]])
    order = np.argsort(index)
    return index[order], p[order]


def write_horizon_outputs(hips: HipSet, horizon: dict, out: Path) -> dict:
    """Pooled out-of-fold collapse probabilities: calibration and decision curves of every model per horizon, and NRI/IDI
    with bootstrap intervals for each of COMPARISONS (horizon.json)."""
    summary = {key: {} for key in COMPARISONS}
    for h in HORIZONS:
        names = dict.fromkeys(name for name, _ in horizon)  # every model of the run, in table order
        pooled = {name: p for name in names if (p := _pooled(horizon, name, h)) is not None}
        for key, names in COMPARISONS.items():
            old, new = (_pooled(horizon, name, h) for name in names)
            if new is not None and old is not None and np.array_equal(new[0], old[0]):
                summary[key][f"{h}"] = reclassification.with_bootstrap(
                    hips.time[new[0]], hips.event[new[0]], old[1], new[1], h, groups=hips.patients[new[0]],
                    n_boot=NRI_BOOTSTRAP, seed=NRI_SEED)
        if not pooled:
            continue
        time, event = hips.time, hips.event
        calibration_png({n: horizon_stats.calibration(time[i], event[i], p, h) for n, (i, p) in pooled.items()}, h,
                        out / "plots" / f"calibration_{h}m.png")
        thresholds = np.arange(0.02, 0.62, 0.02)
        decision_curve_png({n: horizon_stats.decision_curve(time[i], event[i], p, h, thresholds)
                            for n, (i, p) in pooled.items()}, h, out / "plots" / f"decision_curve_{h}m.png")
    atomic_write_json(out / "horizon.json", summary)
    return summary


def _slug(name: str) -> str:
    return name.replace(" ", "_").replace("/", "-")


def _run_model(name, fold, hips, train_idx, test_idx, radiomics, preset, settings, device, out, reporter):
    """Fit one CV row on a training fold and score its test fold: risks and metrics (None with the reason when
    the fold cannot define one, or the fit fails on it)."""
    train, test = hips.subset(train_idx), hips.subset(test_idx)
    try:
        return _fit_and_score(name, fold, hips, train, test, train_idx, test_idx, radiomics, preset, settings, device,
                              out, reporter)
    except FIT_FAILURES as exc:
        log.warning("cv survival: fold %d, %s: the fit failed (%s)", fold + 1, name, exc)
        why = f"the fit failed on this fold ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
        return {**{m: None for m in METRICS}, "undefined": {m: why for m in METRICS}}


def _fit_and_score(name, fold, hips, train, test, train_idx, test_idx, radiomics, preset, settings, device, out,
                   reporter):
    method, keep = modalities.split_row(name)
    if method in NETWORK_MODELS:
        variant = NETWORK_MODELS[method]
        folder = variant if name == method else f"{variant}-{'+'.join(sorted(keep))}"
        model, _, fit = fit_network(train, variant, preset, settings.seed + fold, device,
                                    out / "checkpoints" / f"fold{fold}-{folder}", reporter, keep=keep)
        scored = _scored(train, test, predict_risk(model, train, device), predict_risk(model, test, device))
        return {**scored, "selection": fit.selection}
    folder = out / "checkpoints" / f"fold{fold}-full"  # the weights the engine kept: best, else last
    checkpoint = next((p for p in (folder / "best.safetensors", folder / "last.safetensors") if p.exists()), None)
    both_idx = np.r_[train_idx, test_idx]  # scored together by the model fitted on the training fold
    both = base.baseline_risk(method, train, hips.subset(both_idx), radiomics, train_idx, both_idx, checkpoint,
                              preset["config"], device, settings.seed + fold,
                              with_grades=keep is not None and modalities.GRADES in keep)
    return _scored(train, test, both[:len(train_idx)], both[len(train_idx):])


def write_table(per_fold: pd.DataFrame, out: Path, n_hips: int, n_events: int, n_patients: int,
                sle_nri: dict | None = None, footnotes: list[str] = (), paired_results: dict | None = None) -> dict:
    """Seed 000's Table 1 layout: mean ± sd over folds for every model row (Markdown, CSV, JSON); below it the
    NRI/IDI of SLE (with vs without, pooled out of fold) and the paired SLE comparisons when given."""
    metrics = [m for m in METRICS if m in per_fold]
    per_fold = per_fold.assign(**{m: pd.to_numeric(per_fold[m]) for m in metrics})  # None (undefined) -> NaN
    summary = per_fold.groupby("model", sort=False)[metrics].agg(["mean", "std"])
    lines = [(f"Patient-level {per_fold.fold.nunique()}-fold CV: {n_hips} ONFH hips, {n_patients} patients, "
              f"{n_events} collapses."), "", "| model | " + " | ".join(metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for model, row in summary.iterrows():
        lines.append(f"| {model} | " + " | ".join(mean_sd_text(row[(m, 'mean')], row[(m, 'std')]) for m in metrics) + " |")
    if "harrell_c" in metrics:
        lines += _best_combination_lines(summary[("harrell_c", "mean")].to_dict())
    if footnotes:
        lines += ["", "Notes (a mean is over the folds that define it; n/a: no fold does):", ""]
        lines += [f"- {note}" for note in footnotes]
    if sle_nri:
        lines += ["", ("SLE: tri-stream + SLE over tri-stream, no SLE, on pooled out-of-fold collapse probabilities "
                       f"(KM-based NRI, IPCW IDI; 95 % patient bootstrap, {NRI_BOOTSTRAP} resamples, seed {NRI_SEED})."), "",
                  "| horizon | NRI | NRI events | NRI non-events | IDI |", "|---|---|---|---|---|"]
        lines += [f"| {h} months | " + " | ".join(reclassification.interval_text(value[k]) for k in reclassification.KEYS)
                  + " |" for h, value in sle_nri.items()]
    if paired_results:
        lines += _paired_lines(paired_results)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
    atomic_write_text(out / "per_fold.csv", per_fold.to_csv(index=False, float_format="%.4f"))
    table = {model: {m: {"mean": float(row[(m, "mean")]), "sd": float(row[(m, "std")])} for m in metrics}
             for model, row in summary.iterrows()}
    atomic_write_json(out / "table.json", table)  # an undefined mean or sd (one fold) is null
    print("\n".join(lines))
    return {"table": str(out / "table.md")}


def _best_combination_lines(c_means: dict[str, float]) -> list[str]:
    """Each method run on several input combinations, with the one of highest mean Harrell C (seed 000's way)."""
    best = modalities.best_per_method(c_means)
    if not best:
        return []
    lines = ["", ("Best input combination per method, as seed 000 reports each method (highest mean Harrell C over "
                  "the same test folds: an optimistic pick, the same for every method)."), "",
             "| method | best combination | harrell_c | combinations run |", "|---|---|---|---|"]
    for method, row, c, tried in best:
        inputs = modalities.split_row(row)[1]
        lines.append(f"| {method} | {' + '.join(m for m in modalities.READS[method] if m in inputs)} | {c:.3f} | "
                     f"{tried} |")
    return lines


def _paired_lines(paired_results: dict) -> list[str]:
    """The paired comparisons under the table: difference (new − old) with its interval and what it shows."""
    first = next(iter(paired_results.values()))
    lines = ["", ("Paired comparisons on the same folds: mean over folds of (with SLE − without), 95 % percentile "
                  f"bootstrap over patients resampled within each test fold ({first['resamples']} resamples, seed "
                  f"{first['seed']}); better/worse only where the interval excludes 0 (IBS: lower is better)."), "",
             "| comparison | metric | difference (95 % interval) | shows |", "|---|---|---|---|"]
    for label, result in paired_results.items():
        for metric, cell in result["metrics"].items():
            value = ("n/a" if cell["estimate"] is None else
                     f"{cell['estimate']:+.3f} ({cell['low']:+.3f} to {cell['high']:+.3f})")
            lines.append(f"| {label} | {metric} | {value} | {cell['conclusion']} |")
    return lines
