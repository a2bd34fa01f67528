"""Seed 000 reports every method with its best combination of input modalities. A CV row can run on a subset
of what its method reads — `--models "survrnc[image+grades]"`, or `--models every-combination` for all of them —
and the table then names each method's best combination (by mean Harrell C over the folds, as the paper picks:
an optimistic choice made on the test folds, said under the table).

A row name carries its combination in brackets: "SurvRNC [image + grades]"; a row without brackets reads what it
always has (DEFAULT_INPUTS: every input, except that the SVM's plain row reads radiomics alone).
"""
from __future__ import annotations

import itertools
import re

from ..models.modality_subset import MODALITIES
from .survival_baselines import RADIOMICS_SVM

IMAGE, LABELS, GRADES = MODALITIES  # the network inputs a ModalitySubset can withhold
RADIOMICS = "radiomics"
# what each method can read; DeepMTS segments the label map but never reads it, the SVM reads radiomics features
READS = {"DeepMTS": (IMAGE, GRADES), "XSurv": (IMAGE, LABELS, GRADES), "SurvRNC": (IMAGE, LABELS, GRADES),
         "SurvRNC + SLE": (IMAGE, LABELS, GRADES), "tri-stream, no SLE": (IMAGE, LABELS, GRADES),
         "tri-stream + SLE": (IMAGE, LABELS, GRADES), RADIOMICS_SVM: (RADIOMICS, GRADES)}
DEFAULT_INPUTS = {**READS, RADIOMICS_SVM: (RADIOMICS,)}  # what the row without brackets reads
_ROW = re.compile(r"^(?P<base>.+?) \[(?P<keep>[a-z +]+)\]$")
_ID = re.compile(r"^(?P<id>[\w-]+)\[(?P<keep>[a-z +]+)\]$")


def row_name(base: str, keep) -> str:
    """'SurvRNC [image + grades]'; the plain method name when `keep` is what its plain row reads."""
    keep = [m for m in READS[base] if m in set(keep)]
    return base if set(keep) == set(DEFAULT_INPUTS[base]) else f"{base} [{' + '.join(keep)}]"


def split_row(name: str) -> tuple[str, frozenset[str] | None]:
    """(method, the inputs it keeps); None for a method that has no combinations."""
    match = _ROW.match(name)
    base = match["base"] if match else name
    if base not in READS:
        return name, None
    keep = match["keep"].split(" + ") if match else DEFAULT_INPUTS[base]
    return base, frozenset(keep)


def combinations(base: str) -> list[str]:
    """Every non-empty combination of `base`'s inputs as row names, all of them first; the SVM always keeps its
    radiomics (without them it is a Cox model on grades, a row of its own)."""
    inputs = READS[base]
    subsets = [c for n in range(len(inputs), 0, -1) for c in itertools.combinations(inputs, n)]
    return [row_name(base, c) for c in subsets if RADIOMICS not in inputs or RADIOMICS in c]


def parse_id(item: str, ids: dict[str, str]) -> str | None:
    """The row name of 'survrnc[image+grades]' (a method id of `ids` with inputs it can read), None when `item`
    has no brackets; ValueError naming the inputs otherwise."""
    match = _ID.match(item.replace(" ", ""))
    if not match:
        return None
    base = ids.get(match["id"])
    if base not in READS:
        raise ValueError(f"{match['id']!r} has no input combinations; these do: "
                         f"{', '.join(i for i, n in ids.items() if n in READS)}")
    keep = [m for m in match["keep"].split("+") if m]
    wrong = [m for m in keep if m not in READS[base]]
    if wrong or not keep or (RADIOMICS in READS[base] and RADIOMICS not in keep):
        raise ValueError(f"{match['id']} reads {' + '.join(READS[base])}; "
                         f"{match['keep']!r} is not a combination of them it can run on")
    return row_name(base, keep)


def best_per_method(means: dict[str, float]) -> list[tuple[str, str, float, int]]:
    """(method, its best row, that row's mean, rows tried) for every method run on more than one combination."""
    tried: dict[str, list[str]] = {}
    for name in means:
        base, keep = split_row(name)
        if keep is not None:
            tried.setdefault(base, []).append(name)
    out = []
    for base, names in tried.items():
        scored = [n for n in names if means[n] == means[n]]  # a NaN mean (no fold defines it) cannot win
        if len(names) > 1 and scored:
            best = max(scored, key=lambda n: means[n])
            out.append((base, best, means[best], len(names)))
    return out
