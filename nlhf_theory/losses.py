"""Preference-optimization losses, written once over per-response log-probabilities.

Every loss takes log-probabilities of a pair of responses ``(y, y')`` under the policy being
trained (``logp``, ``logp_prime``), the reference policy (``ref``, ``ref_prime``) and, where
the method needs it, a previous iterate, together with ``label``: the probability that ``y``
beats ``y'``. A sampled Bernoulli label (0 or 1) gives the usual per-sample loss; the exact
preference ``P[x, y, y']`` gives the loss in expectation over labels, which is how the exact
(population) mode of the algorithms is computed. Losses are elementwise over any batch shape.

They are written against the array API (``array_api_compat``), so the very same code runs on
NumPy arrays, jax arrays (differentiable with ``jax.grad``, under ``jit``/``vmap``) and torch
tensors (differentiable with autograd): the LLM backend adapter calls these functions on
per-sequence log-probabilities of a causal language model. We chose the array API over a
backend seam because it needs no per-backend code and no registration: ``array_namespace``
dispatches on the argument type.

Notation: ``h = (logp - ref) - (logp_prime - ref_prime)``, the difference of log-ratios
(DPO's implicit reward margin divided by ``beta``), and ``beta`` the KL coefficient.
"""

from __future__ import annotations

from nlhf_theory.metrics._metrics import namespace


def _softplus(xp, z):
    """``log(1 + exp(z))``: stable for large ``|z|`` and smooth (exact gradients at 0)."""
    return xp.logaddexp(xp.zeros_like(z), z)


def log_ratio_margin(logp, logp_prime, ref, ref_prime):
    """``h = log(pi(y) / pi_ref(y)) - log(pi(y') / pi_ref(y'))``."""
    return (logp - ref) - (logp_prime - ref_prime)


def dpo_loss(logp, logp_prime, ref, ref_prime, label, beta):
    """DPO loss with a (soft) label: ``E[-log sigma(beta h (2 l - 1))]``.

    ``label * softplus(-beta h) + (1 - label) * softplus(beta h)`` where ``label`` is the
    probability that ``y`` beats ``y'``; with ``label = 1`` it is Rafailov et al.'s loss with
    ``y`` chosen and ``y'`` rejected.

    Args:
      logp, logp_prime: log pi(y | x), log pi(y' | x) under the trained policy.
      ref, ref_prime: log pi_ref(y | x), log pi_ref(y' | x).
      label: Pr(y beats y') in [0, 1] (0/1 for sampled labels).
      beta: KL coefficient > 0.

    Returns:
      The elementwise loss.

    Example:
      >>> import numpy as np
      >>> float(dpo_loss(np.log(0.5), np.log(0.5), np.log(0.5), np.log(0.5), 1.0, 0.1))
      0.6931471805599453

    References:
      Rafailov et al. 2023, arXiv:2305.18290, eq. 7.
    """
    xp = namespace(logp, logp_prime, ref, ref_prime)
    margin = beta * log_ratio_margin(logp, logp_prime, ref, ref_prime)
    return label * _softplus(xp, -margin) + (1.0 - label) * _softplus(xp, margin)


def ipo_loss(logp, logp_prime, ref, ref_prime, label, beta):
    """IPO loss with a (soft) label: ``(h - (label - 1/2) / beta)^2``.

    Azar et al.'s square loss ``(h - 1 / (2 tau))^2`` for a chosen ``y`` (``label = 1``), in
    expectation over labels: ``label (h - 1/(2 beta))^2 + (1 - label) (h + 1/(2 beta))^2``
    equals ``(h - (label - 1/2)/beta)^2`` plus a term independent of the policy, which is
    dropped. Notation: their ``tau`` is our ``beta``.

    References:
      Azar et al. 2023, arXiv:2310.12036, Sec. 5 (IPO); Calandriello et al. 2024,
      arXiv:2403.08635, eq. 11 (online IPO uses the same loss on on-policy pairs).
    """
    h = log_ratio_margin(logp, logp_prime, ref, ref_prime)
    return (h - (label - 0.5) / beta) ** 2


