"""Training configuration: one flat dataclass, saved as config.json in every run folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from dataclasses import field as dataclass_field
from pathlib import Path

from ..datasets import DatasetError, detect_format
from ..datasets.scene_type import SCENE_TYPE_CHOICES
from ..errors import FieldsError
from ..fields import OptimizerSpec, ParamGroupSpec, Schedule, UnknownFieldError, default_preset, field_class
from .devices import check_device_name, resolve_device
from .loggers import LOGGERS

RECORDED_FIELDS = ("optimizer",)  # TrainConfig fields the run writes, not given on the command line
INSTANT_NGP_STEPS_PER_DIAGONAL = 1024  # instant-ngp's smallest step: the box's diagonal over 1024
INSTANT_NGP_GRID_THRESHOLD = 0.01  # instant-ngp's occupancy threshold: optical thickness over that step


@dataclass
class TrainConfig:
    scene: str = "lego"  # scene name under the data root, or a scene folder
    data_root: str | None = None  # folder holding nerf_synthetic/<scene>; None: $FIELDS_DATA_ROOT, ../shared/data
    data: str | None = None  # a converted scene or any capture format `fields convert` reads; replaces `scene`
    # scene type: forward-facing (NDC), object or unbounded; auto: from the cameras (a converted scene: as converted)
    scene_type: str = dataclass_field(default="auto", metadata={"choices": SCENE_TYPE_CHOICES})
    field: str = "hashgrid"  # backbone: hashgrid, mlp, tensorf-vm, tensorf-cp, triplane, rbf, cam
    preset: str | None = None  # backbone preset, e.g. hashgrid 'cpu' or 'published'; None: the device's
    steps: int = 20000  # training steps (0 with a time budget: time only)
    time_budget: float | None = None  # minutes of training (evaluation excluded); stops at whichever limit comes first
    # auto: CUDA when available; cuda:N a given GPU; under torchrun auto and cuda mean cuda:LOCAL_RANK
    device: str = dataclass_field(default="auto", metadata={"metavar": "{auto,cpu,cuda,cuda:N}"})
    threads: int | None = dataclass_field(default=None, metadata={"min": 1})  # CPU threads for PyTorch
    seed: int = 0  # random seed
    output: str | None = None  # run folder; default runs/<scene>-<field>-<time>
    overwrite: bool = False  # train into an --output folder that holds other files (a run there is still refused)
    # integer image downscale factor; None: chosen by size, the smallest bringing the long side to 1000 px or
    # fewer on the CPU, 1600 on CUDA (a run records the factor it chose)
    downscale: int | None = dataclass_field(default=None, metadata={"min": 1})
    # Batch: sized by samples per step, rays rescaled each step towards the target.
    samples_per_step: int | None = None  # target samples per step; None: 2^16 on CPU, 2^18 on CUDA
    initial_rays: int = 1024  # rays in the first step
    max_rays: int = 1 << 16  # most rays in a step
    # Optimiser: each backbone's own, from its reference (its config's `optimizer`: groups and rates, betas, eps,
    # weight decay, schedule). A scale, not a rate, since backbones train groups at different rates.
    lr: float = dataclass_field(default=1.0, metadata={"min": 0})  # multiplies every learning rate of the backbone
    weight_decay: float | None = None  # L2 of the groups the backbone decays; None: the backbone's
    warmup_steps: int | None = None  # steps of linear learning-rate warm-up; None: the backbone's
    decay_at: list[float] | None = None  # fractions of training where the lr steps down; None: the backbone's
    decay_factor: float | None = None  # lr multiplier at each of decay_at; None: the backbone's
    # the optimiser the run uses, recorded in config.json when training starts (the backbone's with the above)
    optimizer: dict | None = None
    loss: str = "huber"  # huber (delta 0.1, instant-ngp) | mse
    # random background colours in training: RGBA images learn transparency, unbounded scenes opacity
    random_background: bool = True
    distortion_loss: float = 0.01  # unbounded scenes: weight of mip-NeRF 360's distortion loss (0: off)
    # scenes with depth maps (nerfstudio's depth_file_path): weight of the expected-depth loss of Urban Radiance
    # Fields on pixels with a depth (0: off)
    depth_loss: float = 0.0
    # Real photos: a colour transform per training image (exposure, white balance; see renderers/appearance.py).
    appearance: bool | None = None  # None: on for photos without alpha (real captures), off for synthetic RGBA
    appearance_lr: float = 1e-3  # learning rate of the per-image colour transforms
    camera_refinement: bool = False  # learn a pose offset per training camera (SO3 x R3)
    camera_lr: float = 1e-4  # learning rate of the camera offsets
    # occupancy-grid cells along each side; None: 128 (instant-ngp), 64 for an unbounded scene on a CPU (every
    # update evaluates the field in each cascade's cells: 4 x 128^3 would take ~15 s of a 10-minute CPU run each time)
    grid_resolution: int | None = None
    # Unbounded scenes (real captures): occupancy cascades, each twice the last (4: out to 8x the scene box, as
    # nerfacc's mip-NeRF 360 setting), and a cone angle for steps that grow with distance. Bounded scenes use
    # one grid, no cone.
    cascades: int = 4  # occupancy cascades of unbounded scenes (4: out to 8x the scene box)
    # unbounded scenes: steps grow by this fraction of the distance; None: 1/256 (instant-ngp) on CUDA, 1/64 on a CPU
    # (1/32 renders beer 1.5x faster for -0.3 dB, but costs lego's photos as an object capture 3.1-3.4 dB in 10 minutes;
    # docs/real-captures.md)
    cone_angle: float | None = None
    # unbounded scenes: the smallest step is the scene box's diagonal over this; None: 1024 (instant-ngp) on CUDA,
    # 256 on a CPU (a ray through the cascades then takes ~200 steps, not ~1,000)
    steps_per_diagonal: int | None = None
    alpha_threshold: float = 0.01  # unbounded scenes: skip samples less opaque than this (nerfacc's alpha_thre)
    # unbounded scenes: training steps before alpha_threshold applies. A young field's density (0.37) is an opacity
    # of 0.005 per CPU step, under the threshold: with it from step 0, lego's photos posed by COLMAP never left the
    # empty start (8.9 dB held out after 805 steps)
    alpha_warmup: int = dataclass_field(default=256, metadata={"min": 0})
    # Unbounded scenes, evaluation renders (held-out views, videos, the viewer; training keeps the settings above):
    # skip samples less opaque than this; None: alpha_threshold. 0.03 (with render_occupancy_threshold 0.02) scored
    # +0.04 dB on beer's trained field with half the colour evaluations, but -2.3 dB on a field 150 steps young
    # (docs/real-captures.md)
    render_alpha_threshold: float | None = None
    # unbounded scenes, evaluation renders: stop a ray at this transmittance; None: 1e-2 on a CPU, 1e-4 on CUDA
    render_early_stop: float | None = None
    # unbounded scenes, evaluation renders: colour only at samples whose compositing weight reaches this (and each
    # ray's heaviest), the shaded colours rescaled to the ray's opacity; None: 3e-3 on a CPU, 0 (all) on CUDA
    render_weight_threshold: float | None = None
    # unbounded scenes, evaluation renders: march only cells whose grid value (optical thickness per smallest step)
    # exceeds this; None: the training grid (0.02 cut beer's marched steps by 18 %, a young field's sky away)
    render_occupancy_threshold: float | None = None
    # a grid cell is occupied when its value (optical thickness per smallest step, EMA-max) exceeds min(grid mean,
    # this); None: instant-ngp's density threshold at the run's smallest step (0.01 per sqrt(3) box / 1024, so 0.04
    # for an unbounded scene on a CPU, whose steps are 4x longer: beer renders 2x faster for -0.06/-0.25 dB; was 0.01
    # for every step; docs/real-captures.md, "Sixth round")
    occupancy_threshold: float | None = None
    # Steps between occupancy-grid updates. None: instant-ngp's 16 steps of 2^18 samples on CUDA; 64 on the
    # CPU, whose steps are 4x smaller, so that updates stay near the same share of the work.
    occupancy_every: int | None = None
    eval_every: float = 30.0  # seconds of training between quick validations (PSNR-vs-time curve)
    eval_pixels: int = 1 << 14  # fixed random validation pixels scored by a quick validation
    # evenly spaced views; None: every view (slow on a CPU)
    final_eval_views: int | None = dataclass_field(default=10, metadata={"min": 1})
    checkpoint_every: float = 300.0  # seconds of training between checkpoints
    snapshot_minutes: list[float] = dataclass_field(default_factory=list)  # keep checkpoints at these training times
    # autocast and loss scaling; None: on CUDA for backbones whose reference trains in half precision (hashgrid),
    # off on a CPU (asked for there: bfloat16, fast only on CPUs with bfloat16 instructions)
    mixed_precision: bool | None = None
    # Curves and pictures: tensorboard event files in the run folder (`tensorboard --logdir runs`); wandb only
    # when asked for and installed; none
    logger: str = dataclass_field(default="tensorboard", metadata={"choices": LOGGERS})
    log_every: int = dataclass_field(default=10, metadata={"min": 1})  # steps between logged scalars
    log_images_every: float = 120.0  # seconds of training between logged validation pictures (render | photo | depth)
    # under torchrun: every N steps, compare a hash of every rank's parameters and occupancy grid, and stop
    # naming the first tensor that differs (0: off; a debugging aid, it costs a pass over the parameters)
    check_sync: int = dataclass_field(default=0, metadata={"min": 0})

    def __post_init__(self):
        if self.data is not None and self.scene == TrainConfig.scene:  # label runs by the data's folder
            data = Path(self.data).expanduser()
            self.scene = data.parent.name if data.is_file() else data.name

    def validate(self) -> None:
        if self.steps <= 0 and not self.time_budget:
            raise FieldsError("config: 'steps' must be positive, or give a 'time_budget'")
        if self.time_budget is not None and self.time_budget <= 0:
            raise FieldsError(f"config: 'time_budget' must be positive minutes, got {self.time_budget}")
        if self.loss not in ("huber", "mse"):
            raise FieldsError(f"config: 'loss' must be 'huber' or 'mse', got '{self.loss}'")
        if not 1 <= self.cascades <= 8:
            raise FieldsError(f"config: 'cascades' must be 1 to 8 occupancy levels, got {self.cascades}")
        if self.final_eval_views is not None and self.final_eval_views < 1:
            raise FieldsError(f"config: 'final_eval_views' must be at least 1 or null (every view), got "
                              f"{self.final_eval_views}")
        if self.distortion_loss < 0:
            raise FieldsError(f"config: 'distortion_loss' must be >= 0, got {self.distortion_loss}")
        if self.depth_loss < 0:
            raise FieldsError(f"config: 'depth_loss' must be >= 0, got {self.depth_loss}")
        if not 0 <= self.alpha_threshold < 1:
            raise FieldsError(f"config: 'alpha_threshold' must be in [0, 1), got {self.alpha_threshold}")
        if self.occupancy_threshold is not None and not 0 < self.occupancy_threshold < 1:
            raise FieldsError(f"config: 'occupancy_threshold' must be in (0, 1), got {self.occupancy_threshold}")
        for name in ("render_alpha_threshold", "render_early_stop", "render_occupancy_threshold",
                     "render_weight_threshold"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise FieldsError(f"config: '{name}' must be in [0, 1) or null (chosen for the device), got {value}")
        if self.steps_per_diagonal is not None and self.steps_per_diagonal < 1:
            raise FieldsError(f"config: 'steps_per_diagonal' must be positive, got {self.steps_per_diagonal}")
        if self.cone_angle is not None and self.cone_angle < 0:
            raise FieldsError(f"config: 'cone_angle' must be >= 0, got {self.cone_angle}")
        if self.occupancy_every is not None and self.occupancy_every < 1:
            raise FieldsError(f"config: 'occupancy_every' must be a positive step count, got {self.occupancy_every}")
        if self.grid_resolution is not None and (self.grid_resolution < 2 or self.grid_resolution % 2):
            raise FieldsError(f"config: 'grid_resolution' must be an even number of cells, got {self.grid_resolution}")
        if self.data is not None and not Path(self.data).expanduser().exists():
            raise FieldsError(f"config: 'data' path {self.data} does not exist")
        if not isinstance(self.overwrite, bool):
            raise FieldsError(f"config: 'overwrite' must be true or false, got {self.overwrite!r}")
        if self.scene_type not in SCENE_TYPE_CHOICES:
            raise FieldsError(f"config: 'scene_type' must be one of {', '.join(SCENE_TYPE_CHOICES)}, "
                              f"got '{self.scene_type}'")
        if self.downscale is not None and (isinstance(self.downscale, bool) or not isinstance(self.downscale, int)
                                           or self.downscale < 1):
            raise FieldsError(f"config: 'downscale' must be a positive integer or null (chosen by size), "
                              f"got {self.downscale!r}")
        if not self.lr > 0:
            raise FieldsError(f"config: 'lr' scales the backbone's learning rates and must be positive, got {self.lr}")
        if self.optimizer is not None:
            try:
                OptimizerSpec.from_dict(self.optimizer, "config: 'optimizer'")
            except ValueError as err:
                raise FieldsError(str(err)) from None
        if self.logger not in LOGGERS:
            raise FieldsError(f"config: 'logger' must be one of {', '.join(LOGGERS)}, got '{self.logger}'")
        if isinstance(self.log_every, bool) or not isinstance(self.log_every, int) or self.log_every < 1:
            raise FieldsError(f"config: 'log_every' must be a positive step count, got {self.log_every!r}")
        check_device_name(self.device)
        if isinstance(self.check_sync, bool) or not isinstance(self.check_sync, int) or self.check_sync < 0:
            raise FieldsError(f"config: 'check_sync' must be a step count >= 0 (0: off), got {self.check_sync!r}")

    def grid_cells(self, unbounded: bool, device_type: str) -> int:
        """Occupancy-grid resolution (`grid_resolution`, or its default for the scene and device)."""
        if self.grid_resolution is not None:
            return self.grid_resolution
        return 64 if unbounded and device_type == "cpu" else 128

    def resolve_defaults(self, device_type: str, unbounded: bool) -> None:
        """Fill the fields whose None means "chosen for the scene and device", so that config.json records what
        the run used and a run trained on one device renders the same on another."""
        self.grid_resolution = self.grid_cells(unbounded, device_type)
        self.cone_angle, self.steps_per_diagonal = self.marching(device_type)
        self.occupancy_threshold = self.grid_threshold(unbounded, device_type)
        (self.render_alpha_threshold, self.render_early_stop, self.render_occupancy_threshold,
         self.render_weight_threshold) = self.render_culling(device_type)
        self.resolve_optimizer(device_type)

    def resolve_optimizer(self, device_type: str) -> None:
        """Record the optimiser in `optimizer` (once): the one the backbone declares for the preset (`preset`, or
        the default on `device_type`), its rates x `lr`, with the schedule and weight decay given here in place
        of its own."""
        if self.optimizer is not None:
            return
        try:
            preset = self.preset or default_preset(self.field, device_type)  # the preset make_model builds
            spec = field_class(self.field).Config.optimizer_for(preset).scaled(self.lr)
        except UnknownFieldError as err:
            raise FieldsError(f"config: 'field': {err}") from None
        if self.weight_decay is not None:
            spec = spec.with_weight_decay(self.weight_decay)
        given = {"warmup_steps": self.warmup_steps, "decay_at": self.decay_at, "decay_factor": self.decay_factor}
        given = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items() if v is not None}
        self.optimizer = replace(spec, schedule=replace(spec.schedule, **given)).to_dict()

    def optimizer_spec(self) -> OptimizerSpec:
        """The run's optimiser (resolved first, for the run's device, when not yet recorded)."""
        self.resolve_optimizer(resolve_device(self.device).type)
        return OptimizerSpec.from_dict(self.optimizer, "config: 'optimizer'")

    def marching(self, device_type: str) -> tuple[float, int]:
        """Unbounded scenes' cone angle and steps per box diagonal (the fields, or their defaults for the device)."""
        cpu = device_type == "cpu"
        cone = self.cone_angle if self.cone_angle is not None else (1 / 64 if cpu else 1 / 256)
        return cone, self.steps_per_diagonal or (256 if cpu else INSTANT_NGP_STEPS_PER_DIAGONAL)

    def grid_threshold(self, unbounded: bool, device_type: str) -> float:
        """The occupancy grid's threshold on a cell's optical thickness per smallest step (`occupancy_threshold`, or
        instant-ngp's 0.01 per sqrt(3) box / 1024 scaled to the run's smallest step: the same density whatever the
        step; bounded scenes march instant-ngp's steps)."""
        if self.occupancy_threshold is not None:
            return self.occupancy_threshold
        steps = self.marching(device_type)[1] if unbounded else INSTANT_NGP_STEPS_PER_DIAGONAL
        return INSTANT_NGP_GRID_THRESHOLD * INSTANT_NGP_STEPS_PER_DIAGONAL / steps

    def render_culling(self, device_type: str) -> tuple[float, float, float | None, float]:
        """Unbounded scenes' evaluation-render alpha threshold, early-stop transmittance, occupancy threshold and
        weight threshold of colour (the fields, or their defaults: training's alpha threshold and grid (None); on
        a CPU an early stop of 1e-2 and colour at weights from 3e-3 (beer: -0.03 dB with 18 % fewer density and
        44 % fewer colour evaluations, docs/real-captures.md); on CUDA, instant-ngp's 1e-4 and every sample)."""
        cpu = device_type == "cpu"
        defaults = (self.alpha_threshold, 1e-2 if cpu else 1e-4, None, 3e-3 if cpu else 0.0)
        given = (self.render_alpha_threshold, self.render_early_stop, self.render_occupancy_threshold,
                 self.render_weight_threshold)
        return tuple(default if value is None else value for value, default in zip(given, defaults))

    def uses_appearance(self, has_alpha: bool) -> bool:
        """Whether a scene's training images get per-image appearance (`appearance`; None: real photos only)."""
        return (not has_alpha) if self.appearance is None else self.appearance

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        data = read_config_json(path, cls, "run configuration is missing (is this a run folder?)")
        if "scene_type" not in data:  # a run from before scene types: its data read as it was then
            data["scene_type"] = format_scene_type(data.get("data"))
        data.setdefault("steps_per_diagonal", INSTANT_NGP_STEPS_PER_DIAGONAL)  # runs from before: instant-ngp's steps
        data.setdefault("occupancy_threshold", INSTANT_NGP_GRID_THRESHOLD)  # runs from before: 0.01 at every step
        if "optimizer" not in data:  # a run from before backbones declared their optimisers: its absolute rate
            data = legacy_optimizer(data)
        return cls(**data)


