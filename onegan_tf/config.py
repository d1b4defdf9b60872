"""The one configuration object of onegan_tf.

`Config` groups three frozen dataclasses: `ModelConfig` (what the networks look like; SPEC §1–4),
`DataConfig` (where images come from and how they are cut; SPEC §6) and `TrainConfig` (the schedule,
optimisers, loss weights and the run's bookkeeping; SPEC §5). Every field carries its help text in
`metadata["help"]`; `onegan_tf.flags` turns each field into one absl flag of the same name, so a field is
declared once and documented once. Nothing in this module reads flags: the model code, the data pipeline
and notebooks build these objects from plain arguments.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

# Class counts of the paper's datasets (paper Sec. 5; SPEC §1).
DATASET_CLASSES = {
    "birds": (200, 20),
    "dogs": (120, 12),
    "cars": (196, 14),
}

IMAGE_SIZES = (32, 64, 128)
MIN_CHANNEL_MULT = 1.0 / 64
NORMS = ("glu_lnorm", "glu_inorm", "lnorm", "inorm")


def _field(default: Any, help: str, **kw) -> Any:  # noqa: A002 - mirrors absl's argument name
    return dataclasses.field(default=default, metadata={"help": help, **kw})


class ConfigError(ValueError):
    """A configuration value is out of its allowed range; the message names the argument."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Sizes and switches of the networks (SPEC §1–4, supplementary Tab. 2–9)."""

    image_size: int = _field(128, "Image side H = W in pixels; one of 32, 64, 128 (paper: 128).")
    channel_mult: float = _field(
        1.0, "Channel multiplier applied to every convolution and hidden Linear width (paper: 1.0); "
        "in [1/64, 1]. Widths are rounded and floored at 8.")
    n_child: int = _field(200, "N_C, number of child (fine) classes; a multiple of n_parent.")
    n_parent: int = _field(20, "N_P, number of parent (coarse) classes.")
    d_z: int = _field(100, "d_z, dimensionality of the pose code z.")
    d_c: int = _field(32, "d_c, dimensionality of the style code v_c.")
    d_p: int = _field(16, "d_p, dimensionality of the shape code v_p.")
    d_bg: int = _field(32, "d_bg, dimensionality of the background code v_bg.")
    norm: str = _field("glu_lnorm", "Generator normalisation (paper Tab. 3a): glu_lnorm (paper), "
                       "glu_inorm, lnorm or inorm.")
    bypass: bool = _field(True, "Use the bypass tensors B_fg, B_bg in the reconstruction path "
                          "(paper Tab. 3b 'no bypass' = False).")
    mixup_codes: bool = _field(True, "Mix the embedded and encoded codes (mixup 1-2, Eq. 9); False "
                               "feeds the encoded codes alone (paper Tab. 3b 'no mixup(1,2)').")
    mixup_preimages: bool = _field(True, "Mix pre-images and bypasses (mixup 3-4, Eq. 9); False feeds "
                                   "the bypass alone (paper Tab. 3b 'no mixup(3,4)').")
    mask_sees_parent: bool = _field(False, "Also feed the parent code v_p to the mask head of G_fg2 "
                                    "(not in the paper; helps small-scale training, see README).")

    def __post_init__(self):
        if self.image_size not in IMAGE_SIZES:
            raise ConfigError(f"image_size={self.image_size} is not supported; allowed values: {IMAGE_SIZES}")
        if not (MIN_CHANNEL_MULT <= self.channel_mult <= 1.0):
            raise ConfigError(
                f"channel_mult={self.channel_mult} is not supported; allowed: a number in "
                f"[{MIN_CHANNEL_MULT}, 1.0] (1.0 = the paper's widths)")
        for name in ("n_child", "n_parent", "d_z", "d_c", "d_p", "d_bg"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be a positive integer")
        if self.n_child % self.n_parent:
            raise ConfigError(
                f"n_child={self.n_child} must be a multiple of n_parent={self.n_parent}: child c belongs to "
                f"parent c // (n_child // n_parent) (SPEC §1)")
        if self.norm not in NORMS:
            raise ConfigError(f"norm={self.norm!r} is not supported; allowed values: {NORMS}")

    @property
    def children_per_parent(self) -> int:
        return self.n_child // self.n_parent

    def width(self, channels: int) -> int:
        """A paper width scaled by `channel_mult` (floored at 8 so GLU halves stay meaningful)."""
        if self.channel_mult == 1.0:
            return channels
        return max(8, int(round(channels * self.channel_mult)))


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are cut (SPEC §6)."""

    dataset: str = _field("synthetic", "Image source: synthetic, cub, caltech_birds2011, stanford_dogs, "
                          "cars196 or folder.")
    data_dir: str = _field("", "Directory the source reads from (CUB release root, TFDS data_dir, "
                           "image folder; synthetic: where to cache the generated set, '' = memory).")
    crop: str = _field("bbox", "Object crop: bbox (FineGAN's 1.5 x box square, paper) or full (whole image).")
    split_seed: int = _field(0, "Seed of the 80/20 object/background split (SPEC §6).")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Schedule, optimisers, loss weights and bookkeeping of a run (SPEC §5, paper Sec. 4-5)."""

    run_dir: str = _field("runs/default", "Directory of the run: config, checkpoints, TensorBoard logs.")
    seed: int = _field(0, "Seed of the codes, the mixup betas and the data order.")
    batch_size: int = _field(20, "Global batch size (paper: 20), split evenly over replicas.")
    phase1_steps: int = _field(200_000, "Length of Phase I, generation only (paper: 200k).")
    phase2a_steps: int = _field(200_000, "Length of Phase IIa, + fake reconstruction (paper: 200k).")
    phase2b_steps: int = _field(200_000, "Length of Phase IIb, + real reconstruction (paper: 200k).")
    learning_rate: float = _field(2e-4, "Adam learning rate of every optimiser (paper: 2e-4).")
    beta_1: float = _field(0.5, "Adam beta_1 (paper: 0.5).")
    beta_2: float = _field(0.999, "Adam beta_2 (paper: 0.999).")


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        return cls(model=ModelConfig(**d.get("model", {})), data=DataConfig(**d.get("data", {})),
                   train=TrainConfig(**d.get("train", {})))


def dataset_class_counts(name: str) -> tuple[int, int]:
    """(N_C, N_P) of one of the paper's datasets by name."""
    try:
        return DATASET_CLASSES[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; known: {sorted(DATASET_CLASSES)}") from None
