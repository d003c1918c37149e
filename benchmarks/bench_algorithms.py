"""Exact-mode throughput of an algorithm update: nlhf_theory (jax, jit + vmap) vs plain NumPy.

What a user who knows NumPy would otherwise write is the same tabular update **vectorized over
seeds**: the policies of all seeds in one (X, Y, S) array and one batched matmul
``P @ pi`` per update (``P`` read once for all seeds); a loop over seeds is also shown, for
the reader who would write that. The script times them on the same games, side by side in one
run, for INPO's exact update ``log pi' = (1 - eta beta) log pi + eta beta log pi_ref + eta P pi``
(one read of ``P`` per update) and EGPO's (two gradients of the online-IPO population loss per
update), with 32 seeds and games of X x Y = 1 x 100, 100 x 100 and 1000 x 100. It reports
updates per second (seed updates: one update of one seed's policy; each time the median of
three runs), the ratios, and the
fraction of the memory-bandwidth bound reached by the package's INPO and by the vectorized
NumPy INPO: one float64 read of ``P`` (X Y^2 8 bytes) per update of all 32 seeds, at the
bandwidth measured by a large NumPy copy on this machine.

Run: ``python benchmarks/bench_algorithms.py [--quick] [--out docs/benchmarks.md]``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp

import nlhf_theory as nt
from nlhf_theory.reproduce import write_section

SEEDS = 32
REPEATS = 3  # timed runs per measurement; the median is reported


def median_seconds(run):
    """Median wall time of ``REPEATS`` calls of ``run`` (after the caller's warm-up)."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def numpy_inpo(P, log_ref, logits, eta, beta, steps):
    """The same INPO update in plain NumPy, looping over seeds."""
    for _ in range(steps):
        for s in range(logits.shape[0]):
            pi = np.exp(logits[s])
            z = (1 - eta * beta) * logits[s] + eta * beta * log_ref + eta * np.einsum(
                "xij,xj->xi", P, pi)
            logits[s] = z - logsumexp(z, axis=-1, keepdims=True)
    return logits


def numpy_inpo_vectorized(P, log_ref, logits, eta, beta, steps):
    """The same INPO update in NumPy, vectorized over seeds: ``logits`` of shape (X, Y, S),
    one batched matmul ``P @ pi`` per update (``P`` is read once for all S seeds)."""
    decay, pull = 1 - eta * beta, (eta * beta) * log_ref[:, :, None]
    for _ in range(steps):
        z = decay * logits + pull + eta * np.matmul(P, np.exp(logits))
        zmax = z.max(axis=1, keepdims=True)
        logits = z - (zmax + np.log(np.exp(z - zmax).sum(axis=1, keepdims=True)))
    return logits


def jax_updates(algorithm, game, steps):
    """``steps`` updates of ``SEEDS`` vmapped states, compiled once."""
    keys = jax.random.split(jax.random.key(0), SEEDS)
    states = jax.vmap(lambda k: algorithm.init(game, k))(keys)

    @jax.jit
    def many(states):
        def body(_, s):
            return jax.vmap(lambda st: algorithm.update(st, game, jax.random.key(0)))(s)
        return jax.lax.fori_loop(0, steps, body, states)

    jax.block_until_ready(many(states))  # compile
    return median_seconds(lambda: jax.block_until_ready(many(states)))


def jax_seeds_last(P, log_ref, eta, beta, steps):
    """The same INPO update hand-written in jax with the seeds as the LAST axis of the logits,
    ``(X, Y, S)``: one batched ``einsum("xij,xjs->xis")`` per update, no layout change. What a
    jax user writing this one update by hand gets; ``jax.vmap`` over the package's per-seed
    update puts the seeds first, and XLA then transposes the policies around the product."""
    def update(logits):
        z = ((1 - eta * beta) * logits + eta * beta * log_ref[:, :, None]
             + eta * jnp.einsum("xij,xjs->xis", P, jnp.exp(logits)))
        return jax.nn.log_softmax(z, axis=1)

    many = jax.jit(lambda x: jax.lax.fori_loop(0, steps, lambda _, y: update(y), x))
    logits = jnp.repeat(log_ref[:, :, None], SEEDS, axis=2)
    out = jax.block_until_ready(many(logits))  # compile
    return median_seconds(lambda: jax.block_until_ready(many(logits))), out[:, :, 0]


def runner_updates(make_call, steps):
    """Seconds per update of a package runner: the difference between ``steps + 10`` and 10
    updates (each length compiled and run once, then timed as the median of three runs), so
    compilation and the fixed costs cancel."""
    times = {}
    for n in (10, steps + 10):
        make_call(n)  # compile
        times[n] = median_seconds(lambda: make_call(n))  # noqa: B023 (called at once)
    return (times[steps + 10] - times[10]) / steps


def bandwidth_gbs():
    """Memory bandwidth (GB/s, read + write) of a NumPy copy of 256 MB, the median of five:
    larger than any cache on the machine, so it measures memory, not cache."""
    a = np.ones(256_000_000 // 8)
    b = np.empty_like(a)
    np.copyto(b, a)  # first touch
    times = []
    for _ in range(5):
        start = time.perf_counter()
        np.copyto(b, a)
        times.append(time.perf_counter() - start)
    return 2 * a.nbytes / float(np.median(times)) / 1e9


def peak_gflops():
    """Float64 arithmetic peak as NumPy's BLAS reaches it (GFLOP/s): a 2000 x 2000 matmul,
    median of three."""
    a = np.random.default_rng(0).standard_normal((2000, 2000))
    a @ a  # warm-up
    return 2 * 2000**3 / median_seconds(lambda: a @ a) / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small games only")
    parser.add_argument("--out", default=None, help="Markdown file to update")
    args = parser.parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python benchmarks/bench_algorithms.py", *argv_used])
    load_start = os.getloadavg()[0]
    sizes = [(1, 100), (100, 100)] if args.quick else [(1, 100), (100, 100), (1000, 100)]
    beta, eta = 0.1, 2.0
    rows = []
    bw = bandwidth_gbs()
    peak = peak_gflops()
    with nt.algorithms.float64_mode():
        for X, Y in sizes:
            game = nt.make_game("random_skew", num_responses=Y, num_prompts=X, seed=0)
            g = jax.tree_util.tree_map(jnp.asarray, game.astype(np.float64))
            steps = max(20, int(2e7 // (X * Y * Y)))
            inpo_t = jax_updates(nt.algorithms.inpo(beta, eta), g, steps)
            egpo_steps = max(2, steps // 10)  # EGPO is ~100x slower per update
            egpo_t = jax_updates(nt.algorithms.egpo(beta, 0.1), g, egpo_steps) * steps / egpo_steps
            np_steps = max(2, steps // 10)
            P64, log_ref = game.P.astype(np.float64), np.log(game.pi_ref.astype(np.float64))
            logits = np.tile(log_ref[None], (SEEDS, 1, 1))
            start = time.perf_counter()
            numpy_inpo(P64, log_ref, logits, eta, beta, np_steps)
            np_t = (time.perf_counter() - start) / np_steps * steps
            vec_logits = np.repeat(log_ref[:, :, None], SEEDS, axis=2)
            numpy_inpo_vectorized(P64, log_ref, vec_logits, eta, beta, 1)  # warm-up
            vec_t = median_seconds(
                lambda: numpy_inpo_vectorized(P64, log_ref, vec_logits, eta, beta, steps))
            hand_t, hand_logits = jax_seeds_last(g.P, jnp.log(g.pi_ref), eta, beta, steps)
            alg = nt.algorithms.inpo(beta, eta)  # the hand-written update is the same update
            state = jax.lax.fori_loop(0, steps, lambda _, s: alg.update(s, g, None),
                                      alg.init(g))
            gap = float(jnp.abs(alg.policy(state) - jnp.exp(hand_logits)).max())
            assert gap < 1e-10, f"the hand-written update differs from INPO's by {gap:g}"
            ups = lambda t: SEEDS * steps / t  # noqa: E731
            bytes_per_update = X * Y * Y * 8
            # the bandwidth bound: one read of P per update of all SEEDS policies; the roofline
            # also counts the arithmetic, 2 X Y^2 SEEDS flops per update (the larger bound)
            bound = bytes_per_update / 1e9 / bw
            roof = max(bound, 2 * X * Y * Y * SEEDS / 1e9 / peak)

            def frac(t, bound=bound, roof=roof):
                return f"{bound * steps / t:.2f} / {roof * steps / t:.2f}"

            rows.append((f"{X} x {Y}", ups(inpo_t), ups(vec_t), vec_t / inpo_t, ups(np_t),
                         np_t / inpo_t, ups(egpo_t), frac(inpo_t), frac(vec_t), ups(hand_t),
                         frac(hand_t)))
            print(f"{X:5d} x {Y}: INPO jax {ups(inpo_t):12.0f}/s, NumPy vectorized "
                  f"{ups(vec_t):10.0f}/s (x{vec_t / inpo_t:.2f}), NumPy loop {ups(np_t):10.0f}/s "
                  f"(x{np_t / inpo_t:.1f}); EGPO jax {ups(egpo_t):10.0f}/s; fraction of the "
                  f"bandwidth bound / roofline: jax {frac(inpo_t)}, NumPy vectorized "
                  f"{frac(vec_t)}, jax by hand {frac(hand_t)}", flush=True)
    lines = [
        "## Algorithm updates (exact mode): jax jit + vmap vs NumPy vectorized over seeds",
        "",
        f"Command: `{command}`; {datetime.date.today()}; "
        f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other agents' jobs: load "
        f"average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), jax "
        f"{jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()}), "
        f"numpy {np.__version__}; {SEEDS} seeds; float64; measured copy "
        f"bandwidth {bw:.1f} GB/s (256 MB, read + write), float64 matmul {peak:.1f} GFLOP/s "
        f"(NumPy, 2000 x 2000).",
        "",
        "| game X x Y | INPO (jax) seed-updates/s | INPO (NumPy vectorized) seed-updates/s | "
        "ratio jax / vectorized | INPO (NumPy loop) seed-updates/s | ratio jax / loop | "
        "EGPO (jax) seed-updates/s | INPO (jax) fraction of bandwidth bound / roofline | "
        "INPO (NumPy vectorized) fractions | INPO (jax by hand, seeds last) seed-updates/s | "
        "its fractions |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, a, v, rv, b, rb, e, fa, fv, hv, fh in rows:
        lines.append(f"| {name} | {a:,.0f} | {v:,.0f} | {rv:.2f}x | {b:,.0f} | {rb:.1f}x | "
                     f"{e:,.0f} | {fa} | {fv} | {hv:,.0f} | {fh} |")
    lines += ["", (
        f"NumPy vectorized: the policies of all {SEEDS} seeds as one (X, Y, S) array, one "
        "batched `np.matmul(P, pi)` per update (P read once for all seeds). Bandwidth bound: "
        f"one float64 read of P (X Y^2 8 bytes) per update of all {SEEDS} seeds, at the "
        "measured copy bandwidth. Roofline: the larger of that and the arithmetic (2 X Y^2 "
        f"{SEEDS} flops per update) at the measured matmul rate; with {SEEDS} seeds the update "
        "does 8 flops per byte of P, so on this machine it is bound by arithmetic and the "
        "bandwidth bound cannot be reached. Jax by hand, seeds last: the same INPO update "
        "written for (X, Y, S) logits, one `einsum('xij,xjs->xis')` per update (the package's "
        "update is written for one seed and batched by `jax.vmap`, which puts the seeds "
        "first).")]
    if not args.quick:
        X, Y = 1000, 100
        game = nt.make_game("random_skew", num_responses=Y, num_prompts=X, seed=0)
        alg = nt.algorithms.inpo(beta, eta)
        with nt.algorithms.float64_mode():  # the runners below switch it on themselves
            bare = jax_updates(alg, jax.tree_util.tree_map(
                jnp.asarray, game.astype(np.float64)), 20) / 20
        runs = {
            "`jax.vmap` of `alg.update` in a `fori_loop` (the table above)": bare,
            "`nt.algorithms.policy_trajectories(..., checkpoints=[steps])`": runner_updates(
                lambda n: nt.algorithms.policy_trajectories(
                    lambda hp: alg, game, checkpoints=[n], seeds=SEEDS, chunk=10), 20),
            "`nt.algorithms.run_algorithm(...)` (6 exact metrics after every update)":
                runner_updates(lambda n: nt.algorithms.run_algorithm(
                    alg, game, beta=beta, steps=n, seeds=SEEDS, chunk=10), 20),
        }
        lines += ["", f"Package runners, INPO at {X} x {Y}, {SEEDS} seeds (time per update of "
                  "all seeds: the difference of runs of 30 and 10 updates, `chunk=10`; the "
                  "bare update: 20 updates, median of 3):", "",
                  "| path | ms per update | seed-updates/s | fraction of bandwidth bound / "
                  "roofline |",
                  "|---|---|---|---|"]
        for name, seconds in runs.items():
            bound = X * Y * Y * 8 / 1e9 / bw
            roof = max(bound, 2 * X * Y * Y * SEEDS / 1e9 / peak)
            lines.append(f"| {name} | {seconds * 1e3:.1f} | {SEEDS / seconds:,.0f} | "
                         f"{bound / seconds:.2f} / {roof / seconds:.2f} |")
    if args.out:
        write_section(Path(args.out), "bench_algorithms", "\n".join(lines))
    else:
        print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
