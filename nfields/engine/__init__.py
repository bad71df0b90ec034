"""The run lifecycle: configuration, the Trainer, run folders, checkpoints, evaluation, metrics and plots.

Composes datasets, fields and renderers; the apps, outputs, viewer and commands build on it.
"""
