"""Native kernels against their PyTorch twins, in one run: samples per second and ratios.

Workloads:
- marching + compositing (forward and backward) of training-sized ray batches through a 128^3 occupancy
  grid, with densities that make rays terminate early. Scene: the procedural spheres-and-box scene
  (default), or a trained run's occupancy grid and field (`--run RUN`, e.g. a lego run);
- hash encoding forward + backward of a training-sized point batch, for the CPU and published presets;
- cone-step marching through 5 occupancy cascades (unbounded scenes): rays from cameras inside the scene box
  in every direction, through blob-shaped occupancy at every level;
- feature-plane sampling forward + backward (summed tri-plane, 16 channels at 256^2, as the triplane
  backbone's finest level; and one TensoRF-VM appearance plane set, 24 channels at 200^2);
- TensoRF-VM's products (CPU only) forward + backward, three 24-channel 200^2 planes times three lines (the
  appearance factors of the CPU preset's last resolution) at points along rays: the native kernel on channels_last
  factors and on PyTorch's layout, against the per-factor lookups it replaced (native plane sampling) and the twin;
- the fused MLP (CPU only) forward + backward, gradients to the input and the weights, on the hash grid's
  density (32 -> 64 -> 16) and colour (32 -> 64 -> 64 -> 3) shapes, each instruction-set path this CPU runs;
- CAM's modulated trunk (CPU only) forward + backward on the same kernel: the cam cpu preset's 4 x 128 trunk (skip
  after layer 2, a scale and shift per row after every hidden layer) and its density head, gradients to the
  weights and the modulation, against its layers one by one in PyTorch.
References: the PyTorch twins the tests check the kernels against, and nerfacc's pure-PyTorch compositing
(`render_weight_from_density` on padded (rays, samples) batches: its packed form needs CUDA).

    python benchmarks/kernels.py --threads 2 [--run runs/lego-hashgrid-...] [--device cpu|cuda] [--only mlp|cam|...]
"""

from __future__ import annotations

import argparse
import math
import time
from functools import partial

import torch
from nerfacc.volrend import render_weight_from_density

from nfields.cuda import functions
from nfields.cuda.dispatch import kernels_for
from nfields.datasets.cameras import Cameras, orbit_poses
from nfields.datasets.procedural import procedural_sdf
from nfields.engine.runs import load_run
from nfields.fields.base import mlp
from nfields.fields.cam import CAMConfig, ModulatedMLP
from nfields.fields.encodings import positional_encoding_dim
from nfields.fields.grids import pair_products, sample_planes, sample_planes_torch, vm_products_torch
from nfields.fields.hash_encoding import HashGridGeometry, hash_encode_torch
from nfields.fields.hashgrid import HashGridConfig
from nfields.fields.relu_mlp import fused_relu_layers
from nfields.renderers import torch_ops
from nfields.renderers.render_ops import TORCH_OPS, kernel_ops


