"""What a per-hip card on the web page says, as plain strings from analysis.json (no scene, no server), so a
test reads the same words the page shows and the report prints."""
from __future__ import annotations

from ..analysis.findings import (FLAGS, collapse_text, confidence_text, hip_kind, key_findings, main_system,
                                 risk_reference_text)
from ..analysis.results import stage_text, unreliable_text

HORIZONS = (("12", "1 year"), ("36", "3 years"), ("60", "5 years"))
SYSTEM_NAMES = {"arco": "ARCO", "ficat": "Ficat", "jic_stage": "JIC", "steinberg": "Steinberg"}
SIDE_NAMES = {"R": "Right hip", "L": "Left hip"}


def hip_cards(analysis: dict) -> list[dict]:
    """One card per hip, right first, each headed by the key finding the report and the CLI print."""
    findings = {f["side"]: f for f in key_findings(analysis)}
    return [hip_card(hip, findings[hip["side"]]) for hip in sorted(analysis["hips"], key=lambda h: h["side"] != "R")]


def hip_card(hip: dict, finding: dict | None = None) -> dict:
    """A card: the key finding and its confidence line, found or the reason not, the one staging system the hip
    is shown by with its probabilities, SRANet probability, risk relative to the training cohort and collapse
    probability by 1/3/5 years, the survival curve (months, S(t)) and the reliability sentence."""
    kind = hip_kind(hip)
    finding = finding or {"sentence": "", "confidence": confidence_text(hip), "flag": FLAGS[kind]}
    card = {"side": hip["side"], "title": SIDE_NAMES[hip["side"]], "found": bool(hip["found"]),
            "finding": finding["sentence"], "confidence": finding["confidence"], "flag": finding["flag"],
            "reason": hip.get("reason") or "", "stages": [], "sranet": "", "risk": "", "collapse": [],
            "survival": "", "note": unreliable_text(hip) if hip["found"] else ""}
    if not hip["found"]:
        return card
    shown = main_system(hip) or next(iter(hip.get("stage") or {}), None)
    for system, stage in (hip.get("stage") or {}).items():
        if system != shown:
            continue
        probabilities = ", ".join(f"{label} {p:.2f}" for label, p in stage["probabilities"].items())
        card["stages"].append({"key": system, "system": SYSTEM_NAMES.get(system, system), "text": stage_text(stage),
                               "probabilities": probabilities})
    sranet = hip.get("sranet")
    if sranet:
        card["sranet"] = f"{sranet['probability']:.2f}"
    risk = hip.get("risk")
    if risk:
        card["risk"] = risk_reference_text(risk)
        card["collapse"] = [{"horizon": name, "text": collapse_text(risk, key)}
                            for key, name in HORIZONS]
        card["survival"] = curve_points(risk["survival"]["months"], risk["survival"]["probability"])
    else:
        card["risk"] = hip.get("risk_note") or "not estimated"
    return card


def curve_points(months: list[float], survival: list[float], width: float = 240.0, height: float = 80.0) -> str:
    """S(t) as an SVG polyline's points in a width × height box: months 0..last across, S 1..0 down."""
    last = max(float(months[-1]), 1e-9)
    return " ".join(f"{width * float(m) / last:.1f},{height * (1.0 - float(p)):.1f}" for m, p in zip(months, survival))