# Before backbones declared their optimisers, every run used instant-ngp's Adam at one absolute rate `lr`, which
# these backbones scaled per role (features, decoder); the rest kept two groups, the decoder's weight matrices
# (with L2) and everything else.
LEGACY_ROLE_SCALES = {"tensorf-vm": (2.0, 0.1), "tensorf-cp": (2.0, 0.1), "cam": (10.0, 1.0)}


def legacy_optimizer(data: dict) -> dict:
    """The config.json fields `data` of an older run with `optimizer` set to what that run trained with (the
    same groups, so its checkpoint's optimiser state loads) and `lr` a scale of 1."""
    lr, decay = data.get("lr", 1e-2), data.get("weight_decay", 1e-6)
    if data.get("field") in LEGACY_ROLE_SCALES:
        features, decoder = LEGACY_ROLE_SCALES[data["field"]]
        groups = (ParamGroupSpec("features", lr * features, roles=("features",)),
                  ParamGroupSpec("decoder", lr * decoder, roles=("decoder",), weight_decay=decay))
    else:
        groups = (ParamGroupSpec("field", lr),
                  ParamGroupSpec("decoder weights", lr, roles=("decoder",), matrices_only=True, weight_decay=decay))
    schedule = Schedule(warmup_steps=data.get("warmup_steps", 100),
                        decay_at=tuple(data.get("decay_at", (0.5, 0.75, 0.9))),
                        decay_factor=data.get("decay_factor", 0.33))
    spec = OptimizerSpec(groups, betas=(0.9, 0.99), eps=1e-15, schedule=schedule)
    return {**data, "lr": 1.0, "weight_decay": None, "warmup_steps": None, "decay_at": None, "decay_factor": None,
            "optimizer": spec.to_dict()}


