"""The clinician's key finding per hip, in words, from analysis.json alone.

The report, the `onfh analyze` lines, the Slicer table and the DICOM/PDF outputs all show these
sentences, so every place says the same thing. Each hip gets one kind (what was found), a sentence a
clinician reads first, a confidence line (the models' agreement, the staging network's own probability
and how like the training data the scan is) and a flag for lists and structured reports.

Numbers are written as a clinician writes them: shares and collapse probabilities as percentages,
probabilities with two decimals, grades with their system's numerals. Risk is always said relative to
the reference it is measured against (the share of the model's training hips with a lower risk score, or the
training cohort's median when the model ships no reference), never as a bare "high"; a collapse probability
carries its 95 % interval when the model has one.
"""
from __future__ import annotations

from .grading import JIC_TYPE_BOUNDS_DEG
from .results import unreliable_text

KINDS = ("lesion", "none", "not_found", "collapsed", "unreliable", "metal")
FLAGS = {"lesion": "positive", "collapsed": "positive", "none": "negative", "not_found": "not_assessed",
         "metal": "not_assessed", "unreliable": "not_assessed"}
SIDE_NAMES = {"R": "Right", "L": "Left"}
METAL_REASON = "metal in the hip"  # how `localization.screen` begins the reason of a hip refused for metal
NOT_FOUND_PREFIX = "no femoral head found: "  # `hipfinder` starts rejected candidates so; the sentence says it
STAGE_SYSTEMS = ("arco", "jic_stage", "ficat", "steinberg")
SYSTEM_NAMES = {"arco": "ARCO", "jic_stage": "JIC stage", "ficat": "Ficat", "steinberg": "Steinberg",
                "jic_type": "JIC type"}
ROMAN = ("0", "I", "II", "III", "IV", "V", "VI")
JIC_TYPE_WHERE = {"A": "in the medial third of the weight-bearing area",
                  "B": "within the medial two-thirds of the weight-bearing area",
                  "C1": "beyond the medial two-thirds of the weight-bearing area",
                  "C2": "reaching beyond the acetabular edge"}
# Steinberg (1995) extent by the share of the head involved: A < 15 % ≤ B ≤ 30 % < C; stages I–IV only.
STEINBERG_A_BELOW, STEINBERG_C_ABOVE = 0.15, 0.30
OTHER_GRADES = ("jic_stage", "ficat", "steinberg", "arco", "jic_type")  # the order the report lists them
# Collapse-stage sub-classes need the depth of the head's depression, which no model here measures.
DEPRESSION_CLASSES = {"arco": ("IIIA/IIIB", 3), "jic_stage": ("3A/3B", 3)}
KEY_HORIZON = "36"  # months: the collapse probability the key finding names
POSITIVE_P = 0.5


def percent_text(fraction: float, digits: int = 1) -> str:
    """'10.5 %' for 0.105; below the last shown digit '< 0.1 %' (or '< 1 %'), never a rounded 0 or 100."""
    value, step = 100.0 * float(fraction), 10.0 ** -digits
    if 0.0 < value < step / 2:
        return f"< {step:.{digits}f} %"
    if 100.0 - step / 2 <= value < 100.0:
        return f"> {100.0 - step:.{digits}f} %"
    return f"{value:.{digits}f} %"


def probability_text(p: float) -> str:
    """'0.61'; '> 0.99' and '< 0.01' at the ends, where two decimals would round to a certainty."""
    if p >= 0.995:
        return "> 0.99"
    if p < 0.005:
        return "< 0.01"
    return f"{p:.2f}"


def grade_text(system: str, code, lesion_share: float | None = None) -> str:
    """'ARCO II', 'JIC stage 2', 'JIC type B', and Steinberg with its extent class ('Steinberg IIA') when the
    lesion's share of the head is known."""
    if system == "jic_type":
        return f"JIC type {code}"
    number = int(code)
    if system == "jic_stage":
        return f"JIC stage {number}"
    text = f"{SYSTEM_NAMES[system]} {ROMAN[number]}"
    if system == "steinberg" and 1 <= number <= 4 and lesion_share:
        text += "A" if lesion_share < STEINBERG_A_BELOW else "B" if lesion_share <= STEINBERG_C_ABOVE else "C"
    return text


