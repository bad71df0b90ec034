"""PVD-AL distillation: the selection rules on crafted inputs, the per-point targets, student initialisation,
virtual poses, and short distillations on the procedural scene (stages, resume, bad input)."""

import json
import math

import pytest
import torch

from nfields.apps.distillation import ACTIVE_LEVELS, DistillConfig, Distiller, distill, resume_distillation
from nfields.apps.distillation.active import HardPosePool, HardRayPool, hard_point_mask, per_group_psnr
from nfields.apps.distillation.distiller import CPU_SAMPLES_PER_STEP
from nfields.apps.distillation.losses import copy_compatible_tensors, log_density_error, shares_color_decoder
from nfields.apps.distillation.poses import VirtualPoses, turn
from nfields.cli import main
from nfields.datasets import Cameras
from nfields.datasets.cameras import look_at
from nfields.errors import FieldsError
from nfields.fields import build_field

AABB = torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5])


# ----- point level -----
def test_hard_points_are_the_top_30_percent_of_weights_on_opaque_rays():
    # Ray 0: 10 samples, opacity 0.8 -> floor(3) + 1 = 4 points with the largest weights.
    # Ray 1: 5 samples, opacity 0.3 -> none. Ray 2: 1 sample, opaque -> that sample.
    w0 = torch.tensor([0.01, 0.2, 0.05, 0.3, 0.02, 0.1, 0.04, 0.03, 0.0, 0.05])
    w1 = torch.tensor([0.1, 0.1, 0.05, 0.03, 0.02])
    weights = torch.cat([w0, w1, torch.tensor([0.9])])
    rays = torch.tensor([0] * 10 + [1] * 5 + [2])
    opacity = torch.tensor([0.8, 0.3, 0.9])
    mask = hard_point_mask(weights, rays, opacity)
    assert mask[:10].nonzero().flatten().tolist() == [1, 2, 3, 5]  # 0.3, 0.2, 0.1 and the first 0.05
    assert not mask[10:15].any()
    assert mask[15]
    # A lower ratio keeps fewer; the rule does not depend on where a ray sits in the batch.
    assert hard_point_mask(weights, rays, opacity, ratio=0.1).sum() == 2 + 1
    shifted = hard_point_mask(torch.cat([w1, w0]), torch.tensor([0] * 5 + [1] * 10), torch.tensor([0.3, 0.8]))
    assert torch.equal(shifted[5:], mask[:10])


# ----- ray level -----
def test_ray_pool_collects_the_hardest_rays_then_replays_and_replaces_them():
    g = torch.Generator().manual_seed(0)
    pool = HardRayPool(size=4)
    origins, directions = torch.arange(8.0)[:, None].expand(8, 3), torch.ones(8, 3)
    errors = torch.tensor([0.1, 0.9, 0.2, 0.8, 0.0, 0.7, 0.3, 0.05])
    assert len(pool.draw(2, g)) == 0  # nothing is replayed before the pool is full
    hard = pool.collect(origins, directions, errors, 2, torch.zeros(0, dtype=torch.long))
    assert hard.tolist() == [1, 3] and pool.filled == 2
    pool.collect(origins, directions, errors, 3, torch.zeros(0, dtype=torch.long))  # only 2 slots left
    assert pool.full and pool.origins[:, 0].tolist() == [1.0, 3.0, 1.0, 3.0]
    slots = pool.draw(2, g)
    assert len(slots) == 2 and len(set(slots.tolist())) == 2
    pool.collect(origins + 100, directions, errors, 2, slots)
    assert sorted(pool.origins[slots, 0].tolist()) == [101.0, 103.0]
    untouched = [i for i in range(4) if i not in slots.tolist()]
    assert all(pool.origins[i, 0] < 100 for i in untouched)


# ----- pose level -----
def _poses(n):
    poses = torch.eye(4).repeat(n, 1, 1)
    poses[:, 0, 3] = torch.arange(float(n))  # the x of each centre names the pose
    return poses


