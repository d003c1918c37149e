"""What a solver does when it misses its tolerance: :class:`SolverError`, or a loud result."""

from __future__ import annotations

from nlhf_theory.validation import InvalidInputError

ON_FAILURE = ("raise", "return")


class SolverError(RuntimeError):
    """A solver stopped without certifying its answer to the requested tolerance.

    Not bad input (that is :class:`~nlhf_theory.InvalidInputError`): the problem is valid but the
    method did not reach ``tol`` within its iteration budget. The uncertified result is attached
    as ``.result`` (its ``converged`` is False) for inspection; pass ``on_failure="return"`` to
    the solver to receive it instead of the exception.
    """

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


def check_on_failure(on_failure) -> str:
    """``on_failure`` validated: ``"raise"`` or ``"return"``."""
    if not isinstance(on_failure, str) or on_failure not in ON_FAILURE:
        raise InvalidInputError(f"on_failure: must be one of {ON_FAILURE}, got {on_failure!r}")
    return on_failure


class CertifiedResult:
    """Mixin of the solvers' result tuples: a loud ``repr`` and :meth:`raise_if_uncertified`.

    The tuple must have the fields ``converged`` and ``tol``, and :meth:`_shortfall` says by how
    much the certificate missed ``tol``.
    """

    __slots__ = ()

    def _shortfall(self) -> str:  # pragma: no cover - every result defines it
        raise NotImplementedError

    def raise_if_uncertified(self):
        """Return the result itself if it is certified (``converged``), else raise.

        Raises:
          SolverError: when ``converged`` is False; the message says which certificate missed
            ``tol`` and by how much, and ``.result`` is this result.
        """
        if not self.converged:
            raise SolverError(f"{type(self).__name__} is UNCERTIFIED: {self._shortfall()}", self)
        return self

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self))
        if self.converged:
            return f"{type(self).__name__}({fields})"
        return f"{type(self).__name__}(UNCERTIFIED: {self._shortfall()}; {fields})"

    __str__ = __repr__
