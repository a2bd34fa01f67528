"""Cox NPLL against lifelines' Efron likelihood; SurvRNC against a loop written from the published table."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import CoxPHFitter
from lifelines.datasets import load_rossi

from ONFHAssistLib.models.losses import cox_nll, survrnc_loss


def _breslow_efron_reference(risk, time, event, ties):
    """Plain-Python partial log-likelihood (textbook formula, one event time at a time)."""
    total = 0.0
    for t in sorted(set(time[event == 1])):
        deaths = [i for i in range(len(time)) if time[i] == t and event[i] == 1]
        at_risk = sum(math.exp(risk[j]) for j in range(len(time)) if time[j] >= t)
        death_sum = sum(math.exp(risk[i]) for i in deaths)
        d = len(deaths)
        for rank, i in enumerate(deaths):
            denominator = at_risk - (rank / d) * death_sum if ties == "efron" else at_risk
            total += risk[i] - math.log(denominator)
    return -total / event.sum()


def test_cox_nll_equals_lifelines_efron_likelihood_with_ties():
    rossi = load_rossi()  # arrest weeks are heavily tied
    fitter = CoxPHFitter().fit(rossi, "week", "arrest")
    risk = (rossi.drop(columns=["week", "arrest"]) @ fitter.params_).to_numpy()
    nll = cox_nll(torch.tensor(risk), torch.tensor(rossi.week.to_numpy(float)), torch.tensor(rossi.arrest.to_numpy()))
    assert float(nll) == pytest.approx(-fitter.log_likelihood_ / rossi.arrest.sum(), abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.booleans(), st.floats(-3, 3)), min_size=2, max_size=25),
       st.sampled_from(["efron", "breslow"]))
def test_cox_nll_matches_the_textbook_formula(rows, ties):
    time = np.array([r[0] for r in rows], float)
    event = np.array([int(r[1]) for r in rows])
    risk = np.array([r[2] for r in rows])
    nll = cox_nll(torch.tensor(risk), torch.tensor(time), torch.tensor(event), ties=ties)
    if event.sum() == 0:
        assert float(nll) == 0.0
    else:
        assert float(nll) == pytest.approx(_breslow_efron_reference(risk, time, event, ties), abs=1e-9)


def test_cox_nll_is_stable_for_huge_risks_and_shift_invariant():
    time, event = torch.tensor([1.0, 2.0, 2.0, 3.0]), torch.tensor([1, 1, 1, 0])
    risk = torch.tensor([800.0, 799.0, 801.0, 798.0], dtype=torch.float64, requires_grad=True)
    nll = cox_nll(risk, time, event)
    nll.backward()
    assert torch.isfinite(nll) and torch.isfinite(risk.grad).all()
    assert float(nll) == pytest.approx(float(cox_nll(risk.detach() - 800.0, time, event)), abs=1e-9)


# ---- SurvRNC: the published weight table, written out as plain branches --------------------------

def _weight(ek, ei, sign, ej, position):
    """w_ij from the table: position is 'L', 'C' or 'R'; ej the candidate's event."""
    if sign == 0 or (not ek and not ei):
        return 0.5
    if not ej:
        return 1.0 if (ek and ei and position == "R") else 0.5
    if ek and ei:
        return {"L": 1.0, "C": 0.0, "R": 1.0}[position]
    if ek and not ei:
        return {"L": .5, "C": 0.0, "R": .5}[position] if sign > 0 else 0.5
    return {"L": 1.0, "C": .5, "R": .5}[position] if sign > 0 else {"L": 1.0, "C": 0.0, "R": .5}[position]


def _survrnc_loop(z, time, event, tau):
    n = len(time)
    sim = lambda a, b: -np.linalg.norm(z[a] - z[b]) / tau  # noqa: E731
    anchor_losses = []
    for k in range(n):
        losses = []
        for i in range(n):
            if i == k:
                continue
            di = time[i] - time[k]
            terms = []
            for j in range(n):
                if j in (i, k):
                    continue
                dj = time[j] - time[k]
                if dj == 0:
                    continue
                position = "L" if dj < -abs(di) else "R" if dj > abs(di) else "C"
                w = _weight(bool(event[k]), bool(event[i]), np.sign(di), bool(event[j]), position)
                if w > 0:
                    terms.append(w * math.exp(sim(i, j)))
            if terms:
                losses.append(-(sim(k, i) - math.log(sum(terms))))
        if losses:
            anchor_losses.append(np.mean(losses))
    return float(np.mean(anchor_losses)) if anchor_losses else 0.0


@settings(max_examples=30, deadline=None)
@given(st.integers(3, 9), st.integers(0, 10_000))
def test_survrnc_matches_the_table_loop(n, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    time = rng.integers(1, 5, size=n).astype(float)  # small range: many ties
    event = rng.integers(0, 2, size=n)
    fast = survrnc_loss(torch.tensor(z), torch.tensor(time), torch.tensor(event))
    assert float(fast) == pytest.approx(_survrnc_loop(z, time, event, 2.0), abs=1e-6)


def test_survrnc_order_invariance_finite_gradients_and_equal_times():
    rng = np.random.default_rng(3)
    z = torch.tensor(rng.normal(size=(16, 8)), requires_grad=True)
    time = torch.tensor(rng.integers(1, 40, size=16).astype(float))
    event = torch.tensor(rng.integers(0, 2, size=16))
    loss = survrnc_loss(z, time, event)
    loss.backward()
    assert torch.isfinite(z.grad).all() and float(loss) > 0
    perm = torch.tensor(rng.permutation(16))
    assert float(survrnc_loss(z[perm], time[perm], event[perm])) == pytest.approx(float(loss), abs=1e-9)
    assert float(survrnc_loss(z, torch.full((16,), 7.0), event)) == 0.0
    duplicate = torch.zeros(4, 3, requires_grad=True)  # identical embeddings: distance 0
    survrnc_loss(duplicate, torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1, 0, 1, 1])).backward()
    assert torch.isfinite(duplicate.grad).all()
