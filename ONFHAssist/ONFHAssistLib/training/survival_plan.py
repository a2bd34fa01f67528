"""What a survival cohort can support, decided before any training: small cohorts are a first-class case.

A C-index needs comparable pairs (a collapse, and a hip still collapse-free after it); a Cox fit needs
collapses to learn from. Annotators bring 5-50 cases, where a fold or a selection split easily holds none.
- Cross-validation: every test fold must hold a comparable pair and every training part `MIN_TRAIN_EVENTS`
  collapses. When the folds asked for cannot, fewer are used (stated); when not even 2 can, the run is
  refused with one sentence naming the numbers.
- Checkpoint selection: a network keeps the epoch with the best C-index on a 20 % split of its training
  patients only when that split holds `MIN_SELECTION_PAIRS` comparable pairs (a C-index on one or two pairs
  is 0, ½ or 1: noise); otherwise it trains on all its hips for a fixed number of epochs (stated).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..dataset import patient_folds
from ..errors import InputError
from ..survival.stats import comparable_pairs

log = logging.getLogger(__name__)

MIN_TRAIN_EVENTS = 2
MIN_SELECTION_PAIRS = 10
SELECTION_SHARE = 5  # one patient in five is held out for checkpoint selection


@dataclass
class FoldPlan:
    """The folds a cross-validation will use and, when they differ from those asked for, why."""

    folds: int
    fold_of: dict[str, int]
    counts: list[dict]
    notes: list[str] = field(default_factory=list)


def fold_counts(time, event, patients, fold_of: dict[str, int], folds: int) -> list[dict]:
    """Per fold: test patients, hips, collapses and comparable pairs, and the collapses left to train on."""
    time, event, patients = np.asarray(time, float), np.asarray(event, int), np.asarray(patients).astype(str)
    which = np.array([fold_of[p] for p in patients])
    counts = []
    for k in range(folds):
        test = which == k
        counts.append({"fold": k, "patients": int(len(set(patients[test]))), "hips": int(test.sum()),
                       "collapses": int(event[test].sum()), "pairs": comparable_pairs(time[test], event[test]),
                       "train_collapses": int(event[~test].sum())})
    return counts


def _shortfall(counts: list[dict]) -> str | None:
    """Why these folds cannot all be scored and trained, in words (1-based fold numbers), or None."""
    for c in counts:
        if c["pairs"] == 0:
            return (f"fold {c['fold'] + 1}'s {c['hips']} test hips hold {c['collapses']} collapse(s) and no "
                    "comparable pair (a collapse before another hip's follow-up ends), so no C-index can be computed")
        if c["train_collapses"] < MIN_TRAIN_EVENTS:
            return (f"fold {c['fold'] + 1} leaves {c['train_collapses']} collapse(s) to train on "
                    f"(at least {MIN_TRAIN_EVENTS} are needed)")
    return None


def plan_folds(table: pd.DataFrame, time, event, requested: int, seed: int) -> FoldPlan:
    """The largest number of folds, at most `requested`, whose every test fold holds a comparable pair and
    every training part `MIN_TRAIN_EVENTS` collapses; InputError when not even 2 folds do."""
    patients = table.patient_id.astype(str).to_numpy()
    n_patients = len(set(patients))
    first = why = None
    for k in range(min(requested, n_patients), 1, -1):
        fold_of = patient_folds(table, k, seed)
        counts = fold_counts(time, event, patients, fold_of, k)
        why = _shortfall(counts)
        if why is None:
            notes = []
            if k != requested:
                notes.append(f"{k} folds instead of the {requested} asked for: with {requested}, "
                             + (first or f"there are only {n_patients} patients") + ".")
                log.warning("cv survival: %s", notes[0])
            return FoldPlan(k, fold_of, counts, notes)
        first = first or (why if k == requested else None)
    raise InputError(f"cv survival: {len(patients)} ONFH hips of {n_patients} patients with {int(np.sum(event))} "
                     f"collapse(s) cannot be cross-validated: even with 2 folds {why or 'there are too few patients'}; "
                     "add cases with known outcomes, or train on all of them with `onfh train survival --folds 0`.")


def selection_split(time, event, patients, seed: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(training rows, selection rows or None, the rule in words): one patient in five held out for checkpoint
    selection when that split holds `MIN_SELECTION_PAIRS` comparable pairs, else every row trains."""
    time, event, patients = np.asarray(time, float), np.asarray(event, int), np.asarray(patients).astype(str)
    unique = np.unique(patients)
    held = set(np.random.default_rng(seed).permutation(unique)[: max(1, len(unique) // SELECTION_SHARE)])
    val = np.array([p in held for p in patients])
    pairs = comparable_pairs(time[val], event[val]) if len(unique) > 1 else 0
    if pairs >= MIN_SELECTION_PAIRS:
        return np.flatnonzero(~val), np.flatnonzero(val), (
            f"checkpoint chosen by the C-index on {int(val.sum())} selection hips of {len(held)} patients "
            f"({pairs} comparable pairs)")
    return np.arange(len(time)), None, (
        f"no selection split: {len(held)} of {len(unique)} patients would hold {pairs} comparable pair(s), fewer "
        f"than {MIN_SELECTION_PAIRS}, so a validation C-index could not choose an epoch; all {len(time)} hips train")


def survival_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The hips survival uses: ONFH (jic_stage not 0) with a known outcome (as `survival_data.load_hips`)."""
    onfh = table[table.jic_stage.astype(str) != "0"] if "jic_stage" in table else table
    time, event = pd.to_numeric(onfh.time_months, errors="coerce"), pd.to_numeric(onfh.event, errors="coerce")
    return onfh[time.notna() & event.notna()].reset_index(drop=True)


def survival_warning(table: pd.DataFrame, requested: int, seed: int = 0) -> str | None:
    """What `onfh cv survival --folds requested` would do differently on this hips.csv, for `dataset validate`."""
    rows = survival_rows(table)
    if len(rows) < 4 or pd.to_numeric(rows.event).sum() < 2:
        return None  # not a survival dataset (load_hips says so when it is used as one)
    try:
        plan = plan_folds(rows, pd.to_numeric(rows.time_months).to_numpy(float), pd.to_numeric(rows.event).to_numpy(int),
                          requested, seed)
    except InputError as exc:
        return str(exc)
    return f"cv survival: {plan.notes[0]}" if plan.notes else None
