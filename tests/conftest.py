import pytest
import torch

from nfields.datasets import make_procedural_scene, write_blender_scene

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def procedural_dir(tmp_path_factory):
    """The procedural scene written in Blender format: 40 train and 4 val views at 48x48."""
    folder = tmp_path_factory.mktemp("procedural")
    write_blender_scene(make_procedural_scene(40, 48), folder, "train")
    write_blender_scene(make_procedural_scene(4, 48, seed_offset=17.0), folder, "val")
    return folder


@pytest.fixture(scope="session")
def trained_procedural_run(procedural_dir, tmp_path_factory):
    """A hash-grid field fitted to the procedural scene (250 steps, about a minute on 2 cores)."""
    from nfields.engine.config import TrainConfig
    from nfields.engine.trainer import train

    out = tmp_path_factory.mktemp("trained") / "run"
    train(TrainConfig(scene=str(procedural_dir), steps=250, output=str(out), samples_per_step=1 << 13,
                      occupancy_every=16, grid_resolution=64, eval_every=1e9, eval_pixels=1024, final_eval_views=1),
          progress=False)
    return out


@pytest.fixture(scope="session")
def short_run(procedural_dir, tmp_path_factory):
    """A hash-grid field after 5 steps on the procedural scene: a run for commands that read one (render, eval)."""
    from nfields.engine.config import TrainConfig
    from nfields.engine.trainer import train

    run = tmp_path_factory.mktemp("short") / "run"
    train(TrainConfig(scene=str(procedural_dir), field="hashgrid", steps=5, output=str(run), grid_resolution=32,
                      eval_every=1e9, eval_pixels=256, final_eval_views=1), progress=False)
    return run
