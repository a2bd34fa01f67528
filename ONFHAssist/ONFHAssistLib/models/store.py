"""Model folders (DESIGN §4): `model.json` + `weights.safetensors`, checksummed, never pickled.

Two stores are searched: the shipped one (`Resources/Models` of the module) and the user's
(`$ONFH_MODELS`, default `~/.onfh/models`). Every load re-hashes the weights, so a corrupted or
tampered file stops the run with a clear message instead of producing wrong numbers. Without a model named,
a task uses its shipped model's name (highest version): a model a user publishes is used when named, never
in silence because its version is higher.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import torch
from safetensors import SafetensorError

from .. import resources
from ..atomic import atomic_path, atomic_write_text
from ..errors import InputError
from . import weights

WEIGHTS = "weights.safetensors"
CARD = "model.json"
SHIPPED_STORE = resources.MODELS
DEMO_LABEL = "phantom-trained demo — not for clinical use"
REQUIRED_FIELDS = ("name", "task", "version", "sha256")
TASK_FIELDS = {  # what networks.build and the pipeline read from a card of each task
    "localizer": ("features",),
    "segmentation": ("features",),
    "staging": ("classes", "architecture", "crop", "system"),
    "sranet": ("classes", "architecture", "crop"),
    "survival": ("config", "crop", "baseline"),
}


def user_store() -> Path:
    return Path(os.environ.get("ONFH_MODELS", Path.home() / ".onfh" / "models"))


def stores() -> list[Path]:
    return [SHIPPED_STORE, user_store()]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in str(version).split("."))


@dataclass
class ModelEntry:
    """A model folder and its card."""

    folder: Path
    card: dict

    @property
    def name(self) -> str:
        return self.card["name"]

    @property
    def task(self) -> str:
        return self.card["task"]

    @property
    def version(self) -> str:
        return str(self.card["version"])

    def provenance(self) -> dict:
        return {"name": self.name, "task": self.task, "version": self.version, "sha256": self.card["sha256"],
                "label": self.card.get("label", "")}


def save_model(folder: str | Path, model: torch.nn.Module, card: dict) -> ModelEntry:
    """Write weights then card, each atomically; the card records the weights' sha256 and size.
    A torchrun job calls this on rank 0 only (`training.distributed.save_model_once`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for key in ("name", "task", "version"):
        if key not in card:
            raise ValueError(f"model card needs {key!r}")
    with atomic_path(folder / WEIGHTS) as tmp:
        weights.save(model, tmp)
    full = dict(card)
    full.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    full.setdefault("label", DEMO_LABEL)
    full["parameters"] = int(sum(p.numel() for p in model.parameters()))
    full["size_mb"] = round((folder / WEIGHTS).stat().st_size / 1e6, 3)
    full["sha256"] = sha256_file(folder / WEIGHTS)
    atomic_write_text(folder / CARD, json.dumps(full, indent=2) + "\n")
    return ModelEntry(folder, full)


def read_entry(folder: str | Path) -> ModelEntry:
    """The card of a model folder, checked for the fields every loader relies on."""
    folder = Path(folder)
    card_path = folder / CARD
    if not card_path.is_file():
        raise InputError(f"{folder}: not a model folder (no {CARD}).")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{card_path}: not valid JSON.") from None
    if not isinstance(card, dict):
        raise InputError(f"{card_path}: not a model card (a JSON object is needed, found {type(card).__name__}).")
    missing = [k for k in REQUIRED_FIELDS if k not in card]
    missing += [k for k in TASK_FIELDS.get(str(card.get("task")), ()) if k not in card]
    if missing:
        raise InputError(f"{card_path}: missing {', '.join(missing)}.")
    members = card.get("members")  # a pooled localiser (models.localizer.CandidateEnsemble) builds one per member
    if members is not None and not (isinstance(members, list) and members
                                    and all(isinstance(m, dict) and "features" in m for m in members)):
        raise InputError(f"{card_path}: 'members' must be a list of the member networks' cards, "
                         "each with its features.")
    if not (folder / WEIGHTS).is_file():
        raise InputError(f"{folder}: {WEIGHTS} is missing (only safetensors weights are accepted).")
    return ModelEntry(folder, card)


def verify(entry: ModelEntry) -> None:
    """Raise InputError unless the weights' sha256 equals the card's."""
    actual = sha256_file(entry.folder / WEIGHTS)
    if actual != entry.card["sha256"]:
        raise InputError(f"{entry.folder / WEIGHTS}: checksum mismatch (expected {entry.card['sha256'][:12]}…, "
                         f"found {actual[:12]}…); the file is corrupted or was modified.")


def load_weights(entry: ModelEntry, model: torch.nn.Module, task: str | None = None,
                 map_location: str = "cpu") -> torch.nn.Module:
    """Verify the checksum, then load safetensors weights into `model` (strict), in eval mode."""
    if task is not None and entry.task != task:
        raise InputError(f"{entry.folder}: a {entry.task!r} model cannot be used for {task!r}.")
    verify(entry)
    try:
        missing, unexpected = weights.load(model, entry.folder / WEIGHTS, device=map_location)
    except (SafetensorError, OSError) as exc:
        raise InputError(f"{entry.folder / WEIGHTS}: not a readable safetensors file ({exc}).") from None
    except RuntimeError:  # tensor shapes differ from the network the card describes
        missing, unexpected = ["shape mismatch"], []
    if missing or unexpected:
        raise InputError(f"{entry.folder}: weights do not fit the {entry.task} network described by its card "
                         f"({len(missing)} missing, {len(unexpected)} unexpected tensors).")
    return model.eval()


def list_models(task: str | None = None, roots: list[Path] | None = None) -> list[ModelEntry]:
    """Every readable model folder in the stores (shipped first, or `roots`), optionally for one task."""
    found = []
    for store in stores() if roots is None else roots:
        if not store.is_dir():
            continue
        for card in sorted(store.glob(f"*/{CARD}")):
            if card.parent.name.startswith("."):
                continue  # a staging folder of an import still running, or killed: never a model
            try:
                entry = read_entry(card.parent)
            except InputError:
                continue
            if task is None or entry.task == task:
                found.append(entry)
    return found


def default_name(task: str) -> str | None:
    """The name a task's model has when none is asked for: that of the newest shipped model of the task (a
    user's model, published at any version, is used only when named), or None when nothing of it is shipped."""
    shipped = list_models(task, [SHIPPED_STORE])
    return max(shipped, key=lambda e: version_key(e.version)).name if shipped else None


def find_model(task: str, name: str | None = None) -> ModelEntry:
    """The model of a task to use: `name` as a folder path, a model name (its highest version) or name@version;
    without one, the highest version of the shipped model's name (`default_name`), in either store; with
    nothing of the task shipped, the highest version of any name."""
    if name and Path(name).is_dir():
        entry = read_entry(name)
        if entry.task != task:
            raise InputError(f"{name}: a {entry.task!r} model cannot be used for {task!r}.")
        return entry
    wanted_name, _, wanted_version = (name or "").partition("@")
    wanted_name = wanted_name or default_name(task) or ""
    candidates = [e for e in list_models(task)
                  if (not wanted_name or e.name == wanted_name) and (not wanted_version or e.version == wanted_version)]
    if not candidates:
        what = f"named {name!r} " if name else ""
        raise InputError(f"no {task} model {what}found in {', '.join(str(s) for s in stores())}.")
    return max(candidates, key=lambda e: version_key(e.version))


def export_zip(entry: ModelEntry, zip_path: str | Path) -> Path:
    """Zip a model folder (card + weights) for sharing."""
    verify(entry)
    zip_path = Path(zip_path)
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for fname in (CARD, WEIGHTS):
            zf.write(entry.folder / fname, f"{entry.name}-{entry.version}/{fname}")
    return zip_path


def publish_folder(folder: str | Path, store: Path | None = None) -> ModelEntry:
    """Copy a trained model folder into the user store (checksum verified first; an existing name@version is
    never overwritten), so the analysis panel offers it without a restart."""
    entry = read_entry(folder)
    return _install(store or user_store(), f"{entry.name}-{entry.version}", lambda f: (entry.folder / f).read_bytes(),
                    str(entry.folder))


def _install(store: Path, name: str, read: Callable[[str], bytes], source: str) -> ModelEntry:
    """Write a card and weights into a hidden folder of the store, check them, then rename into place; a
    problem is told against `source` (the zip or folder the user named), never the vanished staging path."""
    target = store / name
    if target.exists():
        raise InputError(f"{target}: a model with this name and version is already in the store.")
    store.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-install-", dir=store))
    try:
        for fname in (CARD, WEIGHTS):
            (staging / fname).write_bytes(read(fname))
        _check_installable(read_entry(staging), store)
        os.replace(staging, target)
    except InputError as exc:
        message = str(exc).replace(str(staging) + os.sep, '').replace(str(staging), name)
        raise InputError(f"{source}: {message}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return read_entry(target)


def _check_installable(entry: ModelEntry, store: Path) -> None:
    """Checksum, one copy per name@version in the target store, no other weights under that name@version in any
    store (a second `onfh-localizer 1.0.0` was listed twice and silently never used), and weights that fit the
    network the card describes: what would otherwise fail every later analysis."""
    verify(entry)
    same = [e for e in list_models(entry.task, list(dict.fromkeys([*stores(), store])))
            if e.name == entry.name and e.version == entry.version]
    other = next((e for e in same if e.card.get("sha256") != entry.card["sha256"]), None)
    if other is not None:
        raise InputError(f"{entry.name} {entry.version} already exists at {other.folder} with other weights "
                         f"(sha256 {other.card.get('sha256', '')[:12]}…, this one {entry.card['sha256'][:12]}…); "
                         "give this model another version (or name) in its model.json.")
    twin = next((e for e in same if e.folder.parent.resolve() == store.resolve()), None)
    if twin is not None:
        raise InputError(f"{entry.name} {entry.version} is already installed at {twin.folder}.")
    from .networks import BUILDERS  # networks imports this module

    if entry.task in BUILDERS:
        try:
            network = BUILDERS[entry.task](entry.card)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise InputError(f"{CARD}: does not describe a {entry.task} network ({exc}).") from None
        load_weights(entry, network, task=entry.task)


def import_zip(zip_path: str | Path, store: Path | None = None) -> ModelEntry:
    """Unpack a model zip into the user store; any member path that could escape the store is refused."""
    zip_path, store = Path(zip_path), (store or user_store())
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError):
        raise InputError(f"{zip_path}: not a readable zip file.") from None
    with zf:
        names = zf.namelist()
        for member in names:
            parts = PurePosixPath(member.replace("\\", "/")).parts
            if member.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise InputError(f"{zip_path}: member {member!r} would escape the model store; refused.")
        tops = {PurePosixPath(n).parts[0] for n in names if PurePosixPath(n).parts}
        if len(tops) != 1 or {f"{next(iter(tops))}/{CARD}", f"{next(iter(tops))}/{WEIGHTS}"} - set(names):
            raise InputError(f"{zip_path}: expected one folder holding {CARD} and {WEIGHTS}.")
        top = next(iter(tops))
        try:  # read (and CRC-check) every member before the store is touched
            members = {f: zf.read(f"{top}/{f}") for f in (CARD, WEIGHTS)}
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise InputError(f"{zip_path}: a member is damaged ({exc}).") from None
    return _install(store, top, members.__getitem__, str(zip_path))
