"""Helpers for per-ensemble learning (ensembles.md): ensembles of events, ROC/AUC, divergences."""
