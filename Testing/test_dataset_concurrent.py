"""A dataset appended to while a run reads it never yields a torn row: a writer process adds cases in a loop
(`dataset.add_case`, as `onfh dataset add` does) while this process reads hips.csv through the loader."""
import subprocess
import sys
import textwrap
import time

from ONFHAssistLib import dataset
from ONFHAssistLib.jobs import child_env
from ONFHAssistLib.phantom.cohort import write_cohort

ADDS = 25

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from ONFHAssistLib import dataset
    root, image, label = map(Path, sys.argv[1:4])
    for i in range({adds}):
        sides = [{{"side": "R", "time_months": str(12 + i), "event": "1", "jic_stage": "2"}},
                 {{"side": "L", "time_months": str(60 + i), "event": "0", "jic_stage": "0"}}]
        dataset.add_case(root, image, label, f"W{{i:03d}}", sides)
""").format(adds=ADDS)


def test_reader_sees_only_whole_rows_while_a_writer_appends(tmp_path):
    root = write_cohort(tmp_path / "data", 1, seed=3, modality="mr_t1", shape=(48, 40, 32), spacing=(4.0, 4.0, 4.0))
    first = dataset.read_hips(root)
    image = next((root / "images").iterdir())
    label = root / "labels" / image.name
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(image), str(label)], env=child_env(),
                              stderr=subprocess.PIPE, text=True)
    sizes, reads = [], 0
    try:
        while writer.poll() is None or reads < 3:
            table = dataset.read_hips(root)  # raises InputError on anything unparsable
            reads += 1
            assert list(table.columns[:len(first.columns)]) == list(first.columns)
            assert dataset.check_rows(table) == []  # every row complete and valid
            assert (table.groupby("scan_id").size() == 2).all()  # both hips of every added scan, never one
            for scan_id in set(table.scan_id):  # files are written before the row that names them
                assert dataset.find_volume(root / "images", scan_id) is not None
            assert not sizes or len(table) >= sizes[-1]
            sizes.append(len(table))
            time.sleep(0.001)
    finally:
        _, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err[-2000:]
    assert sizes[-1] == len(first) + 2 * ADDS
    assert len(set(sizes)) > 3, "the reads did not overlap the appends"
    assert dataset.validate(root).ok


def _hip_image(path):
    """A blank 80 mm cube: big enough to hold a hip, quick to write and read."""
    import numpy as np
    import SimpleITK as sitk

    from ONFHAssistLib.imaging import io

    image = sitk.GetImageFromArray(np.zeros((16, 16, 16), np.int16))
    image.SetSpacing((5.0, 5.0, 5.0))
    return io.write_image(image, path)


STARTER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ONFHAssistLib import dataset
    go, root, image, patient, side = sys.argv[1:]
    print("ready", flush=True)
    while not Path(go).exists():  # imports done: all three start their add at the same moment
        time.sleep(0.005)
    dataset.add_case(root, image, None, patient, [dataset.parse_side(side)])  # what `onfh dataset add` runs
""")


def test_three_concurrent_adds_keep_every_row(tmp_path):
    """Three `dataset add` processes released at once: the hips.csv lock serialises their read-modify-write
    (without it, rows are lost: each reads the same old table)."""
    image, root, go = _hip_image(tmp_path / "scan.nii.gz"), tmp_path / "data", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", STARTER, str(go), str(root), str(image), f"C{i}",
                               f"R:time_months={12 + i},event=1"],
                              env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    assert [p.stdout.readline().strip() for p in procs] == ["ready"] * 3
    go.touch()
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-500:] for _, err in outcomes]
    assert sorted(dataset.read_hips(root).patient_id) == ["C0", "C1", "C2"]
    assert dataset.validate(root).ok


KILLED_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ONFHAssistLib import dataset
    root = Path(sys.argv[1])
    with dataset.hips_lock(root):
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "images" / ".tmp-partial.nii.gz").write_bytes(b"half an image")
        print("holding", flush=True)
        time.sleep(600)
