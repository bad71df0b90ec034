"""A field's `color_weight_threshold` (TensoRF's appearance mask): the renderer runs its colour only at samples
whose compositing weight exceeds it and leaves the others black; the pixels move by at most those weights;
`every_color` turns it off."""

import torch

from nfields.renderers import VolumeRenderer

AABB = torch.tensor([-1.0, -1, -1, 1, 1, 1])


class FogAndBall:
    """Thin fog everywhere and a dense ball of radius 0.4: light samples in front of heavy ones. Counts the
    samples its colour sees."""

    def __init__(self, threshold: float):
        self.color_weight_threshold = threshold
        self.coloured = 0

    def density(self, x):
        inside = x.norm(dim=-1) < 0.4
        return torch.where(inside, 200.0, 0.05), x

    def color(self, features, directions):
        self.coloured += len(features)
        return torch.sigmoid(features * 3)


def shade(threshold: float, every_color: bool = False):
    torch.manual_seed(0)  # the occupancy update samples random points in its cells
    field = FogAndBall(threshold)
    renderer = VolumeRenderer(AABB, grid_resolution=16)
    renderer.occupancy.set_interval(1)
    renderer.update_occupancy(field, 0)
    x = torch.linspace(-0.9, 0.9, 48)
    origins = torch.stack([x, 0.1 * x, torch.full((48,), -0.95)], -1)
    directions = torch.tensor([0.0, 0.0, 1.0]).expand(48, 3).contiguous()
    visible = renderer.visible_samples(field, origins, directions, jitter=False)
    return field, visible.samples, renderer.shade(field, visible, torch.ones(3), reuse_densities=True,
                                                 every_color=every_color)


def test_colour_runs_only_above_the_weight_threshold_and_leaves_the_rest_black():
    full_field, samples, full = shade(0.0)
    field, _, masked = shade(1e-3)
    heavy = masked.weights > 1e-3
    assert 0 < heavy.sum() < len(heavy) - 100  # many samples cross the fog with tiny weights
    assert full_field.coloured == len(heavy) and field.coloured == int(heavy.sum())
    assert torch.equal(masked.weights, full.weights)
    assert (masked.rgbs[~heavy] == 0).all() and torch.equal(masked.rgbs[heavy], full.rgbs[heavy])
    dropped = torch.zeros(48).index_add_(0, samples.ray_indices, torch.where(heavy, 0.0, full.weights))
    assert ((full.rgb - masked.rgb).abs().amax(-1) <= dropped + 1e-6).all() and dropped.max() > 0


def test_every_color_ignores_the_threshold():
    """Distillation compares colours point by point: it asks for them at every sample."""
    _, _, full = shade(0.0)
    field, _, every = shade(1e-3, every_color=True)
    assert field.coloured == len(full.rgbs) and torch.equal(every.rgbs, full.rgbs)
