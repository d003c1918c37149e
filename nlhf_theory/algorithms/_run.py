"""The ``run`` driver: iterate an algorithm on a game and record exact metrics per step, or
its policies (:func:`policy_trajectories`)."""

from __future__ import annotations

import inspect
import itertools
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from nlhf_theory import validation as checks
from nlhf_theory._arrays import float64_mode
from nlhf_theory.equilibria import solve_regularized_nash
from nlhf_theory.games import PreferenceGame, stack_games
from nlhf_theory.metrics import duality_gap, exploitability, kl_to_ref, win_rate
from nlhf_theory.validation import InvalidInputError, check_beta

METRICS = ("duality_gap", "suboptimality", "exploitability", "kl_ref", "win_rate_ref",
           "win_rate_nash")


def step_metrics(game, policy, beta, nash_policy):
    """The recorded metrics of one policy (jax arrays; usable under ``jit``/``vmap``)."""
    gap = duality_gap(game, policy, beta)
    return {
        "duality_gap": gap,
        "suboptimality": gap / 2.0,
        "exploitability": exploitability(game, policy),
        "kl_ref": kl_to_ref(game, policy),
        "win_rate_ref": win_rate(game, policy, jnp.asarray(game.pi_ref)),
        "win_rate_nash": win_rate(game, policy, nash_policy),
    }


#: Hyper-parameters renamed so that each name means one count (docs/algorithms.md).
RENAMED = {
    "batch_size": "pairs_per_prompt (sampled losses), comparisons_per_response (sampled win "
                  "rates), comparisons_per_round (optimistic_nlhf)",
    "inner_steps": "loss_steps (loss forms), period (COMAL's INPO steps per anchor)",
    "inner_learning_rate": "loss_learning_rate",
}


def make_algorithm(registry, name, beta, mode, hyperparameters):
    """Build ``registry[name]`` with ``beta`` and ``mode`` where its factory takes them."""
    if name not in registry:
        raise InvalidInputError(
            f"algorithm: unknown name {name!r}; known algorithms: {', '.join(registry)}")
    factory = registry[name]
    params = inspect.signature(factory).parameters
    kwargs = dict(hyperparameters)
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        hint = RENAMED.get(unknown[0], "")
        raise InvalidInputError(
            f"{unknown[0]}: not a hyper-parameter of {name!r} (it takes: {', '.join(params)})"
            + (f"; renamed: {hint}" if hint else ""))
    if "beta" in params:
        kwargs["beta"] = beta
    if "mode" in params:
        kwargs["mode"] = mode
    elif mode != "exact":
        raise InvalidInputError(f"mode: {name!r} only has the exact mode, got {mode!r}")
    try:
        return factory(**kwargs)
    except InvalidInputError:
        raise
    except (TypeError, ValueError) as exc:  # e.g. a value of the wrong type deep in a factory
        raise InvalidInputError(
            f"{name}: invalid hyper-parameters {hyperparameters!r} ({exc})") from exc


def run_algorithm(algorithm, game: PreferenceGame, *, beta, steps: int, seeds: int = 1,
                  seed: int = 0, chunk: int = 500, progress: bool | None = None) -> pd.DataFrame:
    """Iterate ``algorithm`` for ``steps`` updates on ``game`` and record exact metrics.

    The trajectory is computed in float64 (jax's x64 mode is switched on for the duration of
    the call and restored afterwards), jit-compiled with ``lax.scan`` in chunks of ``chunk``
    steps and vmapped over ``seeds`` independent PRNG streams. Metrics are computed exactly
    from ``P`` at every step, against the certified regularized equilibrium ``pi*_beta``.

    Args:
      algorithm: an :class:`~nlhf_theory.algorithms.Algorithm`.
      game: a :class:`~nlhf_theory.PreferenceGame`.
      beta: the KL coefficient of the metrics (duality gap, suboptimality, ``pi*_beta``).
      steps: number of updates >= 1.
      seeds: number of independent runs (vmapped).
      seed: base seed; run ``i`` uses ``jax.random.fold_in(key(seed), i)``.
      chunk: steps per compiled segment (progress is reported between segments).
      progress: show a progress bar (default: when ``steps > 10 * chunk`` and stderr is a tty).

    Returns:
      A DataFrame with one row per (seed, step), step 0 being the initial policy, and the
      columns ``step, seed`` and :data:`METRICS`.
    """
    return run_sweep(lambda hp: algorithm, {}, game, beta=beta, steps=steps, seeds=seeds,
                     seed=seed, chunk=chunk, progress=progress)


