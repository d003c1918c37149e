"""Every docstring example of the library runs and prints what it shows (optax's doctested
examples): an example that drifts from the code fails here."""

import doctest
import importlib
import pkgutil

import pytest

import nlhf_theory


def _modules():
    names = [nlhf_theory.__name__]
    for info in pkgutil.walk_packages(nlhf_theory.__path__, prefix="nlhf_theory."):
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    if name.split(".")[:2] == ["nlhf_theory", "llm"]:  # the optional LLM backend
        pytest.importorskip("transformers")
        pytest.importorskip("torch")
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):  # each example sees its module's globals
        if test.examples:
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"
