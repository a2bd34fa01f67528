"""ONFH grades given by the user, which override predicted grades as risk inputs (DESIGN §3).

Accepted forms: `L:jic_stage=2,arco=2` (one per side, repeatable) or a JSON file
`{"L": {"jic_stage": 2, ...}, "R": {...}}`; stages in arabic or roman numerals, as the report prints them
(`arco=II`). Codes are checked against the dataset's grade codes.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..dataset import GRADE_CODES, grade_code
from ..errors import InputError

GRADE_NAMES = tuple(GRADE_CODES)


def _check(side: str, grades: dict, where: str) -> dict:
    if side not in ("L", "R"):
        raise InputError(f"{where}: side {side!r} must be L or R.")
    clean = {}
    for key, value in grades.items():
        if key not in GRADE_CODES:
            raise InputError(f"{where}: unknown grade {key!r}; use {', '.join(GRADE_NAMES)}.")
        text = grade_code(key, str(value))  # as the report prints it: 'II', 'iv', 'c1'
        if text not in GRADE_CODES[key]:
            raise InputError(f"{where}: {key}={text!r} is not one of {sorted(GRADE_CODES[key])}.")
        clean[key] = text if key == "jic_type" else int(text)
    return clean


def parse_grade_args(items: list[str] | None) -> dict[str, dict]:
    """`--grades` values: 'SIDE:key=value,...' strings, or one path to a JSON file."""
    if not items:
        return {}
    if len(items) == 1 and items[0].lower().endswith(".json"):
        return load_grade_file(Path(items[0]))
    result: dict[str, dict] = {}
    for item in items:
        side, _, rest = item.partition(":")
        pairs = {}
        for part in filter(None, rest.split(",")):
            key, eq, value = part.partition("=")
            if not eq:
                raise InputError(f"--grades {item!r}: expected SIDE:key=value,...")
            pairs[key.strip()] = value
        result.setdefault(side, {}).update(_check(side, pairs, f"--grades {item!r}"))
    return result


def load_grade_file(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such grades file.") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path}: not valid JSON.") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise InputError(f"{path}: expected {{\"L\": {{grade: value}}, \"R\": {{...}}}}.")
    return {side: _check(side, grades, str(path)) for side, grades in data.items()}


def merge(predicted: dict, given: dict | None) -> tuple[dict, str]:
    """Grades used for risk and where they came from: 'predicted', 'user' or 'mixed'."""
    given = given or {}
    used = {**predicted, **given}
    if not given:
        return used, "predicted"
    return used, "user" if set(given) >= set(GRADE_NAMES) else "mixed"
