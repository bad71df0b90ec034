import torch

from nfields.renderers import OccupancyGrid

AABB = torch.tensor([-1.0, -1, -1, 1, 1, 1])


def _sphere_density(x):
    return torch.where(x.norm(dim=-1) < 0.5, 1000.0, 0.0)


def _cell_centres(res):
    idx = torch.stack(torch.meshgrid(*[torch.arange(res)] * 3, indexing="ij"), -1).float()
    return -1 + (idx + 0.5) * 2 / res


def test_updates_mark_a_known_sphere():
    grid = OccupancyGrid(AABB, resolution=32, warmup_steps=64, update_every=16)
    for step in range(0, 64, 16):
        assert grid.update(step, _sphere_density, step_size=0.01)
    assert not grid.update(3, _sphere_density, step_size=0.01)
    r = _cell_centres(32).norm(dim=-1)
    half_cell = 2 / 32 * 3**0.5 / 2
    assert grid.binary[r < 0.5 - half_cell].all()
    assert not grid.binary[r > 0.5 + half_cell].any()
    # The coarse grid (16^3, dilated) covers every occupied fine cell's coarse cell and its neighbours.
    coarse = grid.coarse_binary
    assert coarse.shape == (16, 16, 16)
    fine_in_coarse = grid.binary.view(16, 2, 16, 2, 16, 2).any(5).any(3).any(1)
    assert coarse[fine_in_coarse].all()
    assert coarse.sum() > fine_in_coarse.sum() and not coarse.all()


def test_cells_empty_out_when_the_density_moves_away():
    grid = OccupancyGrid(AABB, resolution=16, warmup_steps=10**6, update_every=1)
    grid.update(0, _sphere_density, 0.01)
    old = grid.binary.clone()
    assert old.any()
    # The EMA-max decays old values by 0.95 per update; the threshold min(mean, 0.01) follows the
    # new density, so the old sphere's cells fall below it while the new sphere's stay above.
    def moved(x):
        return torch.where((x - torch.tensor([0.5, 0.5, 0.5])).norm(dim=-1) < 0.3, 1000.0, 0.0)

    for step in range(1, 150):
        grid.update(step, moved, 0.01)
    centre_old = grid.binary[7:9, 7:9, 7:9]
    assert old[7:9, 7:9, 7:9].all() and not centre_old.any()
    assert grid.binary[11:13, 11:13, 11:13].all()


def test_mips_follow_updates_and_checkpoint_loads():
    """The native marcher's mip pyramid is rebuilt whenever the grid changes, never served stale."""

    def pooled(grid):
        return grid.binary.view(16, 2, 16, 2, 16, 2).any(5).any(3).any(1)

    grid = OccupancyGrid(AABB, resolution=32, warmup_steps=64, update_every=16)
    assert [m.shape[0] for m in grid.mips] == [16, 8, 4] and torch.equal(grid.mips[0], pooled(grid))
    grid.update(0, _sphere_density, step_size=0.01)
    assert torch.equal(grid.mips[0], pooled(grid)) and grid.mips[0].any() and not grid.mips[0].all()
    fresh = OccupancyGrid(AABB, resolution=32)
    stale = fresh.mips[0].clone()
    fresh.load_state_dict(grid.state_dict())
    assert not torch.equal(stale, pooled(grid)) and torch.equal(fresh.mips[0], pooled(grid))


def test_occupied_box_covers_the_object_with_a_margin_and_ignores_lone_floaters():
    def density(x):  # a box of half-size 0.3 about (0.2, -0.1, 0) and, far from it, cell (2, 29, 29) alone
        solid = ((x - torch.tensor([0.2, -0.1, 0.0])).abs() < 0.3).all(-1)
        speck = ((x - torch.tensor([-0.84375, 0.84375, 0.84375])).abs() < 0.03125).all(-1)
        return torch.where(solid | speck, 1000.0, 0.0)

    grid = OccupancyGrid(AABB, resolution=32, warmup_steps=64, update_every=16)
    assert torch.equal(grid.occupied_box(), AABB)  # nothing occupied yet: the scene box
    for step in range(0, 64, 16):
        grid.update(step, density, step_size=0.01)
    assert grid.binary[2, 29, 29]  # the speck's cell is occupied, yet left out of the box
    box, cell = grid.occupied_box(), 2 / 32
    solid = torch.tensor([-0.1, -0.4, -0.3, 0.5, 0.2, 0.3])
    assert (box[:3] <= solid[:3] - cell + 1e-6).all() and (box[3:] >= solid[3:] + cell - 1e-6).all()
    assert (box[:3] >= solid[:3] - 3 * cell).all() and (box[3:] <= solid[3:] + 3 * cell).all()
