"""Folding weighted events into dense per-slice-row arrays: the one scatter-add every outcome counter uses.

>>> fold(np.array([[0, 1], [0, 2]]), 3, 2, np.array([1, 0]), np.array([1.0, 2.0])).tolist()
[[2.0, 1.0], [0.0, 1.0], [2.0, 0.0]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["fold"]


def fold(ridx: np.ndarray, nrows: int, nbins: int, bins: np.ndarray | None, w: np.ndarray) -> np.ndarray:
    """Sum weights ``w`` (n,) or (n, k) into a (rows, nbins) array for every row in ``ridx`` (n, r)."""
    if bins is None:  # w is (n, nbins): one column per bin
        idx = (ridx[:, :, None] * nbins + np.arange(nbins)[None, None, :]).ravel()
        ww = np.broadcast_to(w[:, None, :], (*ridx.shape, nbins)).ravel()
    else:
        idx = (ridx * nbins + bins[:, None]).ravel()
        ww = np.broadcast_to(w[:, None], ridx.shape).ravel()
    return np.bincount(idx, weights=ww, minlength=nrows * nbins).reshape(nrows, nbins)