def test_hard_poses_keep_their_identity_when_scores_arrive_shuffled():
    pool = HardPosePool(size=4, fraction=0.2, from_epoch=1)
    poses = _poses(10)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(3))
    psnrs = 30.0 + torch.arange(10.0)
    psnrs[7], psnrs[2] = 5.0, 6.0  # the two hard poses
    for chunk in order.split(3):  # steps see poses in shuffled order
        pool.record(chunk, psnrs[chunk])
    hard = pool.end_epoch(poses)
    assert hard.tolist() == [7, 2]
    assert pool.poses[:, 0, 3].tolist() == [7.0, 2.0]


def test_pose_pool_waits_for_its_first_epoch_then_swaps_turned_poses_in_once_full():
    g = torch.Generator().manual_seed(0)
    pool = HardPosePool(size=2, fraction=0.2, from_epoch=2)
    poses = _poses(10)
    pool.record(torch.arange(10), torch.arange(10.0))
    pool.end_epoch(poses)
    assert len(pool.poses) == 0  # before from_epoch nothing is pooled
    assert torch.equal(pool.next_epoch(poses, g), poses)
    pool.record(torch.arange(10), torch.arange(10.0))
    pool.end_epoch(poses)
    assert len(pool.poses) == 2
    pool.latest_hard = _poses(2) + 50  # the next epoch's hard poses, recognisable
    new = _poses(10) + 100
    mixed = pool.next_epoch(new, g)
    swapped = (mixed[:, 0, 3] < 100).nonzero().flatten()
    assert len(swapped) == 2
    assert sorted(mixed[swapped, 0, 3].tolist()) == [0.0, 1.0]  # the pooled poses' centres are kept
    assert not torch.allclose(mixed[swapped, :3, :3], torch.eye(3).expand(2, 3, 3))  # but turned
    assert (pool.poses[:, 0, 3] >= 50).all()  # and their slots now hold the latest hard poses


def test_per_group_psnr_pools_errors_by_group():
    errors = torch.tensor([[0.01] * 3, [0.01] * 3, [0.0001] * 3])
    values = per_group_psnr(errors, torch.tensor([0, 0, 1]), 3)
    assert values[0].item() == pytest.approx(20.0, abs=1e-4)
    assert values[1].item() == pytest.approx(40.0, abs=1e-4)
    assert math.isnan(values[2].item())


# ----- per-point targets and initialisation -----
def test_log_density_error_keeps_gradients_where_a_plain_clamp_would_not():
    teacher = torch.tensor([math.exp(1.0), math.exp(-5.0), math.exp(-5.0), math.exp(9.0)])
    student = torch.tensor([math.exp(-6.0), math.exp(-8.0), math.exp(0.5), math.exp(8.0)], requires_grad=True)
    error = log_density_error(student, teacher)
    assert error.tolist() == pytest.approx([-7.0, 0.0, 2.5, 0.0], abs=1e-5)
    error.square().sum().backward()
    grad = student.grad * student.detach()  # d/d(log sigma)
    assert grad[0] < 0 and grad[2] > 0  # below -2 with the teacher inside: pushed up; above an empty teacher: down
    assert grad[1] == 0 and grad[3] == 0  # both beyond the same bound: nothing to learn


def test_student_gets_the_teachers_colour_decoder_where_shapes_match():
    teacher = build_field("hashgrid", AABB)
    student = build_field("triplane", AABB)
    copied = copy_compatible_tensors(student, teacher)
    assert copied and all(n.startswith("color_mlp.") for n in copied)  # density decoders differ in input width
    assert torch.equal(student.color_mlp[0].weight, teacher.color_mlp[0].weight)
    assert shares_color_decoder(student, copied)
    mlp = build_field("mlp", AABB)
    assert not shares_color_decoder(mlp, copy_compatible_tensors(mlp, teacher))


