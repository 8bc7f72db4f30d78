"""Feature pairs that move together: a Gaussian copula, and the two faults that break only the joint.

A pair ``(a, b)`` is drawn as ``z ~ N(0, [[1, rho], [rho, 1]])`` and mapped to the wanted
marginals (``u = Phi(z)``, then each feature's inverse CDF), so its marginals do not depend on
``rho``. Two faults change how the pair moves together while every marginal stays exactly as it
was - invisible to any per-feature check:

* ``correlation_flip``: ``rho -> -rho`` (a feature computed with the wrong sign convention,
  a sensor pair swapped);
* ``shuffled_join``: ``b`` comes from another row of the same batch (a join on the wrong key
  pairs the wrong rows): the pair becomes independent.

>>> rng = np.random.default_rng(0)
>>> u, v = correlated_uniforms(rng, 20000, 0.8, np.zeros(20000))
>>> x, y = correlated_uniforms(rng, 20000, 0.8, np.ones(20000))
>>> round(float(np.corrcoef(u, v)[0, 1]), 1), round(float(np.corrcoef(x, y)[0, 1]), 1)
(0.8, -0.8)
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["correlated_uniforms", "norm_cdf", "shuffle_rows"]


def norm_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF."""
    return special.ndtr(np.asarray(z, dtype=np.float64))


def correlated_uniforms(rng: np.random.Generator, n: int, rho: float, flip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two uniform columns with Gaussian-copula correlation ``rho`` (``-rho`` where ``flip`` is 1)."""
    z1 = rng.standard_normal(n)
    e = rng.standard_normal(n)
    r = np.where(np.asarray(flip) > 0, -rho, rho)
    z2 = r * z1 + np.sqrt(1.0 - r * r) * e
    return norm_cdf(z1), norm_cdf(z2)


def shuffle_rows(rng: np.random.Generator, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x`` with the values of the rows in ``mask`` permuted among themselves (marginal unchanged)."""
    out = x.copy()
    idx = np.flatnonzero(mask)
    if idx.size > 1:
        out[idx] = x[rng.permutation(idx)]
    return out