def run_sweep(make, grid, game: PreferenceGame, *, beta, steps: int, seeds: int = 1,
              seed: int = 0, chunk: int = 500, progress: bool | None = None) -> pd.DataFrame:
    """:func:`run_algorithm` vmapped over a grid of hyper-parameters as well as seeds.

    Args:
      make: ``make(hyperparameters) -> Algorithm``, called with a dict of traced scalars (the
        factories of :data:`~nlhf_theory.ALGORITHMS` accept them: their checks run on concrete
        values only, so check the grid concretely first, as :func:`~nlhf_theory.run` does).
      grid: dict ``name -> 1-d array`` of equal lengths G: the hyper-parameter settings.
      game, beta, steps, seeds, seed, chunk, progress: as in :func:`run_algorithm`.

    Returns:
      A DataFrame with one row per (setting, seed, step): columns ``step, seed``, one column
      per swept hyper-parameter, and :data:`METRICS`.
    """
    beta = check_beta(beta)
    steps = checks.positive_int(steps, "steps")
    seeds = checks.positive_int(seeds, "seeds")
    chunk = checks.positive_int(chunk, "chunk")
    if not isinstance(game, PreferenceGame):
        raise InvalidInputError(f"game: expected a PreferenceGame, got {type(game).__name__}")
    grid, settings = _check_grid(grid, "sweep")
    nash = solve_regularized_nash(game, beta).policy
    if progress is None:
        progress = steps > 10 * chunk and sys.stderr.isatty()
    batch = settings * seeds  # run b: setting b // seeds, seed b % seeds
    with float64_mode():
        game64 = jax.tree_util.tree_map(jnp.asarray, game.astype(np.float64))
        nash64 = jnp.asarray(nash)
        keys = jnp.tile(_seed_keys(seed, seeds), settings)
        hps = {k: jnp.repeat(jnp.asarray(v), seeds) for k, v in grid.items()}

        def measure(algorithm, state, game):
            return step_metrics(game, algorithm.policy(state), beta, nash64)

        def start(hp, key):
            algorithm, carry = _start(make, hp, game64, key)
            return carry, measure(algorithm, carry[0], game64)

        body = _segment(make, measure)  # the game a constant of the compiled segment
        segment = jax.vmap(jax.jit(lambda carry, hp, marker: body(carry, hp, game64, marker)),
                           in_axes=(0, 0, None))
        carry, first = jax.jit(jax.vmap(start))(hps, keys)
        pieces = [{k: np.asarray(v)[:, None] for k, v in first.items()}]
        for _, out in _segments(segment, carry, (hps,), steps, chunk, progress):
            pieces.append({k: np.asarray(v) for k, v in out.items()})
    columns = {k: np.concatenate([p[k] for p in pieces], axis=1) for k in METRICS}
    frame = pd.DataFrame({
        "step": np.tile(np.arange(steps + 1), batch),
        "seed": np.repeat(np.tile(np.arange(seeds), settings), steps + 1),
        **{k: np.repeat(v, seeds * (steps + 1)) for k, v in grid.items()},
        **{k: v.reshape(-1) for k, v in columns.items()},
    })
    return frame


