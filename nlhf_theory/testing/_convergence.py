"""Property-test an algorithm's convergence on games drawn by a hypothesis strategy."""

from __future__ import annotations

import hypothesis
import numpy as np

from nlhf_theory.algorithms import Algorithm, run_algorithm
from nlhf_theory.validation import InvalidInputError, check_beta

TARGETS = {"regularized_nash": "duality_gap", "nash": "exploitability"}


def assert_converges(algorithm: Algorithm, game_strategy, *, beta, steps: int,
                     to: str = "regularized_nash", tol: float = 1e-8, max_examples: int = 10,
                     derandomize: bool = True) -> None:
    """Assert that ``algorithm`` reaches an equilibrium on every game ``game_strategy`` draws.

    For each drawn game, ``algorithm`` is iterated ``steps`` times in the exact mode with
    :func:`~nlhf_theory.algorithms.run_algorithm` and its last iterate must have a duality gap
    (``to="regularized_nash"``: the certified ``pi*_beta``) or an exploitability
    (``to="nash"``: the maximal lottery) of at most ``tol``. On failure hypothesis shrinks the
    game and the ``AssertionError`` names the smallest counterexample.

    Args:
      algorithm: an :class:`~nlhf_theory.algorithms.Algorithm` (yours or the package's), built
        with its hyper-parameters.
      game_strategy: a hypothesis strategy of :class:`~nlhf_theory.PreferenceGame`, e.g.
        :func:`nlhf_theory.testing.games`.
      beta: KL coefficient of the target ``pi*_beta`` (and of the gap).
      steps: iterations per game.
      to: ``"regularized_nash"`` or ``"nash"``.
      tol: largest acceptable final gap or exploitability.
      max_examples: number of games to try.
      derandomize: draw the same games on every run (reproducible CI).

    Example:
      >>> import nlhf_theory as nt
      >>> from nlhf_theory.testing import assert_converges, games
      >>> assert_converges(nt.algorithms.inpo(beta=0.1, learning_rate=2.0),
      ...                  games(num_responses=st.integers(2, 5)), beta=0.1, steps=300)
      ...  # doctest: +SKIP
    """
    if to not in TARGETS:
        raise InvalidInputError(f"to: must be one of {tuple(TARGETS)}, got {to!r}")
    if not isinstance(game_strategy, hypothesis.strategies.SearchStrategy):
        raise TypeError(f"game_strategy: expected a hypothesis strategy, got "
                        f"{type(game_strategy).__name__}")
    beta = check_beta(beta)
    metric = TARGETS[to]

    @hypothesis.settings(max_examples=max_examples, deadline=None, derandomize=derandomize,
                         database=None, print_blob=False,
                         suppress_health_check=[hypothesis.HealthCheck.too_slow])
    @hypothesis.given(game_strategy)
    def check(game):
        frame = run_algorithm(algorithm, game, beta=beta, steps=steps)
        final = float(frame[metric].iloc[-1])
        if not np.isfinite(final) or final > tol:
            raise AssertionError(
                f"{metric} = {final:.3e} > tol = {tol:.1e} after {steps} steps on a game with "
                f"{game.num_prompts} prompt(s) and {game.num_responses} responses")

    check()
