"""Recipes: each registry algorithm as pairs, labels, anchors and a per-pair loss for an LM.

A recipe says where a training pair ``(y, y')`` comes from, how it is labelled, which other
policies' log-probabilities the loss needs (its anchors), and the per-pair loss, **always a
function of** :mod:`nlhf_theory.losses` (the same code the tabular algorithms call: no second
copy of any loss). Losses are per pair and to be minimized; a batch loss is their mean.

Pair sources (:data:`PAIR_SOURCES`):

* ``"dataset"``: ``y, y' ~ mu`` (offline data; ``mu = pi_ref`` in the bridge's exact mode);
* ``"policy"``: ``y, y' ~ pi_t``, the policy at the start of the iteration (stop-gradient);
* ``"policy_vs_ref"``: ``y ~ pi_t``, ``y' ~ pi_ref``;
* ``"policy_vs_mixture"``: ``y ~ pi_t``, ``y' ~ pi_mix``, the geometric mixture
  ``pi_t^(1 - m) pi_ref^m`` (per sequence, or per token as TRL: see ``Bridge.mixture_logprobs``);
* ``"mixture"``: ``y, y' ~ pi_mix``;
* ``"uniform"``: ``y, y'`` uniform over responses, and a third ``y'' ~`` the opponent (``pi_t``,
  or the extragradient half step), which the labels compare both against;
* ``"current_vs_policy"``: ``y ~`` the policy being optimized (redrawn at every inner step),
  ``y' ~ pi_t``;
* ``"policy_vs_enhancer"``: ``y ~ pi_t``, ``y' ~`` the best-of-n enhancer (data collection of
  optimistic equilibrium learning).

Labels (:data:`LABEL_KINDS`): ``"oracle"`` (``label`` = ``Pr(y beats y')`` or a 0/1 draw of
it), ``"implicit"`` (the loss uses the policy's ``sigma(beta h)``; no oracle call),
``"win_rate"`` (``win``, ``win_prime``: comparisons of ``y`` and ``y'`` against ``y''``),
``"model"`` (a fitted preference model's probability, optimistic equilibrium learning).

Anchors: ``"ref"`` (``pi_ref``), ``"snapshot"`` (``pi_t``, fixed during the iteration's
optimizer steps), ``"extragradient"`` (a half step sets the opponent, then is undone),
``"mixture"`` (``pi_mix``), ``"magnet"`` (MPO's and COMAL's moving anchor ``rho``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from nlhf_theory import losses
from nlhf_theory.validation import InvalidInputError

PAIR_SOURCES = ("dataset", "policy", "policy_vs_ref", "policy_vs_mixture", "mixture", "uniform",
                "current_vs_policy", "policy_vs_enhancer")
LABEL_KINDS = ("oracle", "implicit", "win_rate", "model")
ANCHORS = ("ref", "snapshot", "extragradient", "mixture", "magnet")
#: Hyper-parameters of the update, not of the loss (the loss functions accept and ignore them).
UPDATE_KEYS = ("mixture", "loss_steps", "period", "num_candidates")


class PairLogps(NamedTuple):
    """Per-pair log-probabilities and labels a recipe's loss reads (tensors of one shape).

    Attributes:
      logp, logp_prime: ``log pi_theta(y | x)``, ``log pi_theta(y' | x)`` (with gradient).
      ref, ref_prime: ``log pi_ref`` of ``y``, ``y'``.
      prev, prev_prime: ``log pi_t`` (the snapshot at the start of the iteration).
      label: ``Pr(y beats y')`` in [0, 1], or a 0/1 draw.
      win, win_prime: labels of ``y`` and ``y'`` against a third response ``y''``.
      magnet, magnet_prime: ``log rho`` of the magnet (MPO, COMAL).
    """

    logp: Any
    logp_prime: Any
    ref: Any = None
    ref_prime: Any = None
    prev: Any = None
    prev_prime: Any = None
    label: Any = None
    win: Any = None
    win_prime: Any = None
    magnet: Any = None
    magnet_prime: Any = None


class Recipe(NamedTuple):
    """How one registry algorithm trains a language model.

    Attributes:
      name: the registry name (:data:`nlhf_theory.ALGORITHMS`).
      pairs: one of :data:`PAIR_SOURCES`.
      labels: one of :data:`LABEL_KINDS`.
      anchors: subset of :data:`ANCHORS`.
      loss: ``loss(pair: PairLogps, beta, **hp) -> per-pair loss`` (minimized), a function of
        :mod:`nlhf_theory.losses`.
      defaults: hyper-parameters and their defaults (``None``: required or derived).
      inner_steps: True if an iteration takes ``loss_steps`` optimizer steps on the loss with
        the anchors held fixed (mirror-descent methods), False for one step.
      tabular: the factory it must equal, with the hyper-parameter mapping in docs/llm.md.
      reference: paper, arXiv id and equation.
      collect: pair source of the comparisons sent to the oracle when it differs from
        ``pairs`` (optimistic equilibrium learning), else None.
    """

    name: str
    pairs: str
    labels: str
    anchors: tuple
    loss: Callable
    defaults: dict
    inner_steps: bool
    tabular: str
    reference: str
    collect: Any = None


def _strict(names):
    """Wrap a loss so that its hyper-parameters are checked by name."""
    def wrap(fn):
        def loss(pair, beta, **hp):
            unknown = sorted(k for k in hp if k not in names and k not in UPDATE_KEYS)
            if unknown:
                raise InvalidInputError(f"{unknown[0]}: not a hyper-parameter of this recipe "
                                        f"(it takes {sorted(names)})")
            missing = [k for k in names if hp.get(k, _DEFAULTS.get(k)) is None]
            if missing:
                raise InvalidInputError(f"{missing[0]}: required by this recipe")
            return fn(pair, beta, **{k: hp.get(k, _DEFAULTS.get(k)) for k in names})
        loss.__name__ = fn.__name__
        loss.__doc__ = fn.__doc__
        return loss
    return wrap


_DEFAULTS = {"alpha": 1e-3, "gamma": 0.3, "pi": 0.2, "rho": 0.2, "variant": "exact",
             "hook_scale": 1.0, "eta": None}


def _need(pair, *fields):
    for f in fields:
        if getattr(pair, f) is None:
            raise InvalidInputError(f"pair.{f}: required by this recipe's loss")


def _labelled_pair_loss(loss):
    """A recipe loss applying ``loss`` (``(logp, logp', ref, ref', label, beta)``) to the pair."""

    def pair_loss(pair, beta):
        _need(pair, "ref", "ref_prime", "label")
        return loss(pair.logp, pair.logp_prime, pair.ref, pair.ref_prime, pair.label, beta)

    pair_loss.__name__ = f"{loss.__name__.removesuffix('_loss')}_pair_loss"
    pair_loss.__doc__ = f":func:`nlhf_theory.losses.{loss.__name__}` on the pair."
    return _strict(())(pair_loss)


dpo_pair_loss = _labelled_pair_loss(losses.dpo_loss)
ipo_pair_loss = _labelled_pair_loss(losses.ipo_loss)
slic_pair_loss = _labelled_pair_loss(losses.slic_loss)


@_strict(())
def win_rate_pair_loss(pair, beta):
    """:func:`nlhf_theory.losses.win_rate_ipo_loss` (EGPO's online IPO) on the pair."""
    _need(pair, "ref", "ref_prime", "win", "win_prime")
    return losses.win_rate_ipo_loss(pair.logp, pair.logp_prime, pair.ref, pair.ref_prime,
                                    pair.win, pair.win_prime, beta)


@_strict(("alpha",))
def xpo_pair_loss(pair, beta, alpha):
    """:func:`nlhf_theory.losses.xpo_loss`, the reference draw ``y'`` as the explored ``y~``."""
    _need(pair, "ref", "ref_prime", "label")
    return losses.xpo_loss(pair.logp, pair.logp_prime, pair.ref, pair.ref_prime, pair.label,
                           beta, alpha, pair.logp_prime)


@_strict(("eta",))
def inpo_pair_loss(pair, beta, eta):
    """:func:`nlhf_theory.losses.inpo_loss` toward ``pi_ref`` (INPO; Nash-MD on mixture pairs)."""
    _need(pair, "ref", "ref_prime", "prev", "prev_prime", "label")
    return losses.inpo_loss(pair.logp, pair.logp_prime, pair.ref, pair.ref_prime, pair.prev,
                            pair.prev_prime, pair.label, eta, beta)


@_strict(("eta",))
def comal_pair_loss(pair, beta, eta):
    """:func:`nlhf_theory.losses.inpo_loss` toward the magnet (COMAL's inner loop)."""
    _need(pair, "magnet", "magnet_prime", "prev", "prev_prime", "label")
    return losses.inpo_loss(pair.logp, pair.logp_prime, pair.magnet, pair.magnet_prime,
                            pair.prev, pair.prev_prime, pair.label, eta, beta)


@_strict(("eta",))
def sppo_pair_loss(pair, beta, eta):
    """:func:`nlhf_theory.losses.sppo_loss` with the label of ``y`` against ``y' ~ pi_t``.

    The square loss of an unbiased target has, up to a constant, the loss of the exact win
    rate (the label's variance does not depend on the policy): same gradient in expectation.
    ``beta`` is unused (SPPO has no KL anchor).
    """
    _need(pair, "prev", "label")
    return losses.sppo_loss(pair.logp, pair.prev, pair.label, eta)


@_strict(("eta",))
def dno_pair_loss(pair, beta, eta):
    """DNO's step ``pi_t exp(r_t / eta)`` regressed by :func:`nlhf_theory.losses.sppo_loss`
    with step ``1 / eta`` (DNO is SPPO's multiplicative weights with step ``1 / eta``)."""
    _need(pair, "prev", "label")
    return losses.sppo_loss(pair.logp, pair.prev, pair.label, 1.0 / eta)


@_strict(("eta",))
def mpo_pair_loss(pair, beta, eta):
    """:func:`nlhf_theory.losses.mmd_loss` for ``y ~`` the current policy, ``y' ~ pi_t``."""
    _need(pair, "prev", "magnet", "label")
    return losses.mmd_loss(pair.logp, pair.prev, pair.magnet, pair.label, eta, beta)


@_strict(())
def nash_md_pg_pair_loss(pair, beta):
    """:func:`nlhf_theory.losses.nash_md_pg_loss` for ``y ~ pi_t`` against ``y' ~ pi_mix``."""
    _need(pair, "ref", "label")
    return losses.nash_md_pg_loss(pair.logp, pair.ref, pair.label, beta)


@_strict(("gamma", "variant", "hook_scale"))
def sail_pr_pair_loss(pair, beta, gamma, variant, hook_scale):
    """:func:`nlhf_theory.losses.sail_loss` with oracle labels and response coefficient gamma."""
    _need(pair, "ref", "ref_prime", "label")
    return losses.sail_loss(pair.logp, pair.logp_prime, pair.ref, pair.ref_prime, pair.label,
                            beta, 0.0, gamma, variant, hook_scale)


@_strict(("pi", "variant", "hook_scale"))
def sail_pp_pair_loss(pair, beta, pi, variant, hook_scale):
    """:func:`nlhf_theory.losses.sail_loss` labelled by the implicit preference, ``(pi, pi)``."""
    _need(pair, "ref", "ref_prime")
    label = losses.implicit_preference(pair.logp, pair.logp_prime, pair.ref, pair.ref_prime,
                                       beta)
    return losses.sail_loss(pair.logp, pair.logp_prime, pair.ref, pair.ref_prime, label, beta,
                            pi, pi, variant, hook_scale)


@_strict(("rho",))
def sail_dp_pair_loss(pair, beta, rho):
    """:func:`nlhf_theory.losses.sail_loss` on dataset pairs, implicit labels, ``(rho, 0)``."""
    _need(pair, "ref", "ref_prime")
    label = losses.implicit_preference(pair.logp, pair.logp_prime, pair.ref, pair.ref_prime,
                                       beta)
    return losses.sail_loss(pair.logp, pair.logp_prime, pair.ref, pair.ref_prime, label, beta,
                            rho, 0.0)


_MD = {"eta": None, "loss_steps": 1}
RECIPES = {
    "dpo": Recipe("dpo", "dataset", "oracle", ("ref",), dpo_pair_loss, {}, False, "dpo",
                  "Rafailov et al. 2023, arXiv:2305.18290, eq. 7"),
    "ipo": Recipe("ipo", "dataset", "oracle", ("ref",), ipo_pair_loss, {}, False, "ipo",
                  "Azar et al. 2023, arXiv:2310.12036, Sec. 5 (eq. 17)"),
    "slic": Recipe("slic", "dataset", "oracle", ("ref",), slic_pair_loss, {}, False, "slic",
                   "Zhao et al. 2023, arXiv:2305.10425, Sec. 2; Tang et al. 2024, "
                   "arXiv:2402.05749, Table 1"),
    "online_dpo": Recipe("online_dpo", "policy", "oracle", ("ref",), dpo_pair_loss, {}, False,
                         "online_dpo", "Guo et al. 2024, arXiv:2402.04792"),
    "online_ipo": Recipe("online_ipo", "policy", "oracle", ("ref",), ipo_pair_loss, {}, False,
                         "online_ipo", "Calandriello et al. 2024, arXiv:2403.08635, eq. 11"),
    "ipo_md": Recipe("ipo_md", "mixture", "oracle", ("ref", "mixture"), ipo_pair_loss,
                     {"mixture": 0.125}, False, "ipo_md",
                     "Calandriello et al. 2024, arXiv:2403.08635, Sec. 4 (IPO-MD)"),
    "egpo": Recipe("egpo", "uniform", "win_rate", ("ref", "extragradient"), win_rate_pair_loss,
                   {}, False, "egpo",
                   "Zhou, Fazel & Du 2025, arXiv:2503.08942, Alg. 1 (online IPO loss)"),
    "nash_md": Recipe("nash_md", "mixture", "oracle", ("ref", "snapshot", "mixture"),
                      inpo_pair_loss, {**_MD, "mixture": None}, True, "nash_md",
                      "Munos et al. 2023, arXiv:2312.00886, Sec. 6 (Nash-MD), regressed by "
                      "INPO's loss on mixture pairs"),
    "nash_md_pg": Recipe("nash_md_pg", "policy_vs_mixture", "oracle", ("ref", "mixture"),
                         nash_md_pg_pair_loss, {"mixture": 0.125}, False, "nash_md_pg",
                         "Munos et al. 2023, arXiv:2312.00886, Sec. 7 (Nash-MD-PG)"),
    "xpo": Recipe("xpo", "policy_vs_ref", "oracle", ("ref",), xpo_pair_loss, {"alpha": 1e-3},
                  False, "xpo", "Xie et al. 2024, arXiv:2405.21046, Alg. 1"),
    "inpo": Recipe("inpo", "policy", "oracle", ("ref", "snapshot"), inpo_pair_loss, dict(_MD),
                   True, "inpo", "Zhang et al. 2024, arXiv:2407.00617, Sec. 4"),
    "sppo": Recipe("sppo", "policy", "oracle", ("snapshot",), sppo_pair_loss, dict(_MD), True,
                   "sppo", "Wu et al. 2024, arXiv:2405.00675, Sec. 3-4 (square loss)"),
    "dno": Recipe("dno", "policy", "oracle", ("snapshot",), dno_pair_loss, dict(_MD), True,
                  "dno", "Rosset et al. 2024, arXiv:2404.03715, Alg. 1 (step pi_t exp(r_t/eta))"),
    "comal": Recipe("comal", "policy", "oracle", ("magnet", "snapshot"), comal_pair_loss,
                    {**_MD, "period": None}, True, "comal",
                    "Liu et al. 2024, arXiv:2410.23223, Alg. 1 (INPO inner loop toward the "
                    "anchor)"),
    "mpo": Recipe("mpo", "current_vs_policy", "oracle", ("magnet", "snapshot"), mpo_pair_loss,
                  {**_MD, "period": None}, True, "mpo",
                  "Wang et al. 2024, arXiv:2410.16714, Sec. 3-4; Sokota et al. 2023, "
                  "arXiv:2206.05825, Sec. 3 (MMD)"),
    "sail_pr": Recipe("sail_pr", "policy", "oracle", ("ref",), sail_pr_pair_loss,
                      {"gamma": 0.3, "variant": "exact", "hook_scale": 1.0}, False, "sail_pr",
                      "Ding et al. 2024, arXiv:2406.15567, Sec. 4 (J_PR)"),
    "sail_pp": Recipe("sail_pp", "policy", "implicit", ("ref",), sail_pp_pair_loss,
                      {"pi": 0.2, "variant": "exact", "hook_scale": 1.0}, False, "sail_pp",
                      "Ding et al. 2024, arXiv:2406.15567, Sec. 4 (J_PP)"),
    "sail_dp": Recipe("sail_dp", "dataset", "implicit", ("ref",), sail_dp_pair_loss,
                      {"rho": 0.2}, False, "sail_dp",
                      "Ding et al. 2024, arXiv:2406.15567, Sec. 4 (J_DP)"),
    "optimistic_nlhf": Recipe(
        "optimistic_nlhf", "policy", "model", ("ref",), ipo_pair_loss, {"num_candidates": 4},
        False, "optimistic_nlhf",
        "Ye et al. 2024, arXiv:2402.07314, Alg. 2 and Sec. 6 (best-of-n enhancer); the main "
        "agent approaches NE_beta(P_hat) by online IPO on the fitted model's labels",
        collect="policy_vs_enhancer"),
}
