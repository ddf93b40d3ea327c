"""Jet tools shared by particle sources: preprocessing and jet observables."""
