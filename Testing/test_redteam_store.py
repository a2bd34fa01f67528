"""Model store under red-team inputs: what an import refuses names the zip, one copy per name@version, weights must
fit their card, a staging folder left by a killed import is never listed as a model, and a user's model (at any
version) replaces the shipped one only when named."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest
import torch
from ONFHAssistLib.analysis.pipeline import load_models
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


def _toy(folder, name, version):
    return modelstore.save_model(folder, torch.nn.Linear(2, 2), {"name": name, "task": "toy", "version": version})


def test_a_published_model_at_a_higher_version_does_not_replace_the_shipped_one(tmp_path, monkeypatch):
    """Before: without a name, the highest version of any name won, so a user's `toy-mine 9.0` silently replaced
    the shipped `onfh-toy` in every analysis."""
    shipped, user = tmp_path / "shipped", tmp_path / "user"
    monkeypatch.setattr(modelstore, "SHIPPED_STORE", shipped)
    monkeypatch.setenv("ONFH_MODELS", str(user))
    _toy(shipped / "onfh-toy-1.0.0", "onfh-toy", "1.0.0")
    _toy(shipped / "onfh-toy-1.2.0", "onfh-toy", "1.2.0")
    _toy(user / "toy-mine-9.0", "toy-mine", "9.0")
    _toy(user / "toy-mine-10.0", "toy-mine", "10.0")
    assert modelstore.default_name("toy") == "onfh-toy"
    chosen = modelstore.find_model("toy")
    assert (chosen.name, chosen.version, chosen.folder.parent) == ("onfh-toy", "1.2.0", shipped)
    assert modelstore.find_model("toy", "toy-mine").version == "10.0"  # named: the user's model, newest version
    assert modelstore.find_model("toy", "toy-mine@9.0").version == "9.0"
    assert modelstore.find_model("toy", str(user / "toy-mine-9.0")).version == "9.0"  # a folder
    _toy(user / "onfh-toy-1.3.0", "onfh-toy", "1.3.0")  # a newer release of the shipped model, imported
    assert (modelstore.find_model("toy").version, modelstore.find_model("toy").folder.parent) == ("1.3.0", user)


def test_without_a_shipped_model_of_the_task_the_newest_of_any_name_is_used(tmp_path, monkeypatch):
    monkeypatch.setattr(modelstore, "SHIPPED_STORE", tmp_path / "shipped")
    monkeypatch.setenv("ONFH_MODELS", str(tmp_path / "user"))
    _toy(tmp_path / "user" / "a", "toy-a", "2.0")
    _toy(tmp_path / "user" / "b", "toy-b", "3.0")
    assert modelstore.default_name("toy") is None
    assert modelstore.find_model("toy").name == "toy-b"


def test_the_analysis_records_the_shipped_model_unless_the_user_names_theirs(tmp_path, monkeypatch):
    """What `onfh analyze` loads (and writes into analysis.json's `models`): the shipped segmentation model beside
    a user's copy published at a higher version, and the user's when named (`--models segmentation=NAME`)."""
    user = tmp_path / "user"
    monkeypatch.setenv("ONFH_MODELS", str(user))
    shipped = modelstore.find_model("segmentation")
    copy = user / "segmentation-mine-9.0.0"
    shutil.copytree(shipped.folder, copy)
    card = json.loads((copy / modelstore.CARD).read_text(encoding="utf-8"))
    (copy / modelstore.CARD).write_text(json.dumps({**card, "name": "segmentation-mine", "version": "9.0.0"}),
                                        encoding="utf-8")
    device = torch.device("cpu")
    default = load_models({}, device, [])["segmentation"].entry.provenance()
    assert (default["name"], default["version"]) == (shipped.name, shipped.version)
    named = load_models({"segmentation": "segmentation-mine"}, device, [])["segmentation"].entry.provenance()
    assert (named["name"], named["version"]) == ("segmentation-mine", "9.0.0")
