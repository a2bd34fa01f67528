"""Every class of bad input: exit code 2, one clear line on stderr, nothing left half-written."""
from __future__ import annotations

import pytest

from ONFHAssistLib.cli import main

from badinput_corpus import build


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build(tmp_path_factory.mktemp("corpus") / "c")


def test_corpus_is_large_enough(corpus):
    assert len(corpus) >= 30
    assert {c.name.split(":")[0] for c in corpus} == {"volume", "label", "table", "model", "cli"}
    classes = {c.name.removesuffix(" (segment)").removesuffix(" (analyze)") for c in corpus}
    assert len(classes) >= 30
    for wanted in ("truncated gzip", "wrong magic", "2D", "4D", "vector", "nan", "inf", "zero spacing",
                   "singular direction", "1 voxel", "huge header size", "values outside 0-3", "grid mismatch",
                   "missing columns", "negative time", "non-numeric time", "event not 0/1", "duplicate hip rows",
                   "unknown grade code", "under two patient IDs", "missing weights file", "wrong checksum",
                   "wrong task", "pickle instead of safetensors", "zip slip", "DICOM slice with truncated pixel data",
                   "gzip NRRD without its tail", "cli: "):
        assert any(wanted in name for name in classes), wanted


def test_each_bad_input_gives_one_line_and_exit_2(corpus, capsys):
    failures = []
    for case in corpus:
        code = main(case.argv)
        err = capsys.readouterr().err.strip().splitlines()
        if code != 2 or len(err) != 1 or not err[0].startswith("error: "):
            failures.append((case.name, code, err))
        if case.clean is not None and case.clean.exists() and any(case.clean.rglob("*")):
            failures.append((case.name, "left files behind", sorted(case.clean.rglob("*"))[:3]))
    assert not failures, failures
