"""Exact trajectories of a registered algorithm on a batch of same-shape games.

``nt.run`` records metrics of the last iterate only; the classification of this experiment
also needs the *average* iterate (which converges for no-regret dynamics whose last iterate
cycles), ``KL(pi*_beta || pi_t)`` (the quantity of Nash-MD's Thm. 1) and, on Bradley-Terry
games, the distance to the RLHF optimum. :func:`trajectories` iterates one algorithm of
``nt.ALGORITHMS`` (exact mode) on several (game, beta, hyper-parameters) runs at once, vmapped
and jit-compiled in float64, and records those metrics at every step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import nlhf_theory as nt
from nlhf_theory.algorithms import float64_mode, make_algorithm


def _stack(trees):
    return jax.tree_util.tree_map(lambda *a: jnp.stack([jnp.asarray(v) for v in a]), *trees)


def _kl(p, q):
    """``KL(p || q)`` per prompt (row), with 0 log 0 = 0."""
    safe = jnp.where(p > 0, p, 1.0)
    return jnp.sum(jnp.where(p > 0, p * (jnp.log(safe) - jnp.log(q)), 0.0), -1)


def trajectories(name, games, betas, hyperparameters, shared, steps, targets, reward_optima):
    """Exact metrics per step of algorithm ``name`` on B runs ``(games[i], betas[i])``.

    Args:
      name: a key of ``nt.ALGORITHMS``.
      games: B :class:`~nlhf_theory.PreferenceGame` of equal shapes.
      betas: B KL coefficients (the algorithm's and the metrics').
      hyperparameters: B dicts of real-valued hyper-parameters (vmapped; same keys).
      shared: dict of the other hyper-parameters (integers, ``None``), common to all runs.
      steps: number of updates.
      targets: (B, X, Y) certified ``pi*_beta`` of each run.
      reward_optima: (B, X, Y) RLHF optima ``pi_ref e^{r / beta} / Z`` (NaN where the game has
        no reward).

    Returns:
      dict of (B, steps + 1) NumPy arrays: ``duality_gap``, ``exploitability``, ``kl_target``
      (``KL(pi*_beta || pi_t)``) and ``l1_reward_optimum`` (``E_x ||pi_t - pi_rlhf||_1``) of
      the last iterate, and ``avg_exploitability``, the exploitability of the average
      ``(1/t) sum_{s < t} pi_s`` of the policies played so far (step 0: ``pi_0``).
    """
    for beta, hp in zip(betas, hyperparameters):  # every setting is checked concretely first
        make_algorithm(nt.ALGORITHMS, name, beta, "exact", {**shared, **hp})
    with float64_mode():
        batch = (_stack([g.astype(np.float64) for g in games]),
                 jnp.asarray(betas, jnp.float64),
                 {k: jnp.asarray([hp[k] for hp in hyperparameters], jnp.float64)
                  for k in hyperparameters[0]},
                 jnp.asarray(targets, jnp.float64), jnp.asarray(reward_optima, jnp.float64))

        def one(game, beta, hp, target, rlhf):
            alg = make_algorithm(nt.ALGORITHMS, name, beta, "exact", {**shared, **hp})
            d0 = game.prompt_weights

            def measure(policy, average):
                return {
                    "duality_gap": nt.duality_gap(game, policy, beta),
                    "exploitability": nt.exploitability(game, policy),
                    "kl_target": jnp.sum(d0 * _kl(target, policy)),
                    "l1_reward_optimum": jnp.sum(d0 * jnp.abs(policy - rlhf).sum(-1)),
                    "avg_exploitability": nt.exploitability(game, average),
                }

            key = jax.random.key(0)  # exact mode: the key is never used
            state = alg.init(game, key)
            pi0 = alg.policy(state)

            def body(carry, _):
                state, total, count = carry
                total, count = total + alg.policy(state), count + 1.0
                state = alg.update(state, game, key)
                return (state, total, count), measure(alg.policy(state), total / count)

            _, rest = jax.lax.scan(body, (state, jnp.zeros_like(pi0), 0.0), None, length=steps)
            return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]),
                                          measure(pi0, pi0), rest)

        out = jax.jit(jax.vmap(one))(*batch)
        return {k: np.asarray(v) for k, v in out.items()}


_FD_STEP = 1e-5


def contraction(name, game, beta, hyperparameters):
    """Spectral radius of the update's Jacobian (in the logits) at ``pi*_beta``.

    For an algorithm whose state is ``PolicyState(logits, step)`` and whose update does not
    depend on the step, the last iterate converges locally as ``rho^t`` and the duality gap
    (quadratic in the deviation) as ``rho^{2t}``: ``ln gap`` falls with slope ``2 ln rho``.
    """
    target = nt.solve_regularized_nash(game, beta).policy
    alg = make_algorithm(nt.ALGORITHMS, name, beta, "exact", hyperparameters)
    X, Y = target.shape
    with float64_mode():
        game64 = jax.tree_util.tree_map(jnp.asarray, game.astype(np.float64))
        key = jax.random.key(0)
        state = alg.init(game64, key)

        def step(logits):
            return alg.update(state._replace(logits=logits), game64, key).logits

        # Central differences, not autodiff: the pairwise losses stop gradients through the
        # policy that draws the pairs, which the update does depend on.
        basis = jnp.eye(X * Y).reshape(X * Y, X, Y) * _FD_STEP
        base = jnp.log(jnp.asarray(target))
        jac = jax.vmap(lambda d: (step(base + d) - step(base - d)) / (2 * _FD_STEP))(basis)
    jac = np.asarray(jac).reshape(X * Y, X * Y)
    return float(np.max(np.abs(np.linalg.eigvals(jac))))
