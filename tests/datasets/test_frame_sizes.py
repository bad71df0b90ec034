"""Captures whose frames differ in size (nerfstudio's per-frame w, h and intrinsics): each camera keeps its own size
through conversion and loading, training draws pixels of every image in proportion to its size and never outside
it, and each view renders at its own size."""

import json
import shutil

import numpy as np
import torch
from support import orbit_c2w, write_images, write_transforms

from nfields.datasets import Cameras, load_dataset, read_capture
from nfields.datasets.ingest.convert import convert
from nfields.engine.config import TrainConfig
from nfields.engine.evaluation import evaluate, render_view
from nfields.engine.scenes import resolution_line
from nfields.engine.trainer import Trainer

SIZES = [(40, 30), (24, 32)]  # landscape and portrait frames, alternating


def _two_size_capture(folder, n=8):
    """A nerfstudio capture of n frames alternating between SIZES, each with its own intrinsics and depth map."""
    frames = []
    for i, pose in enumerate(orbit_c2w(n)):
        w, h = SIZES[i % 2]
        name = f"f{i}.png"
        write_images(folder / "images", [name], w, h, seed=i)
        (folder / "depth").mkdir(parents=True, exist_ok=True)
        np.save(folder / "depth" / f"f{i}.npy", np.full((h, w), 3000.0 + i, np.float32))
        frames.append({"file_path": f"images/{name}", "transform_matrix": pose.tolist(), "w": w, "h": h,
                       "fl_x": 0.9 * w + i, "fl_y": 0.9 * w + i + 0.5, "cx": w / 2 + 0.25 * i, "cy": h / 2 - 0.5,
                       "depth_file_path": f"depth/f{i}.npy"})
    write_transforms(folder / "transforms.json", {"camera_model": "PINHOLE", "frames": frames})
    return frames


def _intrinsics(frame: dict) -> list[float]:
    return [frame[k] for k in ("w", "h", "fl_x", "fl_y", "cx", "cy")]


def test_round_trip_through_the_nerfstudio_layout_keeps_each_frames_size_and_intrinsics(tmp_path):
    frames = _two_size_capture(tmp_path / "ns")
    convert(tmp_path / "ns", tmp_path / "one", downscales=(2,), progress=False)
    one = json.loads((tmp_path / "one" / "transforms.json").read_text())
    assert "w" not in one and "h" not in one  # no size for the whole file: each frame states its own
    for written, source in zip(one["frames"], frames):
        np.testing.assert_allclose(_intrinsics(written), _intrinsics(source), rtol=1e-9)
    back = tmp_path / "one_ns"  # what a nerfstudio user hands back: the converted folder without its `fields` block
    shutil.copytree(tmp_path / "one", back)
    del one["fields"]
    (back / "transforms.json").write_text(json.dumps(one))
    convert(back, tmp_path / "two", fmt="nerfstudio", progress=False)
    two = json.loads((tmp_path / "two" / "transforms.json").read_text())
    for written, source in zip(two["frames"], frames):
        np.testing.assert_allclose(_intrinsics(written), _intrinsics(source), rtol=1e-9)
    np.testing.assert_array_equal(read_capture(tmp_path / "two").sizes, [SIZES[i % 2] for i in range(len(frames))])


def test_a_scene_of_two_sizes_loads_each_image_depth_and_camera_at_its_size(tmp_path):
    _two_size_capture(tmp_path / "ns")
    convert(tmp_path / "ns", tmp_path / "one", downscales=(2,), progress=False)
    for k in (1, 2):
        scene = load_dataset(tmp_path / "one", "train", downscale=k)
        sizes = [(w // k, h // k) for w, h in (SIZES[i % 2] for i in read_capture(tmp_path / "one").splits["train"])]
        assert scene.cameras.sizes.tolist() == [list(s) for s in sizes]
        assert scene.images.shape[1:3] == (32 // k, 40 // k)  # padded to the largest height and width
        assert f"2 sizes up to {40 // k}x{32 // k}" in resolution_line(scene, k, chosen=False)
        for i, (w, h) in enumerate(sizes):
            assert scene.image(i).shape == (h, w, 3)
            assert (scene.depths[i, :h, :w] > 0).all() and (scene.depths[i, h:] == 0).all()
            assert (scene.depths[i, :, w:] == 0).all() and (scene.images[i, h:] == 0).all()


def test_random_pixels_stay_inside_their_image_and_follow_pixel_counts():
    c2w = torch.eye(4).expand(3, 4, 4)
    sizes = torch.tensor([[40, 30], [24, 32], [10, 5]])
    cameras = Cameras(c2w, torch.full((3, 2), 20.0), torch.full((3, 2), 10.0), 40, 32, sizes=sizes)
    cam, x, y = cameras.random_pixels(200_000, torch.Generator().manual_seed(0))
    assert (x >= 0).all() and (y >= 0).all()
    assert (x < sizes[cam, 0]).all() and (y < sizes[cam, 1]).all()
    pixels = (sizes[:, 0] * sizes[:, 1]).double()
    share = torch.bincount(cam, minlength=3).double() / len(cam)
    torch.testing.assert_close(share, pixels / pixels.sum(), atol=0.01, rtol=0)
    # every pixel of the small image is drawn: the corners too
    small = cam == 2
    assert x[small].max() == 9 and y[small].max() == 4 and x[small].min() == 0 and y[small].min() == 0


def test_training_and_evaluation_on_two_sizes(tmp_path):
    _two_size_capture(tmp_path / "ns")
    convert(tmp_path / "ns", tmp_path / "one", progress=False)
    train, val = load_dataset(tmp_path / "one", "train"), load_dataset(tmp_path / "one", "val")
    config = TrainConfig(data=str(tmp_path / "one"), steps=3, samples_per_step=1 << 11, grid_resolution=16,
                         eval_every=1e9, threads=2, depth_loss=0.1, output=str(tmp_path / "run"))
    trainer = Trainer(config, tmp_path / "run", train, val, progress=False)
    batch = trainer.sample_batch(4096)
    # the images are random colours: a black target would be padding outside an image
    assert not (batch.target == 0).all(-1).any()
    assert (batch.depth > 0).all()  # every pixel of every image has a depth; padding has none
    while not trainer.done():
        trainer.train_step()
    trainer.field.eval()
    for i in range(len(train.cameras)):
        w, h = train.cameras.size_of(i)
        view = render_view(trainer.field, trainer.renderer, train.cameras, i)
        assert view["rgb"].shape == (h, w, 3) and view["depth"].shape == (h, w)
    metrics = evaluate(trainer.field, trainer.renderer, val, count=None, with_lpips=False)
    assert np.isfinite(metrics["psnr"])
