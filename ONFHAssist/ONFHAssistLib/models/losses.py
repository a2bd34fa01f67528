"""Training losses: Cox negative partial log-likelihood (Efron or Breslow ties) and SurvRNC.

Both are vectorised torch code (no Python loop over samples, no numpy round trip), so they run on
the GPU and are differentiable end to end.
"""
from __future__ import annotations

import torch


def cox_nll(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor, ties: str = "efron") -> torch.Tensor:
    """Negative Cox partial log-likelihood, averaged over events; 0 (with a graph) when there is none.

    Efron: an event time with d deaths contributes Σ_l log(R − l/d · D) for l = 0..d−1, where R is the
    risk-set sum of exp(risk) and D that of the deaths; Breslow uses R for every death. exp() is taken
    after subtracting the largest risk, which cancels in the likelihood (stable for any scale).
    """
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be 'efron' or 'breslow', not {ties!r}")
    risk, time, event = risk.reshape(-1), time.reshape(-1), event.reshape(-1).to(risk.dtype)
    n_events = event.sum()
    if float(n_events) == 0.0:
        return risk.sum() * 0.0
    times, group = torch.unique(time, sorted=True, return_inverse=True)
    shift = risk.max().detach()
    w = torch.exp(risk - shift)
    zeros = torch.zeros(len(times), dtype=risk.dtype, device=risk.device)
    at_risk = torch.flip(torch.cumsum(torch.flip(zeros.index_add(0, group, w), [0]), 0), [0])
    deaths_w = zeros.index_add(0, group, w * event)
    deaths_n = zeros.index_add(0, group, event)
    denominator = at_risk[group]
    if ties == "efron":
        # rank of each death among the deaths at its time (0..d−1), in any fixed order
        order = torch.argsort(group, stable=True)
        ranks_sorted = torch.cumsum(event[order], 0) - event[order]
        before_group = torch.cumsum(deaths_n, 0) - deaths_n
        rank = torch.empty_like(ranks_sorted).scatter_(0, order, ranks_sorted) - before_group[group]
        denominator = denominator - rank / deaths_n[group].clamp(min=1.0) * deaths_w[group]
    log_lik = ((risk - shift - torch.log(denominator)) * event).sum()
    return -log_lik / n_events


# SurvRNC weights w_ij for anchor k, positive i, candidate j: rows are the published cases, columns the
# candidate's position (L, C, R) for an event candidate and then for a censored one.
_CASE_WEIGHTS = torch.tensor([
    [.5, .5, .5, .5, .5, .5],  # 0: sign(d_i) = 0
    [1., 0., 1., .5, .5, 1.],  # 1: e_k = 1, e_i = 1, sign ±1
    [.5, 0., .5, .5, .5, .5],  # 2: e_k = 1, e_i = 0, sign +1
    [.5, .5, .5, .5, .5, .5],  # 3: e_k = 1, e_i = 0, sign −1
    [1., .5, .5, .5, .5, .5],  # 4: e_k = 0, e_i = 1, sign +1
    [1., 0., .5, .5, .5, .5],  # 5: e_k = 0, e_i = 1, sign −1
    [.5, .5, .5, .5, .5, .5],  # 6: e_k = 0, e_i = 0
])


def _case(ek: torch.Tensor, ei: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Case index (k, i) of the weight table from the anchor's and positive's events and sign(d_i)."""
    case = torch.full(sign.shape, 6, dtype=torch.long, device=sign.device)
    case = torch.where(ek & ei, torch.ones_like(case), case)
    case = torch.where(ek & ~ei, torch.where(sign > 0, 2, 3), case)
    case = torch.where(~ek & ei, torch.where(sign > 0, 4, 5), case)
    return torch.where(sign == 0, torch.zeros_like(case), case)


def survrnc_weights(time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """w[k, i, j] of SurvRNC for every anchor k, positive i ≠ k and candidate j (0 where j ∈ {i, k} or d_j = 0)."""
    n = time.shape[0]
    e = event.reshape(-1).bool()
    d = time.reshape(1, -1) - time.reshape(-1, 1)  # d[k, x] = t_x − t_k
    di, dj = d[:, :, None], d[:, None, :]
    position = torch.where(dj < -di.abs(), 0, torch.where(dj > di.abs(), 2, 1))  # L, R, else C
    case = _case(e[:, None], e[None, :], torch.sign(d))[:, :, None].expand(n, n, n)
    column = position + 3 * (~e)[None, None, :].long()
    table = _CASE_WEIGHTS.to(device=time.device, dtype=time.dtype)
    weights = table[case, column]
    idx = torch.arange(n, device=time.device)
    same = idx[:, None] == idx[None, :]
    excluded = (dj == 0) | same[None, :, :] | same[:, None, :] | same[:, :, None]  # j = i, j = k, i = k
    return weights.masked_fill(excluded, 0.0)


def survrnc_loss(z: torch.Tensor, time: torch.Tensor, event: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """Survival rank-n-contrast loss on embeddings z (n, d).

    ℓ(k, i) = −[s(k, i) − log Σ_j w_ij exp(s(i, j))] with s(x, y) = −‖z_x − z_y‖ / τ. The denominator
    compares the *positive* i with each candidate j, as the published implementation does (its paper
    writes the anchor); we keep the code's form. Anchors without a valid positive are skipped, and the
    loss is 0 when no anchor is valid (the reference raises instead).
    """
    time = time.reshape(-1).to(z.dtype)
    diff = z[:, None, :] - z[None, :, :]
    sim = -torch.sqrt((diff ** 2).sum(-1).clamp(min=1e-12)) / temperature  # safe gradient at zero distance
    w = survrnc_weights(time, event)
    valid = w.sum(-1) > 0  # [k, i]
    log_w = torch.where(w > 0, torch.log(w.clamp(min=1e-30)), torch.full_like(w, -1e30))  # exp(-1e30) = 0 exactly
    log_denominator = torch.logsumexp(sim[None, :, :] + log_w, dim=-1)
    loss_ki = -(sim - log_denominator)
    per_anchor_count = valid.sum(1)
    anchors = per_anchor_count > 0
    if not bool(anchors.any()):
        return z.sum() * 0.0
    per_anchor = (loss_ki * valid).sum(1) / per_anchor_count.clamp(min=1)
    return per_anchor[anchors].mean()
