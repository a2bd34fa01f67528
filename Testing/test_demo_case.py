"""The bundled demo case is found, matches its recorded checksums, and an altered copy is refused."""
import hashlib
import shutil

import pytest

from ONFHAssistLib.slicer import demo_case
from ONFHAssistLib.imaging import io
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


def test_sample_data_source_points_at_the_checked_demo_file():
    from pathlib import Path
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    source = demo_case.sample_data_source()
    path = Path(url2pathname(urlparse(source["uris"]).path))
    assert path == demo_case.image_path().resolve() and source["fileNames"] == path.name
    assert source["checksums"] == "SHA256:" + hashlib.sha256(path.read_bytes()).hexdigest()
