"""Shared test configuration: hypothesis profiles and jax precision fixtures.

Hypothesis profiles (NumPy's ``conftest.py`` pattern): ``ci`` (the default: 30 examples, no
deadline, failing examples printed as reproducible blobs), ``dev`` (100 examples) and
``deterministic`` (derandomized, no example database). Select one with the environment
variable ``HYPOTHESIS_PROFILE=dev`` or with ``pytest --hypothesis-profile=dev``. Deadlines are
off because the first call of a jitted function includes its compilation.

jax runs in its default 32-bit mode: the library must work both with and without x64, so x64
is switched on only inside the tests that need float64 jax arrays, through the ``x64``
fixture (``x32`` pins the default for tests that check float32 behaviour).
"""

import atexit
import os
import shutil
import tempfile

import hypothesis
import jax
import pytest

hypothesis.settings.register_profile("ci", deadline=None, print_blob=True, max_examples=30)
hypothesis.settings.register_profile("dev", deadline=None, max_examples=100)
hypothesis.settings.register_profile(
    "deterministic",
    deadline=None,
    database=None,
    derandomize=True,
    max_examples=30,
    suppress_health_check=list(hypothesis.HealthCheck),
)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# One compilation per computation and test process: nt.run and the experiment cells build a
# fresh jitted closure on every call, so a test that runs the same computation twice (the
# determinism checks) compiled it twice. jax's persistent cache, in a directory private to
# this process (each xdist worker has its own) and removed at exit, hands back the executable
# of an identical computation (same HLO, compile options and flags) instead of compiling it
# again; a computation that differs in any way (dtype, x64 state, constants) is compiled
# afresh. It is set here, before any test module compiles anything (jax reads it once).
_COMPILATION_CACHE = tempfile.mkdtemp(prefix="nlhf-tests-jax-cache-")
atexit.register(shutil.rmtree, _COMPILATION_CACHE, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _COMPILATION_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


def _x64_context(enabled: bool):
    """jax's (thread-local) x64 context manager: ``jax.enable_x64`` on recent jax versions,
    ``jax.experimental.enable_x64`` / ``disable_x64`` on older ones."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(enabled)
    from jax import experimental  # pragma: no cover - jax < 0.7

    return experimental.enable_x64() if enabled else experimental.disable_x64()


@pytest.fixture
def x64():
    """Run the test with jax's float64 mode on (restored afterwards)."""
    with _x64_context(True):
        yield


@pytest.fixture
def x32():
    """Run the test with jax's default float32 mode (whatever the global setting is)."""
    with _x64_context(False):
        yield
