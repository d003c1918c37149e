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

from nlhf_theory._arrays import namespace


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


def stop_gradient(x):
    """``x`` in value, without gradient: ``jax.lax.stop_gradient``, ``Tensor.detach`` or ``x``.

    The surrogate losses below put it on weights whose gradient must not flow (score-function
    and SAIL response terms); NumPy arrays carry no gradient and are returned as they are.
    """
    import array_api_compat

    if array_api_compat.is_torch_array(x):
        return x.detach()
    if array_api_compat.is_jax_array(x):
        import jax

        return jax.lax.stop_gradient(x)
    return x


def log_sigmoid_margin(logp, logp_prime, ref, ref_prime, beta):
    """``l = log sigma(beta h)``: the policy's implicit log-probability that ``y`` beats ``y'``.

    Minus :func:`dpo_loss` with label 1 (SAIL's ``l``; ``exp(l)`` is the implicit preference
    SAIL-PP and SAIL-DP label with).

    Example:
      >>> import numpy as np
      >>> float(np.exp(log_sigmoid_margin(0.0, 0.0, 0.0, 0.0, 1.0)))
      0.5

    References:
      Ding et al. 2024 (SAIL), arXiv:2406.15567, Sec. 4 (notation ``l``).
    """
    return -dpo_loss(logp, logp_prime, ref, ref_prime, 1.0, beta)


def sail_response_term(ell, logp, logp_prime, variant="exact", hook_scale=1.0):
    """Surrogate whose gradient is SAIL's response-distribution term for a pair (winner first).

    ``variant="exact"``: ``sg(l) (log pi(y) + log pi(y'))``, gradient ``l S`` with
    ``S = grad log pi(y) + grad log pi(y')`` (the derivative of the sampling distribution
    ``pi(y) pi(y')``). ``variant="implemented"``: the authors' gradient hook, which adds
    ``hook_scale * l / log pi`` to the gradient of each sequence log-probability instead:
    ``hook_scale (sg(l / min(log pi(y), -1e-6)) log pi(y) + sg(l / min(log pi(y'), -1e-6))
    log pi(y'))`` (the divisor is kept below ``-1e-6`` to stay finite as ``pi -> 1``).

    Args:
      ell: ``l = log sigma(beta h)`` of the pair, winner first (:func:`log_sigmoid_margin`).
      logp, logp_prime: log pi of the winner and the loser.
      variant: ``"exact"`` (default) or ``"implemented"``.
      hook_scale: weight of the implemented hook (default 1.0; see
        :func:`nlhf_theory.algorithms.sail`).

    Returns:
      The elementwise surrogate (its value is not meaningful, its gradient is).

    References:
      Ding et al. 2024, arXiv:2406.15567, Sec. 4; the authors' code, the gradient hook in
      ``cdpo/cdpo_trainer.py``.
    """
    xp = namespace(ell, logp, logp_prime)
    if variant == "exact":
        return stop_gradient(ell) * (logp + logp_prime)
    cap = -1e-6
    return hook_scale * (stop_gradient(ell / xp.minimum(logp, cap)) * logp
                         + stop_gradient(ell / xp.minimum(logp_prime, cap)) * logp_prime)


def sail_term(logp_w, logp_l, ref_w, ref_l, beta, square=0.0, response=0.0, variant="exact",
              hook_scale=1.0):
    """SAIL's objective for one oriented comparison (``y_w`` preferred): to be MAXIMIZED.

    ``l + (square / 2) l^2 + response * R`` with ``l = log sigma(beta h)``
    (:func:`log_sigmoid_margin`) and ``R`` the response term (:func:`sail_response_term`).
    Routes (Ding et al., the code's names): DPO ``(0, 0)``; SAIL-PR/DPR ``(0, gamma)`` with
    oracle labels; SAIL-PP/DPP ``(pi, pi)`` with implicit labels on policy pairs; SAIL-DP/DDP
    ``(rho, 0)`` with implicit labels on dataset pairs. With coefficients 1 the gradient is
    the exact gradient of the expected log-likelihood.

    Args:
      logp_w, logp_l, ref_w, ref_l: log pi and log pi_ref of the winner and the loser.
      beta: KL coefficient > 0.
      square: coefficient of ``l^2 / 2`` (``rho`` or ``pi``; default 0).
      response: coefficient of the response term (``gamma`` or ``pi``; default 0).
      variant, hook_scale: as in :func:`sail_response_term`.

    Returns:
      The elementwise objective.

    Example:
      >>> import numpy as np
      >>> round(float(sail_term(0.0, 0.0, 0.0, 0.0, 1.0, square=0.2)), 6)
      -0.645102

    References:
      Ding et al. 2024 (SAIL), arXiv:2406.15567, Sec. 4 (the gradients of J_PR, J_PP, J_DP).
    """
    ell = log_sigmoid_margin(logp_w, logp_l, ref_w, ref_l, beta)
    value = ell if _is_zero(square) else ell + 0.5 * square * ell**2
    if _is_zero(response):  # a literal 0 adds no term (and no zero gradient to accumulate)
        return value
    return value + response * sail_response_term(ell, logp_w, logp_l, variant, hook_scale)


def _is_zero(value) -> bool:
    """True for a Python or NumPy scalar equal to 0 (not for arrays or traced values)."""
    return isinstance(value, (int, float)) and value == 0


