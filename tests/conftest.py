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
