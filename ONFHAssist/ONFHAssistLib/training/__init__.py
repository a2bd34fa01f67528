"""Training recipes, one module per task, all run by the shared engine (`engine.py`).

Each recipe module defines `train(settings, reporter) -> ModelEntry` and
`evaluate(settings, reporter) -> dict`; the CLI finds them through `TASKS`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ..errors import InputError

TASKS = {
    "localizer": "localizer_recipe",
    "segmentation": "segmentation_recipe",
    "staging": "staging_recipe",
    "sranet": "sranet_recipe",
    "survival": "survival_recipe",
}


@dataclass
class TrainSettings:
    """Options shared by `onfh train|evaluate|cv TASK`; a recipe uses the ones it needs."""

    task: str
    data: Path
    out: Path
    epochs: int | None = None
    device: str = "auto"
    seed: int = 0
    system: str | None = None
    preset: str | None = None
    batch_size: int | None = None
    lr: float | None = None
    alpha: float | None = None  # SRANet: CE weight; 1 drops the structure regulariser
    guidance: float | None = None  # SRANet: weight of the attention-mass term on lesion patches; 0 drops it
    necrosis_weight: float | None = None  # segmentation: loss weight of the necrosis class
    folds: int | None = None  # cv: the folds (None = 5); train: the validation split (None = 1/5 of the patients,
    # none for one patient; 0 = no validation)
    model: str | None = None
    init: str | None = None  # train: start from this model's weights (localizer, segmentation, staging, sranet)
    name: str | None = None  # train: the trained model's name (default <task>-<dataset name>)
    models: str = "all"
    resume: bool = True
    parallel_folds: int = 1  # cv: folds run side by side as child processes
    fold: int | None = None  # cv: run this fold only (what a --parallel-folds child is told)


def recipe(task: str) -> ModuleType:
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; use one of {', '.join(TASKS)}.")
    try:
        return importlib.import_module(f".{TASKS[task]}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.endswith(TASKS[task]):
            raise InputError(f"training for {task!r} is not available in this build.") from None
        raise
