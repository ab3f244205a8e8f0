"""Stages: the pipelines the command line runs (demo, sweep, selection experiment, world build, trace, …).

Each composes the library below it (data, losses, teacher, training, evaluation, provenance, select, report) and
is never imported by it; ``tests/test_layers.py`` holds that line.
"""