def test_shared_head_mlp_student_takes_the_hash_grids_heads_and_computes_as_they_do():
    teacher = build_field("hashgrid", AABB)
    torch.manual_seed(0)
    for p in teacher.parameters():  # a teacher whose heads differ from any fresh initialisation
        p.data.normal_(0.0, 0.3)
    student = build_field("mlp", AABB, "small-shared")
    copied = copy_compatible_tensors(student, teacher)
    assert sorted({n.split(".")[0] for n in copied}) == ["color_mlp", "density_mlp"]  # PVD: D_sigma and D_c
    teacher_state = teacher.state_dict()
    for name in copied:
        assert torch.equal(student.state_dict()[name], teacher_state[name]), name
    assert not any(n.startswith("trunk_mlp") for n in copied)
    assert shares_color_decoder(student, copied)
    # Same heads, same function: the teacher's encoding through the student's density head gives the teacher's
    # density and feature, and any feature gives the teacher's colour (SH directions first, as the hash grid's).
    x = torch.rand(64, 3) * 3 - 1.5
    d = torch.nn.functional.normalize(torch.randn(64, 3), dim=-1)
    sigma, features = teacher.density(x)
    assert torch.allclose(student.density_mlp(teacher.encode(x)), features)
    assert torch.allclose(student.color(features, d), teacher.color(features, d))
    assert student.config.density_bias == teacher.config.density_bias  # the same log-density convention
    own = build_field("mlp", AABB, "small")
    assert not shares_color_decoder(own, copy_compatible_tensors(own, teacher))  # its own heads: nothing fits


def test_mlp_heads_must_be_own_or_shared():
    from nfields.fields.mlp import MLPConfig

    with pytest.raises(ValueError, match="'heads' must be one of own, shared, got 'both'"):
        build_field("mlp", AABB, config={**vars(MLPConfig()), "heads": "both"})


# ----- virtual poses -----
def _ring_cameras(n=12, radius=4.0, elevation=30.0):
    eyes = []
    for k in range(n):
        a, e = 2 * math.pi * k / n, math.radians(elevation + 10 * (k % 3))
        eyes.append(radius * torch.tensor([math.cos(a) * math.cos(e), math.sin(a) * math.cos(e), math.sin(e)]))
    poses = torch.stack([look_at(eye, torch.zeros(3), torch.tensor([0.0, 0.0, 1.0])) for eye in eyes])
    return Cameras.from_fov_x(poses, 0.7, 32, 24)


def test_virtual_orbit_poses_look_at_the_centre_within_the_real_radius_and_elevations():
    virtual = VirtualPoses(_ring_cameras(), torch.zeros(3))
    cams = virtual.sample(200, torch.Generator().manual_seed(1))
    eyes = cams.camera_to_world[:, :3, 3]
    assert torch.allclose(eyes.norm(dim=-1), torch.full((200,), 4.0), atol=1e-4)
    elevation = torch.rad2deg(torch.asin(eyes[:, 2] / 4.0))
    assert elevation.min() >= 29.9 and elevation.max() <= 50.1
    forward = -cams.camera_to_world[:, :3, 2]
    assert torch.allclose((forward * -eyes / 4.0).sum(-1), torch.ones(200), atol=1e-4)
    assert cams.width == 32 and cams.height == 24


def test_turn_keeps_centres_and_rotations_orthonormal():
    poses = _ring_cameras().camera_to_world
    turned = turn(poses, torch.Generator().manual_seed(0))
    assert torch.equal(turned[:, :3, 3], poses[:, :3, 3])
    r = turned[:, :3, :3]
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3).expand_as(r), atol=1e-5)
    trace = (poses[:, :3, :3].transpose(1, 2) @ r).diagonal(dim1=1, dim2=2).sum(-1)
    angle = torch.acos(((trace - 1) / 2).clamp(-1, 1))
    assert (angle > 0).all() and (angle <= 3 * math.pi / 20 + 1e-4).all()


# ----- distillation runs on the procedural scene -----
def _settings(teacher, student="triplane", **kw):
    kw = {"active": ACTIVE_LEVELS, "epoch_poses": 32, "ray_pool_size": 1024, **kw}  # every level, point included
    return DistillConfig(teacher=str(teacher), student=student, **kw)


def test_distilled_student_matches_the_teachers_renders(trained_procedural_run, tmp_path):
    result = distill(_settings(trained_procedural_run), steps=150, output=str(tmp_path / "student"), progress=False)
    m = result.metrics
    assert m["psnr_vs_teacher"] > 24.0, m
    for name in ("checkpoint.pt", "config.json", "distillation.json", "metrics.json", "psnr_vs_time.png"):
        assert (tmp_path / "student" / name).exists(), name
    assert main(["eval", str(tmp_path / "student"), "--views", "1"]) == 0  # a normal run folder
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert config["samples_per_step"] == CPU_SAMPLES_PER_STEP  # distillation's own CPU batch, kept for resume


