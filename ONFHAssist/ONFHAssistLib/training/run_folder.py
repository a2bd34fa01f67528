"""A train or cv output folder remembers the arguments its run was started with.

Rerunning into the same folder resumes from its checkpoints, which is right only for the same run: with
another learning rate or seed, a rerun used to train nothing, exit 0 and write the new seed into the
model card. Now the same arguments resume, other arguments are refused naming each difference, and
`--overwrite` clears the folder (only one that holds a run.json, i.e. one this code made) for a new run.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..atomic import atomic_write_json
from ..errors import InputError

RUN_FILE = "run.json"
# What changes the result; device, resume and the fold split between child processes do not, nor does `cv
# --models`: it picks rows, and each (fold, row) result stands alone, so a finished CV can take more rows.
COMPARED = ("task", "data", "epochs", "seed", "system", "preset", "batch_size", "lr", "alpha", "guidance",
            "necrosis_weight", "folds", "model", "init", "name")


def arguments(command: str, settings) -> dict:
    values = {key: getattr(settings, key) for key in COMPARED}
    values["data"] = str(Path(values["data"]).resolve())
    return {"command": command, **values}


def claim(command: str, settings, overwrite: bool = False) -> bool:
    """Record this run's arguments in its output folder, or refuse a folder that holds another run. True when
    the folder is new (so a run refused for bad input can take it away again: `release`)."""
    out, wanted = Path(settings.out), arguments(command, settings)
    record = out / RUN_FILE
    new = not out.exists()
    if record.is_file():
        recorded = json.loads(record.read_text(encoding="utf-8"))
        differ = [key for key in wanted if recorded.get(key) != wanted[key]]
        if differ and not overwrite:
            changes = ", ".join(f"{key} {recorded.get(key)!r} -> {wanted[key]!r}" for key in differ)
            raise InputError(f"{out}: holds a run started with other arguments ({changes}); give the same "
                             "arguments to resume it, another --out for a new run, or --overwrite to replace it.")
        if differ:
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(record, wanted)
    return new


def release(settings) -> None:
    """Remove a new run folder that holds nothing but its run.json: bad input leaves nothing behind."""
    out = Path(settings.out)
    if out.is_dir() and [p.name for p in out.iterdir()] == [RUN_FILE]:
        shutil.rmtree(out)
