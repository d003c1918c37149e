"""Exact-mode throughput of an algorithm update: nlhf_theory (jax, jit + vmap) vs plain NumPy.

What a user who knows NumPy would otherwise write is the same tabular update **vectorized over
seeds**: the policies of all seeds in one (X, Y, S) array and one batched matmul
``P @ pi`` per update (``P`` read once for all seeds); a loop over seeds is also shown, for
the reader who would write that. The script times them on the same games, side by side in one
run, for INPO's exact update ``log pi' = (1 - eta beta) log pi + eta beta log pi_ref + eta P pi``
(one read of ``P`` per update) and EGPO's (two gradients of the online-IPO population loss per
update), with 32 seeds and games of X x Y = 1 x 100, 100 x 100 and 1000 x 100. It reports
updates per second (seed updates: one update of one seed's policy), the ratios, and the
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
    start = time.perf_counter()
    jax.block_until_ready(many(states))
    return time.perf_counter() - start


def bandwidth_gbs():
    a = np.ones(50_000_000 // 8)
    b = np.empty_like(a)
    start = time.perf_counter()
    for _ in range(10):
        np.copyto(b, a)
    seconds = (time.perf_counter() - start) / 10
    return 2 * a.nbytes / seconds / 1e9  # read + write


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
    with nt.algorithms.float64_mode():
        for X, Y in sizes:
            game = nt.make_game("random_skew", num_responses=Y, num_prompts=X, seed=0)
            g = jax.tree_util.tree_map(jnp.asarray, game.astype(np.float64))
            steps = max(5, int(2e7 // (X * Y * Y)))
            inpo_t = jax_updates(nt.algorithms.inpo(beta, eta), g, steps)
            egpo_t = jax_updates(nt.algorithms.egpo(beta, 0.1), g, steps)
            np_steps = max(2, steps // 10)
            P64, log_ref = game.P.astype(np.float64), np.log(game.pi_ref.astype(np.float64))
            logits = np.tile(log_ref[None], (SEEDS, 1, 1))
            start = time.perf_counter()
            numpy_inpo(P64, log_ref, logits, eta, beta, np_steps)
            np_t = (time.perf_counter() - start) / np_steps * steps
            vec_logits = np.repeat(log_ref[:, :, None], SEEDS, axis=2)
            numpy_inpo_vectorized(P64, log_ref, vec_logits, eta, beta, 1)  # warm-up
            start = time.perf_counter()
            numpy_inpo_vectorized(P64, log_ref, vec_logits, eta, beta, steps)
            vec_t = time.perf_counter() - start
            ups = lambda t: SEEDS * steps / t  # noqa: E731
            bytes_per_update = X * Y * Y * 8
            # the bound: one read of P per update of all SEEDS policies
            frac = lambda t: ups(t) / SEEDS * bytes_per_update / 1e9 / bw  # noqa: E731
            rows.append((f"{X} x {Y}", ups(inpo_t), ups(vec_t), vec_t / inpo_t, ups(np_t),
                         np_t / inpo_t, ups(egpo_t), frac(inpo_t), frac(vec_t)))
            print(f"{X:5d} x {Y}: INPO jax {ups(inpo_t):12.0f}/s, NumPy vectorized "
                  f"{ups(vec_t):10.0f}/s (x{vec_t / inpo_t:.2f}), NumPy loop {ups(np_t):10.0f}/s "
                  f"(x{np_t / inpo_t:.1f}); EGPO jax {ups(egpo_t):10.0f}/s; bandwidth fraction "
                  f"jax {frac(inpo_t):.2f}, NumPy vectorized {frac(vec_t):.2f}", flush=True)
    lines = [
        "## Algorithm updates (exact mode): jax jit + vmap vs NumPy vectorized over seeds",
        "",
        f"Command: `{command}`; {datetime.date.today()}; "
        f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other agents' jobs: load "
        f"average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), jax "
        f"{jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()}), "
        f"numpy {np.__version__}; {SEEDS} seeds; float64; measured copy "
        f"bandwidth {bw:.1f} GB/s.",
        "",
        "| game X x Y | INPO (jax) seed-updates/s | INPO (NumPy vectorized) seed-updates/s | "
        "ratio jax / vectorized | INPO (NumPy loop) seed-updates/s | ratio jax / loop | "
        "EGPO (jax) seed-updates/s | INPO (jax) fraction of bandwidth bound | "
        "INPO (NumPy vectorized) fraction |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, a, v, rv, b, rb, e, fa, fv in rows:
        lines.append(f"| {name} | {a:,.0f} | {v:,.0f} | {rv:.2f}x | {b:,.0f} | {rb:.1f}x | "
                     f"{e:,.0f} | {fa:.2f} | {fv:.2f} |")
    lines += ["", f"NumPy vectorized: the policies of all {SEEDS} seeds as one (X, Y, S) array, "
              "one batched `np.matmul(P, pi)` per update (P read once for all seeds). Bandwidth "
              f"bound: one float64 read of P (X Y^2 8 bytes) per update of all {SEEDS} seeds, "
              "at the measured copy bandwidth."]
    if args.out:
        write_section(Path(args.out), "bench_algorithms", "\n".join(lines))
    else:
        print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
