"""The ``nlhf`` command line: named games, certified solutions, and algorithm runs."""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from nlhf_theory.algorithms import ALGORITHMS, run
from nlhf_theory.equilibria import SolverError, solve_nash, solve_regularized_nash
from nlhf_theory.games import list_games, make_game
from nlhf_theory.metrics import exploitability, kl_to_ref
from nlhf_theory.validation import InvalidInputError, check_beta

_EPILOG = """examples:
  nlhf games
  nlhf solve comal_cyclic --beta 0.1
  nlhf solve random_skew --set num_responses=50 --set seed=3 --beta 0.01 --json
  nlhf algorithms
  nlhf run egpo --game random_skew --beta 0.01 --steps 5000 --hp learning_rate=0.02
  nlhf run inpo --game comal_cyclic --beta 0.1 --steps 200 --mode sampled --seeds 8 \\
      --hp learning_rate=2.0 --hp comparisons_per_response=64 --csv inpo.csv
  nlhf reproduce --quick
  nlhf reproduce last_iterate --full --out figures
  nlhf reproduce --full --jobs 4
conventions: beta is the KL coefficient (Ye et al.'s eta = 1/beta); see docs/conventions.md."""


def _parse_setting(text: str):
    if "=" not in text:
        raise InvalidInputError(f"--set: expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw  # a bare string such as a name
    return key.strip(), value


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``nlhf: error: ...``, exit status 2), subcommands too."""

    def error(self, message):
        self.exit(2, f"nlhf: error: {message} (see: {self.prog} --help)\n")


def _fail(message: str, status: int) -> int:
    """Print ``message`` as one line on stderr and return ``status``."""
    print(" ".join(str(message).split()), file=sys.stderr)
    return status


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nlhf",
        description="nlhf_theory: certified equilibria of KL-regularized preference games.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("games", help="list the named games")
    solve = sub.add_parser(
        "solve",
        help="solve a named game: regularized equilibrium and maximal lottery, certified",
        description="Solve a named game. Prints the regularized Nash equilibrium at --beta "
        "(with its duality gap, exploitability and KL to pi_ref) and the unregularized "
        "equilibrium (maximal lottery, with its exploitability), and the time taken.",
    )
    solve.add_argument("game", help="a name listed by `nlhf games`")
    solve.add_argument("--beta", type=float, default=None,
                       help="KL coefficient > 0 (omit to solve only the maximal lottery)")
    solve.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="game parameter, e.g. --set num_responses=20 (repeatable)")
    solve.add_argument("--json", action="store_true", help="print one JSON object")
    solve.add_argument("--tol", type=float, default=1e-12, help="target certificate")
    sub.add_parser("algorithms", help="list the registered algorithms")
    run = sub.add_parser(
        "run", help="run an algorithm on a named game and report exact metrics",
        description="Iterate a registered algorithm on a named game and print the final "
        "metrics (mean and standard deviation over seeds): duality gap to the certified "
        "regularized equilibrium, suboptimality, exploitability, KL to pi_ref and win rates.",
    )
    run.add_argument("algorithm", help="a name listed by `nlhf algorithms`")
    run.add_argument("--game", required=True, help="a name listed by `nlhf games`")
    run.add_argument("--beta", type=float, required=True, help="KL coefficient > 0")
    run.add_argument("--steps", type=int, required=True, help="number of updates")
    run.add_argument("--mode", default="exact", choices=("exact", "sampled"),
                     help="population expectations or oracle samples (default exact)")
    run.add_argument("--seeds", type=int, default=1, help="independent runs (vmapped)")
    run.add_argument("--seed", type=int, default=0, help="base PRNG seed")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="game parameter (repeatable)")
    run.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                     help="algorithm hyper-parameter, e.g. --hp learning_rate=0.1 (repeatable)")
    run.add_argument("--csv", default=None, help="write the whole trajectory to this CSV file")
    rep = sub.add_parser(
        "reproduce", help="run the theorem-checking experiments and draw the paper figures",
        description="Run the named experiments (default: all) of the experiments/ folder: "
        "tidy results into OUT/data/, figures (PNG and PDF) into OUT/, and OUT/README.md with "
        "each claim's measured value against theory and PASS or FAIL. Resumable: finished "
        "cells are kept in OUT/.cells/ and reused; deterministic.",
    )
    rep.add_argument("names", nargs="*", metavar="NAME", help="experiments to run (default all)")
    size = rep.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="small settings, minutes on a laptop (the default)")
    size.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="the full settings of the figures (up to an hour)")
    rep.set_defaults(mode="quick")
    rep.add_argument("--out", default="paper_figures", help="output folder (paper_figures)")
    rep.add_argument("--experiments", default=None, metavar="DIR",
                     help="experiments folder (default ./experiments)")
    rep.add_argument("--fresh", action="store_true", help="recompute every cell")
    rep.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="compute cells in N worker processes (default 1: one after another); "
                     "outputs are byte-identical")
    rep.add_argument("--list", action="store_true", help="list the experiments and exit")
    return parser


def _fmt_policy(policy: np.ndarray, limit: int = 12) -> str:
    rows = []
    for x, row in enumerate(policy[:limit]):
        shown = ", ".join(f"{v:.6f}" for v in row[:limit])
        more = f", ... ({row.size} responses)" if row.size > limit else ""
        rows.append(f"  x={x}: [{shown}{more}]")
    if policy.shape[0] > limit:
        rows.append(f"  ... ({policy.shape[0]} prompts)")
    return "\n".join(rows)


def _solve(args) -> dict:
    settings = dict(_parse_setting(s) for s in args.set)
    game = make_game(args.game, **settings)
    beta = None if args.beta is None else check_beta(args.beta, "--beta")
    out = {"game": args.game, "settings": settings, "num_prompts": game.num_prompts,
           "num_responses": game.num_responses}
    start = time.perf_counter()
    if beta is not None:
        reg = solve_regularized_nash(game, beta, tol=args.tol)
        out["regularized"] = {
            "beta": beta, "policy": reg.policy.tolist(), "duality_gap": reg.duality_gap,
            "exploitability": float(exploitability(game.astype(np.float64), reg.policy)),
            "kl_to_ref": float(kl_to_ref(game.astype(np.float64), reg.policy)),
            "converged": reg.converged, "newton_iterations": reg.iterations,
            "matvecs": reg.matvecs, "seconds": reg.seconds,
        }
    nash = solve_nash(game, tol=args.tol)
    out["maximal_lottery"] = {
        "policy": nash.policy.tolist(), "exploitability": nash.exploitability,
        "method": sorted(set(nash.method)), "seconds": nash.seconds,
    }
    out["seconds"] = time.perf_counter() - start
    return out


def _print_solution(out: dict) -> None:
    print(f"game {out['game']} (X={out['num_prompts']} prompts, "
          f"Y={out['num_responses']} responses)")
    if "regularized" in out:
        reg = out["regularized"]
        print(f"regularized Nash equilibrium, beta = {reg['beta']:g}:")
        print(_fmt_policy(np.asarray(reg["policy"])))
        print(f"  duality gap       {reg['duality_gap']:.3e}   (certificate; 0 at pi*_beta)")
        print(f"  exploitability    {reg['exploitability']:.3e}   (unregularized, beta = 0)")
        print(f"  KL to pi_ref      {reg['kl_to_ref']:.6f}")
        print(f"  solver            {reg['newton_iterations']} Newton iterations, "
              f"{reg['matvecs']} matrix-vector products, {reg['seconds']:.3f} s")
    ml = out["maximal_lottery"]
    print("maximal lottery (unregularized Nash equilibrium):")
    print(_fmt_policy(np.asarray(ml["policy"])))
    print(f"  exploitability    {ml['exploitability']:.3e}   (certificate; 0 at a maximal lottery)")
    print(f"  solver            {', '.join(ml['method'])}, {ml['seconds']:.3f} s")
    print(f"total time {out['seconds']:.3f} s")


def _run(args) -> None:
    game = make_game(args.game, **dict(_parse_setting(s) for s in args.set))
    hyper = dict(_parse_setting(s) for s in args.hp)
    start = time.perf_counter()
    frame = run(args.algorithm, game, beta=args.beta, steps=args.steps, mode=args.mode,
                seeds=args.seeds, seed=args.seed, **hyper)
    seconds = time.perf_counter() - start
    last = frame[frame.step == frame.step.max()].drop(columns=["step", "seed"])
    print(f"{args.algorithm} on {args.game} (beta = {args.beta:g}, {args.steps} steps, "
          f"{args.mode} mode, {args.seeds} seed(s)), {seconds:.2f} s")
    print(f"{'metric':<16}{'mean':>14}{'std':>12}")
    for column in last.columns:
        print(f"{column:<16}{last[column].mean():>14.6e}{last[column].std(ddof=0):>12.2e}")
    if args.csv:
        from nlhf_theory.reproduce import atomic_write_text

        path = Path(args.csv)
        atomic_write_text(path, frame.to_csv(index=False), parents=False)
        print(f"trajectory written to {path}")


def _reproduce(args) -> int:
    from nlhf_theory.reproduce import list_experiments, load_experiment, reproduce

    if args.list:
        for name in list_experiments(args.experiments):
            config = load_experiment(name, args.experiments).config
            print(f"{name:<28}  {config.TITLE}")
        return 0
    start = time.perf_counter()
    outcomes = reproduce(args.names, mode=args.mode, out=args.out,
                         experiments=args.experiments, fresh=args.fresh, jobs=args.jobs)
    checks = [c for o in outcomes for c in o.checks]
    failed = [(o.name, c) for o in outcomes for c in o.checks if not c.passed]
    print(f"{len(checks) - len(failed)} of {len(checks)} checks pass "
          f"({time.perf_counter() - start:.0f} s); figures and {args.out}/README.md written")
    for name, check in failed:
        print(f"FAIL {name}: {check.claim} measured {check.measured}, theory {check.theory}")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``nlhf`` command."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "games":
            width = max(len(name) for name, _ in list_games())
            for name, description in list_games():
                print(f"{name:<{width}}  {description}")
        elif args.command == "algorithms":
            for name, algorithm in sorted(ALGORITHMS.items()):
                print(f"{name:<18}  {inspect.getdoc(algorithm).splitlines()[0]}")
        elif args.command == "run":
            _run(args)
        elif args.command == "reproduce":
            return _reproduce(args)
        elif args.command == "solve":
            out = _solve(args)
            if args.json:
                print(json.dumps(out))
            else:
                _print_solution(out)
    except InvalidInputError as exc:  # bad input: the message names the argument
        return _fail(f"nlhf: error: {exc}", 2)
    except SolverError as exc:  # a solver missed its certificate: no uncertified output
        return _fail(f"nlhf: solver error: {exc}", 3)
    except OSError as exc:  # e.g. an output path that cannot be written
        return _fail(f"nlhf: error: {exc.strerror or exc}: {exc.filename or ''}", 2)
    except KeyboardInterrupt:
        return _fail("nlhf: interrupted", 130)
    except Exception as exc:  # a bug, not a user mistake: say so in one line
        if os.environ.get("NLHF_DEBUG"):
            raise
        return _fail(f"nlhf: internal error ({type(exc).__name__}: {exc}); please report it "
                     "with the command line (NLHF_DEBUG=1 shows the traceback)", 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
