"""The notes under a CV table: why a metric is n/a in a fold, and which rule chose a network's weights when its
fold could not validate (small cohorts). Each note names the fold (1-based) and the rows it concerns."""
from __future__ import annotations

SELECTED_BY_VALIDATION = "checkpoint chosen by"  # survival_plan.selection_split's wording for the usual case


def _rows(models: set[str], wanted: list[str]) -> str:
    """'every model', or the rows in table order ('; ' between them: row names hold commas)."""
    return "every model" if models >= set(wanted) else "; ".join(m for m in wanted if m in models)


def footnotes(results: list[dict], wanted: list[str]) -> list[str]:
    """One sentence per fold and reason, from the (fold, model) results' `undefined` and `selection` fields."""
    undefined: dict[tuple, set[str]] = {}
    selection: dict[tuple, set[str]] = {}
    for r in results:
        for metric, why in r.get("undefined", {}).items():
            undefined.setdefault((r["fold"], metric, why), set()).add(r["model"])
        rule = r.get("selection", "")
        if rule and not rule.startswith(SELECTED_BY_VALIDATION):
            selection.setdefault((r["fold"], rule), set()).add(r["model"])
    grouped: dict[tuple, list[str]] = {}
    for (fold, metric, why), models in undefined.items():
        grouped.setdefault((fold, why, frozenset(models)), []).append(metric)
    notes = [f"fold {fold + 1}: {', '.join(metrics)} undefined for {_rows(set(models), wanted)}: {why}."
             for (fold, why, models), metrics in sorted(grouped.items(), key=lambda kv: (kv[0][0], kv[1]))]
    notes += [f"fold {fold + 1}, {_rows(models, wanted)}: {rule}."
              for (fold, rule), models in sorted(selection.items(), key=lambda kv: kv[0])]
    return notes
