"""Videos: the files of each layout (read back with imageio: frame counts, sizes, fps), PNG frames, one depth colour
scale per video, and `fields render` writing them from a trained run."""

import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import pytest
import torch

from nfields.cli import main
from nfields.engine.pictures import colorize_depth, depth_image, depth_limits, surface_depth
from nfields.errors import FieldsError
from nfields.outputs.video_files import VideoOutput


def frames(n: int, h: int = 16, w: int = 24) -> dict[str, list[np.ndarray]]:
    """n RGB frames (a bright square moving right) and n depth frames (one colour per frame)."""
    rgb, depth = [], []
    for i in range(n):
        image = np.zeros((h, w, 3), np.uint8)
        image[4:12, 2 * i:2 * i + 8] = 250
        rgb.append(image)
        depth.append(np.full((h, w, 3), (20 * i, 100, 200), np.uint8))
    return {"rgb": rgb, "depth": depth}


def mp4_frames_and_fps(path) -> tuple[np.ndarray, float]:
    reader = imageio.get_reader(path)
    try:
        return np.stack(list(reader.iter_data())), reader.get_meta_data()["fps"]
    finally:
        reader.close()


def test_separate_layout_writes_one_video_per_output(tmp_path):
    out = VideoOutput(tmp_path / "orbit.mp4", ("rgb", "depth"), "separate", fps=12)
    written = out.write(frames(6))
    assert written == [tmp_path / "orbit_rgb.mp4", tmp_path / "orbit_depth.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orbit_depth.mp4", "orbit_rgb.mp4"]
    for path in written:
        video, fps = mp4_frames_and_fps(path)
        assert video.shape == (6, 16, 24, 3) and fps == pytest.approx(12)
    rgb, _ = mp4_frames_and_fps(written[0])
    assert rgb[3, 8, 6:14].mean() > 200 and rgb[3, 8, :4].mean() < 30  # frame 3's square, at its place
    depth, _ = mp4_frames_and_fps(written[1])
    assert abs(float(depth[5, ..., 0].mean()) - 100) < 12  # frame 5's depth colour (red 100, lossy)


def test_side_by_side_and_single_output(tmp_path):
    VideoOutput(tmp_path / "both.gif", fps=10).write(frames(4))
    both = iio.imread(tmp_path / "both.gif", index=None)
    assert both.shape[:3] == (4, 16, 48)  # RGB | depth
    assert iio.immeta(tmp_path / "both.gif", index=0)["duration"] == 100  # ms a frame at 10 fps
    VideoOutput(tmp_path / "rgb.mp4", ("rgb",), fps=5).write(frames(3))
    video, fps = mp4_frames_and_fps(tmp_path / "rgb.mp4")
    assert video.shape == (3, 16, 24, 3) and fps == pytest.approx(5)


@pytest.mark.parametrize("layout, folders", [("side-by-side", {".": (16, 48)}),
                                             ("separate", {"rgb": (16, 24), "depth": (16, 24)})])
def test_png_frames(tmp_path, layout, folders):
    """Every frame as frame_00000.png, ... exactly, lossless, inside the frames folder and nowhere else."""
    out = VideoOutput(tmp_path / "video" / "v.mp4", layout=layout, frames_dir=tmp_path / "pngs")
    data = frames(5)
    out.write(data)
    for folder, size in folders.items():
        names = sorted(p.name for p in (tmp_path / "pngs" / folder).iterdir() if p.is_file())
        assert names == [f"frame_{i:05d}.png" for i in range(5)]
        assert iio.imread(tmp_path / "pngs" / folder / "frame_00004.png").shape == (*size, 3)
    first = iio.imread(tmp_path / "pngs" / ("rgb" if layout == "separate" else ".") / "frame_00002.png")
    np.testing.assert_array_equal(first[:, :24], data["rgb"][2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pngs", "video"]


def test_frames_folder_must_be_new_or_empty(tmp_path):
    (tmp_path / "pngs").mkdir()
    VideoOutput(tmp_path / "v.mp4", frames_dir=tmp_path / "pngs").check()  # empty: fine
    (tmp_path / "pngs" / "old.png").write_bytes(b"")
    with pytest.raises(FieldsError, match=r"--frames-dir .*pngs: is not empty"):
        VideoOutput(tmp_path / "v.mp4", frames_dir=tmp_path / "pngs").check()
    with pytest.raises(FieldsError, match="--outputs: none given"):
        VideoOutput(tmp_path / "v.mp4", streams=()).check()


def test_depth_colours_share_one_scale_across_a_video():
    """A surface 2 away has one colour in every frame of a video, whichever frame holds the farthest point (each
    image on its own scale would colour it differently); empty pixels take the far end's colour."""
    near_frame = surface_depth(torch.tensor([[1.0, 2.0]]), torch.ones(1, 2))
    far_frame = surface_depth(torch.tensor([[2.0, 4.0, 0.0]]), torch.tensor([[1.0, 1.0, 0.0]]))
    limits = depth_limits([near_frame, far_frame])
    assert limits == (1.0, 4.0)
    a, b = depth_image(near_frame, limits), depth_image(far_frame, limits)
    np.testing.assert_array_equal(a[0, 1], b[0, 0])
    np.testing.assert_array_equal(b[0, 2], depth_image(torch.tensor([[4.0]]), limits)[0, 0])
    own = colorize_depth(torch.tensor([[2.0, 4.0]]), torch.ones(1, 2))  # the viewer's: its own scale
    assert not np.array_equal(own[0, 0], a[0, 1])


def test_cli_renders_separate_videos_and_png_frames(short_run, tmp_path, capsys):
    assert main(["render", str(short_run), "--frames", "3", "--resolution", "16", "--fps", "8", "--layout",
                 "separate", "--out", str(tmp_path / "o.mp4"), "--frames-dir", str(tmp_path / "f")]) == 0
    printed = capsys.readouterr().out
    assert f"video: {tmp_path / 'o_rgb.mp4'}" in printed and f"video: {tmp_path / 'o_depth.mp4'}" in printed
    for stream in ("rgb", "depth"):
        video, fps = mp4_frames_and_fps(tmp_path / f"o_{stream}.mp4")
        assert video.shape == (3, 16, 16, 3) and fps == pytest.approx(8)
        assert sorted(p.name for p in (tmp_path / "f" / stream).iterdir()) == [f"frame_{i:05d}.png" for i in range(3)]
    assert main(["render", str(short_run), "--frames", "2", "--resolution", "16", "--outputs", "depth",
                 "--format", "gif"]) == 0
    assert iio.imread(short_run / "orbit.gif", index=None).shape[:3] == (2, 16, 16)  # depth alone


def test_cli_refuses_interpolation_for_an_orbit_and_a_used_frames_folder(short_run, tmp_path, capsys):
    assert main(["render", str(short_run), "--interpolation", "linear"]) == 2
    assert "--interpolation applies to a --path" in capsys.readouterr().err
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "frame_00000.png").write_bytes(b"")
    assert main(["render", str(short_run), "--frames-dir", str(tmp_path / "f")]) == 2
    assert "--frames-dir" in capsys.readouterr().err and not (short_run / "orbit.mp4").exists()
