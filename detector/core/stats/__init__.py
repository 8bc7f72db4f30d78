"""Statistics: distances, tests and effect sizes (pure, vectorised functions)."""
