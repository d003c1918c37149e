"""The example of docs/algorithms.md "How to add an algorithm" runs as documented."""

import pathlib
import re

import nlhf_theory as nt

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "algorithms.md"


def test_the_documented_algorithm_runs_and_reaches_its_target():
    text = DOC.read_text()
    section = text[text.index("## How to add an algorithm"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    try:
        exec(compile(code, str(DOC), "exec"), namespace)  # its own assertion: gap < 1e-10
        sampled = nt.run("my_mirror_descent", nt.make_game("comal_cyclic"), beta=0.1, steps=5,
                         mode="sampled", seeds=2)
        assert len(sampled) == 12
    finally:
        nt.ALGORITHMS.pop("my_mirror_descent", None)
    algorithm = namespace["my_mirror_descent"](0.1)
    assert algorithm.target.kind == "regularized_nash"
