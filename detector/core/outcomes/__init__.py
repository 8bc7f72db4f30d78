"""Outcomes: labels joined to predictions, matured cohorts, feature parity, per-task outcome checks and label-free estimates."""