def test_each_stage_lowers_its_loss(trained_procedural_run, procedural_dir, tmp_path):
    from nfields.apps.distillation.distiller import student_config
    from nfields.engine.runs import load_run
    from nfields.engine.scenes import load_scene

    teacher = load_run(trained_procedural_run, device="cpu")
    settings = _settings(trained_procedural_run, stages=(0.2, 0.5))
    config = student_config(teacher, "triplane", None, 150, None, tmp_path / "s", None, 0, "cpu", [])
    distiller = Distiller(config, settings, tmp_path / "s", teacher, load_scene(config, "train"),
                          load_scene(config, "val"), progress=False)
    losses: dict[str, list[float]] = {}
    while not distiller.done():
        stage = distiller.stage()
        losses.setdefault(stage, []).append(distiller.train_step().loss)
    assert list(losses) == ["features", "points", "rgb"]
    for stage, values in losses.items():
        head, tail = sum(values[:5]) / 5, sum(values[-5:]) / 5
        assert tail < 0.9 * head, (stage, head, tail)


def test_ray_and_pose_levels_change_what_is_sampled(trained_procedural_run, tmp_path):
    from nfields.apps.distillation.distiller import student_config
    from nfields.engine.runs import load_run
    from nfields.engine.scenes import load_scene

    teacher = load_run(trained_procedural_run, device="cpu")
    settings = _settings(trained_procedural_run, stages=(0.0, 0.0), pose_pool_size=4, pose_pool_from_epoch=1,
                         ray_pool_size=256, epoch_poses=16, poses_per_step=8)
    config = student_config(teacher, "triplane", None, 12, None, tmp_path / "s", None, 0, "cpu", [])
    distiller = Distiller(config, settings, tmp_path / "s", teacher, load_scene(config, "train"),
                          load_scene(config, "val"), progress=False)
    for _ in range(12):
        distiller.train_step()
    assert distiller.ray_pool.full and len(distiller.pose_pool.poses) == 4
    _, _, pose_of_ray, slots = distiller.sample_rays(400)
    assert len(slots) == 40 and (pose_of_ray == -1).sum() == 40  # 10 % replayed hard rays
    settings.active = ()
    _, _, pose_of_ray, slots = distiller.sample_rays(400)
    assert len(slots) == 0 and (pose_of_ray >= 0).all()


def test_distillation_resumes_mid_run(trained_procedural_run, tmp_path):
    out = tmp_path / "student"
    first = distill(_settings(trained_procedural_run), steps=20, output=str(out), progress=False)
    assert first.step == 20
    import nfields.engine.checkpoint as ckpt

    saved = ckpt.load_checkpoint(out / "checkpoint.pt")["distillation"]
    second = resume_distillation(out, {"steps": 30}, progress=False)
    assert second.step == 30
    assert saved["ray_pool"]["filled"] > 0  # the pools travelled with the checkpoint
    resumed = ckpt.load_checkpoint(out / "checkpoint.pt")["distillation"]
    assert resumed["ray_pool"]["filled"] >= saved["ray_pool"]["filled"]


def test_bad_teacher_or_student_gets_a_clear_error(trained_procedural_run, tmp_path, capsys):
    with pytest.raises(FieldsError, match="does not exist"):
        distill(_settings(tmp_path / "nowhere"), steps=5, output=str(tmp_path / "a"), progress=False)
    with pytest.raises(FieldsError, match="unknown field backbone 'voxels'.*hashgrid"):
        distill(_settings(trained_procedural_run, student="voxels"), steps=5, output=str(tmp_path / "b"),
                progress=False)
    assert main(["distill", "--teacher", str(tmp_path / "nowhere"), "--student", "mlp", "--steps", "5"]) == 2
    assert "run folder does not exist" in capsys.readouterr().err
    assert main(["distill", "--teacher", str(trained_procedural_run), "--student", "mlp", "--steps", "5",
                 "--active", "pose,voxel", "--output", str(tmp_path / "c")]) == 2
    assert "unknown active-learning level(s) voxel" in capsys.readouterr().err


