"""stderr hygiene, output-folder errors and input-integrity messages at the CLI boundary (issue 26)."""
from __future__ import annotations

import errno
import io as text_io
import logging
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from ONFHAssistLib import cli, progress
from ONFHAssistLib.analysis.batch import run_batch
from ONFHAssistLib.errors import InputError
from ONFHAssistLib.imaging import io
from ONFHAssistLib.jobs import child_env, onfh_command


def _volume(path: Path, spacing: float = 10.0, depth: int = 8) -> Path:
    image = sitk.GetImageFromArray(np.zeros((depth, 8, 8), np.int16))
    image.SetSpacing((spacing, spacing, spacing))
    return io.write_image(image, path)


def test_a_bad_input_prints_its_error_line_alone_no_library_info(tmp_path):
    (tmp_path / "hips.csv").write_text("patient_id,scan_id,side,time_months,event\n")
    run = subprocess.run(onfh_command(["dataset", "validate", str(tmp_path)]), capture_output=True, text=True,
                         env=child_env(), timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"error: {tmp_path}: 2 problem(s); first: {tmp_path}/dataset.json: missing."]


def test_the_bar_adds_no_line_to_a_quick_failure_and_an_open_bar_is_erased():
    quiet = text_io.StringIO()
    progress.BarReporter(quiet).progress("analyze", 0.0, message="reading")
    assert quiet.getvalue() == ""

    class Tty(text_io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    progress.BarReporter(tty).progress("analyze", 0.4)
    progress.clear_bar()
    assert tty.getvalue().endswith("\r\033[K")


def test_an_unwritable_out_folder_is_one_sentence(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)
    assert cli.main(["segment", str(_volume(tmp_path / "v.nii.gz")), "--out", str(tmp_path / "o" / "p")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --out {tmp_path / 'o' / 'p'}: {tmp_path} is not writable (read-only or no permission)."]


def test_a_read_only_filesystem_mid_run_is_exit_2_naming_the_path(monkeypatch, capsys):
    def read_only(args):
        raise OSError(errno.EROFS, "Read-only file system", "/ro/out/labels.nii.gz")

    monkeypatch.setitem(cli.COMMANDS, "info", read_only)
    assert cli.main(["info"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: /ro/out/labels.nii.gz: cannot write there (Read-only file system)."]


def test_two_inputs_with_one_name_are_both_named(tmp_path):
    a, b = _volume(tmp_path / "scanA.nii.gz"), _volume(tmp_path / "scanA.nrrd")
    with pytest.raises(InputError) as err:
        run_batch(None, [a, b], tmp_path / "out", "auto", None)
    assert str(a) in str(err.value) and str(b) in str(err.value)


def test_geometry_and_data_file_messages_say_what_is_wrong(tmp_path):
    head = "NRRD0004\ntype: short\ndimension: 3\nsizes: 8 8 8\nspace: left-posterior-superior\n"
    tail = "space origin: (0,0,0)\nendian: little\nencoding: raw\n\n"
    zero = tmp_path / "zero.nrrd"
    zero.write_bytes((head + "space directions: (0,0,0) (0,9,0) (0,0,9)\n" + tail).encode() + bytes(1024))
    with pytest.raises(InputError, match="zero spacing"):
        io.read_image(zero)
    sitk.WriteImage(sitk.ReadImage(str(_volume(tmp_path / "v.nii.gz"))), str(tmp_path / "v.mhd"))
    (tmp_path / "v.raw").unlink()
    with pytest.raises(InputError, match=r"its data file .*v\.raw is missing"):
        io.read_image(tmp_path / "v.mhd")
    with pytest.raises(InputError, match="too small to hold a hip"):
        io.check_scan(_volume(tmp_path / "small.nii.gz", spacing=5.0))


def test_uneven_dicom_spacing_is_warned_and_a_missing_slice_refused(tmp_path, caplog):
    image = sitk.GetImageFromArray(np.zeros((10, 8, 8), np.int16))
    image.SetSpacing((10.0, 10.0, 10.0))
    series = io.write_dicom_series(image, tmp_path / "s")
    uneven = sitk.ReadImage(str(series / "slice0009.dcm"))
    uneven.SetMetaData("0020|0032", "0\\0\\91")  # 1 mm off its place: spacing 9 then 11 mm
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(series / "slice0009.dcm"))
    writer.Execute(uneven)
    with caplog.at_level(logging.WARNING):
        io.read_image(series)
    assert "slice spacing varies" in caplog.text
    (series / "slice0004.dcm").unlink()
    with pytest.raises(InputError, match="slices are missing"):
        io.read_image(series)


def test_jsonl_progress_ends_a_failed_run_with_the_documented_error_event(tmp_path, capsys):
    """A program following `--progress jsonl` (the Slicer panels, the web page) reads why the run stopped from
    stdout, in the same words as stderr's one line."""
    import json

    missing = tmp_path / "nowhere.nii.gz"
    code = cli.main(["analyze", str(missing), "--out", str(tmp_path / "out"), "--progress", "jsonl"])
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert code == 2 and events[-1]["event"] == "error" and events[-1]["exit_code"] == 2
    assert events[-1]["stage"] == "analyze"
    assert captured.err.strip() == f"error: {events[-1]['message']}"
    assert str(missing) in events[-1]["message"]
