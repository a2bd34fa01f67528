"""The pooled localiser (`models.localizer.CandidateEnsemble`, shipped as onfh-localizer 1.1.0): candidates of
its members in turn, a repeat of a head dropped; saved and loaded through the verified store; fine-tuning
starts from its first member."""
from __future__ import annotations

import pytest
import torch

from ONFHAssistLib.analysis import localization
from ONFHAssistLib.imaging import io
from ONFHAssistLib.models import networks, store
from ONFHAssistLib.models.localizer import CandidateEnsemble, build_localizer, save_pooled
from ONFHAssistLib.slicer import demo_case


def test_pooled_takes_each_members_candidates_in_turn_and_drops_repeats():
    a = [([0.0, 0.0, 0.0], 0.9), ([100.0, 0.0, 0.0], 0.5)]
    b = [([6.0, 0.0, 0.0], 0.8), ([50.0, 0.0, 0.0], 0.3), ([0.0, 70.0, 0.0], 0.25)]
    assert localization.pooled([a, b]) == [a[0], a[1], b[1], b[2]]  # b's first is a's first, 6 mm away
    many = [[([100.0 * k, 10.0 * r, 0.0], 0.5) for r in range(4)] for k in range(3)]
    assert len(localization.pooled(many)) == localization.POOLED_MAX_CANDIDATES
    assert localization.pooled([[], a]) == a and localization.pooled([]) == []
    assert localization.pooled([b]) == b  # one network's own candidates pass unchanged


def test_a_pooled_card_whose_member_has_no_features_is_one_clear_line(tmp_path, capsys):
    import json
    import shutil

    from ONFHAssistLib.cli import main

    folder = tmp_path / "loc"
    shutil.copytree(store.find_model("localizer").folder, folder)
    card = json.loads((folder / "model.json").read_text())
    del card["members"][1]["features"]
    (folder / "model.json").write_text(json.dumps(card))
    argv = ["segment", str(demo_case.image_path()), "--out", str(tmp_path / "out"), "--localizer", str(folder)]
    assert main(argv) == 2
    assert "'members' must be a list of the member networks' cards" in capsys.readouterr().err
    assert not (tmp_path / "out" / "analysis.json").exists()


def test_a_network_pooled_with_itself_finds_what_it_finds_alone():
    """Pooling cannot change what one member finds: the same network twice gives the same candidates."""
    shipped, _ = networks.load("localizer", None, torch.device("cpu"))
    assert isinstance(shipped, CandidateEnsemble)
    single = shipped.members[0]
    image = io.read_image(demo_case.image_path())
    alone = localization.run_localizer(single, image, "mr_t1", torch.device("cpu"), None)
    twice = localization.run_localizer(CandidateEnsemble([single, single]), image, "mr_t1", torch.device("cpu"), None)
    assert alone["R"] and alone == twice


def test_save_pooled_round_trip_and_fine_tuning_starts_from_the_first_member(tmp_path):
    torch.manual_seed(0)
    sources = [store.save_model(tmp_path / f"m{k}", build_localizer(), {"name": f"loc{k}", "task": "localizer",
                                                                          "version": "1.0.0",
                                                                          "features": [8, 16, 32, 64, 64, 8]})
               for k in range(2)]
    entry = save_pooled(tmp_path / "pooled", sources, {"name": "pooled", "version": "1.0.0"})
    assert [m["sha256"] for m in entry.card["members"]] == [s.card["sha256"] for s in sources]
    pooled, _ = networks.load("localizer", str(tmp_path / "pooled"), torch.device("cpu"))
    assert isinstance(pooled, CandidateEnsemble) and len(pooled.members) == 2
    for member, source in zip(pooled.members, sources):
        expected = store.load_weights(source, build_localizer()).state_dict()
        assert all(torch.equal(member.state_dict()[k], v) for k, v in expected.items())
    fresh = build_localizer()
    networks.initialise_from(fresh, "localizer", str(tmp_path / "pooled"))
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in pooled.members[0].state_dict().items())
    with pytest.raises(ValueError, match="single localisers"):
        save_pooled(tmp_path / "nested", [entry], {"name": "nested", "version": "1.0.0"})
