"""Default hyper-parameters: each a rule from the algorithm's theory, documented with its source.

Every factory of :data:`nlhf_theory.ALGORITHMS` takes ``learning_rate=None`` (and, where it
has them, ``period=None``): ``None`` resolves to the rule below for the given ``beta`` (and,
where the rule needs them, the game's number of responses ``Y`` and largest prompt weight
``w = max_x d0(x)``, read when the algorithm runs). :data:`DEFAULT_RULES` lists them for the
docs (``docs/algorithms.md``) and the tests.

The bound ``L = max |P - 1/2| <= 1/2`` holds for every preference game; the rules use it so
they never depend on ``P`` itself.

Two facts drive the rules of the gradient (parametric) methods [derived; tested in
``tests/algorithms/test_defaults.py``]:

* A logit step on IPO's square loss over pairs ``y, y' ~ mu`` with target ``(P(y > pi_t) -
  1/2) / beta`` moves ``log pi(y)`` by ``eta_y [P(y > pi_t) - beta log(pi_t / pi_ref)(y)]`` (up
  to normalization) with ``eta_y = 4 lr d0(x) mu(y) / beta``: online mirror descent with a
  per-response step. Choosing ``lr`` so that ``max_y eta_y`` equals INPO's contraction step
  ``eta* = beta / (beta^2 + L^2)`` makes it no faster than a contraction, whatever ``pi_t``.
* A logit step on the policy-gradient objective ``E_{y ~ pi}[P(y > pi')] - beta KL(pi ||
  pi_ref)`` is the same with ``eta_y = lr d0(x) pi(y)``. Near ``h = 0`` DPO's loss
  ``-log sigma(beta h)`` has curvature ``beta^2 / 4`` in the margin where IPO's has 2: the same
  step in the logits takes ``8 / beta^2`` times IPO's learning rate.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from nlhf_theory import validation as checks

#: ``L = max |P - 1/2|``: at most 1/2 on any preference game.
PAYOFF_BOUND = 0.5


def mirror_step(beta):
    """``eta* = beta / (beta^2 + L^2)``: the mirror step of INPO, COMAL and constant Nash-MD.

    The linearized INPO map at ``pi*_beta`` has eigenvalues ``1 - eta beta + i eta w`` with
    ``|w| <= L``; ``eta*`` minimizes the worst modulus ``(1 - eta beta)^2 + eta^2 L^2`` (to
    ``L^2 / (beta^2 + L^2) < 1``) and satisfies INPO's condition ``eta beta <= 1``.
    """
    return beta / (beta**2 + PAYOFF_BOUND**2)


def magnetic_step(beta):
    """``eta = beta / L^2 = 4 beta``: the largest step of magnetic mirror descent's linear rate.

    Sokota et al. 2023, arXiv:2206.05825, Sec. 3 (``eta <= alpha / L^2`` with ``alpha = beta``).
    """
    return beta / PAYOFF_BOUND**2


def magnet_period(beta, learning_rate) -> int:
    """MPO: ``K = ceil(ln 10 / ln(1 + eta beta))`` steps per magnet.

    MMD's bound ``KL(pi*_rho || pi_k) <= (1 + eta beta)^{-k} KL_0`` falls 10-fold before the
    magnet moves (Sokota et al. 2023, arXiv:2206.05825, Sec. 3, linear rate of MMD).
    """
    return math.ceil(math.log(10.0) / math.log1p(learning_rate * beta))


def anchor_period(beta, learning_rate) -> int:
    """COMAL: ``K = ceil(2 ln 10 / (eta beta))`` INPO steps per anchor.

    COMAL's inner bound ``KL <= (1 - eta beta / 2)^k KL_0`` (Liu et al. 2024,
    arXiv:2410.23223, inner-loop analysis) falls 10-fold before the anchor moves.
    """
    return math.ceil(2.0 * math.log(10.0) / (learning_rate * beta))


def hedge_step(num_responses, t):
    """``eta_t = sqrt(8 ln Y / t)`` at the ``t``-th update (``t >= 1``): anytime Hedge.

    Multiplicative weights with this schedule has regret at most ``sqrt(2 T ln Y) + sqrt(ln Y /
    8)`` over any horizon ``T`` (Cesa-Bianchi & Lugosi 2006, Thm. 2.3); in self-play the
    average iterate's exploitability is the average regret.
    """
    return jnp.sqrt(8.0 * math.log(max(num_responses, 2)) / t)


def _max_weight(game):
    return jnp.max(jnp.asarray(game.prompt_weights))


def ipo_pair_rule(beta, pairs: str = "policy"):
    """Online IPO / IPO-MD / EGPO: ``lr = eta* beta / (4 w)`` (pairs from a policy) or
    ``eta* beta Y / (4 w)`` (uniform pairs, ``mu(y) = 1 / Y``): ``max_y eta_y = eta*``."""
    def rule(game):
        scale = game.num_responses if pairs == "uniform" else 1.0
        return mirror_step(beta) * beta * scale / (4.0 * _max_weight(game))
    return rule


def policy_gradient_rule(beta):
    """Nash-MD-PG: ``lr = eta* / w`` (``eta_y = lr w pi(y) <= eta*``)."""
    return lambda game: mirror_step(beta) / _max_weight(game)


def online_dpo_rule(beta):
    """Online DPO, XPO and SAIL: IPO's policy-pair rule times ``8 / beta^2``:
    ``lr = 2 eta* / (beta w)``."""
    return lambda game: 2.0 * mirror_step(beta) / (beta * _max_weight(game))


def offline_dpo_rule(beta):
    """Offline DPO: ``lr = 1 / L_smooth = 2 / (beta^2 w)``.

    The population loss is convex in the logits with Hessian ``beta^2 d0(x) E_mu[sigma'
    (e_y - e_y')(e_y - e_y')^T] <= (beta^2 / 4) 2 w I``: gradient descent with step ``1 / L``
    decreases it monotonically (Nesterov 2004, Thm. 2.1.14).
    """
    return lambda game: 2.0 / (beta**2 * _max_weight(game))


def offline_ipo_rule(beta):
    """Offline IPO: ``lr = 1 / L_smooth = 1 / (4 w)`` (Hessian ``2 d0(x) E_mu[(e_y - e_y')
    (e_y - e_y')^T] <= 4 w I``)."""
    return lambda game: 1.0 / (4.0 * _max_weight(game))


def slic_rule(beta):
    """SLiC (hinge, no curvature): ``lr = 1 / (8 beta^2 w)``: one subgradient step moves every
    margin ``beta h`` by at most 1/2 (the hinge's slope is ``beta``, ``|d h / d theta|_1 <= 2``
    per pair, and ``h`` takes two logits)."""
    return lambda game: 1.0 / (8.0 * beta**2 * _max_weight(game))


def bradley_terry_rule(features=None):
    """Reward-based RLHF: ``lr = 1 / L_smooth = 4 / (w max ||phi(y) - phi(y')||^2)`` on the
    Bradley-Terry log-likelihood (``sigma' <= 1/4``; tabular ``||e_y - e_y'||^2 = 2``:
    ``lr = 2 / w``)."""
    def rule(game):
        if features is None:
            spread = 2.0
        else:
            phi = jnp.asarray(features)
            diff = phi[:, :, None, :] - phi[:, None, :, :]
            spread = jnp.maximum(jnp.max(jnp.sum(diff**2, -1)), 1e-300)
        return 4.0 / (_max_weight(game) * spread)
    return rule


def step_size(learning_rate, rule):
    """``game -> lr``: the given ``learning_rate`` (checked finite and > 0) or ``rule``."""
    if learning_rate is None:
        return rule
    lr = checks.positive(learning_rate, "learning_rate")
    return lambda game: lr


_NESTEROV = "Nesterov 2004, Thm. 2.1.14 [derived bound]"
_HEDGE = "Cesa-Bianchi & Lugosi 2006, Thm. 2.3 (anytime Hedge)"
#: Every default rule: algorithm -> hyper-parameter -> (rule, source). ``eta*`` is
#: :func:`mirror_step`, ``w`` the largest prompt weight, ``Y`` the number of responses.
DEFAULT_RULES = {
    "dpo": {"learning_rate": ("2 / (beta^2 w): 1 / smoothness of the loss", _NESTEROV)},
    "ipo": {"learning_rate": ("1 / (4 w): 1 / smoothness of the loss", _NESTEROV)},
    "slic": {"learning_rate": ("1 / (8 beta^2 w): a step moves beta h by <= 1/2",
                               "[derived; the hinge has no curvature]")},
    "rlhf_bt": {"learning_rate": ("4 / (w max ||phi(y) - phi(y')||^2) (tabular 2 / w): "
                                  "1 / smoothness of the BT likelihood", _NESTEROV)},
    "nash_md": {"learning_rate": ("eta_t = 2 / (beta (t + 2))",
                                  "Munos et al. 2023, arXiv:2312.00886, Thm. 1")},
    "nash_md_pg": {"learning_rate": ("eta* / w", "[derived: per-response step <= eta*]")},
    "inpo": {"learning_rate": ("eta* = beta / (beta^2 + 1/4)",
                               "[derived: contraction of the linearized INPO map]")},
    "sppo": {"learning_rate": ("eta_t = sqrt(8 ln Y / t)", _HEDGE)},
    "dno": {"learning_rate": ("1 / eta_t with eta_t = sqrt(8 ln Y / t)", _HEDGE)},
    "mpo": {"learning_rate": ("beta / L^2 = 4 beta",
                              "Sokota et al. 2023, arXiv:2206.05825, Sec. 3"),
            "period": ("ceil(ln 10 / ln(1 + 4 beta^2))",
                       "Sokota et al. 2023, Sec. 3 (10-fold per magnet)")},
    "comal": {"learning_rate": ("eta* = beta / (beta^2 + 1/4)", "as inpo"),
              "period": ("ceil(2 ln 10 / (eta* beta))",
                         "Liu et al. 2024, arXiv:2410.23223 (10-fold per anchor)")},
    "online_dpo": {"learning_rate": ("2 eta* / (beta w)",
                                     "[derived: IPO's rule x 8 / beta^2, DPO's curvature]")},
    "online_ipo": {"learning_rate": ("eta* beta / (4 w); pairs='uniform': eta* beta Y / (4 w)",
                                     "[derived: per-response mirror step <= eta*]")},
    "ipo_md": {"learning_rate": ("eta* beta / (4 w)", "as online_ipo")},
    "egpo": {"learning_rate": ("eta* beta Y / (4 w)", "as online_ipo (uniform pairs)")},
    "xpo": {"learning_rate": ("2 eta* / (beta w)", "as online_dpo")},
    "sail_pr": {"learning_rate": ("2 eta* / (beta w)", "as online_dpo")},
    "sail_pp": {"learning_rate": ("2 eta* / (beta w)", "as online_dpo")},
    "sail_dp": {"learning_rate": ("2 eta* / (beta w)", "as online_dpo")},
    "sail": {"learning_rate": ("2 eta* / (beta w)", "as online_dpo")},
}
