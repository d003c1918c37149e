"""Training callbacks: exact distances to the regularized Nash equilibrium on the bridge.

On the bridge environment every response is one of ``Y = V**L`` enumerated token sequences,
so a transformer's policy is a table ``pi(y | x)`` computed exactly by enumeration, and the
package's certified solver gives the sequence-level equilibrium ``pi*_beta`` of
:meth:`Bridge.to_game`. :class:`BridgeMetricsCallback` logs, during any
``transformers.Trainer`` run, the exact duality gap of the model's policy, its KL divergence to
``pi*_beta`` and its win rate against ``pi*_beta``.
"""

from __future__ import annotations

import numpy as np
import torch
import transformers

from nlhf_theory.validation import InvalidInputError, check_beta


def bridge_metrics(bridge, policy, equilibrium, beta, game=None) -> dict:
    """Exact metrics of an enumerated ``(X, Y)`` policy on the bridge's game.

    Args:
      bridge: the bridge environment (its :meth:`to_game` unless ``game`` is given).
      policy: ``(X, Y)`` probabilities of the enumerated sequences.
      equilibrium: ``(X, Y)`` the regularized Nash equilibrium ``pi*_beta``.
      beta: KL coefficient > 0.
      game: the :class:`~nlhf_theory.PreferenceGame` (default ``bridge.to_game()``).

    Returns:
      ``{"bridge/duality_gap", "bridge/kl_to_equilibrium", "bridge/kl_from_equilibrium",
      "bridge/win_rate_vs_equilibrium", "bridge/kl_ref"}``: the gap
      ``2 beta KL(pi || BR_beta(pi))`` (zero exactly at ``pi*_beta``), ``KL(pi || pi*)``,
      ``KL(pi* || pi)`` (Munos et al.'s Thm. 1 bounds this one for Nash-MD), ``P(pi > pi*)``
      (1/2 at ``pi*``) and ``KL(pi || pi_ref)``, all averaged over prompts with ``d0``.
    """
    import nlhf_theory as nt

    game = bridge.to_game() if game is None else game
    pi = np.asarray(policy, dtype=np.float64)
    star = np.asarray(equilibrium, dtype=np.float64)
    d0 = np.asarray(game.prompt_weights, dtype=np.float64)
    log_pi, log_star = np.log(pi), np.log(star)
    return {
        "bridge/duality_gap": float(nt.duality_gap(game, pi, beta)),
        "bridge/kl_to_equilibrium": float((pi * (log_pi - log_star)).sum(-1) @ d0),
        "bridge/kl_from_equilibrium": float((star * (log_star - log_pi)).sum(-1) @ d0),
        "bridge/win_rate_vs_equilibrium": float(nt.win_rate(game, pi, star)),
        "bridge/kl_ref": float(nt.kl_to_ref(game, pi)),
    }


class BridgeMetricsCallback(transformers.TrainerCallback):
    """Log the exact duality gap, KL to ``pi*_beta`` and win rate against it during training.

    At the start of training and every ``every`` optimizer steps it enumerates the model's
    policy on the bridge (:meth:`Bridge.policy`, at ``temperature``) and computes
    :func:`bridge_metrics` against the certified equilibrium
    (:func:`nlhf_theory.solve_regularized_nash` of :meth:`Bridge.to_game`, gap <= 1e-12).
    Rows go to :attr:`history` (``{"step": ..., "bridge/...": ...}``) and, with
    :class:`~nlhf_theory.llm.NLHFTrainer`, into the Trainer's logs (so to every logging
    integration) at the next logging step.

    Args:
      bridge: the bridge environment.
      beta: KL coefficient > 0 of the game (the trainer's ``beta``).
      every: evaluate every this many optimizer steps (default 1).
      temperature: temperature of the enumerated policy (the training temperature).

    Attributes:
      equilibrium: ``(X, Y)`` the certified ``pi*_beta``.
      certificate: its duality gap (<= 1e-12).
      history: list of dicts, one per evaluation.

    References:
      Munos et al. 2023, arXiv:2312.00886, Sec. 4 and Thm. 1 (regularized Nash equilibrium,
      ``KL(pi* || pi_T)``); Ye et al. 2024, arXiv:2402.07314, Sec. 3 (the duality gap).
    """

    def __init__(self, bridge, beta, *, every: int = 1, temperature: float = 1.0):
        import nlhf_theory as nt

        self.beta = check_beta(beta)
        if not isinstance(every, int) or every < 1:
            raise InvalidInputError(f"every: must be an integer >= 1, got {every!r}")
        if not temperature > 0:
            raise InvalidInputError(f"temperature: must be > 0, got {temperature!r}")
        self.bridge = bridge
        self.every = every
        self.temperature = float(temperature)
        self.game = bridge.to_game()
        solution = nt.solve_regularized_nash(self.game, self.beta)
        self.equilibrium = np.asarray(solution.policy, dtype=np.float64)
        self.certificate = float(solution.duality_gap)
        self.history = []
        self._pending = {}

    def metrics(self, model) -> dict:
        """:func:`bridge_metrics` of ``model``'s enumerated policy."""
        with torch.no_grad():
            logp = self.bridge.logprobs(model, temperature=self.temperature)
        policy = logp.double().exp().cpu().numpy()
        policy = policy / policy.sum(-1, keepdims=True)  # float round-off only
        return bridge_metrics(self.bridge, policy, self.equilibrium, self.beta, self.game)

    def _evaluate(self, state, model):
        if model is None:
            return
        row = self.metrics(model)
        self.history.append({"step": int(state.global_step), **row})
        self._pending = row

    def pop_pending(self) -> dict:
        """The latest metrics not yet logged (emptied)."""
        pending, self._pending = self._pending, {}
        return pending

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not self.history or self.history[-1]["step"] != state.global_step:
            self._evaluate(state, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0:
            self._evaluate(state, model)
