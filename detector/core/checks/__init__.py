"""Checks of one closed window, by family (distributions, seasonal, daily, slice mix, adoption, multivariate)."""