def sail_loss(logp, logp_prime, ref, ref_prime, label, beta, square=0.0, response=0.0,
              variant="exact", hook_scale=1.0):
    """SAIL's per-pair loss with a (soft) label: ``-(label f(y, y') + (1 - label) f(y', y))``.

    ``f`` = :func:`sail_term` (winner first). ``label`` is ``Pr(y beats y')``: the oracle's
    probability or a 0/1 draw (SAIL-PR), or the policy's implicit preference ``sigma(beta h)``
    with a stop-gradient (SAIL-PP, SAIL-DP; :func:`implicit_preference`). Over pairs drawn
    with weights ``w(y) w(y')`` its expectation is minus the SAIL objective
    ``2 E[label f(y, y')]`` of :func:`nlhf_theory.algorithms.sail` (a drawn pair is oriented
    either way).

    Args:
      logp, logp_prime, ref, ref_prime: as in :func:`dpo_loss`.
      label: Pr(y beats y') in [0, 1].
      beta, square, response, variant, hook_scale: as in :func:`sail_term`.

    Returns:
      The elementwise loss (to minimize).

    References:
      Ding et al. 2024 (SAIL), arXiv:2406.15567, Sec. 4.
    """
    forward = sail_term(logp, logp_prime, ref, ref_prime, beta, square, response, variant,
                        hook_scale)
    backward = sail_term(logp_prime, logp, ref_prime, ref, beta, square, response, variant,
                         hook_scale)
    return -(label * forward + (1.0 - label) * backward)


def implicit_preference(logp, logp_prime, ref, ref_prime, beta):
    """``sg(sigma(beta h))``: the policy's own preference of ``y`` over ``y'``, no gradient.

    SAIL-PP's and SAIL-DP's label (Ding et al. 2024, arXiv:2406.15567, Sec. 4).
    """
    return stop_gradient(namespace(logp).exp(log_sigmoid_margin(logp, logp_prime, ref, ref_prime,
                                                                beta)))


def mmd_objective(logp, prev, magnet, win_rate, eta, beta):
    """Integrand of the magnetic-mirror-descent proximal objective at one response ``y``.

    ``(log pi(y) - log pi_t(y)) + eta beta (log pi(y) - log rho(y)) - eta w(y)``; its
    expectation under ``y ~ pi`` is ``KL(pi || pi_t) + eta beta KL(pi || rho) - eta <pi, w>``,
    whose minimizer is MMD's step ``pi ∝ (pi_t rho^{eta beta} exp(eta w))^{1/(1 + eta beta)}``
    (MPO's step; ``w(y) = P(y > pi_t)``, or a 0/1 comparison with ``y' ~ pi_t``).

    Args:
      logp: log pi(y) of the optimized policy.
      prev: log pi_t(y) of the iterate.
      magnet: log rho(y) of the magnet.
      win_rate: w(y) (exact, or a label of a comparison against ``y' ~ pi_t``).
      eta: step > 0; beta: magnet strength > 0.

    References:
      Sokota et al. 2023, arXiv:2206.05825, Sec. 3 (MMD); Wang et al. 2024 (MPO),
      arXiv:2410.16714, Sec. 3.
    """
    return (logp - prev) + eta * beta * (logp - magnet) - eta * win_rate


def mmd_loss(logp, prev, magnet, win_rate, eta, beta):
    """Per-sample MMD loss for ``y`` drawn from the policy being optimized (score function).

    ``f + sg(f) log pi(y)`` with ``f`` = :func:`mmd_objective`: for ``y ~ pi`` (the current
    policy, without gradient) its expected gradient is ``grad E_{y ~ pi}[f(y)]``, the gradient
    of the proximal objective (``E[grad f + f grad log pi]``).

    References:
      Sokota et al. 2023, arXiv:2206.05825, Sec. 3; Wang et al. 2024, arXiv:2410.16714, Sec. 4
      (MPO's policy-gradient estimate of the MMD objective).
    """
    value = mmd_objective(logp, prev, magnet, win_rate, eta, beta)
    return value + stop_gradient(value) * logp


def nash_md_pg_loss(logp, ref, label, beta):
    """Nash-MD-PG's policy-gradient loss: ``-log pi(y) sg(label - 1/2 - beta log(pi/pi_ref)(y))``.

    For ``y ~ pi`` and ``y' ~ pi_mix`` (no gradient through the draws) with ``label`` =
    ``1[y > y']`` or ``P(y > y')``, minus its expected gradient is the gradient of
    ``E_{y ~ pi, y' ~ pi_mix}[P(y > y')] - beta KL(pi || pi_ref)`` (the constants ``1/2`` and
    the entropy's ``beta`` drop out since ``E grad log pi = 0``). It is TRL's Nash-MD loss
    ``beta sum sg(log-ratio) log pi - (p - 1/2) sum log pi``.

    Args:
      logp: log pi(y); ref: log pi_ref(y); label: Pr(y beats y') or a 0/1 draw.
      beta: KL coefficient > 0.

    Example:
      >>> float(nash_md_pg_loss(-1.0, -1.0, 1.0, 0.1))
      0.5

    References:
      Munos et al. 2023, arXiv:2312.00886, Sec. 7 (Nash-MD-PG); TRL ``NashMDTrainer``
      (removed in trl#7255).
    """
    return -logp * stop_gradient(label - 0.5 - beta * (logp - ref))


def xpo_loss(logp, logp_prime, ref, ref_prime, label, beta, alpha, logp_explore):
    """XPO's loss: the DPO loss plus the exploration bonus ``alpha log pi(y~)``, ``y~ ~ pi_ref``.

    Minimizing ``alpha log pi(y~)`` over reference samples lowers the probability of what
    ``pi_ref`` already covers (optimism). In the pair ``y ~ pi_t``, ``y' ~ pi_ref`` the
    reference response serves as ``y~`` (``logp_explore = logp_prime``).

    References:
      Xie et al. 2024 (XPO), arXiv:2405.21046, Alg. 1 (the optimistic objective).
    """
    return dpo_loss(logp, logp_prime, ref, ref_prime, label, beta) + alpha * logp_explore
