"""Capture ingestion: `fields convert` (any capture to the canonical layout, COLMAP for unposed images and
videos) and `fields download`. Like the rest of `datasets/`, it imports nothing else of the toolkit."""
