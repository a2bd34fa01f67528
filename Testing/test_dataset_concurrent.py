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