def policy_trajectories(make, games, grid=None, *, checkpoints, seeds: int = 1,
                        seed: int = 0, chunk: int = 500,
                        progress: bool | None = None) -> np.ndarray:
    """The policies of ``make(hp)`` at ``checkpoints``, vmapped over zipped runs and seeds.

    Run ``i`` iterates ``make(grid values i)`` on ``games[i]`` (a single game is shared by
    every run); seed ``s`` uses the keys of :func:`run_sweep` (``fold_in(key(seed), s)``, split
    into an init and a run key, one split per update), so these are the policies behind the
    metrics of :func:`~nlhf_theory.run`. Every setting is first built concretely (the
    factories check it), then runs and seeds are vmapped and jit-compiled in float64.

    Args:
      make: ``make(hyperparameters) -> Algorithm``, called with a dict of scalars (traced in
        the computation; the factories of :data:`~nlhf_theory.ALGORITHMS` accept them, ``beta``
        included).
      games: a :class:`~nlhf_theory.PreferenceGame`, or a sequence of R of equal shapes.
      grid: dict ``name -> 1-d array`` of R values each (R = the number of games when both are
        given); None or empty: every run gets ``make({})``.
      checkpoints: (C,) strictly increasing step counts >= 0 (``np.arange(steps + 1)``: every
        step), the steps after which the policy is recorded (0: the initial policy).
      seeds: number of independent PRNG streams per run.
      seed: base seed.
      chunk, progress: as in :func:`run_algorithm` (steps per compiled segment, progress bar);
        ``chunk`` is lowered where one segment's recorded policies (runs x seeds x steps x X x
        Y float64 numbers) would pass 512 MB: every step's policy is recorded on the device
        and the checkpoints are picked from it.

    Returns:
      Array (R, seeds, C, X, Y) of float64 policies (R = 1 for one game and no grid).

    Example:
      >>> import nlhf_theory as nt
      >>> from nlhf_theory.algorithms import inpo, policy_trajectories
      >>> pols = policy_trajectories(lambda hp: inpo(0.1, hp["learning_rate"]),
      ...                            nt.make_game("comal_cyclic"), {"learning_rate": [0.5, 1.0]},
      ...                            checkpoints=[0, 10, 50], seeds=2)
      >>> pols.shape
      (2, 2, 3, 1, 3)
    """
    if not callable(make):
        raise InvalidInputError(f"make: expected a callable, got {type(make).__name__}")
    grid, settings = _check_grid(grid or {}, "grid")
    checkpoints = _check_checkpoints(checkpoints)
    seeds = checks.positive_int(seeds, "seeds")
    chunk = checks.positive_int(chunk, "chunk")
    steps = int(checkpoints[-1])
    with float64_mode():
        stacked, runs = _stack_games(games)
        if grid and runs is not None and runs != settings:
            raise InvalidInputError(f"grid: needs one value per game ({runs}), got {settings}")
        chunk = _recording_chunk(chunk, (settings if runs is None else runs) * seeds,
                                 stacked.pi_ref.shape[-2] * stacked.pi_ref.shape[-1])
        if progress is None:
            progress = steps > 10 * chunk and sys.stderr.isatty()
        for i in range(settings if grid else 1):  # the factories check concrete settings
            make({k: float(v[i]) for k, v in grid.items()})

        policy = _segment(make, lambda algorithm, state, game: algorithm.policy(state))

        def begin(hp, game, key, length_marker):  # the initial policy and the first segment
            algorithm, carry = _start(make, hp, game, key)
            return algorithm.policy(carry[0]), *policy(carry, hp, game, length_marker)

        game_axis = None if runs is None else 0

        def batched(fn, seed_axes, run_axes):  # vmapped over the seeds, then the runs
            return jax.jit(jax.vmap(jax.vmap(fn, in_axes=seed_axes), in_axes=run_axes,
                                    axis_size=settings if runs is None else runs))

        hps = {k: jnp.asarray(v) for k, v in grid.items()}
        first, carry, out = batched(begin, (None, None, 0, None), (0, game_axis, None, None))(
            hps, stacked, _seed_keys(seed, seeds), jnp.zeros(min(chunk, steps)))
        segment = batched(policy, (0, None, None, None), (0, 0, game_axis, None))
        pieces = [np.asarray(first)[:, :, None]] if checkpoints[0] == 0 else []
        rest = _segments(segment, carry, (hps, stacked), steps, chunk, progress, out.shape[2])
        for done, out in itertools.chain([(0, out)], rest):
            wanted = checkpoints[(checkpoints > done) & (checkpoints <= done + out.shape[2])]
            pieces.append(np.asarray(out)[:, :, wanted - done - 1])
    return np.concatenate(pieces, axis=2)