def compare(candidates: dict, repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds of each callable over `repeats` rounds, interleaved so that all of them see the same
    machine load (these machines are shared), after one warm-up round."""
    times = {name: [] for name in candidates}
    for round_ in range(repeats + 1):
        for name, fn in candidates.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def ray_batch(n_rays: int, radius: float, device: torch.device, seed: int = 0):
    """Random pixels of 100 orbit cameras (fov 0.69 rad, 400x400) looking at the origin."""
    g = torch.Generator().manual_seed(seed)
    cams = Cameras.from_fov_x(orbit_poses(100, radius, 30.0), 0.69, 400, 400)
    idx = torch.randint(0, 100, (n_rays,), generator=g)
    rays = cams.rays(idx, torch.rand(n_rays, generator=g) * 400, torch.rand(n_rays, generator=g) * 400)
    return rays.origins.to(device), rays.directions.to(device)


class ProceduralScene:
    """Occupancy from the procedural SDF; density 200 inside the surface, smoothed over 0.01."""

    aabb = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    radius = 3.0

    def __init__(self, device):
        res = 128
        centres = (torch.stack(torch.meshgrid(*[torch.arange(res)] * 3, indexing="ij"), -1).view(-1, 3) + 0.5) / res
        sdf = procedural_sdf(self.aabb[:3] + centres * 2.0)
        self.binary = (sdf < 2 * 2.0 / res).view(res, res, res).to(device)
        self.aabb = self.aabb.to(device)
        self.step = math.sqrt(3) * 2.0 / 1024

    def sigma_rgb(self, positions):
        sdf = procedural_sdf(positions.cpu()).to(positions.device)
        return 200 * torch.sigmoid(-sdf / 0.01), torch.rand(len(positions), 3, device=positions.device)


class RunScene:
    """A trained run's occupancy grid, step and field."""

    def __init__(self, folder, device):
        run = load_run(folder, str(device))
        self.field, renderer = run.field, run.renderer
        self.binary, self.aabb, self.step = renderer.occupancy.binary, renderer.aabb, renderer.step_size
        self.radius = 4.0

    @torch.no_grad()
    def sigma_rgb(self, positions):
        sigma, feature = self.field.density(positions)
        return sigma, self.field.color(feature, torch.nn.functional.normalize(positions, dim=-1))


def march_composite_case(scene, device, n_rays: int, repeats: int):
    ops = kernel_ops(kernels_for(device))
    origins, directions = ray_batch(n_rays, scene.radius, device)
    t_min, t_max = torch_ops.ray_aabb_intersect(origins, directions, scene.aabb)
    offsets = torch.rand_like(t_min)
    coarse = torch_ops.coarse_grid(scene.binary)
    samples = TORCH_OPS.march_rays(origins, directions, t_min, t_max, scene.binary, scene.aabb, scene.step, offsets,
                                   coarse)
    positions, _ = samples.midpoints(origins, directions)
    sigmas, rgbs = scene.sigma_rgb(positions)
    grad = torch.rand(n_rays, 3, device=device)

    def run(impl, **kw):
        s = impl.march_rays(origins, directions, t_min, t_max, scene.binary, scene.aabb, scene.step, offsets, **kw)
        sg, c = sigmas.clone().requires_grad_(), rgbs.clone().requires_grad_()
        rgb, *_ = impl.composite(sg, c, s, n_rays, 1e-4)
        rgb.backward(grad)

    def nerfacc_composite():  # padded (rays, samples) layout: its pure-PyTorch path
        counts = torch.bincount(samples.ray_indices, minlength=n_rays)
        width = int(counts.max())
        local = torch.arange(len(samples), device=device) - (torch.cumsum(counts, 0) - counts)[samples.ray_indices]
        pad = torch.zeros(n_rays, width, device=device)
        ts, te, sg = pad.clone(), pad.clone(), pad.clone()
        ts[samples.ray_indices, local], te[samples.ray_indices, local] = samples.t_starts, samples.t_ends
        sg[samples.ray_indices, local] = sigmas
        col = torch.zeros(n_rays, width, 3, device=device)
        col[samples.ray_indices, local] = rgbs
        sg.requires_grad_()
        col.requires_grad_()
        weights, _, _ = render_weight_from_density(ts, te, sg)
        (weights[..., None] * col).sum(1).backward(grad)

    def march(impl, **kw):
        return lambda: impl.march_rays(origins, directions, t_min, t_max, scene.binary, scene.aabb, scene.step,
                                       offsets, **kw)

    def comp(impl):
        def fn():
            sg, c = sigmas.clone().requires_grad_(), rgbs.clone().requires_grad_()
            rgb, *_ = impl.composite(sg, c, samples, n_rays, 1e-4)
            rgb.backward(grad)
        return fn

    results = compare({"native": lambda: run(ops), "pytorch twin": lambda: run(TORCH_OPS, coarse_binary=coarse)},
                      repeats, device)
    march_only = compare({"native": march(ops), "pytorch twin": march(TORCH_OPS, coarse_binary=coarse)},
                         repeats, device)
    composite_only = compare({"native": comp(ops), "pytorch twin": comp(TORCH_OPS),
                              "nerfacc (padded)": nerfacc_composite}, repeats, device)
    return len(samples), results, march_only, composite_only


def hash_case(preset: str, device, n_points: int, repeats: int):
    c = HashGridConfig.presets()[preset]
    geometry = HashGridGeometry.build(c.n_levels, c.log2_table_size, c.base_resolution, c.max_resolution)
    table = (torch.rand(geometry.total_size, c.n_features, device=device) * 2e-4 - 1e-4).requires_grad_()
    x = torch.rand(n_points, 3, device=device)
    grad = torch.randn(n_points, c.n_levels * c.n_features, device=device)
    kernels = kernels_for(device)
    return compare({
        "native": lambda: functions.hash_encode(kernels, x, table, geometry.kernel_levels).backward(grad),
        "pytorch twin": lambda: hash_encode_torch(x, table, geometry).backward(grad),
    }, repeats, device)


def cascade_case(device, n_rays: int, repeats: int, levels: int = 5, resolution: int = 128):
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(levels, 1, resolution // 8, resolution // 8, resolution // 8, generator=g)
    grids = (torch.nn.functional.interpolate(noise, size=(resolution,) * 3, mode="trilinear")[:, 0] > 0.6)
    aabb = torch.tensor([-1.0, -1, -1, 1, 1, 1])
    aabbs = torch.stack([aabb * 2**k for k in range(levels)])
    origins = torch.rand(n_rays, 3, generator=g) * 2 - 1
    directions = torch.nn.functional.normalize(torch.randn(n_rays, 3, generator=g), dim=-1)
    t_min, t_max = torch_ops.ray_aabb_intersect(origins, directions, aabbs[-1])
    step = math.sqrt(3) * 2 / 1024
    args = [t.to(device) for t in (origins, directions, t_min, t_max, grids, aabbs)]
    offsets = torch.rand(n_rays, generator=g).to(device)
    ops = kernel_ops(kernels_for(device))
    counts = len(ops.march_rays_cascaded(*args, step, step * 2 ** (levels - 1), 1 / 256, offsets))
    return counts, compare({
        "native": lambda: ops.march_rays_cascaded(*args, step, step * 2 ** (levels - 1), 1 / 256, offsets),
        "pytorch twin": lambda: TORCH_OPS.march_rays_cascaded(*args, step, step * 2 ** (levels - 1), 1 / 256,
                                                              offsets),
    }, repeats, device)


def plane_case(channels: int, resolution: int, sum_planes: bool, device, n_points: int, repeats: int):
    planes = (torch.randn(3, channels, resolution, resolution, device=device) * 0.1).requires_grad_()
    coords = torch.rand(3, n_points, 2, device=device) * 2 - 1
    kernels = kernels_for(device)

    def twin():
        samples = sample_planes_torch(planes, coords)
        return samples.sum(0) if sum_planes else samples

    def run(fn):
        return lambda: fn().backward(torch.ones(n_points, channels, device=device) if sum_planes
                                     else torch.ones(3, n_points, channels, device=device))

    return compare({"native": run(lambda: functions.plane_sample(kernels, planes, coords, sum_planes)),
                    "pytorch twin": run(twin)}, repeats, device)


def vm_case(channels: int, resolution: int, n_points: int, repeats: int):
    """Points along random rays (6 samples each, 0.005 apart), as training visits the factors."""
    g = torch.Generator().manual_seed(0)
    factors = [torch.randn(1, channels, resolution, resolution + m, generator=g) * 0.1 for m in range(3)]
    factors += [torch.randn(1, channels, resolution + m, 1, generator=g) * 0.1 for m in range(3)]
    layouts = {"contiguous": [f.requires_grad_() for f in factors],
               "channels_last": [f.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
                                 for f in factors]}
    starts = torch.rand(n_points // 6, 3, generator=g) * 1.6 - 0.8
    steps = torch.nn.functional.normalize(torch.randn(n_points // 6, 3, generator=g), dim=-1) * 0.005
    x = (starts[:, None] + steps[:, None] * torch.arange(6)[None, :, None]).reshape(-1, 3)
    kernels = kernels_for("cpu")
    grad = torch.ones(len(x), 3 * channels)

    def run(products, layout):
        f = layouts[layout]
        return lambda: products(f[:3], f[3:], x, False).backward(grad)

    native, per_factor = partial(functions.vm_products, kernels), partial(pair_products, sample=sample_planes)
    return len(x), compare({"native, chlast": run(native, "channels_last"), "native, contig": run(native, "contiguous"),
                            "per factor (old)": run(per_factor, "contiguous"),
                            "pytorch twin": run(vm_products_torch, "contiguous")}, repeats, torch.device("cpu"))


def mlp_case(n_in: int, width: int, n_hidden: int, n_out: int, n_points: int, repeats: int):
    torch.manual_seed(0)
    net = mlp(n_in, width, n_hidden, n_out)
    weights = [m.weight for m in net[::2]]
    x = torch.randn(n_points, n_in, requires_grad=True)  # as in training: the encoding's output needs gradients
    grad = torch.randn(n_points, n_out)
    kernels = kernels_for("cpu")
    candidates = {f"native {isa}": lambda isa=isa: functions.fused_mlp(kernels, x, weights, isa).backward(grad)
                  for isa in kernels.mlp_isas()}
    return compare({**candidates, "pytorch twin": lambda: torch.nn.Sequential.forward(net, x).backward(grad)},
                   repeats, torch.device("cpu"))


def cam_case(n_points: int, repeats: int):
    """The cam cpu preset's trunk and density head at random modulations (gamma ~ 1, beta ~ 0)."""
    torch.manual_seed(0)
    c = CAMConfig.presets()["cpu"]
    trunk = ModulatedMLP(positional_encoding_dim(3, c.position_frequencies), c.width, c.depth, 3, 8,
                         skip_layer=c.skip_layer)
    head = torch.nn.Linear(trunk.out_dim, 1 + c.feature_width)
    x = torch.randn(n_points, trunk.layers_mlp[0].in_features)  # the encoding of positions: no gradient
    gamma = (1 + 0.1 * torch.randn(n_points, c.depth)).requires_grad_()
    beta = (0.1 * torch.randn(n_points, c.depth)).requires_grad_()
    grad = torch.randn(n_points, head.out_features)
    skip_layers = trunk.skip_layers
    kernels = kernels_for("cpu")
    weights = [*(m.weight for m in trunk.layers_mlp), head.weight]
    biases = [*(m.bias for m in trunk.layers_mlp), head.bias]
    candidates = {f"native {isa}": lambda isa=isa: functions.fused_mlp(
        kernels, x, weights, isa, biases, skip_layers, gamma, beta).backward(grad) for isa in kernels.mlp_isas()}
    assert fused_relu_layers([*trunk.layers_mlp, head], x, skip_layers=skip_layers, gamma=gamma, beta=beta) is not None
    return compare({**candidates, "pytorch twin": lambda: head(trunk.layers(x, gamma, beta)).backward(grad)},
                   repeats, torch.device("cpu"))


def print_rows(title: str, count: int, unit: str, results: dict[str, float]) -> None:
    base = results["pytorch twin"]
    print(f"\n{title}  ({count:,} {unit} per batch)")
    for name, seconds in results.items():
        print(f"  {name:<18}{seconds * 1e3:9.1f} ms  {count / seconds / 1e6:8.2f} M {unit}/s  "
              f"{base / seconds:6.2f}x the twin")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--run", help="a trained run folder: use its occupancy grid and field")
    parser.add_argument("--rays", type=int, default=8192)
    parser.add_argument("--points", type=int, default=1 << 16, help="hash-encoding batch (a training step's samples)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", choices=["march", "hash", "cascade", "plane", "vm", "mlp", "cam"],
                        help="one workload only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if kernels_for(device) is None:
        raise SystemExit(f"no native kernels for {device}: run `fields doctor` to see why")
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    if args.only in (None, "march"):
        scene = RunScene(args.run, device) if args.run else ProceduralScene(device)
        label = f"run {args.run}" if args.run else "procedural scene"
        n_samples, both, march, comp = march_composite_case(scene, device, args.rays, args.repeats)
        print_rows(f"march + composite fwd/bwd, {label}", n_samples, "samples", both)
        print_rows("  of which marching", n_samples, "samples", march)
        print_rows("  of which compositing fwd/bwd", n_samples, "samples", comp)
    for preset in ("cpu", "published") if args.only in (None, "hash") else ():
        print_rows(f"hash encoding fwd+bwd, preset {preset}", args.points, "points",
                   hash_case(preset, device, args.points, args.repeats))
    if args.only in (None, "cascade"):
        n_samples, results = cascade_case(device, args.rays, args.repeats)
        print_rows("cascaded cone-step marching (5 cascades, unbounded)", n_samples, "samples", results)
    for channels, resolution, summed in ((16, 256, True), (24, 200, False)) if args.only in (None, "plane") else ():
        kind = "summed tri-plane" if summed else "3 separate planes"
        print_rows(f"plane sampling fwd+bwd, {kind}, {channels} channels at {resolution}^2", args.points, "points",
                   plane_case(channels, resolution, summed, device, args.points, args.repeats))
    if args.only in (None, "vm") and device.type == "cpu":
        n_points, results = vm_case(24, 200, args.points, args.repeats)
        print_rows("TensoRF-VM products fwd+bwd, 24 channels, planes of 200^2", n_points, "points", results)
    for shape in ((32, 64, 1, 16), (32, 64, 2, 3)) if args.only in (None, "mlp") and device.type == "cpu" else ():
        print_rows(f"fused MLP fwd+bwd, {' -> '.join(map(str, [shape[0]] + [shape[1]] * shape[2] + [shape[3]]))}",
                   args.points, "rows", mlp_case(*shape, args.points, args.repeats))
    if args.only in (None, "cam") and device.type == "cpu":
        print_rows("CAM trunk (cpu preset: 63 -> 4 x 128, skip, modulated) + density head fwd+bwd", args.points, "rows",
                   cam_case(args.points, args.repeats))

if __name__ == "__main__":
    main()
