"""User grade overrides: parsing, validation and precedence over predicted grades."""
import json

import pytest

from ONFHAssistLib.errors import InputError
from ONFHAssistLib.analysis.grades import merge, parse_grade_args


def test_parse_sides_and_json(tmp_path):
    got = parse_grade_args(["L:jic_stage=2,arco=2", "R:jic_type=C1"])
    assert got == {"L": {"jic_stage": 2, "arco": 2}, "R": {"jic_type": "C1"}}
    f = tmp_path / "g.json"
    f.write_text(json.dumps({"R": {"ficat": 3, "steinberg": "4"}}))
    assert parse_grade_args([str(f)]) == {"R": {"ficat": 3, "steinberg": 4}}


def test_grades_as_the_report_prints_them():
    """Roman numerals and lower case, the way the report and the panel write grades, mean the same codes."""
    assert parse_grade_args(["L:arco=II,ficat=iv,jic_type=c1"]) == {"L": {"arco": 2, "ficat": 4, "jic_type": "C1"}}


@pytest.mark.parametrize("bad", ["X:ficat=1", "L:ficat=9", "L:colour=red", "L:ficat", "L:jic_type=Z", "L:arco=VII"])
def test_bad_grades_are_input_errors(bad):
    with pytest.raises(InputError):
        parse_grade_args([bad])


def test_user_grades_override_predicted():
    predicted = {"jic_stage": 1, "jic_type": "A", "arco": 1, "steinberg": 1, "ficat": 1}
    used, source = merge(predicted, {"arco": 3})
    assert used["arco"] == 3 and used["ficat"] == 1 and source == "mixed"
    assert merge(predicted, None) == (predicted, "predicted")
    full = {"jic_stage": 3, "jic_type": "C2", "arco": 3, "steinberg": 4, "ficat": 3}
    assert merge(predicted, full) == (full, "user")