#: Bytes of float64 policies one compiled segment of :func:`policy_trajectories` may record.
_RECORD_BYTES = 512 * 2**20


def _recording_chunk(chunk, policies, entries):
    """``chunk`` reduced so that one segment's records, ``policies`` policies of ``entries``
    float64 numbers per step, stay under ``_RECORD_BYTES`` (at least one step)."""
    return max(1, min(chunk, _RECORD_BYTES // (8 * policies * entries)))


def _check_grid(grid, name):
    """``grid`` as float64 1-d arrays of equal length, and that length (1 when empty)."""
    if not isinstance(grid, dict):
        raise InvalidInputError(f"{name}: expected a dict name -> values, got "
                                f"{type(grid).__name__}")
    try:
        grid = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in grid.items()}
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"{name}: values must be real numbers ({err})") from None
    settings = len(next(iter(grid.values()))) if grid else 1
    if any(len(v) != settings for v in grid.values()):
        raise InvalidInputError(f"{name}: every hyper-parameter needs the same number of values")
    if settings == 0:
        raise InvalidInputError(f"{name}: needs at least one value per hyper-parameter")
    return grid, settings


def _stack_games(games):
    """Games as one jax pytree (float64: call in :func:`float64_mode`): a game, or games
    stacked along a leading run axis; and their number (None for a single game)."""
    if isinstance(games, PreferenceGame):
        return jax.tree_util.tree_map(jnp.asarray, games.astype(np.float64)), None
    stacked = stack_games(games)
    return jax.tree_util.tree_map(jnp.asarray, stacked), stacked.P.shape[0]


def _check_checkpoints(checkpoints):
    """``checkpoints`` as a (C,) array of strictly increasing integers >= 0."""
    steps = np.asarray(checkpoints)
    if (steps.ndim != 1 or steps.size == 0 or not np.issubdtype(steps.dtype, np.number)
            or not np.all(np.isfinite(steps)) or np.any(steps != np.round(steps))
            or steps[0] < 0 or np.any(np.diff(steps) <= 0)):
        raise InvalidInputError(f"checkpoints: expected a non-empty 1-d array of strictly "
                                f"increasing integers >= 0, got {checkpoints!r}")
    return steps.astype(np.int64)


def _seed_keys(seed, seeds):
    """The PRNG key of every seed ``s < seeds``: ``fold_in(key(seed), s)``."""
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(seeds))


def _start(make, hp, game, key):
    """``make(hp)`` and its initial carry ``(state, run key)``: ``key`` split into the init
    and the run key."""
    algorithm = make(hp)
    k_init, k_run = jax.random.split(key)
    return algorithm, (algorithm.init(game, k_init), k_run)


def _advance(algorithm, game, carry):
    """One update of the carry ``(state, run key)``, with the next subkey of the run key."""
    state, key = carry
    key, sub = jax.random.split(key)
    return algorithm.update(state, game, sub), key


def _segment(make, record):
    """The segment ``(carry, hp, game, marker) -> (carry, records)`` (to be jit-compiled):
    ``len(marker)`` updates of ``make(hp)``, with ``record(algorithm, state, game)`` after each."""
    def segment(carry, hp, game, length_marker):
        algorithm = make(hp)

        def body(carry, _):
            carry = _advance(algorithm, game, carry)
            return carry, record(algorithm, carry[0], game)

        return jax.lax.scan(body, carry, None, length=length_marker.shape[0])

    return segment


def _segments(segment, carry, args, steps, chunk, progress, done=0):
    """Run updates ``done + 1`` to ``steps`` as ``segment(carry, *args, marker)`` calls of at
    most ``chunk`` updates each; yield the steps done before each call and its records."""
    bar = _progress_bar(steps) if progress else None
    if bar is not None:
        bar.update(done)
    while done < steps:
        length = min(chunk, steps - done)
        carry, out = segment(carry, *args, jnp.zeros(length))
        yield done, out
        done += length
        if bar is not None:
            bar.update(length)
    if bar is not None:
        bar.close()


def _progress_bar(total):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="step", desc="nlhf run")
