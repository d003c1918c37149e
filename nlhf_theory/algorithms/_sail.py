"""SAIL (Ding et al. 2024): bilevel self-improving online alignment, exact and as implemented.

Notation (``docs/conventions.md``): ``h = beta [log(pi/pi_ref)(y_w) - log(pi/pi_ref)(y_l)]``,
``l = log sigma(h)``, ``S = grad log pi(y_w) + grad log pi(y_l)``. The objective (maximized) is
the mixture ``(1 - r - p - g) J_DPO + r J_DP + p J_PP + g J_PR`` of four routes:

* ``J_DPO``: offline DPO on the dataset (pairs from the behaviour ``mu``, oracle labels);
* ``J_PR`` (SAIL-PR, code route DPR): pairs ``y, y' ~ pi`` labelled by the oracle; gradient
  ``E[grad l + gamma l S]`` (the response distribution depends on the policy);
* ``J_PP`` (SAIL-PP, DPP): pairs ``y, y' ~ pi`` labelled by the policy's own implicit model
  ``sigma(h)``; gradient ``E[(1 + pi_c l) grad l + pi_c l S]``;
* ``J_DP`` (SAIL-DP, DDP): dataset pairs relabelled by ``sigma(h)``; gradient
  ``E[(1 + rho l) grad l]``.

With coefficients 1 these are the exact gradients of the expected log-likelihoods; the
coefficients are the paper's knobs. ``variant="implemented"`` reproduces the authors' code
(``xudongwu-0/SAIL``, the fork that keeps the first author's commits; at commit ``c3a4ef30``,
``cdpo/cdpo_trainer.py``, ``dpo_loss``, gradient hooks L1140-1183), whose hook adds
``c l / log pi(y)`` instead of ``c l`` to the gradient of each ``log pi(y)`` (it divides by the
negative sequence log-probability, which rescales and flips the sign of the response term).
The hook adds its term per sample, without the ``1 / (B x GA)`` factor of the batch-mean loss
(per-device batch ``B``, gradient accumulation ``GA``), so relative to the loss the response
term is ``hook_scale = B x GA`` times larger: 8 in the authors' configuration (``B = 4`` on RTX
A6000 in ``configs/devices/devices.yaml``, ``GA = 2`` in ``configs/pipelines/optim.yaml``).
SAIL-PR's oracle labels are Bernoulli draws from ``P`` (the paper's ``p*``,
``labels="bernoulli"``) or, as in the authors' code (``_label_generated_by_reward``, L1837),
the argmax of the reward model's scores (``labels="argmax"``: ``y`` wins iff ``P(y > y') >
1/2``; ties keep the drawn order).

Each route is written as a surrogate whose autodiff gradient is the one above (stop-gradient
on the weights), so the exact mode computes population gradients and the sampled mode their
unbiased estimates; a route's mixing weight multiplies its term instead of routing slots at
random (equal in expectation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nlhf_theory import losses
from nlhf_theory import validation as checks
from nlhf_theory.algorithms._base import Algorithm, log_softmax, policy_from_logits
from nlhf_theory.algorithms._defaults import online_dpo_rule, step_size
from nlhf_theory.algorithms._offline import OfflineState, dataset_init
from nlhf_theory.algorithms._targets import reward_optimum_target
from nlhf_theory.data import pair_expectation, pair_weights
from nlhf_theory.validation import InvalidInputError

VARIANTS = ("exact", "implemented")
LABELS = ("bernoulli", "argmax")
#: ``hook_scale`` of the authors' configuration: per-device train batch 4 x gradient
#: accumulation 2 (``xudongwu-0/SAIL``: ``configs/pipelines/optim.yaml`` and
#: ``configs/devices/devices.yaml`` for RTX A6000).
AUTHORS_HOOK_SCALE = 8.0


#: SAIL's state: an :class:`~nlhf_theory.algorithms.OfflineState` (logits, the offline
#: dataset of the sampled mode, the step count).
SailState = OfflineState


#: ``l = log sigma(h)``, ``y`` preferred to ``y'`` (:func:`nlhf_theory.losses.log_sigmoid_margin`).
_log_sigmoid_margin = losses.log_sigmoid_margin


def argmax_labels(P):
    """Probability that ``y`` is labelled the winner of an ordered draw ``(y, y')`` under the
    authors' deterministic labels: 1 if ``P(y > y') > 1/2``, 0 if below, and 1/2 at a tie
    (the drawn order is kept and both orders are equally likely)."""
    return jnp.where(P > 0.5, 1.0, jnp.where(P < 0.5, 0.0, 0.5)).astype(P.dtype)


def sail_objective(logits, game, data, key, *, beta, weights, coefficients, variant, mode,
                   batch_size, behaviour=None, hook_scale=1.0, labels="bernoulli"):
    """The SAIL surrogate objective (to maximize) whose gradient is the mixture gradient.

    Args:
      logits: (X, Y) policy logits.
      game: the game.
      data: the offline :class:`Dataset` (sampled mode) or ignored (exact mode).
      key: PRNG key (sampled mode).
      beta: KL coefficient.
      weights: ``(r, p, g)`` mixing weights of SAIL-DP, SAIL-PP, SAIL-PR.
      coefficients: ``(rho, pi, gamma)`` extra-gradient coefficients.
      variant: ``"exact"`` or ``"implemented"``.
      mode: ``"exact"`` or ``"sampled"``.
      batch_size: on-policy pairs per prompt (sampled mode).
      behaviour: (X, Y) data policy of the offline part (default ``pi_ref``).
      hook_scale: weight of the implemented hook's term relative to the loss (``variant=
        "implemented"`` only; see :func:`sail`).
      labels: SAIL-PR's oracle labels, ``"bernoulli"`` or ``"argmax"`` (see :func:`sail`).

    Returns:
      A scalar whose gradient is the SAIL update direction.
    """
    r, p, g = weights
    rho, pi_c, gamma = coefficients
    sg = jax.lax.stop_gradient
    logp = log_softmax(logits)
    log_ref = jnp.log(jnp.asarray(game.pi_ref))
    P = jnp.asarray(game.P)
    d0 = jnp.asarray(game.prompt_weights)
    X, _ = logits.shape
    if mode == "exact":
        a, b = logp[:, :, None], logp[:, None, :]
        ra, rb = log_ref[:, :, None], log_ref[:, None, :]
        ell = _log_sigmoid_margin(a, b, ra, rb, beta)  # (X, Y, Y): y preferred to y'
        self_label = jnp.exp(ell)
        mu = jnp.asarray(game.pi_ref if behaviour is None else behaviour)
        data_pairs = pair_weights(mu, mu)
        on_policy = sg(jnp.exp(a) * jnp.exp(b))
        oracle = P if labels == "bernoulli" else argmax_labels(P)

        def expect(weight, values):
            # ordered pairs (y, y') with y the winner: a drawn pair (y1, y2) is oriented
            # either way, hence the factor 2 (the per-comparison expectation).
            return 2.0 * pair_expectation(d0, weight, values)

        # The terms of losses.sail_term, written out so that PP and PR share one response
        # term (the same floating-point results as before the term moved to losses).
        response = losses.sail_response_term(ell, a, b, variant, hook_scale)
        dpo = expect(data_pairs * P, ell)
        dp = expect(data_pairs * sg(self_label), ell + 0.5 * rho * ell**2)
        pp = expect(on_policy * sg(self_label), ell + 0.5 * pi_c * ell**2 + pi_c * response)
        pr = expect(on_policy * oracle, ell + gamma * response)
        return (1.0 - r - p - g) * dpo + r * dp + p * pp + g * pr

    k_pairs, k_pp, k_pr, k_dp = jax.random.split(key, 4)
    x = jnp.arange(X)[:, None]
    y = jax.random.categorical(k_pairs, sg(logp)[:, None, :], axis=-1, shape=(2, X, batch_size))

    def oriented(first, second, winner_first):
        """(log pi, ref) of winner and loser given a boolean orientation."""
        w = jnp.where(winner_first, first, second)
        lo = jnp.where(winner_first, second, first)
        return logp[x, w], logp[x, lo], log_ref[x, w], log_ref[x, lo]

    # On-policy pairs: SAIL-PR labels from the oracle (a draw, or the code's argmax: y1 wins
    # unless it scores lower), SAIL-PP from sigma(h).
    y1, y2 = y[0], y[1]
    first = (jax.random.bernoulli(k_pr, P[x, y1, y2]) if labels == "bernoulli"
             else P[x, y1, y2] >= 0.5)
    lw, ll, rw, rl = oriented(y1, y2, first)
    pr = jnp.sum(d0 * losses.sail_term(lw, ll, rw, rl, beta, 0.0, gamma, variant,
                                       hook_scale).mean(-1))
    s = jnp.exp(_log_sigmoid_margin(logp[x, y1], logp[x, y2], log_ref[x, y1], log_ref[x, y2],
                                    beta))
    lw, ll, rw, rl = oriented(y1, y2, jax.random.bernoulli(k_pp, sg(s)))
    pp = jnp.sum(d0 * losses.sail_term(lw, ll, rw, rl, beta, pi_c, pi_c, variant,
                                       hook_scale).mean(-1))
    # Dataset pairs: DPO with the data's labels, SAIL-DP relabelled by sigma(h).
    dx, dy, dy2, dlabel = data
    won = dlabel.astype(bool)
    w = jnp.where(won, dy, dy2)
    lo = jnp.where(won, dy2, dy)
    dpo = _log_sigmoid_margin(logp[dx, w], logp[dx, lo], log_ref[dx, w], log_ref[dx, lo],
                              beta).mean()
    s = jnp.exp(_log_sigmoid_margin(logp[dx, dy], logp[dx, dy2], log_ref[dx, dy],
                                    log_ref[dx, dy2], beta))
    first = jax.random.bernoulli(k_dp, sg(s))
    w = jnp.where(first, dy, dy2)
    lo = jnp.where(first, dy2, dy)
    dp = losses.sail_term(logp[dx, w], logp[dx, lo], log_ref[dx, w], log_ref[dx, lo], beta,
                          rho).mean()
    return (1.0 - r - p - g) * dpo + r * dp + p * pp + g * pr


def sail(beta, learning_rate=None, *, r: float = 0.0, rho: float = 0.0, p: float = 0.0,
         pi: float = 0.0, g: float = 0.0, gamma: float = 0.0, variant: str = "exact",
         mode: str = "exact", pairs_per_prompt: int = 64, num_pairs: int = 1000, behaviour=None,
         dataset=None, hook_scale=None, labels: str = "bernoulli") -> Algorithm:
    """SAIL with every route mixed: offline DPO, SAIL-DP, SAIL-PP and SAIL-PR.

    Gradient ascent on the mixture objective of :func:`sail_objective`:
    ``theta_{t+1} = theta_t + lr grad [(1 - r - p - g) J_DPO + r J_DP + p J_PP + g J_PR]``
    with the route gradients of the module docstring, ``lr`` = ``learning_rate``, ``beta`` =
    ``beta`` (inside ``h``) and ``r, rho``, ``p, pi_c``, ``g, gamma`` = ``r, rho``, ``p, pi``,
    ``g, gamma``. All mixing weights 0 is offline DPO; ``g = 1, gamma = 0`` is online DPO.

    Target: ``alg.target.kind`` is ``"reward_optimum"`` whatever the weights, coefficients
    and variant (the claim of the DPO objective SAIL extends; its policy needs a
    Bradley-Terry game).

    Args:
      beta: KL coefficient > 0 (DPO's beta).
      learning_rate: gradient step on the logits > 0 (default None: online DPO's rule
        ``2 eta* / (beta w)``, :data:`~nlhf_theory.algorithms.DEFAULT_RULES`).
      r, rho: SAIL-DP mixing weight in [0, 1] and coefficient >= 0 (code: ``r``, ``rho``;
        defaults 0.0).
      p, pi: SAIL-PP mixing weight in [0, 1] and coefficient >= 0 (code: ``p``, ``pi``;
        defaults 0.0).
      g, gamma: SAIL-PR mixing weight in [0, 1] and coefficient >= 0 (code: ``g``,
        ``gamma``; defaults 0.0); ``r + p + g <= 1``.
      variant: ``"exact"`` (default, the derivation's gradient) or ``"implemented"`` (the
        authors' hook, dividing the response term by ``log pi``).
      mode: ``"exact"`` (default) or ``"sampled"``.
      pairs_per_prompt: on-policy pairs per prompt in the sampled mode, >= 1 (default 64).
      num_pairs: size of the offline dataset in the sampled mode, >= 1 (default 1000).
      behaviour: (X, Y) data policy of the offline dataset (default None: ``pi_ref``).
      dataset: a :class:`~nlhf_theory.algorithms.Dataset` to use as the offline data
        (default None).
      hook_scale: ``variant="implemented"`` only: the factor by which the hook's term outweighs
        the batch-mean loss. The authors' hook adds ``c l / log pi(y)`` to the gradient of each
        sequence log-probability per sample, without the ``1 / (B x GA)`` of the loss (per-device
        batch ``B``, gradient accumulation ``GA``), so the response term weighs ``B x GA`` times
        its share of the loss. Default None: ``8.0``, the authors' configuration (``B = 4`` on
        RTX A6000, ``GA = 2``); ``1.0`` normalizes the hook like the loss (this library's
        ``"implemented"`` variant before issue 8). Passing it with ``variant="exact"`` is an
        error.
      labels: SAIL-PR's oracle labels: ``"bernoulli"`` (default; ``y`` wins with probability
        ``P(y > y')``, the paper's ``p*``) or ``"argmax"`` (the authors' code, which swaps a pair
        when the reward model scores the chosen response lower: ``y`` wins iff ``P(y > y') >
        1/2``, ties keep the drawn order). SAIL-PP and SAIL-DP labels are unaffected.

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a :class:`SailState` (an
      :class:`~nlhf_theory.algorithms._offline.OfflineState`).

    Example:
      >>> import jax, nlhf_theory as nt
      >>> alg = nt.algorithms.sail(0.1, 1.0, g=0.3, gamma=0.3, variant="implemented",
      ...                          labels="argmax")
      >>> game = nt.make_game("comal_cyclic")
      >>> state = alg.update(alg.init(game, jax.random.key(0)), game, jax.random.key(1))
      >>> int(state.step), alg.target.kind
      (1, 'reward_optimum')

    References:
      Ding et al. 2024, arXiv:2406.15567 (SAIL-PR, SAIL-PP, SAIL-DP: code routes DPR, DPP,
      DDP); official code ``xudongwu-0/SAIL`` (the fork that
      keeps the first author's commits), commit ``c3a4ef30``, ``cdpo/cdpo_trainer.py``:
      ``dpo_loss`` hooks L1140-1183, DPR labels L1837; route defaults in
      ``configs/tasks.yaml``.
    """
    beta = checks.positive(beta, "beta")
    step = step_size(learning_rate, online_dpo_rule(beta))
    weights = tuple(checks.unit_interval(v, name) for v, name in ((r, "r"), (p, "p"), (g, "g")))
    if not any(checks.traced(w) for w in weights) and sum(weights) > 1.0 + 1e-12:
        raise InvalidInputError(f"r + p + g: mixing weights must sum to at most 1, got "
                                f"{sum(weights):g}")
    coefficients = tuple(checks.nonnegative(v, name) for v, name in
                         ((rho, "rho"), (pi, "pi"), (gamma, "gamma")))
    checks.check_choice(variant, "variant", VARIANTS)
    if hook_scale is None:
        hook_scale = AUTHORS_HOOK_SCALE if variant == "implemented" else 1.0
    elif variant != "implemented":
        raise InvalidInputError("hook_scale: applies to variant='implemented' only (the exact "
                                f"gradient has no hook), got variant={variant!r}")
    else:
        hook_scale = checks.positive(hook_scale, "hook_scale")
    checks.check_choice(labels, "labels", LABELS)
    mode = checks.check_mode(mode)
    batch_size = checks.positive_int(pairs_per_prompt, "pairs_per_prompt")
    num_pairs = checks.positive_int(num_pairs, "num_pairs")

    init = dataset_init(mode, num_pairs, behaviour, dataset)

    def update(state, game, key):
        grad = jax.grad(sail_objective)(
            state.logits, game, state.data, key, beta=beta, weights=weights,
            coefficients=coefficients, variant=variant, mode=mode, batch_size=batch_size,
            behaviour=behaviour, hook_scale=hook_scale, labels=labels)
        return state._replace(logits=log_softmax(state.logits + step(game) * grad),
                              step=state.step + 1)

    return Algorithm(init, update, policy_from_logits, reward_optimum_target(beta))


def sail_pr(beta, learning_rate=None, gamma: float = 0.3, g: float = 1.0, *, variant="exact",
            mode="exact", pairs_per_prompt=64, num_pairs=1000, behaviour=None, dataset=None,
            hook_scale=None, labels="bernoulli"):
    """SAIL-PR: on-policy pairs with oracle labels and the response term ``gamma``.

    ``theta_{t+1} = theta_t + lr [(1 - g) grad J_DPO + g E_{y, y' ~ pi_t}[grad l + gamma l
    S]]``, pairs labelled by the oracle (``labels``), with ``lr`` = ``learning_rate``, ``g`` =
    ``g``, ``gamma`` = ``gamma`` and ``l``, ``S``, ``J_DPO`` as in the module docstring
    (``beta`` = ``beta`` inside ``l``). ``gamma = 0``, ``g = 1`` is online DPO.

    Target: ``alg.target.kind`` is ``"reward_optimum"`` for every setting, as for :func:`sail`.

    Args:
      gamma: the response-term coefficient >= 0 (default 0.3, the code's).
      g: weight in [0, 1] of this route, the rest being offline DPO (default 1.0; the code's
        route uses 0.3).
      beta, learning_rate, variant, mode, pairs_per_prompt, num_pairs, behaviour, dataset,
        hook_scale, labels: as in :func:`sail`, with the same defaults.

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a :class:`SailState`:
      :func:`sail`'s, with ``g`` and ``gamma`` set.

    Example:
      With ``gamma = 0`` and ``g = 1`` one step is online DPO's:

      >>> import jax, numpy as np, nlhf_theory as nt
      >>> game, key = nt.make_game("comal_cyclic"), jax.random.key(0)
      >>> a, b = nt.algorithms.sail_pr(0.1, 1.0, gamma=0.0), nt.algorithms.online_dpo(0.1, 1.0)
      >>> sa, sb = (f.update(f.init(game, key), game, key) for f in (a, b))
      >>> bool(np.allclose(a.policy(sa), b.policy(sb)))
      True

    References:
      Ding et al. 2024, arXiv:2406.15567; code route DPR (defaults g = 0.3, gamma = 0.3 in
      ``xudongwu-0/SAIL``, ``configs/tasks.yaml``).
    """
    return sail(beta, learning_rate, g=g, gamma=gamma, variant=variant, mode=mode,
                pairs_per_prompt=pairs_per_prompt, num_pairs=num_pairs, behaviour=behaviour,
                dataset=dataset, hook_scale=hook_scale, labels=labels)


def sail_pp(beta, learning_rate=None, pi: float = 0.2, p: float = 1.0, *, variant="exact",
            mode="exact", pairs_per_prompt=64, num_pairs=1000, behaviour=None, dataset=None,
            hook_scale=None):
    """SAIL-PP: on-policy pairs labelled by the policy's implicit model, coefficient ``pi``.

    ``theta_{t+1} = theta_t + lr [(1 - p) grad J_DPO + p E[(1 + pi_c l) grad l + pi_c l S]]``
    over pairs ``y, y' ~ pi_t`` labelled by ``sigma(h)``, with ``lr`` = ``learning_rate``,
    ``p`` = ``p``, ``pi_c`` = ``pi`` and ``h``, ``l``, ``S`` as in the module docstring.

    Target: ``alg.target.kind`` is ``"reward_optimum"`` for every setting, as for :func:`sail`.

    Args:
      pi: the coefficient ``pi_c`` >= 0 of the label and response terms (default 0.2, the
        code's).
      p: weight in [0, 1] of this route (default 1.0; the code's route uses 0.3).
      beta, learning_rate, variant, mode, pairs_per_prompt, num_pairs, behaviour, dataset,
        hook_scale: as in :func:`sail`, with the same defaults.

    Returns:
      :func:`sail`'s :class:`~nlhf_theory.algorithms.Algorithm` (state :class:`SailState`)
      with ``p`` and ``pi`` set.

    Example:
      Self-labelled pairs carry no signal at ``pi_ref``, so the exact gradient vanishes there:

      >>> import jax, numpy as np, nlhf_theory as nt
      >>> game, key = nt.make_game("bradley_terry"), jax.random.key(0)
      >>> alg = nt.algorithms.sail_pp(0.1, 1.0)
      >>> policy = alg.policy(alg.update(alg.init(game, key), game, key))
      >>> bool(np.allclose(policy, game.pi_ref))
      True

    References:
      Ding et al. 2024, arXiv:2406.15567; the code's route DPP, with p = 0.3 and pi = 0.2 in
      ``xudongwu-0/SAIL``, ``configs/tasks.yaml``.
    """
    data = {"num_pairs": num_pairs, "behaviour": behaviour, "dataset": dataset}
    return sail(beta, learning_rate, p=p, pi=pi, variant=variant, mode=mode,
                pairs_per_prompt=pairs_per_prompt, hook_scale=hook_scale, **data)


def sail_dp(beta, learning_rate=None, rho: float = 0.2, r: float = 1.0, *, variant="exact",
            mode="exact", pairs_per_prompt=64, num_pairs=1000, behaviour=None, dataset=None):
    """SAIL-DP: dataset pairs relabelled by the policy's implicit model, coefficient ``rho``.

    ``theta_{t+1} = theta_t + lr [(1 - r) grad J_DPO + r E[(1 + rho l) grad l]]`` over the
    dataset's pairs relabelled by ``sigma(h)``, with ``lr`` = ``learning_rate``, ``r`` =
    ``r``, ``rho`` = ``rho`` and ``h``, ``l`` as in the module docstring (no response term,
    so ``variant`` does not change it).

    Target: ``alg.target.kind`` is ``"reward_optimum"`` for every setting, as for :func:`sail`.

    Args:
      rho: the label-term coefficient >= 0 (default 0.2, the code's).
      r: weight in [0, 1] of this route (default 1.0; the code's route uses 0.4).
      beta, learning_rate, variant, mode, pairs_per_prompt, num_pairs, behaviour, dataset:
        as in :func:`sail`, with the same defaults.

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a :class:`SailState`:
      :func:`sail`'s, with ``r`` and ``rho`` set.

    Example:
      Half DP, half offline DPO; the hook variant does not change the DP route:

      >>> import jax, numpy as np, nlhf_theory as nt
      >>> game, key = nt.make_game("condorcet_winner"), jax.random.key(0)
      >>> a, b = (nt.algorithms.sail_dp(0.1, 1.0, r=0.5, variant=v)
      ...         for v in ("exact", "implemented"))
      >>> sa, sb = (f.update(f.init(game, key), game, key) for f in (a, b))
      >>> pa, pb = a.policy(sa), b.policy(sb)
      >>> bool(np.allclose(pa, pb)), bool(np.allclose(pa, game.pi_ref))
      (True, False)

    References:
      Ding et al. 2024, arXiv:2406.15567; code route DDP (defaults r = 0.4, rho = 0.2 in
      ``xudongwu-0/SAIL``, ``configs/tasks.yaml``).
    """
    return sail(beta, learning_rate, r=r, rho=rho, variant=variant, mode=mode,
                pairs_per_prompt=pairs_per_prompt, num_pairs=num_pairs, behaviour=behaviour,
                dataset=dataset)
