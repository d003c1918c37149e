"""No traceback for any user mistake (issue 9 item 2): the ``nlhf`` command answers every
argument list with output or one error line and exit status 2, and the Python API raises
:class:`~nlhf_theory.InvalidInputError` naming the argument."""

import contextlib
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nlhf_theory as nt
from nlhf_theory.cli import main

NAMES = sorted(nt.ALGORITHMS)
HYPERPARAMETERS = sorted({p for f in nt.ALGORITHMS.values()
                          for p in __import__("inspect").signature(f).parameters
                          if p not in ("beta", "mode")} | {"batch_size", "inner_steps", "x"})
NUMBERS = st.sampled_from(["0", "-1", "0.1", "1", "2", "1e9", "nan", "inf", "-inf", "abc", "",
                           "[1, 2]", "None", "True", "'mirror'", "1e-300", "3"])
SMALL = st.sampled_from(["0", "1", "2", "-3", "x", "1.5", "nan", ""])


def invoke(argv):
    """Run the CLI in-process; return (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse (--help, usage errors)
            status = exc.code if isinstance(exc.code, int) else 2
    return status, out.getvalue(), err.getvalue()


def argument_lists():
    game = st.sampled_from(["comal_cyclic", "bradley_terry", "nope", "random_skew", ""])
    algorithm = st.sampled_from(NAMES + ["nope", ""])
    hp = st.builds(lambda k, v: ["--hp", f"{k}={v}"], st.sampled_from(HYPERPARAMETERS), NUMBERS)
    setting = st.builds(lambda k, v: ["--set", f"{k}={v}"],
                        st.sampled_from(["num_responses", "seed", "num_prompts", "reward",
                                         "x"]), SMALL)
    run = st.builds(
        lambda a, g, b, s, m, extra: ["run", a, "--game", g, "--beta", b, "--steps", s,
                                      "--mode", m] + sum(extra, []),
        algorithm, game, NUMBERS, SMALL, st.sampled_from(["exact", "sampled", "bad"]),
        st.lists(st.one_of(hp, setting), max_size=3))
    solve = st.builds(lambda g, b, extra: ["solve", g, "--beta", b] + sum(extra, []),
                      game, NUMBERS, st.lists(setting, max_size=2))
    junk = st.lists(st.sampled_from(["run", "solve", "games", "--beta", "1", "--steps", "x",
                                     "--hp", "a=b", "reproduce", "--quick", "--full", "nope"]),
                    max_size=5)
    return st.one_of(run, solve, junk)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argument_lists())
def test_cli_never_prints_a_traceback(argv):
    if argv and argv[0] == "reproduce" and "--list" not in argv:
        argv = ["reproduce", "--list"]  # a real reproduction is too long for a property test
    status, out, err = invoke(argv)
    assert "Traceback" not in out + err
    assert status in (0, 2), (argv, status, err)  # 1 would be an internal error (a bug)
    if status == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("nlhf: error:"), (argv, err)


@pytest.mark.parametrize("argv, fragment", [
    (["run", "inpo", "--game", "comal_cyclic", "--beta", "0.1", "--steps", "3",
      "--hp", "batch_size=4"], "batch_size"),
    (["run", "inpo", "--game", "comal_cyclic", "--beta", "-1", "--steps", "3"], "beta"),
    (["run", "inpo", "--game", "comal_cyclic", "--beta", "0.1", "--steps", "0"], "steps"),
    (["run", "inpo", "--game", "comal_cyclic", "--beta", "0.1", "--steps", "3",
      "--hp", "learning_rate=abc"], "learning_rate"),
    (["run", "nope", "--game", "comal_cyclic", "--beta", "0.1", "--steps", "3"], "algorithm"),
    (["solve", "nope", "--beta", "0.1"], "nope"),
    (["run", "inpo", "--game", "comal_cyclic", "--beta", "0.1", "--steps", "3",
      "--csv", "/nonexistent/dir/out.csv"], "/nonexistent/dir"),
])
def test_cli_errors_name_the_argument(argv, fragment):
    status, out, err = invoke(argv)
    assert status == 2
    assert fragment in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_issue_reproduction_runs_with_defaults():
    # issue 9: `nlhf run inpo --game comal_cyclic --beta 0.1 --steps 100` ended in a traceback
    status, out, err = invoke(["run", "inpo", "--game", "comal_cyclic", "--beta", "0.1",
                               "--steps", "100"])
    assert status == 0, err
    assert "duality_gap" in out


@pytest.mark.parametrize("hyper, fragment", [
    ({"batch_size": 4}, "batch_size"), ({"learning_rate": "abc"}, "learning_rate"),
    ({"learning_rate": [1, 2]}, "learning_rate"), ({"inner_steps": 3}, "inner_steps"),
])
def test_python_api_errors_name_the_argument(hyper, fragment):
    with pytest.raises(nt.InvalidInputError, match=fragment):
        nt.run("inpo", nt.make_game("comal_cyclic"), beta=0.1, steps=2, **hyper)


def test_run_refuses_an_uncertified_equilibrium(monkeypatch):
    # issue 9 item 3: `run` never reports metrics against an uncertified pi*_beta
    from nlhf_theory.algorithms import _run

    def starved(game, beta, **kwargs):  # a solver that stops after one Newton iteration
        return nt.solve_regularized_nash(game, beta, max_iter=1, tol=1e-16)

    monkeypatch.setattr(_run, "solve_regularized_nash", starved)
    game = nt.make_game("random_skew", num_responses=30, seed=0)
    with pytest.raises(nt.SolverError, match="no certified equilibrium"):
        nt.run("inpo", game, beta=0.01, steps=2)
    status, out, err = invoke(["run", "inpo", "--game", "random_skew", "--set",
                               "num_responses=30", "--beta", "0.01", "--steps", "2"])
    assert status == 3 and "solver error" in err and "duality_gap" not in out
