"""Decisions: the alert kinds, findings selected from check results, incidents and their causes."""
