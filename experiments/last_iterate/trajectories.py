"""Exact trajectories of a registered algorithm on a batch of same-shape games.

``nt.run`` records metrics of the last iterate only; the classification of this experiment
also needs the *average* iterate (which converges for no-regret dynamics whose last iterate
cycles), ``KL(pi*_beta || pi_t)`` (the quantity of Nash-MD's Thm. 1) and, on Bradley-Terry
games, the distance to the RLHF optimum. :func:`trajectories` computes them from the policies
of :func:`~nlhf_theory.algorithms.policy_trajectories` (exact mode, every step).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import nlhf_theory as nt
from nlhf_theory.algorithms import float64_mode, make_algorithm, policy_trajectories


def _measure(game, beta, target, rlhf, policy, average):
    """The recorded metrics of one policy and of the average iterate (jax scalars)."""
    d0 = game.prompt_weights
    return {
        "duality_gap": nt.duality_gap(game, policy, beta),
        "exploitability": nt.exploitability(game, policy),
        "kl_target": nt.kl_divergence(game, target, policy),
        "l1_reward_optimum": jnp.sum(d0 * jnp.abs(policy - rlhf).sum(-1)),
        "avg_exploitability": nt.exploitability(game, average),
    }


#: :func:`_measure` over runs and their recorded steps (compiled once per shape).
_metrics = jax.jit(jax.vmap(jax.vmap(_measure, in_axes=(None, None, None, None, 0, 0))))


def running_average(policies: np.ndarray) -> np.ndarray:
    """``(1/t) sum_{s < t} pi_s`` at every step ``t`` of (B, T + 1, X, Y) policies (step 0:
    ``pi_0``)."""
    played = np.cumsum(policies[:, :-1], axis=1) / np.arange(1, policies.shape[1])[:, None, None]
    return np.concatenate([policies[:, :1], played], axis=1)


def trajectories(name, games, betas, hyperparameters, shared, steps, record, targets,
                 reward_optima):
    """Exact metrics at the steps ``record`` of algorithm ``name`` on B runs
    ``(games[i], betas[i])``.

    Args:
      name: a key of ``nt.ALGORITHMS``.
      games: B :class:`~nlhf_theory.PreferenceGame` of equal shapes.
      betas: B KL coefficients (the algorithm's and the metrics').
      hyperparameters: B dicts of real-valued hyper-parameters (vmapped; same keys).
      shared: dict of the other hyper-parameters (integers, ``None``), common to all runs.
      steps: number of updates.
      record: (R,) recorded steps in ``[0, steps]``.
      targets: (B, X, Y) certified ``pi*_beta`` of each run.
      reward_optima: (B, X, Y) RLHF optima ``pi_ref e^{r / beta} / Z`` (NaN where the game has
        no reward).

    Returns:
      dict of (B, R) NumPy arrays: ``duality_gap``, ``exploitability``, ``kl_target``
      (``KL(pi*_beta || pi_t)``) and ``l1_reward_optimum`` (``E_x ||pi_t - pi_rlhf||_1``) of
      the last iterate, and ``avg_exploitability``, the exploitability of the average
      ``(1/t) sum_{s < t} pi_s`` of the policies played so far (step 0: ``pi_0``).
    """
    def make(hp):
        hp = dict(hp)
        return make_algorithm(nt.ALGORITHMS, name, hp.pop("beta"), "exact", {**shared, **hp})

    grid = {"beta": betas, **{k: [hp[k] for hp in hyperparameters] for k in hyperparameters[0]}}
    policies = policy_trajectories(make, games, grid, checkpoints=np.arange(steps + 1),
                                   chunk=steps)[:, 0]  # one segment: every policy is kept
    averages = running_average(policies)[:, record]
    with float64_mode():
        out = _metrics(
            jax.tree_util.tree_map(jnp.asarray, nt.stack_games(games)),
            jnp.asarray(betas, jnp.float64),
            jnp.asarray(targets, jnp.float64), jnp.asarray(reward_optima, jnp.float64),
            jnp.asarray(policies[:, record]), jnp.asarray(averages))
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