def test_a_resumed_distiller_continues_exactly_where_it_stopped(trained_procedural_run, tmp_path):
    from nfields.apps.distillation.distiller import student_config
    from nfields.engine.runs import load_run
    from nfields.engine.scenes import load_scene

    teacher = load_run(trained_procedural_run, device="cpu")
    settings = _settings(trained_procedural_run, stages=(0.2, 0.5), epoch_poses=8, ray_pool_size=64)

    def distiller(folder, resume=False):
        config = student_config(teacher, "triplane", None, 10, None, folder, None, 0, "cpu", [])
        return Distiller(config, settings, folder, teacher, load_scene(config, "train"), load_scene(config, "val"),
                         resume=resume, progress=False)

    straight = distiller(tmp_path / "straight")
    expected = [straight.train_step() for _ in range(10)][6:]
    first = distiller(tmp_path / "split")
    for _ in range(6):
        first.train_step()
    first.save()
    second = distiller(tmp_path / "split", resume=True)
    assert second.step == 6 and second.copied == first.copied and second.ray_pool.filled == first.ray_pool.filled
    assert [second.train_step() for _ in range(4)] == expected  # stages, pools, RNGs and optimiser all restored


def test_resuming_a_training_run_as_a_distillation_names_the_checkpoint(trained_procedural_run, tmp_path):
    import shutil

    from nfields.apps.distillation.distiller import SETTINGS_NAME

    run = tmp_path / "run"
    shutil.copytree(trained_procedural_run, run)
    _settings(trained_procedural_run).save(run / SETTINGS_NAME)
    with pytest.raises(FieldsError, match=r"run/checkpoint.pt: not a distillation checkpoint"):
        resume_distillation(run, {"steps": 300}, progress=False)


def _stage_losses(teacher_run, tmp_path, preset, stages, steps=60):
    """Each stage's step losses and logged feature losses for a hash -> mlp (`preset`) distillation."""
    from nfields.apps.distillation.distiller import student_config
    from nfields.engine.runs import load_run
    from nfields.engine.scenes import load_scene

    teacher = load_run(teacher_run, device="cpu")
    settings = _settings(teacher_run, student="mlp", stages=stages, active=())
    config = student_config(teacher, "mlp", preset, steps, None, tmp_path / preset, None, 0, "cpu", [])
    distiller = Distiller(config, settings, tmp_path / preset, teacher, load_scene(config, "train"),
                          load_scene(config, "val"), progress=False)
    losses: dict[str, list[float]] = {}
    logged: list[float] = []
    while not distiller.done():
        stage = distiller.stage()
        losses.setdefault(stage, []).append(distiller.train_step().loss)
        if "distill/features" in distiller.log_scalars():
            logged.append(distiller.log_scalars()["distill/features"])
    return distiller, losses, logged


def test_feature_stage_runs_for_hash_to_shared_head_mlp_and_the_ablation_skips_it(trained_procedural_run,
                                                                                  tmp_path):
    distiller, losses, logged = _stage_losses(trained_procedural_run, tmp_path, "small-shared", (0.5, 0.75))
    assert "feature stage on" in distiller.describe() and "color_mlp, density_mlp" in distiller.describe()
    assert list(losses) == ["features", "points", "rgb"] and len(losses["features"]) == 30
    assert logged == pytest.approx(losses["features"])  # the feature loss is what the run logs
    head, tail = sum(logged[:5]) / 5, sum(logged[-5:]) / 5
    assert tail < 0.5 * head, (head, tail)
    # Ablation: the first boundary at 0 skips the stage; an mlp with its own heads never has it.
    _, losses, logged = _stage_losses(trained_procedural_run, tmp_path, "small-shared", (0.0, 0.75), steps=8)
    assert "features" not in losses and not logged
    distiller, losses, _ = _stage_losses(trained_procedural_run, tmp_path, "small", (0.5, 0.75), steps=8)
    assert "features" not in losses and "no feature stage" in distiller.describe()