def collapse_note(grades: dict) -> str:
    """Why a collapsed hip gets no risk (its `risk_note`), naming the grades that say so and their origin."""
    origin = {system: "given" if system in grades["given"] else "predicted" for system in grades["collapse"]}
    named = "; ".join(f"{grade_text(s, grades['used'][s])}, {origin[s]}" for s in grades["collapse"])
    return (f"collapse already present ({named}): no collapse risk is given, the risk model applies to pre-collapse "
            "ONFH only.")


def key_findings(analysis: dict) -> list[dict]:
    """Per hip (right first): {"side", "kind", "sentence", "confidence", "flag"}."""
    return [{"side": hip["side"], "kind": (kind := hip_kind(hip)), "sentence": _sentence(hip, kind),
             "confidence": confidence_text(hip), "flag": FLAGS[kind]}
            for hip in sorted(analysis["hips"], key=lambda h: h["side"] != "R")]


def summary_text(analysis: dict) -> str:
    """Per hip its key finding and, indented below, its confidence line: what `onfh analyze` prints and the
    Slicer panel shows when an analysis finishes."""
    return "\n".join(f"{f['sentence']}.\n  {f['confidence']}" for f in key_findings(analysis))


def hip_kind(hip: dict) -> str:
    """What was found, checked in this order: not analysed (metal, or no head), not reliable (scan unlike
    the training data), collapse already present, a lesion, nothing."""
    if not hip["found"]:
        return "metal" if hip["reason"].startswith(METAL_REASON) else "not_found"
    if unreliable_text(hip):
        return "unreliable"
    if (hip.get("grades") or {}).get("collapse"):
        return "collapsed"
    stage = _stage_number(hip)
    lesion = stage > 0 if stage is not None else ((hip.get("volumes_ml") or {}).get("necrosis") or 0) > 0
    return "lesion" if lesion else "none"


def _stage_number(hip: dict) -> int | None:
    system = main_system(hip)
    return None if system is None else int(hip["grades"]["used"][system])


def main_system(hip: dict) -> str | None:
    """The one staging system a hip is shown by: the staging network's own, else the first one given."""
    used = (hip.get("grades") or {}).get("used") or {}
    network = next(iter(hip.get("stage") or {}), None)
    if network in used:
        return network
    return next((s for s in STAGE_SYSTEMS if s in used), None)


def _sentence(hip: dict, kind: str) -> str:
    side = f"{SIDE_NAMES[hip['side']]} hip: "
    if kind == "metal":
        return side + "not analysed: " + hip["reason"].split(":")[0]
    if kind == "not_found":
        return side + "not found: " + hip["reason"].removeprefix(NOT_FOUND_PREFIX)
    if kind == "unreliable":
        return side + unreliable_text(hip) + "; its stage and risk are for review only"
    if kind == "none":
        return side + "no necrosis found"
    if kind == "collapsed":
        words = ", ".join(filter(None, (_collapse_stage(hip), *_lesion_words(hip))))
        return side + f"collapse already present — {words}; no collapse risk is given (the risk model applies to " \
            "pre-collapse ONFH only)"
    stage = _stage_phrase(hip)
    head = "ONFH suspected — " + ", ".join(filter(None, (stage, *_lesion_words(hip))))
    return side + head + "; " + _risk_phrase(hip)


def _stage_phrase(hip: dict) -> str:
    """'ARCO II (pre-collapse)', with ', given' when the user gave that stage."""
    system = main_system(hip)
    if system is None:
        return ""
    grades = hip["grades"]
    notes = ["pre-collapse"] + (["given"] if system in grades["given"] else [])
    return f"{grade_text(system, grades['used'][system])} ({', '.join(notes)})"


def _collapse_stage(hip: dict) -> str:
    grades = hip["grades"]
    system = main_system(hip)
    system = system if system in grades["collapse"] else grades["collapse"][0]
    text = grade_text(system, grades["used"][system], hip.get("necrotic_ratio"))
    return text + (" (given)" if system in grades["given"] else "")


def _lesion_words(hip: dict) -> list[str]:
    """'lesion 10.5 % of the head' and where it lies ('… (JIC type B)'), as far as they are known."""
    words = []
    if hip.get("necrotic_ratio"):
        words.append(f"lesion {percent_text(hip['necrotic_ratio'])} of the head")
    jic_type = ((hip.get("grades") or {}).get("used") or {}).get("jic_type")
    if jic_type in JIC_TYPE_WHERE:
        words.append(f"{JIC_TYPE_WHERE[jic_type]} (JIC type {jic_type})")
    return words


