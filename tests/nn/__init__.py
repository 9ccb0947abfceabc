"""Tests of the PyTorch layers of :mod:`gnpcheck.nn`."""
