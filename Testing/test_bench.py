"""The bench measures each command's own peak memory, not the (large) process that launched it."""
import sys

import numpy as np

from ONFHAssistLib.bench import REPO, run_child


def test_peak_memory_is_the_commands_own():
    ballast = np.ones(300 * 2**20 // 8)  # make this process big: 300 MB that the child must not inherit
    idle = [sys.executable, "-S", "-c", "pass"]
    hungry = [sys.executable, "-S", "-c", "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('ok')"]
    _, idle_mb, _ = run_child(idle, REPO)
    wall, hungry_mb, out = run_child(hungry, REPO)
    assert idle_mb < 50 and out.strip() == "ok" and wall > 0
    assert 190 <= hungry_mb - idle_mb <= 260
    assert ballast.sum() > 0


def test_training_and_cv_benches_are_grouped_and_parsed(tmp_path):
    from ONFHAssistLib.bench import cv_c_index, default_benches, epoch_details, merge_rows

    names = [b.name for b in default_benches()]
    assert sum(n.startswith("train ") for n in names) == 5 and not any(n.startswith("cv ") for n in names)
    assert [b.name for b in default_benches(("cv",))][0].startswith("cv survival")
    stream = "\n".join(['{"event":"metric","stage":"t","epoch":0,"train_loss":0.5}',
                        '{"event":"progress","stage":"t","fraction":1.0,"epoch_s":2.5}', "plain text"])
    assert epoch_details(stream) == {"epoch_s": 2.5, "train_loss": 0.5}
    table = "CV: 9 hips.\n\n| model | harrell_c | ibs |\n|---|---|---|\n| CoxPH (grades) | 0.70 ± 0.01 | 0.2 ± 0.1 |\n"
    assert cv_c_index(table) == {"harrell_c": {"CoxPH (grades)": "0.70 ± 0.01"}} and cv_c_index("no table") == {}
    here = {"cpus": 2}
    (tmp_path / "results.json").write_text('{"machine": {"cpus": 2}, "benchmarks": [{"name": "a", "v": 1}, '
                                           '{"name": "b", "v": 1}]}', encoding="utf-8")
    merged = merge_rows(tmp_path / "results.json", [{"name": "b", "v": 2}, {"name": "c", "v": 2}], here)
    assert merged == [{"name": "a", "v": 1}, {"name": "b", "v": 2}, {"name": "c", "v": 2}]
    assert merge_rows(tmp_path / "results.json", [{"name": "c"}], {"cpus": 64}) == [{"name": "c"}]


def test_the_web_row_is_left_out_with_its_reason_where_the_browser_is_missing(tmp_path, monkeypatch, capsys):
    from ONFHAssistLib import bench

    def web_rows():
        return [b for b in bench.default_benches() if b.name.startswith("web:")]

    present = bench.web_missing() == ""
    assert len(web_rows()) == int(present)
    monkeypatch.setattr(bench, "CHROMIUM", tmp_path / "no-chromium")
    assert bench.web_missing() == f"no Chromium at {tmp_path / 'no-chromium'} (Debian package chromium; " \
                                  "`make test-web` installs it)"
    capsys.readouterr()
    assert web_rows() == []
    assert f"the web row is left out: no Chromium at {tmp_path / 'no-chromium'}" in capsys.readouterr().err
