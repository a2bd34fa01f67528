"""The survival CV's figures for papers: Kaplan–Meier with numbers at risk and censor ticks, the hazard ratio
in the legend (against lifelines and scikit-survival fitted here), calibration with per-bin counts and
intervals for every model, decision curves for every model, each saved as a 300 dpi PNG plus an SVG."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.datasets import load_rossi
from ONFHAssistLib.survival import figures, horizon_stats
from PIL import Image
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv


@pytest.fixture
def drawn(monkeypatch):
    """The figures each plotting function hands to save_figure (then saved as usual)."""
    figs = []
    save = figures.save_figure

    def keep(fig, path):
        figs.append(fig)
        return save(fig, path)

    monkeypatch.setattr(figures, "save_figure", keep)
    return figs


@pytest.fixture(scope="module")
def rossi():
    data = load_rossi()
    return data.week.to_numpy(float), data.arrest.to_numpy(int), data.prio.to_numpy() > 2


def test_hazard_ratio_is_the_cox_fit_on_the_group_indicator(rossi):
    time, event, high = rossi
    hr, low, up = figures.hazard_ratio(time, event, high)
    cox = CoxPHFitter().fit(pd.DataFrame({"t": time, "e": event, "g": high.astype(int)}), "t", "e")
    summary = cox.summary.loc["g"]
    np.testing.assert_allclose([hr, low, up], [summary["exp(coef)"], summary["exp(coef) lower 95%"],
                                               summary["exp(coef) upper 95%"]], rtol=1e-6)
    sksurv = CoxPHSurvivalAnalysis(ties="efron").fit(high[:, None].astype(float), Surv.from_arrays(event == 1, time))
    assert hr == pytest.approx(np.exp(sksurv.coef_[0]), rel=1e-4)  # a second implementation, same estimate
    assert 1.0 < low < hr < up


def test_hazard_ratio_says_why_it_is_missing():
    time, event = np.array([5.0, 8, 12, 20]), np.array([0, 0, 1, 1])
    high = np.array([False, False, True, True])
    assert figures.hazard_ratio(time, event, high) == "no collapse in the low-risk group"
    assert figures.hazard_ratio_text(figures.hazard_ratio(time, event, high)) == \
        "HR n/a (no collapse in the low-risk group)"
    assert figures.hazard_ratio(time, event, np.ones(4, bool)) == "no low-risk hips"


def test_km_has_numbers_at_risk_under_each_tick_censor_ticks_and_the_hr(rossi, drawn, tmp_path):
    time, event, high = rossi
    png = figures.km_by_risk_group(time, event, high, "model: out-of-fold risk groups", tmp_path / "km.png")
    fig = drawn[0]
    curves, table = fig.axes[0], fig.axes[1]
    columns = [label.get_text().strip().split("\n") for label in table.get_xticklabels()]
    for tick, column in zip(table.get_xticks(), columns):  # lifelines' count at t: hips followed beyond t
        shown = [int(text.split()[-1]) for text in column[-2:]]
        assert shown == [int((time[~high] > tick).sum()), int((time[high] > tick).sum())], tick
    assert list(table.get_xticks()) == [t for t in curves.get_xticks() if t <= curves.get_xlim()[1]]
    censors = [line for line in curves.get_lines() if line.get_marker() == "|" and len(line.get_xdata())]
    for line, mask in zip(censors, (~high, high)):
        kmf = KaplanMeierFitter().fit(time[mask], event[mask])
        censored_times = kmf.event_table.index[kmf.event_table.censored > 0]
        np.testing.assert_allclose(sorted(line.get_xdata()), censored_times)
    hr, low, up = figures.hazard_ratio(time, event, high)
    labels = curves.get_legend_handles_labels()[1]
    assert f"HR high vs low {hr:.2f} (95% CI {low:.2f}–{up:.2f})" in labels and "censored" in labels
    assert labels[0] == f"low risk (n = {(~high).sum()}, {event[~high].sum()} collapsed)"
    _is_paper_figure(png)


def _is_paper_figure(png):
    with Image.open(png) as image:
        assert image.info["dpi"][0] == pytest.approx(300, abs=0.5) and image.width >= 1500
    svg = png.with_suffix(".svg").read_text(encoding="utf-8")
    assert "<text" in svg  # text stays text for a journal's editor


def _calibration(time, event, p, h):
    """horizon_stats' table, its per-bin 95 % interval of 1 − KM(h) checked against lifelines' bounds."""
    table = horizon_stats.calibration(time, event, p, h)
    edges = np.unique(np.quantile(p, np.linspace(0, 1, 6)))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    bounds = []
    for b in table.bin:
        ci = KaplanMeierFitter().fit(time[which == b], event[which == b]).confidence_interval_survival_function_
        row = ci[ci.index <= h].iloc[-1]
        bounds.append((1 - row.iloc[1], 1 - row.iloc[0]))
    assert np.column_stack([table.lower, table.upper]) == pytest.approx(np.array(bounds))  # horizon_stats' interval
    return table


def test_calibration_has_a_panel_per_model_with_bin_counts_and_intervals(rossi, drawn, tmp_path):
    time, event, high = rossi
    rng = np.random.default_rng(0)
    names = ["tri-stream + SLE", "tri-stream, no SLE", "image only", "grades only (network)", "CoxPH (grades)"]
    tables = {n: _calibration(time, event, np.clip(0.15 + 0.1 * high + rng.normal(0, 0.05, len(time)), 0.01, 0.9), 40)
              for n in names}
    png = figures.calibration_png(tables, 40, tmp_path / "calibration_40m.png")
    panels = [ax for ax in drawn[0].axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == names
    for ax, name in zip(panels, names):
        table = tables[name]
        assert sorted(t.get_text() for t in ax.texts) == sorted(f"n={n}" for n in table.n)
        bars = ax.collections[0].get_segments()  # the error bars: one vertical segment per bin
        np.testing.assert_allclose([[s[0][1], s[1][1]] for s in bars], table[["lower", "upper"]].to_numpy(), atol=1e-9)
    _is_paper_figure(png)


def test_decision_curve_draws_every_model(rossi, drawn, tmp_path):
    time, event, high = rossi
    thresholds = np.arange(0.02, 0.62, 0.02)
    names = [f"model {k}" for k in range(7)]
    tables = {n: horizon_stats.decision_curve(time, event, np.clip(0.1 + 0.05 * k * high, 0, 1), 40, thresholds)
              for k, n in enumerate(names)}
    png = figures.decision_curve_png(tables, 40, tmp_path / "decision_curve_40m.png")
    labels = drawn[0].axes[0].get_legend_handles_labels()[1]
    assert labels == ["treat all", "treat none", *names]
    _is_paper_figure(png)