def _risk_phrase(hip: dict) -> str:
    risk = hip.get("risk")
    if not risk:
        return hip.get("risk_note", "").rstrip(".") or "no collapse risk"
    return (f"estimated collapse within {int(KEY_HORIZON) // 12} years {collapse_text(risk, KEY_HORIZON)}; "
            + risk_reference_text(risk))


def collapse_text(risk: dict, months: str) -> str:
    """'15 % (95 % interval 9 % to 22 %)': the collapse probability by `months` with its bootstrap interval when
    the model has a training-cohort reference (`survival.reference`), the bare percentage otherwise."""
    text = percent_text(risk["collapse_probability"][months], 0)
    interval = (risk.get("collapse_interval") or {}).get(months)
    if interval:
        low, high = interval
        text += f" ({100 * risk['reference']['level']:.0f} % interval {percent_text(low, 0)} to {percent_text(high, 0)})"
    return text


def interval_note(risk: dict) -> str:
    """What the collapse intervals cover and what they leave out, for the report's uncertainty row."""
    ref = risk.get("reference")
    if not ref:
        return ("no interval: the model ships no training-cohort reference; read the point estimate with the "
                "confidence line")
    return (f"{100 * ref['level']:.0f} % intervals from {ref['resamples']} patient-level bootstrap resamples of the "
            f"Breslow baseline over the {ref['baseline_hips']} training hips ({ref['baseline_patients']} patients) it "
            "was fitted on, this hip's risk score held fixed: they show how much the baseline moves with the training "
            "sample, not the network's own uncertainty nor how well a phantom-trained model fits real patients, so "
            "the full uncertainty is larger")


def risk_reference_text(risk: dict) -> str:
    """Where the hip's risk score lies in the training cohort: 'risk score higher than 61 % of the 80 training
    hips' (percentile), else above or at/below the training cohort's median."""
    share = risk.get("training_percentile")
    if share is None:
        return f"risk {'above' if risk['group'] == 'high' else 'at or below'} the training cohort's median"
    n = risk["reference"]["training_hips"]
    if share >= 100.0:
        return f"risk score higher than all {n} training hips"
    if share <= 0.0:
        return f"risk score not higher than any of the {n} training hips"
    return f"risk score higher than {share:.0f} % of the {n} training hips"


def confidence_text(hip: dict) -> str:
    """The models' agreement on necrosis, the staging network's own certainty, and the scan's likeness to the
    training data, in one line."""
    if not hip["found"]:
        return "Confidence: not assessed (the hip was not analysed)."
    votes = _votes(hip)
    reduced = len({v[0] for v in votes}) > 1
    parts = []
    if len(votes) == 1:
        parts.append(votes[0][1])
    elif not reduced:
        names = [f"{v[2]} ({v[3]})" for v in votes]
        parts.append(f"{', '.join(names[:-1])} and {names[-1]} agree")
    else:
        positive = [v for v in votes if v[0]]
        negative = [v for v in votes if not v[0]]
        major, minor = (positive, negative) if len(positive) >= len(negative) else (negative, positive)
        parts.append(f"{' and '.join(v[1] for v in major)}, but {' and '.join(v[1] for v in minor)}")
    unsure = _staging_unsure(hip)
    if unsure:
        parts.append(unsure)
        reduced = True
    if system := main_system(hip):
        if system in hip["grades"]["given"]:
            parts.append(f"{SYSTEM_NAMES[system]} stage given by the user")
    parts.append(_likeness(hip))
    level = "not reliable" if unreliable_text(hip) else "reduced" if reduced or hip.get("ood") is None else ""
    return f"Confidence{' ' + level if level else ''}: " + "; ".join(parts) + "."