""")


def test_an_add_killed_mid_write_leaves_no_lock_and_no_listed_partial(tmp_path):
    """SIGKILL a writer that holds the lock with a partial image on disk: the next add neither waits nor keeps
    the partial, and a batch folder scan never takes a hidden file for a scan."""
    from ONFHAssistLib.analysis.batch import expand_inputs

    image, root = _hip_image(tmp_path / "scan.nii.gz"), tmp_path / "data"
    holder = subprocess.Popen([sys.executable, "-c", KILLED_HOLDER, str(root)], env=child_env(),
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    holder.kill()
    holder.wait(timeout=30)
    start = time.monotonic()
    dataset.add_case(root, image, None, "K1", [{"side": "L", "time_months": "6", "event": "0"}])
    assert time.monotonic() - start < 10, "the dead writer's lock was not released"
    assert sorted(p.name for p in (root / "images").iterdir()) == ["K1_S1.nii.gz"]
    assert dataset.validate(root).ok
    (root / "images" / ".tmp-other.nii.gz").write_bytes((root / "images" / "K1_S1.nii.gz").read_bytes())
    assert expand_inputs([root / "images"]) == [root / "images" / "K1_S1.nii.gz"]


def test_an_add_waits_while_another_writer_holds_the_lock(tmp_path):
    """Mutual exclusion shown deterministically: an add started while the lock is held finishes only after release."""
    import threading

    image, root = _hip_image(tmp_path / "scan.nii.gz"), tmp_path / "data"
    dataset.add_case(root, image, None, "A1", [{"side": "R"}])
    done = threading.Event()
    adder = threading.Thread(target=lambda: (dataset.add_case(root, image, None, "B1", [{"side": "R"}]), done.set()))
    with dataset.hips_lock(root):
        adder.start()
        assert not done.wait(1.0), "the add did not wait for the lock"
        assert list(dataset.read_hips(root).patient_id) == ["A1"]
    adder.join(timeout=30)
    assert done.is_set() and list(dataset.read_hips(root).patient_id) == ["A1", "B1"]


def test_a_failed_first_add_leaves_no_dataset_folder(tmp_path):
    """The add's own checks refuse the row after the lock was taken: nothing is left, not even `.hips.lock`,
    and a later add into the same folder starts a clean dataset."""
    import pytest

    from ONFHAssistLib.errors import InputError

    image = _hip_image(tmp_path / "scan.nii.gz")
    root = tmp_path / "new_dataset"
    with pytest.raises(InputError):
        dataset.add_case(root, image, None, "P1", [{"side": "R", "time_months": "-3", "event": "1"}])
    assert not root.exists(), sorted(root.rglob("*"))
    dataset.add_case(root, image, None, "P1", [{"side": "R", "time_months": "3", "event": "1"}])
    assert len(dataset.read_hips(root)) == 1


def test_a_waiter_on_a_removed_lock_file_takes_the_new_one(tmp_path, monkeypatch):
    """A failed first add removes its lock file while another add may have it open. If that waiter then locks
    the orphan, it must not count: a third writer may already hold the new file at the same path."""
    import threading

    root = tmp_path / "d"
    root.mkdir()
    path = root / dataset.LOCK_NAME
    first = open(path, "a+b")
    assert dataset._try_lock(first)
    opened, go, entered = threading.Event(), threading.Event(), threading.Event()
    real_try_lock = dataset._try_lock

    def try_lock_after_the_swap(f):
        if not go.is_set():  # the waiter's first attempt: it has the first file open; let the swap happen now
            opened.set()
            go.wait(10)
        return real_try_lock(f)

    monkeypatch.setattr(dataset, "_try_lock", try_lock_after_the_swap)

    def waiter():
        with dataset.hips_lock(root, timeout_s=30):
            entered.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert opened.wait(10)
    path.unlink()  # the failed add's clean-up
    second = open(path, "a+b")  # a new writer takes the new lock file ...
    assert real_try_lock(second)
    first.close()  # ... and the orphan is free: the waiter's lock on it succeeds
    go.set()
    assert not entered.wait(1.0), "the waiter entered on the removed lock file while the new one was held"
    second.close()
    assert entered.wait(10)
    thread.join()