# Before scene types, raw captures were normalised by their format: LLFF forward-facing (NDC), instant-ngp in
# its own box, COLMAP and nerfstudio unbounded around the cameras (Blender and converted scenes: unchanged).
FORMAT_SCENE_TYPES = {"llff": "forward-facing", "instant-ngp": "object", "colmap": "unbounded",
                      "nerfstudio": "unbounded"}


def format_scene_type(data: str | None) -> str:
    """The scene type that reads `data` (a run's --data) the way runs made before scene types read it."""
    if data is None:
        return "auto"
    try:
        fmt = detect_format(Path(data).expanduser())
    except DatasetError:  # gone: the error comes when the scene is read
        return "auto"
    return FORMAT_SCENE_TYPES.get(fmt, "auto")


def read_json_object(path: Path, missing: str, expected: str) -> dict:
    """The JSON object in the file at `path`; errors name the file (`missing`: why it may be absent,
    `expected`: what the object should hold)."""
    if not path.is_file():
        raise FieldsError(f"{path}: {missing}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise FieldsError(f"{path}: malformed JSON at line {err.lineno}: {err.msg}") from None
    except UnicodeDecodeError:
        raise FieldsError(f"{path}: not a text (JSON) file") from None
    if not isinstance(data, dict):
        raise FieldsError(f"{path}: expected a JSON object {expected}")
    return data


def read_config_json(path: Path, cls: type, missing: str) -> dict:
    """The fields of dataclass `cls` saved as JSON at `path`; errors name the file (`missing`: why it may be absent)."""
    data = read_json_object(path, missing, "of config fields")
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise FieldsError(f"{path}: unknown config field(s) {', '.join(unknown)}")
    return data
