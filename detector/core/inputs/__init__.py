"""Inputs: raw messages -> validated columns -> per-window counts, event time, production's own history."""