def _votes(hip: dict) -> list[tuple[bool, str, str, str]]:
    """Per model that speaks on necrosis: (necrosis?, long words, its name, short words)."""
    votes = []
    ml = (hip.get("volumes_ml") or {}).get("necrosis") or 0.0
    votes.append((ml > 0, f"the segmentation marks a {ml:.1f} ml lesion" if ml > 0 else
                  "the segmentation marks no lesion in the head", "segmentation",
                  f"{ml:.1f} ml lesion" if ml > 0 else "no lesion"))
    if hip.get("stage"):
        system, stage = next(iter(hip["stage"].items()))
        names, probs = list(stage["probabilities"]), list(stage["probabilities"].values())
        top = max(range(len(probs)), key=probs.__getitem__)
        label = f"{SYSTEM_NAMES.get(system, system)} {names[top]}"
        p = probability_text(probs[top])
        says = f"the staging network says {label}" + (", no necrosis" if top == 0 else "") + f" (p {p})"
        votes.append((top > 0, says, "staging network", f"{label}, p {p}"))
    if hip.get("sranet"):
        p = hip["sranet"]["probability"]
        positive = p > POSITIVE_P
        votes.append((positive, f"SRANet finds {'' if positive else 'no '}necrosis (P {probability_text(p)})", "SRANet",
                      f"P(necrosis) {probability_text(p)}"))
    return votes


def _staging_unsure(hip: dict) -> str:
    if not hip.get("stage"):
        return ""
    system, stage = next(iter(hip["stage"].items()))
    top = max(stage["probabilities"].values())
    if top >= POSITIVE_P:
        return ""
    return f"the staging network gives no {SYSTEM_NAMES.get(system, system)} stage half of the probability " \
           f"(at most p {probability_text(top)})"


def _likeness(hip: dict) -> str:
    ood = hip.get("ood")
    if ood is None:
        return "not checked against the training data"
    like = "like" if ood["reliable"] else "unlike"
    return f"scan {like} the training data (score {ood['score']:.1f}, limit {ood['threshold']:.1f})"


def grade_lines(hip: dict) -> list[tuple[str, str]]:
    """(grade, where it comes from) for the hip's grades: the network's system as predicted, the others only
    where the user gave them or a stated rule derives them; a stage-0 hip shows its one stage."""
    grades, system = hip.get("grades"), main_system(hip)
    if not grades or system is None:
        return []
    used, given, share = grades["used"], set(grades["given"]), hip.get("necrotic_ratio")
    shown = [system]
    if int(used[system]) > 0:
        shown += [s for s in OTHER_GRADES if s != system and s in used and used[s] != "none"]
    return [(grade_text(s, used[s], share) + _depression_note(s, used), _origin(hip, s, given)) for s in shown]


def _origin(hip: dict, system: str, given: set) -> str:
    if system in given:
        return "given by the user"
    stage = (hip.get("stage") or {}).get(system)
    network = next(iter(hip.get("stage") or {}), None)
    if stage is not None and system == network:
        probs = stage["probabilities"]
        p = probability_text(probs[stage["label"]])
        top = max(probs, key=probs.get)
        if top == stage["label"]:
            return f"predicted by the staging network (p {p})"
        if stage["index"] == 0:
            return (f"set by the segmentation: no lesion in the head (the staging network preferred "
                    f"{SYSTEM_NAMES[system]} {top}, p {probability_text(probs[top])})")
        return (f"the staging network's most probable ONFH stage (p {p}); the segmented lesion rules out the "
                f"stage 0 it preferred (p {probability_text(probs[top])})")
    base = SYSTEM_NAMES.get(network, "predicted")
    if system == "jic_type":
        reach = hip.get("lateral_reach_deg")
        bounds = " ≤ ".join(f"{t} < {b:.0f}°" for t, b in zip("A B C1".split(), JIC_TYPE_BOUNDS_DEG)) + " ≤ C2"
        return ("derived from how far the segmented lesion reaches laterally"
                + (f" ({reach:.0f}°; {bounds})" if reach is not None else f" ({bounds})"))
    if system == "steinberg":
        return (f"derived from the predicted {base} stage (0–III alike, IV → V), extent class from the "
                "lesion's share of the head (A < 15 % ≤ B ≤ 30 % < C)")
    return f"derived: same stage number as the predicted {base} stage"


def _depression_note(system: str, used: dict) -> str:
    classes = DEPRESSION_CLASSES.get(system)
    if classes and int(used[system]) == classes[1]:
        return f" ({classes[0]} not given: the depth of the head's depression is not measured)"
    return ""
