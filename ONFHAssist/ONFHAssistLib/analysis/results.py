"""What `onfh analyze` reports: result dataclasses, the analysis.json they serialise to, and its JSON Schema.

analysis.json is the contract with the Slicer panel (`mrml.load_analysis`), the HTML report and any
script a researcher writes, so it is versioned and validated against `analysis.schema.json` before
it is written.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jsonschema

from ..atomic import json_safe

SCHEMA_VERSION = "1.0"
SCHEMA_FILE = Path(__file__).with_name("analysis.schema.json")
UNCERTAIN_BELOW = 0.5  # a predicted stage whose probability is below this is shown as uncertain
# The first stage of each system whose head has collapsed (subchondral fracture, crescent sign or flattening):
# the collapse-risk model is for pre-collapse ONFH, so a hip at or past one of these gets no risk.
COLLAPSE_STAGE = {"arco": 3, "jic_stage": 3, "ficat": 3, "steinberg": 3}


@dataclass
class StageResult:
    """One grading system: the predicted label, its class index and every class's probability."""

    label: str
    index: int
    probabilities: dict[str, float]
    source: str  # which network (or which system it was derived from)


@dataclass
class RiskResult:
    score: float
    group: str  # "high" | "low", split at the training cohort's median risk
    survival: dict  # {"months": [...], "probability": [...]}
    collapse_probability: dict[str, float]  # months → probability of collapse by then
    grades_used: dict
    grades_source: str  # predicted | user | mixed
    # from the model's training cohort (`survival.reference`); None when the model ships no reference
    collapse_interval: dict[str, list[float]] | None = None  # months -> [low, high], 95 % bootstrap interval
    training_percentile: float | None = None  # % of training hips with a lower risk score
    reference: dict | None = None  # what the interval and percentile are measured on (`TrainingReference.describe`)


@dataclass
class HipResult:
    side: str
    found: bool
    reason: str = ""
    confidence: float = 0.0
    center_lps: list[float] | None = None
    candidate_lps: list[float] | None = None
    anatomy: dict | None = None  # the plausibility checks' measurements (`plausibility.HeadEvidence`)
    radius_mm: float | None = None
    box: dict | None = None  # the per-hip crop box: {"center_lps", "size_mm"}
    volumes_ml: dict[str, float] | None = None
    necrotic_ratio: float | None = None
    necrotic_angle_deg: float | None = None
    lateral_reach_deg: float | None = None
    ood: dict | None = None  # {"score", "threshold", "reliable"}: how unlike the training crops (`ood`); None unchecked
    stage: dict[str, StageResult] = field(default_factory=dict)
    gradcam_file: str | None = None
    sranet: dict | None = None  # {"probability", "attention_file", "attention_on_lesion"}
    grades: dict | None = None  # {"used", "source", "given", "collapse"}: what the hip is graded, risk or not
    risk: RiskResult | None = None
    risk_note: str = ""


@dataclass
class AnalysisResult:
    input: dict
    hips: list[HipResult]
    files: dict[str, str]
    models: list[dict]
    device: dict
    timings_s: dict[str, float]
    warnings: list[str]
    demo_model: bool

    def to_json(self) -> dict:
        return json_safe({"schema_version": SCHEMA_VERSION, **asdict(self)})


def validate(analysis: dict) -> None:
    """Raise jsonschema.ValidationError unless `analysis` follows the shipped schema."""
    jsonschema.validate(analysis, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def mean_sd_text(mean: float | None, sd: float | None) -> str:
    """'0.812 ± 0.034' for a cross-validated metric; the mean alone when one fold gives no sd; 'n/a' when no
    fold could compute it (null in table.json)."""
    defined = [v is not None and math.isfinite(v) for v in (mean, sd)]
    if not defined[0]:
        return "n/a"
    return f"{mean:.3f} ± {sd:.3f}" if defined[1] else f"{mean:.3f}"


def stage_text(stage: dict) -> str:
    """'II (p 0.81)', or 'IV (p 0.30, uncertain)' when no class holds half of the probability."""
    p = stage["probabilities"][stage["label"]]
    return f"{stage['label']} (p {p:.2f}{', uncertain' if p < UNCERTAIN_BELOW else ''})"


def unreliable_text(hip: dict) -> str:
    """The words beside the stage and risk of a hip whose crop is unlike the training data ('' otherwise):
    one sentence for the report and the Slicer table alike."""
    ood = hip.get("ood")
    if not ood or ood["reliable"]:
        return ""
    return f"not reliable: scan unlike the training data (score {ood['score']:.1f} above {ood['threshold']:.1f})"


def collapse_systems(used: dict) -> list[str]:
    """The grade systems in `used` whose stage says the head has already collapsed."""
    return [system for system, first in COLLAPSE_STAGE.items() if system in used and int(used[system]) >= first]
