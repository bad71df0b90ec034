"""What COLMAP is asked to do: one camera model, which image pairs to match (by the images' count and source) and
SIFT sized to the images."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .. import DatasetError

# One camera shared by all images. SIMPLE_RADIAL (COLMAP's default: f, cx, cy, k1) rather than OPENCV (fx, fy, cx,
# cy, k1, k2, p1, p2): the mapper refines the shared camera from the first few images, and OPENCV's distortion
# terms run away there (k1 -1.7, k2 2.2 after two images of lego), after which no further image registers. On
# lego's 100 photos OPENCV posed all of them in 11 of 18 runs (twice only 15); SIMPLE_RADIAL in 33 of 33.
CAMERA_MODEL = "SIMPLE_RADIAL"
# COLMAP's mapping is random (RANSAC, threads): while no model holds half the images, it is run again on the
# same features and matches, and the largest model of all runs is kept.
MAPPING_TRIES = 3

MATCHERS = ("auto", "exhaustive", "sequential", "neighbours", "vocab-tree")
# Every pair is matched up to this many images (1,225 pairs). Past it, an unordered set is matched with each
# image's RETRIEVAL_NEIGHBOURS most similar images and a video's frames with their neighbours in time. The
# pairs saved grow with N (lego's 100: 4,950 pairs exhaustively, 1,341 retrieved; 146 photos: 10,585, about
# 1,950), but a retrieved pair costs more (they overlap: 25 ms against 15 ms a pair on lego) and the
# vocabulary and retrieval 4-7 s: at 50 of lego's photos, about 22 s retrieved against 18 s exhaustively.
EXHAUSTIVE_MAX_IMAGES = 50
RETRIEVAL_NEIGHBOURS = 20
# Video frames: each frame with the next SEQUENTIAL_OVERLAP frames and the frames 2, 4, 8, ... ahead (COLMAP's
# quadratic overlap); with a vocabulary tree, every LOOP_DETECTION_PERIOD-th frame also with its most similar
# frames, which closes loops (the end of an orbit seen again at its start).
SEQUENTIAL_OVERLAP = 10
LOOP_DETECTION_PERIOD = 10
# Frames of a sequence with their next NEIGHBOUR_OVERLAP frames only (the `neighbours` matcher: no loop detection,
# no pairs far apart in time). Repeating texture (floor tiles) makes frames far apart match wrongly, and the mapper
# then registers stretches of frames in the wrong place: the beer capture broke at 3 places with every matcher
# above and in its author's model, and at none with neighbours only (5 or 3: 71 of 71 frames, the largest step
# 1.7x the median, reprojection error 0.64 px). What it gives up is closing loops, so it is the fallback for a
# sequence whose model breaks (pose_repair.py), not the first choice.
NEIGHBOUR_OVERLAP = 5
# SIFT: images are downscaled to this long side for features (finer detail adds features, not poses, and costs
# time in every pair); at most one feature per FEATURE_PIXELS pixels, between MIN_ and MAX_FEATURES (COLMAP's
# own cap is 8192), since a pair's cost grows with the features of both images.
MAX_IMAGE_SIZE = 1600
FEATURE_PIXELS = 100
MIN_FEATURES, MAX_FEATURES = 1024, 8192
# A vocabulary built from the images' own features when no tree file is given: k-means of 500 descriptors an
# image (VOCABULARY_TRAINING bounds the count) into a word per 64 descriptors or more (FAISS's k-means asks 39).
# On lego's 100 photos, 30,000 descriptors into 256 words (1.4 s of CPU) found as good neighbours as 100,000
# into 1,024 (11 s): the 20 retrieved an image held every pair of 100 or more inliers of exhaustive matching,
# and 94-96 % of all inliers.
VOCABULARY_TRAINING = (50_000, 200_000)
VOCABULARY_WORDS = 4096


@dataclass(frozen=True)
class MatcherChoice:
    matcher: str  # exhaustive, sequential or vocab-tree
    reason: str  # why, for the screen and the log


def choose_matcher(count: int, video: bool, requested: str = "auto") -> MatcherChoice:
    """Which pairs to match for `count` images (video frames when `video`), or the `requested` matcher.

    Every pair while there are at most EXHAUSTIVE_MAX_IMAGES (the surest: nothing that overlaps is missed, and
    cheap); past that, a video's frames with their neighbours in time (sequential), and an unordered set with
    its most similar images found by a vocabulary tree (vocab-tree). File names are not taken for an order:
    lego's r_0, r_1, ... are views in random places.
    """
    if requested not in MATCHERS:
        raise DatasetError("--matcher", f"unknown matcher '{requested}' (known: {', '.join(MATCHERS)})")
    if requested == "neighbours":
        return MatcherChoice(requested, f"each image with the next {NEIGHBOUR_OVERLAP} in name order")
    if requested != "auto":
        return MatcherChoice(requested, "--matcher")
    if count <= EXHAUSTIVE_MAX_IMAGES:
        return MatcherChoice("exhaustive", f"{count} images, at most {EXHAUSTIVE_MAX_IMAGES}: every pair")
    if video:
        return MatcherChoice("sequential", f"{count} video frames: each with its neighbours in time")
    return MatcherChoice("vocab-tree", f"{count} unordered images, over {EXHAUSTIVE_MAX_IMAGES}: each with its "
                                       f"{RETRIEVAL_NEIGHBOURS} most similar")


@dataclass(frozen=True)
class SiftSettings:
    max_image_size: int  # long side features are found at (the image's own when smaller)
    max_num_features: int


def sift_settings(width: int, height: int) -> SiftSettings:
    """SIFT sized to images of width x height: long side at most MAX_IMAGE_SIZE, features by area."""
    scale = min(1.0, MAX_IMAGE_SIZE / max(width, height))
    pixels = width * height * scale * scale
    features = int(min(MAX_FEATURES, max(MIN_FEATURES, round(pixels / FEATURE_PIXELS / 256) * 256)))
    return SiftSettings(min(MAX_IMAGE_SIZE, max(width, height)), features)



@dataclass(frozen=True)
class Plan:
    images: int
    width: int
    height: int
    sift: SiftSettings
    choice: MatcherChoice
    vocab_tree: Path | None  # a tree file given; None: built from the images' features when one is needed

    @property
    def needs_tree(self) -> bool:
        return self.choice.matcher == "vocab-tree" or (self.choice.matcher == "sequential"
                                                       and self.images > 2 * LOOP_DETECTION_PERIOD)

    def describe(self, backend: str) -> str:
        size = ("at full size" if self.sift.max_image_size >= max(self.width, self.height)
                else f"at {self.sift.max_image_size} px on the long side")
        return (f"COLMAP ({backend}): {self.images} images {self.width}x{self.height}; SIFT {size}, at most "
                f"{self.sift.max_num_features} features; {self.choice.matcher} matching ({self.choice.reason})")


NO_TREE_NOTICE = ("COLMAP: no vocabulary tree file given (--vocab-tree): building a vocabulary from these images' "
                   "own features instead")


def vocabulary_training(images: int) -> int:
    """Descriptors to train a vocabulary for `images` images on."""
    low, high = VOCABULARY_TRAINING
    return min(high, max(low, 500 * images))


def vocabulary_words(descriptors: int) -> int:
    """Words for a vocabulary trained on `descriptors`: a power of two with at least 64 descriptors a word,
    between 256 and VOCABULARY_WORDS."""
    return int(min(VOCABULARY_WORDS, max(256, 2 ** int(math.log2(max(descriptors // 64, 1))))))


# pycolmap: stages run as separate calls (features a few images at a time, matches a batch of pairs at a time)
# so that the bars move between them.
