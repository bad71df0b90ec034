"""Tri-plane classifiers: fitting, sharding and resume, the loader, permutation invariance, classify, and a
tiny end-to-end run on procedural shapes. Sizes are tiny (8 channels, 16 x 16 planes)."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import torch
import trimesh
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nfields.apps.triplanes.classifiers import (
    ChannelTransformer,
    TransformerConfig,
    center_crop,
    offset_crops,
    stack_planes,
)
from nfields.apps.triplanes.classify import classify, read_planes
from nfields.apps.triplanes.fitting import FitConfig, field_distance, fit_planes, make_decoder
from nfields.apps.triplanes.pipeline import fit_dataset
from nfields.apps.triplanes.shapes import (
    CorruptShapeWarning,
    discover_shapes,
    load_shapes,
    resolve_dataset,
    select_split,
)
from nfields.apps.triplanes.store import load_fitted
from nfields.apps.triplanes.training import (
    CLASSIFIER_FORMAT,
    balanced_class_weights,
    predict,
    train_plane_classifier,
)
from nfields.engine.checkpoint import atomic_torch_save, save_checkpoint
from nfields.errors import FieldsError
from nfields.fields import build_field

TINY = FitConfig(channels=8, resolution=16, steps=80, queries=512, pool=4096, decoder_steps=200,
                 eval_points=512)


def procedural_points(kind: str, rng: np.random.Generator, n: int = 1024) -> np.ndarray:
    """Surface points (n, 3) of a sphere, box, torus or cylinder with random proportions."""
    if kind == "sphere":
        p = rng.normal(size=(n, 3))
        return p / np.linalg.norm(p, axis=1, keepdims=True) * rng.uniform(0.5, 1.0)
    if kind == "box":
        p = rng.uniform(-1, 1, (n, 3))
        axis = rng.integers(3, size=n)
        p[np.arange(n), axis] = np.sign(p[np.arange(n), axis])
        return p * rng.uniform(0.5, 1.0, 3)
    u, v = rng.uniform(0, 2 * np.pi, (2, n))
    if kind == "torus":
        r = rng.uniform(0.2, 0.35)
        return np.stack([(1 + r * np.cos(v)) * np.cos(u), (1 + r * np.cos(v)) * np.sin(u), r * np.sin(v)], 1)
    h = rng.uniform(0.8, 2.0)
    return np.stack([np.cos(u), np.sin(u), rng.uniform(-h, h, n)], 1)  # cylinder


def write_pcd(path: Path, points: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cloud = o3d.geometry.PointCloud()
    cloud.points = o3d.utility.Vector3dVector(points)
    o3d.io.write_point_cloud(str(path), cloud, write_ascii=False)


def make_dataset(root: Path, per_class: int, test_per_class: int = 0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for kind in ("box", "cylinder", "sphere", "torus"):
        for split, count in (("train", per_class), ("test", test_per_class)):
            for i in range(count):
                write_pcd(root / kind / split / f"{kind}_{i:03d}.pcd", procedural_points(kind, rng))
    return root


def test_sphere_distances():
    """The fitted field's distance matches |‖x‖ - r| within 0.025 on average within 0.06 of a sphere's surface.
    The target is the distance to 2,048 points (spacing about 0.05), not to the sphere: that alone differs from
    |‖x‖ - r| by about 0.015 on average."""
    rng = np.random.default_rng(0)
    points = procedural_points("sphere", rng, 2048)
    radius = np.linalg.norm(points[0])
    torch.manual_seed(0)
    config = replace(TINY, channels=16, resolution=32, decoder_steps=300)
    decoder = make_decoder(config)
    result = fit_planes([points.astype(np.float32)], decoder, config, train_decoder=True)
    x = rng.normal(size=(2000, 3))
    x = x / np.linalg.norm(x, axis=1, keepdims=True) * (radius + rng.uniform(-0.06, 0.06, (2000, 1)))
    predicted = field_distance(result.planes, decoder, torch.from_numpy(x[None].astype(np.float32)))[0]
    truth = np.abs(np.linalg.norm(x, axis=1) - radius)
    error = np.abs(predicted.detach().numpy() - truth)
    assert error.mean() < 0.025, error.mean()
    assert result.udf_error[0] < 0.02


def _fit_in_subprocess(dataset: Path, out: Path, rank: int, world: int) -> subprocess.Popen:
    code = ("import sys; from dataclasses import replace; from nfields.apps.triplanes.pipeline import fit_dataset;"
            "from nfields.apps.triplanes.fitting import FitConfig;"
            "cfg = FitConfig(channels=8, resolution=16, steps=5, queries=128, pool=1024, decoder_steps=5,"
            " eval_points=128);"
            f"fit_dataset({str(dataset)!r}, {str(out)!r}, 'all', 4, cfg, progress=False)")
    env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", code], env=env)


def test_sharding_covers_every_shape_once_and_resume_skips(tmp_path):
    dataset = make_dataset(tmp_path / "data", 5)
    out = tmp_path / "fit"
    procs = [_fit_in_subprocess(dataset, out, rank, 2) for rank in (0, 1)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    files = sorted((out / "shapes").rglob("*.pt"))
    records = discover_shapes(dataset)
    assert [f.relative_to(out / "shapes").as_posix() for f in files] == [f"{r.relpath}.pt" for r in records]
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    files[3].unlink()
    summary = fit_dataset(dataset, out, "all", 4, replace(TINY, steps=5), progress=False)
    assert (summary.fitted, summary.already_done) == (1, len(records) - 1)
    assert all(f.stat().st_mtime_ns == mtimes[f] for f in files if f != files[3])


def test_transformer_is_invariant_to_channel_permutations():
    torch.manual_seed(0)
    model = ChannelTransformer(5, TransformerConfig(d_model=32, layers=2, heads=4, ffn=64), size=14).eval()
    x = torch.randn(3, 24, 14, 14)
    permuted = x[:, torch.randperm(24)]
    with torch.no_grad():
        assert torch.allclose(model(x), model(permuted), atol=1e-5)


def test_loader_split_is_fixed_stratified_disjoint_and_uses_test(tmp_path):
    dataset = make_dataset(tmp_path / "data", 20, test_per_class=3)
    records = discover_shapes(dataset, val_fraction=0.15, seed=0)
    again = discover_shapes(dataset, val_fraction=0.15, seed=0)
    assert records == again
    train, val, test = (set(r.relpath for r in select_split(records, s)) for s in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == len(records) == 4 * 23
    for kind in ("box", "cylinder", "sphere", "torus"):
        assert sum(r.class_name == kind for r in select_split(records, "val")) == 3
        assert all(p.startswith(f"{kind}/test/") for p in test if p.startswith(kind))
    assert discover_shapes(dataset, seed=1) != records
    with pytest.raises(FieldsError, match="no <class>/test"):
        select_split(discover_shapes(make_dataset(tmp_path / "no_test", 3), test_fraction=0), "test")


def test_test_split_carved_from_train_is_stratified_disjoint_and_fixed(tmp_path):
    """Without test folders, each class's train files give round(0.15 n) test and round(0.10 n) val shapes, the
    same on every call, disjoint, and a smaller class keeps the same proportions."""
    dataset = make_dataset(tmp_path / "data", 40)
    for f in sorted((dataset / "torus" / "train").glob("*.pcd"))[20:]:
        f.unlink()  # 20 tori, 40 of each other class
    records = discover_shapes(dataset, val_fraction=0.10, test_fraction=0.15, seed=0)
    assert records == discover_shapes(dataset, val_fraction=0.10, test_fraction=0.15, seed=0)
    assert all(r.relpath.split("/")[1] == "train" for r in records)  # every file comes from train/
    splits = {s: [r for r in records if r.split == s] for s in ("train", "val", "test")}
    assert len({r.relpath for s in splits.values() for r in s}) == len(records) == 3 * 40 + 20
    for kind, n in (("box", 40), ("cylinder", 40), ("sphere", 40), ("torus", 20)):
        counts = {s: sum(r.class_name == kind for r in rs) for s, rs in splits.items()}
        assert counts == {"train": n - round(0.15 * n) - round(0.10 * n), "val": round(0.10 * n),
                          "test": round(0.15 * n)}
    other_seed = discover_shapes(dataset, val_fraction=0.10, test_fraction=0.15, seed=1)
    assert {r.relpath for r in other_seed if r.split == "test"} != {r.relpath for r in splits["test"]}


def test_balanced_class_weights_equalise_each_class_share_of_the_loss():
    labels = torch.tensor([0] * 30 + [1] * 10 + [2] * 20)
    weights = balanced_class_weights(labels, 4)
    counts = torch.bincount(labels, minlength=4).float()
    share = weights * counts  # each class's total weight in the loss
    assert torch.allclose(share[:3], share[0].expand(3)) and weights[3] == 0
    assert torch.isclose(weights[labels].mean(), torch.tensor(1.0))  # the loss keeps its scale


def test_offset_crops_cover_every_offset_and_predict_averages_their_probabilities():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6)
    views = offset_crops(x, 4)
    assert len(views) == 9 and all(v.shape == (2, 3, 4, 4) for v in views)
    assert {(int(v[0, 0, 0, 0]) // 6, int(v[0, 0, 0, 0]) % 6) for v in views} == {(i, j) for i in range(3)
                                                                                for j in range(3)}
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16, 5))
    averaged = predict(model, x, lambda b: offset_crops(b, 4))
    expected = torch.stack([model(v).softmax(1) for v in views]).mean(0)
    assert torch.allclose(averaged, expected) and torch.allclose(averaged.sum(1), torch.ones(2))
    assert torch.allclose(predict(model, x, lambda b: [center_crop(b, 4)]), model(center_crop(x, 4)).softmax(1))


def test_the_test_split_never_reaches_epoch_selection(tmp_path, monkeypatch):
    """fit_classifier (which selects the epoch) sees only train and val shapes; the test shapes are scored once,
    afterwards, by the selected model."""
    import nfields.apps.triplanes.training as training

    dataset = make_dataset(tmp_path / "data", 8, test_per_class=2)
    out = tmp_path / "fit"
    fit_dataset(dataset, out, "all", 32, replace(TINY, steps=5, decoder_steps=5), progress=False)
    fitted = load_fitted(out)
    test_planes = stack_planes(fitted.planes[torch.tensor([s == "test" for s in fitted.splits])])
    seen = []
    original = training.fit_classifier

    def spy(model, x_train, y_train, x_val, y_val, *args, **kwargs):
        seen.extend([x_train, x_val])
        return original(model, x_train, y_train, x_val, y_val, *args, **kwargs)

    monkeypatch.setattr(training, "fit_classifier", spy)
    result = training.train_plane_classifier(out, "cnn", epochs=2, batch=8, progress=False, logger="none")
    assert len(seen) == 2 and len(seen[0]) + len(seen[1]) == len(fitted.labels) - len(test_planes)
    for x in seen:  # no test shape among the inputs of selection
        assert not (x.flatten(1)[:, None, :] == test_planes.flatten(1)[None]).all(-1).any()
    assert result.test_confusion.sum() == len(test_planes) == 8 and result.test_accuracy is not None
    report = json.loads((out / "cnn" / "per_class.json").read_text())
    assert sum(row["count"] for row in report["test_per_class"].values()) == 8


def test_meshes_load_as_surface_points(tmp_path):
    for i, mesh in enumerate([trimesh.creation.icosphere(), trimesh.creation.box((1, 2, 3))]):
        folder = tmp_path / ("ball" if i == 0 else "brick") / "train"
        folder.mkdir(parents=True)
        mesh.export(folder / f"shape.{'obj' if i == 0 else 'off'}")
    shapes, skipped = load_shapes(discover_shapes(tmp_path), mesh_points=500)
    assert not skipped and [len(s.points) for s in shapes] == [500, 500]
    assert np.isclose(np.abs(shapes[1].points).max(), 0.9, atol=1e-4)  # longest side normalised to [-0.9, 0.9]


def test_corrupt_files_are_reported_by_name_and_skipped(tmp_path):
    dataset = make_dataset(tmp_path / "data", 3)
    good = (dataset / "box" / "train" / "box_000.pcd").read_bytes()
    (dataset / "box" / "train" / "truncated.pcd").write_bytes(good[:len(good) // 3])
    (dataset / "sphere" / "train" / "garbage.pcd").write_bytes(b"\x00not a pcd" * 20)
    (dataset / "torus" / "train" / "broken.off").write_text("OFF\n3 1 0\n0 0 0\n")
    with pytest.warns(CorruptShapeWarning) as caught:
        shapes, skipped = load_shapes(discover_shapes(dataset, val_fraction=0))
    assert len(shapes) == 12 and len(skipped) == 3
    for name in ("truncated.pcd", "garbage.pcd", "broken.off"):
        assert sum(name in s for s in skipped) == 1
        assert any(name in str(w.message) for w in caught)


def test_missing_data_says_what_and_how(tmp_path):
    with pytest.raises(Exception, match="(?s)not found.*--data-root"):
        resolve_dataset("modelnet10_pcd", data_root=tmp_path)


def _classifier_checkpoint(path: Path, in_channels: int = 48, crop: int = 30) -> Path:
    model = ChannelTransformer(3, TransformerConfig(d_model=16, layers=1, heads=2, ffn=32), size=crop)
    atomic_torch_save(path, {"format": CLASSIFIER_FORMAT, "model": "transformer", "preset": "cpu",
                             "model_config": {}, "input": "triplane", "in_channels": in_channels, "crop": crop,
                             "plane_shape": [3, 16, 32, 32], "classes": ["a", "b", "c"],
                             "state": model.state_dict(), "val_accuracy": 0.0, "best_epoch": 0})
    return path


def _radiance_checkpoint(folder: Path, preset: str) -> Path:
    field = build_field("triplane", torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5]), preset=preset)
    save_checkpoint(folder / "checkpoint.pt", {"field_name": "triplane", "field_config": {},
                                               "field": field.state_dict(), "renderer": {}, "step": 0})
    return folder


def test_classify_a_published_triplane_radiance_field(tmp_path, monkeypatch):
    import nfields.apps.triplanes.classify as classify_module

    monkeypatch.setattr(classify_module, "build_plane_classifier",
                        lambda *a: ChannelTransformer(3, TransformerConfig(d_model=16, layers=1, heads=2, ffn=32)))
    checkpoint = _classifier_checkpoint(tmp_path / "classifier.pt")
    run = _radiance_checkpoint(tmp_path / "run", "published")
    planes, truth = read_planes(run, (3, 16, 32, 32))
    assert planes.shape == (3, 16, 32, 32) and truth is None
    (prediction,) = classify(checkpoint, [run])
    assert prediction.class_name in ("a", "b", "c") and 0 < prediction.probability <= 1
    other = _radiance_checkpoint(tmp_path / "cpu_run", "cpu")
    with pytest.raises(FieldsError, match=r"cpu_run/checkpoint.pt: tri-plane layout .*\(3, 16, 64, 64\).*"
                                          r"\(3, 16, 32, 32\)"):
        read_planes(other, (3, 16, 32, 32))


def test_end_to_end_procedural_shapes_classify_above_chance(tmp_path):
    dataset = make_dataset(tmp_path / "data", 12, test_per_class=4, seed=1)
    out = tmp_path / "fit"
    summary = fit_dataset(dataset, out, "all", 32, TINY, progress=False)
    assert summary.fitted == 4 * 16 and not summary.skipped
    assert load_fitted(out).udf_error.mean() < 0.03
    result = train_plane_classifier(out, "transformer", epochs=25, batch=16, lr=1e-3, progress=False)
    test_files = sorted((out / "shapes").rglob("*/test/*.pt"))
    predictions = classify(out / "transformer" / "classifier.pt", test_files)
    accuracy = np.mean([p.class_name == p.true_class for p in predictions])
    assert accuracy >= 0.6, (accuracy, result.val_accuracy)  # chance is 0.25
    for name in ("classifier.pt", "confusion.png", "per_class.json", "curves.png"):
        assert (out / "transformer" / name).is_file()
    fit_log = EventAccumulator(str(out)).Reload()  # the curves in tensorboard's event files
    assert [e.step for e in fit_log.Scalars("fit/udf_error")] == [32, 64]  # after each batch of 32 shapes
    classifier_log = EventAccumulator(str(out / "transformer")).Reload()
    assert {"train/loss", "train/accuracy", "val/accuracy", "lr"} <= set(classifier_log.Tags()["scalars"])
    assert len(classifier_log.Scalars("val/accuracy")) == 25  # one per epoch


@pytest.mark.slow
def test_real_modelnet_shapes_load():
    try:
        folder = resolve_dataset("modelnet10_pcd")
    except Exception as err:
        pytest.skip(f"ModelNet10 point clouds not found ({str(err).splitlines()[0][:120]})")
    records = discover_shapes(folder)
    assert len(records) == 3991 and len(set(r.class_name for r in records)) == 10
    shapes, skipped = load_shapes(records[::200])
    assert not skipped and all(s.points.shape == (1024, 3) for s in shapes)
