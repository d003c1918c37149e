"""Statistics the experiments report: fitted rates with confidence intervals, bands over seeds."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from nlhf_theory.validation import InvalidInputError


class Slope(NamedTuple):
    """A least-squares slope with its two-sided confidence interval.

    Attributes:
      slope: the fitted slope.
      intercept: the fitted intercept.
      low, high: the confidence interval of the slope (Student t, ``n - 2`` dof).
      r2: coefficient of determination.
      n: number of points fitted.
    """

    slope: float
    intercept: float
    low: float
    high: float
    r2: float
    n: int

    def __str__(self) -> str:
        return f"{self.slope:.3f} [{self.low:.3f}, {self.high:.3f}]"


def fit_slope(x, y, *, log: bool = True, confidence: float = 0.95) -> Slope:
    """Fit ``y = a + b x`` (on log-log axes when ``log``) and return ``b`` with its interval.

    This is the convergence-order regression of diffrax's tests: a rate claim
    ``error ~ C n^b`` is checked by the slope of log error on log n. Points from several seeds
    may be passed together (repeated ``x``); the interval then reflects the spread over seeds.

    Args:
      x: 1-d array of abscissae (> 0 when ``log``).
      y: 1-d array of ordinates of the same length (> 0 when ``log``).
      log: fit on ``log x``, ``log y``.
      confidence: level of the interval, in (0, 1).

    Returns:
      A :class:`Slope`.

    Example:
      >>> n = np.array([10.0, 100.0, 1000.0])
      >>> round(fit_slope(n, 3.0 / np.sqrt(n)).slope, 6)
      -0.5
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise InvalidInputError(f"x, y: need the same length, got {x.size} and {y.size}")
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence: must lie in (0, 1), got {confidence}")
    if log:
        if np.any(x <= 0) or np.any(y <= 0):
            raise InvalidInputError("x, y: a log-log fit needs positive values")
        x, y = np.log(x), np.log(y)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise InvalidInputError("x, y: must be finite")
    if x.size < 3 or np.ptp(x) == 0:
        raise InvalidInputError("x: a slope with an interval needs >= 3 points and 2 distinct x")
    dx, dy = x - x.mean(), y - y.mean()
    sxx = dx @ dx
    slope = (dx @ dy) / sxx
    intercept = y.mean() - slope * x.mean()
    ssr = float(np.sum((dy - slope * dx) ** 2))
    sst = float(dy @ dy)
    stderr = np.sqrt(ssr / (x.size - 2) / sxx) if x.size > 2 else np.inf
    half = stats.t.ppf(0.5 + confidence / 2, max(x.size - 2, 1)) * stderr
    r2 = 1.0 - ssr / sst if sst > 0 else 1.0
    return Slope(float(slope), float(intercept), float(slope - half), float(slope + half),
                 float(r2), int(x.size))


def seed_band(frame: pd.DataFrame, x: str, y: str, by=(), *, confidence: float = 0.95,
              log: bool = False) -> pd.DataFrame:
    """Mean of ``y`` over seeds at each ``x`` (and group ``by``) with a confidence band.

    Args:
      frame: tidy results with columns ``x``, ``y`` and ``by`` (one row per seed).
      x, y: column names.
      by: further grouping columns (for example the method).
      confidence: level of the t interval of the mean.
      log: average ``log y`` (a geometric mean and band, for quantities on log axes).

    Returns:
      A DataFrame with columns ``by..., x, mean, low, high, num_seeds`` (``low == high ==
      mean`` where a group has a single seed).
    """
    keys = [*by, x]
    values = np.log(frame[y]) if log else frame[y]
    grouped = values.groupby([frame[k] for k in keys], sort=True)
    mean = grouped.mean()
    count = grouped.count()
    sem = grouped.std(ddof=1).fillna(0.0) / np.sqrt(count)
    half = stats.t.ppf(0.5 + confidence / 2, np.maximum(count - 1, 1)) * sem
    out = pd.DataFrame({"mean": mean, "low": mean - half, "high": mean + half,
                        "num_seeds": count})
    if log:
        out[["mean", "low", "high"]] = np.exp(out[["mean", "low", "high"]])
    return out.reset_index()
