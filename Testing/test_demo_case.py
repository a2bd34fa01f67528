"""The bundled demo case is found, matches its recorded checksums, and an altered copy is refused."""
import shutil

import pytest

from ONFHAssistLib import demo_case, io
from ONFHAssistLib.errors import InputError


def test_demo_files_match_their_truth():
    image = io.read_image(demo_case.image_path())
    assert image.GetDimension() == 3
    assert {hip["side"] for hip in demo_case.truth()} == {"R", "L"}


def test_altered_demo_file_is_refused(tmp_path, monkeypatch):
    for path in demo_case.DEMO_DIR.iterdir():
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(demo_case, "DEMO_DIR", tmp_path)
    with open(tmp_path / demo_case.manifest()["label"], "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(InputError, match="altered"):
        demo_case.label_path()
