"""Tri-plane classifiers (Cardace et al., "Neural Processing of Tri-Plane Hybrid Neural Fields", ICLR 2024):
fit a tri-plane per shape with a shared frozen decoder, then classify the tri-planes directly.

shapes (data sets, split, loading), fitting (batched tri-plane fits), pipeline (fit_dataset: files, resume,
shards), classifiers and pointnet (models), training (train_plane_classifier, train_pointnet), classify.
"""
