"""Model store under red-team inputs: what an import refuses names the zip, one copy per name@version, weights must
fit their card, and a staging folder left by a killed import is never listed as a model."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile

import pytest
import torch

from ONFHAssistLib.errors import InputError
from ONFHAssistLib.jobs import child_env
from ONFHAssistLib.models import store as modelstore

TOY = {"name": "toy", "task": "toy", "version": "1"}


def _zip(folder, path, top="toy-1"):
    with zipfile.ZipFile(path, "w") as zf:
        for fname in (modelstore.CARD, modelstore.WEIGHTS):
            zf.write(folder / fname, f"{top}/{fname}")
    return path


def test_wrong_checksum_on_import_names_the_zip(tmp_path):
    entry = modelstore.save_model(tmp_path / "m", torch.nn.Linear(2, 2), TOY)
    (entry.folder / modelstore.WEIGHTS).write_bytes(b"tampered")
    with pytest.raises(InputError) as err:
        modelstore.import_zip(_zip(entry.folder, tmp_path / "m.zip"), tmp_path / "store")
    assert str(err.value).startswith(f"{tmp_path / 'm.zip'}: weights.safetensors: checksum mismatch")
    assert ".tmp-install" not in str(err.value)


def test_same_name_and_version_under_another_folder_name_is_refused(tmp_path):
    entry = modelstore.save_model(tmp_path / "m", torch.nn.Linear(2, 2), TOY)
    modelstore.import_zip(_zip(entry.folder, tmp_path / "a.zip", "toy-1"), tmp_path / "store")
    with pytest.raises(InputError, match="toy 1 is already installed at"):
        modelstore.import_zip(_zip(entry.folder, tmp_path / "b.zip", "renamed"), tmp_path / "store")
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["toy-1"]


def test_weights_that_do_not_fit_their_card_are_refused_on_import(tmp_path):
    card = {"name": "seg", "task": "segmentation", "version": "1", "features": [4, 8, 8, 8]}
    entry = modelstore.save_model(tmp_path / "m", torch.nn.Linear(2, 2), card)
    with pytest.raises(InputError, match="weights do not fit the segmentation network"):
        modelstore.import_zip(_zip(entry.folder, tmp_path / "m.zip", "seg-1"), tmp_path / "store")
    assert not any((tmp_path / "store").iterdir())


KILLED_IMPORT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from ONFHAssistLib.models import store
    def stuck(src, dst):  # the staged copy is complete; die before the rename
        print("staged", flush=True)
        time.sleep(600)
    os.replace = stuck
    store.import_zip(Path(sys.argv[1]), Path(sys.argv[2]))
""")


def test_an_import_killed_before_its_rename_is_never_listed(tmp_path, monkeypatch):
    entry = modelstore.save_model(tmp_path / "m", torch.nn.Linear(2, 2), TOY)
    archive, store = _zip(entry.folder, tmp_path / "m.zip"), tmp_path / "store"
    child = subprocess.Popen([sys.executable, "-c", KILLED_IMPORT, str(archive), str(store)], env=child_env(),
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "staged"
    child.kill()
    child.wait(timeout=30)
    assert [p.name for p in store.iterdir() if p.name.startswith(".tmp-install-")]  # the killed import's leftover
    monkeypatch.setenv("ONFH_MODELS", str(store))
    assert [e for e in modelstore.list_models() if e.folder.parent == store] == []
    assert modelstore.import_zip(archive, store).folder == store / "toy-1"