def win_rate_ipo_loss(logp, logp_prime, ref, ref_prime, win, win_prime, beta):
    """EGPO's online IPO loss: ``(h - (win - win_prime) / beta)^2``.

    The square loss of IPO whose target is a difference of win rates against an opponent
    ``pi'``: ``win = P(y > pi')`` and ``win_prime = P(y' > pi')`` (exact), or labels
    ``1[y > y'']`` and ``1[y' > y'']`` of comparisons with one opponent draw ``y'' ~ pi'``
    (sampled; unbiased for the exact target, and the square loss of an unbiased target has the
    exact loss's gradient in expectation). Over pairs ``(y, y')`` with full support (EGPO
    draws them uniformly) its minimizer is ``pi(y) ∝ pi_ref(y) exp(P(y > pi') / beta)``, and
    one gradient step on it is an online-mirror-descent step (see
    :func:`nlhf_theory.algorithms.online_ipo`). The EGPO authors' simulation calls the plain
    (non-extragradient) algorithm "Online IPO 1 (OMD)".

    Args:
      logp, logp_prime: log pi(y | x), log pi(y' | x) under the trained policy.
      ref, ref_prime: log pi_ref(y | x), log pi_ref(y' | x).
      win, win_prime: P(y > pi' | x), P(y' > pi' | x) in [0, 1] (0/1 for sampled labels).
      beta: KL coefficient > 0.

    Returns:
      The elementwise loss.

    Example:
      >>> import numpy as np
      >>> float(win_rate_ipo_loss(np.log(0.5), np.log(0.5), np.log(0.5), np.log(0.5), 0.75,
      ...                         0.25, 0.5))
      1.0

    References:
      Zhou, Fazel & Du 2025 (EGPO), arXiv:2503.08942, the online IPO loss of its
      implementation (pairs uniform, the opponent's response from the current policy); code
      ``zhourunlong/EGPO``, ``simulations/loss_funcs.py``, ``online_ipo_1`` and
      ``extragradient``.
    """
    h = log_ratio_margin(logp, logp_prime, ref, ref_prime)
    return (h - (win - win_prime) / beta) ** 2


def slic_loss(logp, logp_prime, ref, ref_prime, label, beta):
    """SLiC-HF calibration (hinge) loss with a (soft) label, with a reference policy.

    ``label * max(0, 1 - beta h) + (1 - label) * max(0, 1 + beta h)``: the hinge on the
    log-likelihood margin of Zhao et al. (``max(0, delta - log pi(y+) + log pi(y-))``) measured,
    as in the generalized form of Tang et al. 2024 (GPO, arXiv:2402.05749, Table 1), on the
    log-ratio margin ``h`` with margin ``delta = 1 / beta``.

    References:
      Zhao et al. 2023, arXiv:2305.10425, Sec. 2 (calibration loss); Tang et al. 2024,
      arXiv:2402.05749, Table 1 (SLiC as the hinge instance of GPO).
    """
    xp = namespace(logp, logp_prime, ref, ref_prime)
    margin = beta * log_ratio_margin(logp, logp_prime, ref, ref_prime)
    zero = xp.zeros_like(margin)
    return label * xp.maximum(1.0 - margin, zero) + (1.0 - label) * xp.maximum(1.0 + margin, zero)


def inpo_loss(logp, logp_prime, ref, ref_prime, prev, prev_prime, label, eta, beta):
    """INPO's square loss with a (soft) label.

    With ``g = log(pi(y)/pi(y')) - eta beta log(pi_ref(y)/pi_ref(y'))
    - (1 - eta beta) log(pi_t(y)/pi_t(y'))`` the loss for a chosen ``y`` is ``(g - eta/2)^2``;
    in expectation over labels (dropping a constant) it is ``(g - eta (label - 1/2))^2``. Its
    minimizer is the online-mirror-descent step
    ``pi_{t+1} ∝ pi_t^{1 - eta beta} pi_ref^{eta beta} exp(eta P(y > pi_t))``.
    Notation: Zhang et al.'s KL coefficient ``tau`` is our ``beta``; ``eta`` is the step size.

    Args:
      prev, prev_prime: log pi_t(y | x), log pi_t(y' | x) of the previous iterate.
      eta: step size > 0 with ``eta * beta <= 1``.

    References:
      Zhang et al. 2024 (INPO), arXiv:2407.00617, Sec. 4 (loss and the online mirror descent
      update it implements).
    """
    g = ((logp - logp_prime) - eta * beta * (ref - ref_prime)
         - (1.0 - eta * beta) * (prev - prev_prime))
    return (g - eta * (label - 0.5)) ** 2


def sppo_loss(logp, prev, win_rate, eta):
    """SPPO's per-response square loss: ``(log(pi(y) / pi_t(y)) - eta (P(y > pi_t) - 1/2))^2``.

    ``win_rate`` is (an estimate of) ``P(y beats pi_t)``; the minimizer over the policy class is
    the multiplicative-weights step ``pi_{t+1} ∝ pi_t exp(eta P(y > pi_t))`` (up to the
    normalization the square loss absorbs). There is no KL anchor to ``pi_ref``.
    Notation: the SPPO code's ``beta`` is ``1 / eta``.

    References:
      Wu et al. 2024 (SPPO), arXiv:2405.00675, Sec. 3-4 (the update and its square-loss
      approximation).
    """
    return (logp - prev - eta * (win_rate - 0.5)) ** 2
