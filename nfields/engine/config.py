"""Training configuration: one flat dataclass, saved as config.json in every run folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from dataclasses import field as dataclass_field
from pathlib import Path

from ..datasets import DatasetError, detect_format
from ..datasets.scene_type import SCENE_TYPE_CHOICES
from ..errors import FieldsError

DEVICES = ("auto", "cpu", "cuda")


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
    device: str = dataclass_field(default="auto", metadata={"choices": DEVICES})  # auto: CUDA when available
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
    # Optimiser (instant-ngp): Adam 1e-2, betas (0.9, 0.99), eps 1e-15, L2 1e-6 on MLP weights.
    lr: float = 1e-2  # learning rate
    weight_decay: float = 1e-6  # L2 on MLP weights
    warmup_steps: int = 100  # steps of linear learning-rate warm-up
    decay_at: list[float] = dataclass_field(default_factory=lambda: [0.5, 0.75, 0.9])  # fractions of training
    decay_factor: float = 0.33  # lr multiplier at each of decay_at
    loss: str = "huber"  # huber (delta 0.1, instant-ngp) | mse
    random_background: bool = True  # random background colours in training (the model learns transparency)
    grid_resolution: int = 128  # occupancy-grid cells along each side
    # Unbounded scenes (real captures): occupancy cascades, each twice the last (5: out to 16x the scene box),
    # and instant-ngp's cone angle for steps that grow with distance. Bounded scenes use one grid, no cone.
    cascades: int = 5  # occupancy cascades of unbounded scenes (5: out to 16x the scene box)
    cone_angle: float = 1 / 256  # unbounded scenes: steps grow by this fraction of the distance
    # Steps between occupancy-grid updates. None: instant-ngp's 16 steps of 2^18 samples on CUDA; 64 on the
    # CPU, whose steps are 4x smaller, so that updates stay near the same share of the work.
    occupancy_every: int | None = None
    eval_every: float = 30.0  # seconds of training between quick validations (PSNR-vs-time curve)
    eval_pixels: int = 1 << 14  # fixed random validation pixels scored by a quick validation
    final_eval_views: int | None = 10  # evenly spaced views; None: every view (slow on a CPU)
    checkpoint_every: float = 300.0  # seconds of training between checkpoints
    snapshot_minutes: list[float] = dataclass_field(default_factory=list)  # keep checkpoints at these training times

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
        if self.cone_angle < 0:
            raise FieldsError(f"config: 'cone_angle' must be >= 0, got {self.cone_angle}")
        if self.occupancy_every is not None and self.occupancy_every < 1:
            raise FieldsError(f"config: 'occupancy_every' must be a positive step count, got {self.occupancy_every}")
        if self.grid_resolution < 2 or self.grid_resolution % 2:
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
        if self.device not in ("auto", "cpu", "cuda"):
            raise FieldsError(f"config: 'device' must be auto, cpu or cuda, got '{self.device}'")

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        data = read_config_json(path, cls, "run configuration is missing (is this a run folder?)")
        if "scene_type" not in data:  # a run from before scene types: its data read as it was then
            data["scene_type"] = format_scene_type(data.get("data"))
        return cls(**data)


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
