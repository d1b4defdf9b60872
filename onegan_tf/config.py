"""The one configuration object of onegan_tf.

`Config` groups three frozen dataclasses: `ModelConfig` (what the networks look like; docs/design.md §1–4),
`DataConfig` (where images come from and how they are cut; docs/design.md §6) and `TrainConfig` (the schedule,
optimisers, loss weights and the run's bookkeeping; docs/design.md §5). Every field carries its help text in
`metadata["help"]`; `onegan_tf.flags` turns each field into one absl flag of the same name, so a field is
declared once and documented once. Nothing in this module reads flags: the model code, the data pipeline
and notebooks build these objects from plain arguments.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

# Class counts of the paper's datasets (paper Sec. 5; docs/design.md §1).
DATASET_CLASSES = {
    "birds": (200, 20),
    "dogs": (120, 12),
    "cars": (196, 14),
}

IMAGE_SIZES = (32, 64, 128)
MIN_CHANNEL_MULT = 1.0 / 64
NORMS = ("glu_lnorm", "glu_inorm", "lnorm", "inorm")
STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("off", "mixed_float16", "mixed_bfloat16")
AUTO = "auto"  # a setting estimated from the data when the run starts (mask_target)
GENERATOR_WEIGHTS = ("ema", "raw")
DISTILL_TARGETS = ("soft", "hard")
DISTILL_AUGMENTATIONS = ("flip", "scale", "colour")


def _field(default: Any, help: str, **kw) -> Any:  # noqa: A002 - mirrors absl's argument name
    return dataclasses.field(default=default, metadata={"help": help, **kw})


def _resumable(default: Any, help: str, **kw) -> Any:  # noqa: A002
    """A setting that may change between a run and its resumption (bookkeeping, devices, speed)."""
    return _field(default, help, resumable=True, **kw)


def parent_of(child, children_per_parent: int):
    """The hierarchy of docs/design.md §1: child c belongs to parent c // (N_C // N_P) (ints, arrays, tensors)."""
    return child // children_per_parent


class ConfigError(ValueError):
    """A configuration value is out of its allowed range; the message names the argument."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Sizes and switches of the networks (docs/design.md §1–4, supplementary Tab. 2–9)."""

    image_size: int = _field(128, "Image side H = W in pixels; one of 32, 64, 128 (paper: 128).")
    channel_mult: float = _field(
        1.0, "Channel multiplier applied to every convolution and hidden Linear width (paper: 1.0); "
        "in [1/64, 1]. Widths are rounded and floored at 8.")
    n_child: int = _field(200, "N_C, number of child (fine) classes; a multiple of n_parent.")
    n_parent: int = _field(20, "N_P, number of parent (coarse) classes: the data's parents, or more codes, "
                                "which the report also scores merged by shape (docs/design.md §7).")
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
    mask_before_child: bool = _field(False, "Draw the mask of G_fg2 from its parent block, before the child code "
                                     "v_c enters, so that the outline depends on v_p and z alone, as in "
                                     "FineGAN's parent stage (not in the paper; docs/design.md §3).")
    shape_code_gain: float = _field(1.0, "Multiply the parent code v_p by this where it enters G_fg0 beside z "
                                    "(1 = the paper). z ~ N(0, I) has norm about sqrt(d_z) there while L_Rv keeps "
                                    "v_p near unit norm, so z outweighs the parent in the pre-image A_fg that "
                                    "shapes the outline; sqrt(d_z) evens them at the start (docs/design.md §3).")
    pose_warp: bool = _field(False, "Draw I_fg and I_m of G_fg2 in a canonical pose and place them by a pose "
                             "(turn, mirror, scale, shift) from a small head on z, so that one parent code "
                             "covers its family in every pose (not in the paper; docs/design.md §3).")
    pose_mse: bool = _field(False, "With --pose_warp: L_MSE also asks E_p to read the pose back, the sampling map "
                            "and mirror weight of its mu_z against those of z on the stopped fake (the pose head's "
                            "weights stopped), so that the reconstruction path places the object where it is "
                            "(not in the paper; docs/design.md §3).")
    pose_discrete: bool = _field(False, "With --pose_warp --pose_mse: the quarter turn and the mirror are one of 8 "
                                 "poses, picked by the largest of z's first 8 components, and the head on z adds "
                                 "a residual turn, scale and shift; E_p reads the 8 poses back with a head of its "
                                 "own as a classification, the rest as a regression, and the reconstruction path "
                                 "places the object by what it read (not in the paper; docs/design.md §3).")
    pose_turn_init: float = _field(0.0, "With --pose_warp: spread in radians of the in-plane turn and of the "
                                   "mirror's phase (0 = the drawing, pi = its mirror image) that the pose head "
                                   "draws at initialisation (with --pose_discrete: of the residual turn only); "
                                   "0 starts every sample at the identity pose.")

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
                f"parent c // (n_child // n_parent) (docs/design.md §1)")
        if not self.shape_code_gain > 0:
            raise ConfigError(f"shape_code_gain={self.shape_code_gain} must be > 0 (1 = the paper)")
        if self.pose_turn_init < 0:
            raise ConfigError(f"pose_turn_init={self.pose_turn_init} must be >= 0 (0 = start at the identity pose)")
        if self.pose_mse and not self.pose_warp:
            raise ConfigError("pose_mse=True needs pose_warp=True (--pose_warp): without it there is no pose to read")
        if self.pose_discrete and not (self.pose_warp and self.pose_mse):
            raise ConfigError("pose_discrete=True needs pose_warp=True and pose_mse=True (--pose_warp --pose_mse): "
                              "without them there is no pose, or nothing teaches E_p to read it")
        if self.pose_discrete and self.d_z < 8:
            raise ConfigError(f"pose_discrete=True reads one of 8 poses from z's first 8 components; d_z={self.d_z}")
        if self.pose_turn_init and not self.pose_warp:
            raise ConfigError(f"pose_turn_init={self.pose_turn_init} needs pose_warp=True (--pose_warp): "
                              "without it there is no pose head to initialise")
        if self.norm not in NORMS:
            raise ConfigError(f"norm={self.norm!r} is not supported; allowed values: {NORMS}")
        if not self.bypass and not self.mixup_preimages:
            # Tab. 3b: 'no mixup(3,4)' feeds the bypass alone, which 'no bypass' removes; nothing would be left.
            raise ConfigError(
                "bypass=False (--nobypass) contradicts mixup_preimages=False (--nomixup_preimages): without "
                "mixup 3-4 the generators see the bypasses B_fg, B_bg alone, and --nobypass removes them. "
                "Keep one of the two (paper Tab. 3b ablates them separately).")

    @property
    def children_per_parent(self) -> int:
        return self.n_child // self.n_parent

    def width(self, channels: int) -> int:
        """A paper width scaled by `channel_mult` (floored at 8 so GLU halves stay meaningful)."""
        if self.channel_mult == 1.0:
            return channels
        return max(8, int(round(channels * self.channel_mult)))


# Values of DataConfig.dataset (onegan_tf.data.sources implements each).
DATA_SOURCES = ("synthetic", "cub", "folder", "caltech_birds2011", "stanford_dogs", "cars196")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are cut (docs/design.md §6)."""

    dataset: str = _field("synthetic", "Image source: synthetic, cub, caltech_birds2011, stanford_dogs, "
                          "cars196 or folder.")
    data_dir: str = _resumable("", "Directory the source reads from (CUB release root, TFDS data_dir, "
                           "image folder; synthetic: where to cache the generated set, '' = memory).")
    crop: str = _field("bbox", "Object crop: bbox (FineGAN's 1.5 x box square, paper) or full (whole image).")
    split_seed: int = _field(0, "Seed of the 80/20 object/background split and of the background patch "
                             "positions (docs/design.md §6).")
    background_patches_per_image: int = _field(
        4, "Background patches cut from each image of the 20 % split: the largest box-free square beside "
        "each side of the box (left, right, above, below) whose side is >= 1/4 of the shorter image side, "
        "largest first, at most this many (docs/design.md §6). With --background_dir: squares cut at random from each "
        "background image.")
    background_dir: str = _field(
        "", "Folder of object-free images (any depth) for the background domain X_bg: square patches of "
        "random side (>= 1/4 of the shorter image side) and position are cut from them, and every image of "
        "the source is an object image (no 80/20 split). Training without boxes needs it. '' = patches "
        "beside the boxes of the 20 % split (docs/design.md §6).")
    class_parents: str = _resumable(
        "", "cub: file mapping each class to its ground-truth parent, lines '<class_id> <parent_id>' (1-based); "
        "'' = contiguous blocks of n_child // n_parent classes (docs/design.md §1). Used to evaluate parent clusters.")
    mask_dir: str = _field("", "Folder of ground-truth mask PNGs, one per image matched by file stem "
                           "(folder and TFDS sources; e.g. DeepLabV3 masks for Dogs/Cars). '' = none.")
    data_cache: bool = _resumable(False, "Hold the decoded, cropped training images (uint8, image_size) in "
                              "host memory after the first pass; for datasets that fit in RAM.")
    tfds_download: bool = _resumable(False, "TFDS sources: download and prepare the dataset into data_dir if "
                                 "it is not there yet.")
    tfds_manual_dir: str = _resumable("", "TFDS sources: folder holding manually downloaded archives "
                                  "(TFDS manual_dir); implies preparing the dataset.")
    tfds_splits: str = _field("train,test", "TFDS sources: comma-separated TFDS splits pooled into one set "
                              "before the 80/20 split.")
    synthetic_parents: int = _field(4, "Synthetic source: number of parent (shape) classes.")
    synthetic_children_per_parent: int = _field(3, "Synthetic source: child (colour) classes per parent.")
    synthetic_resolution: int = _field(128, "Synthetic source: side of the generated images in pixels.")
    synthetic_train_size: int = _field(1000, "Synthetic source: images in the 80/20 protocol set.")
    synthetic_test_size: int = _field(200, "Synthetic source: held-out evaluation images (split 'test'), "
                                      "generated from indices after the training ones.")
    synthetic_seed: int = _field(0, "Synthetic source: seed of the generator.")

    def __post_init__(self):
        if self.dataset not in DATA_SOURCES:
            raise ConfigError(f"dataset={self.dataset!r} is not supported; allowed values: {DATA_SOURCES}")
        if self.class_parents and self.dataset != "cub":
            raise ConfigError(f"class_parents={self.class_parents!r} is read by dataset='cub' only; "
                              f"dataset={self.dataset!r} takes its parents from its own annotations")
        if self.crop not in ("bbox", "full"):
            raise ConfigError(f"crop={self.crop!r} is not supported; allowed values: ('bbox', 'full')")
        for name in ("background_patches_per_image", "synthetic_parents", "synthetic_children_per_parent",
                     "synthetic_resolution", "synthetic_train_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be a positive integer")
        if self.synthetic_test_size < 0:
            raise ConfigError(f"synthetic_test_size={self.synthetic_test_size} must be >= 0")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Schedule, optimisers, loss weights and bookkeeping of a run (docs/design.md §5, paper Sec. 4-5)."""

    run_dir: str = _resumable("runs/default", "Directory of the run: config, checkpoints, TensorBoard logs.")
    seed: int = _field(0, "Seed of the codes, the mixup betas and the data order.")
    batch_size: int = _field(20, "Global batch size (paper: 20), split evenly over replicas.")
    phase1_steps: int = _field(200_000, "Length of Phase I, generation only (paper: 200k).")
    phase2a_steps: int = _field(200_000, "Length of Phase IIa, + fake reconstruction (paper: 200k).")
    phase2b_steps: int = _field(200_000, "Length of Phase IIb, + real reconstruction (paper: 200k).")
    total_steps: int = _field(0, "Total training steps; must equal the sum of the three phase lengths "
                              "(0 = that sum).")
    learning_rate: float = _field(2e-4, "Adam learning rate of every optimiser (paper: 2e-4).")
    beta_1: float = _field(0.5, "Adam beta_1 (paper: 0.5).")
    beta_2: float = _field(0.999, "Adam beta_2 (paper: 0.999).")
    # Loss weights between equations (Eq. 14 and 18); 0 removes the term's computation, not only its share.
    weight_G: float = _field(1.0, "Weight of L_G, the generators' adversarial loss (Eq. 11, 14).")
    weight_E: float = _field(1.0, "Weight of L_E, the classification loss (Eq. 12, 14).")
    weight_MSE: float = _field(1.0, "Weight of L_MSE, the code distance loss (Eq. 13, 14).")
    weight_Rv: float = _field(0.1, "Weight of L_Rv, the code regulariser (Eq. 14, suppl. B; paper 0.1).")
    weight_RM: float = _field(2.0, "Weight of L_RM, the mask regulariser (Eq. 14, suppl. B; paper 2).")
    weight_VAE: float = _field(1.0, "Weight of L_VAE, the KL terms of the reconstruction path (Eq. 15, 18).")
    vae_kl_per_dimension: bool = _field(
        False, "Average each KL of L_VAE over its code's dimensions, the element mean of L1 and MSE, instead of "
        "summing it as Eq. 15's KL (docs/design.md, Readings of the training step).")
    vae_stop_target: bool = _field(
        False, "Stop L_VAE's gradient into its target means v_p = V_p(argmax e_p), v_c = V_c(argmax e_c), so "
        "that it trains the encoders alone and not the embeddings V_p, V_c (docs/design.md, Readings of the "
        "training step).")
    weight_REC: float = _field(1.0, "Weight of L_REC, the L1 reconstruction loss (Eq. 16, 18).")
    weight_PER: float = _field(1.0, "Weight of L_PER, the perceptual loss (Eq. 17, 18).")
    weight_adv_rec: float = _field(1.0, "Weight of the reconstruction paths' adversarial terms against "
                                   "their discriminator clones (docs/design.md §5).")
    weight_MS: float = _field(0.0, "Weight of a mode-seeking term on the generation path (not in the "
                              "paper; 0 = off). Pairs of samples share classes and differ in z.")
    mask_target: str = _field(
        "0.5", "Target foreground fraction of the mask regulariser L_RM, in (0, 1) (paper: 0.5), or auto: "
        "estimated from the training split's object boxes when the run starts (half of each box as a fraction "
        "of its crop, averaged) and recorded as auto:<value> in config.json.")
    # Beyond the paper: an EMA of the generators, and a segmenter distilled from generated (I, I_m) pairs.
    ema_kimg: float = _field(10.0, "Half-life of the EMA of V_* and G_* in thousands of images (StyleGAN2-ADA "
                             "convention; not in the paper); 0 = no EMA.")
    ema_rampup: float = _field(0.05, "EMA ramp-up: the half-life is at most this fraction of the images seen "
                               "so far (StyleGAN2-ADA); 0 = no ramp-up.")
    generator_weights: str = _field("ema", "Weights of V_* and G_* used for distillation, the final "
                                    "evaluation, figure grids and exports: ema (the average) or raw (the last "
                                    "iterate). ema needs ema_kimg > 0.")
    distill_steps: int = _field(0, "Steps of segmenter distillation after the three phases: a small U-Net "
                                "trained on (I, I_m) pairs drawn fresh from the generator (0 = off).")
    distill_target: str = _field("soft", "Distillation target: soft (the generator's I_m in [0, 1]) or hard "
                                 "(I_m > 0.5).")
    distill_learning_rate: float = _field(1e-3, "Adam learning rate of the distilled segmenter.")
    distill_cosine: bool = _field(False, "Decay the distillation's learning rate along a half cosine from "
                                  "distill_learning_rate to 0 over distill_steps (else constant).")
    distill_width: float = _field(1.0, "Width multiplier of the distilled segmenter, on top of channel_mult "
                                  "(widths floored at 8).")
    distill_flip_average: bool = _field(False, "Ship the distilled segmenter flip-averaged: its mask is the "
                                        "mean of the masks of the image and of its mirror (mirrored back), "
                                        "at twice the inference cost.")
    distill_real: float = _field(0.0, "Fraction of each distillation batch taken from real training images, "
                                 "with the encoders' masks (the reconstruction path's I_m) as targets instead "
                                 "of the generator's (0 = generated pairs only, 1 = real images only).")
    distill_real_backgrounds: float = _field(
        0.0, "Fraction of the distillation's generated pairs composed (Eq. 5) on a real background patch "
        "(X_bg) instead of the generator's I_bg, the target still the generator's I_m (0 = none).")
    distill_augment: str = _field("", "Augmentations of the distillation's generated pairs, comma-separated: "
                                  "flip (image and mask mirrored), scale (a random square of 70-100 % of the "
                                  "side, resized back), colour (brightness, contrast, saturation jitter of the "
                                  "image); '' = none.")
    distill_from: str = _resumable("", "Run directory of a trained run to distil from: this run starts from "
                                   "its latest checkpoint's networks and EMA (its schedule must be finished "
                                   "and its settings those of this run, but for the distillation's) and runs "
                                   "only the distillation, with a new segmenter ('' = train the schedule "
                                   "first). Ignored once run_dir holds a checkpoint of its own.")
    # Devices and speed.
    strategy: str = _resumable("default", "Distribution: default (one device), mirrored (all local GPUs or "
                           "--devices) or multi_worker (MultiWorkerMirroredStrategy from TF_CONFIG).")
    devices: str = _resumable("", "Comma-separated devices for --strategy=mirrored, e.g. /gpu:0,/gpu:1 "
                          "('' = all local GPUs, or the CPU when there is none).")
    mixed_precision: str = _field("off", "Mixed precision policy: off, mixed_float16 (with loss scaling) "
                                  "or mixed_bfloat16.")
    jit_compile: bool = _resumable(False, "Compile the training step with XLA (one replica only).")
    # Bookkeeping.
    log_every: int = _resumable(100, "Write scalars to TensorBoard and check losses every N steps.")
    image_every: int = _resumable(2000, "Write the generation and reconstruction grids every N steps.")
    ckpt_every: int = _resumable(2000, "Save a checkpoint every N steps (and at the end of the run).")
    keep_checkpoints: int = _resumable(3, "Checkpoints kept in run_dir/ckpt.")
    profile_steps: str = _resumable("", "Profile steps START,END (TensorBoard Profile tab), '' = none.")
    progress: bool = _resumable(True, "Show a progress bar on the console.")
    # The end of the run (onegan_tf.report): evaluation, baselines, figures, export, report.md.
    final_eval: str = _resumable("", "Metrics to evaluate when training ends, comma-separated (e.g. "
                             "segmentation,clustering,fid,is,cfid,cis); '' = none. Writes run_dir/report.md.")
    final_split: str = _resumable("object", "Split evaluated when training ends: object, test (synthetic's "
                              "held-out set), all.")
    final_feature_net: str = _resumable("finetuned", "Feature network of the final generation metrics: "
                                    "finetuned (a small CNN fine-tuned on the training split's child labels), "
                                    "inception_imagenet, or a .keras classifier path.")
    final_num_generated: int = _resumable(2000, "Images generated for the final FID/IS.")
    final_export: bool = _resumable(False, "Export the SavedModel to run_dir/export when training ends.")

    def __post_init__(self):
        for name in ("phase1_steps", "phase2a_steps", "phase2b_steps", "total_steps"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0")
        phases = self.phase1_steps + self.phase2a_steps + self.phase2b_steps
        if self.total_steps and self.total_steps != phases:
            raise ConfigError(
                f"phase lengths do not add up: phase1_steps + phase2a_steps + phase2b_steps = "
                f"{self.phase1_steps} + {self.phase2a_steps} + {self.phase2b_steps} = {phases}, but "
                f"total_steps={self.total_steps}")
        if phases < 1:
            raise ConfigError("the run has no steps: set phase1_steps, phase2a_steps or phase2b_steps")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be a positive integer")
        if self.weight_MS and self.batch_size % 2:
            raise ConfigError(f"weight_MS={self.weight_MS} pairs samples: batch_size={self.batch_size} must be even")
        for name in ("log_every", "image_every", "ckpt_every", "keep_checkpoints"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be a positive integer")
        for f in dataclasses.fields(self):
            if f.name.startswith("weight_") and getattr(self, f.name) < 0:
                raise ConfigError(f"{f.name}={getattr(self, f.name)} must be >= 0")
        # A number given as a float (a config.json written before `auto` existed) is kept as its text.
        object.__setattr__(self, "mask_target", str(self.mask_target))
        if self.mask_target != AUTO:
            self.mask_fraction  # validates
        if self.ema_kimg < 0 or self.ema_rampup < 0:
            raise ConfigError(f"ema_kimg={self.ema_kimg} and ema_rampup={self.ema_rampup} must be >= 0")
        if self.generator_weights not in GENERATOR_WEIGHTS:
            raise ConfigError(f"generator_weights={self.generator_weights!r} is not supported; allowed values: "
                              f"{GENERATOR_WEIGHTS}")
        if self.generator_weights == "ema" and not self.ema_kimg:
            raise ConfigError("generator_weights='ema' needs an EMA: set ema_kimg > 0 or generator_weights=raw")
        if self.distill_steps < 0:
            raise ConfigError(f"distill_steps={self.distill_steps} must be >= 0")
        if self.distill_target not in DISTILL_TARGETS:
            raise ConfigError(f"distill_target={self.distill_target!r} is not supported; allowed values: "
                              f"{DISTILL_TARGETS}")
        if self.distill_width <= 0:
            raise ConfigError(f"distill_width={self.distill_width} must be > 0")
        if self.distill_learning_rate <= 0:
            raise ConfigError(f"distill_learning_rate={self.distill_learning_rate} must be > 0")
        if not 0.0 <= self.distill_real <= 1.0:
            raise ConfigError(f"distill_real={self.distill_real} must be a fraction in [0, 1]")
        if not 0.0 <= self.distill_real_backgrounds <= 1.0:
            raise ConfigError(f"distill_real_backgrounds={self.distill_real_backgrounds} must be a fraction in "
                              "[0, 1]")
        unknown = set(self.distill_augmentations) - set(DISTILL_AUGMENTATIONS)
        if unknown:
            raise ConfigError(f"distill_augment={self.distill_augment!r}: unknown {sorted(unknown)}; allowed "
                              f"values, comma-separated: {DISTILL_AUGMENTATIONS}")
        if self.distill_from and not self.distill_steps:
            raise ConfigError(f"distill_from={self.distill_from!r} runs only the distillation: set distill_steps > 0")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy={self.strategy!r} is not supported; allowed values: {STRATEGIES}")
        if self.mixed_precision not in PRECISIONS:
            raise ConfigError(f"mixed_precision={self.mixed_precision!r} is not supported; allowed values: "
                              f"{PRECISIONS}")
        self.profile_range  # validates
        if self.final_split not in ("object", "test", "all"):
            raise ConfigError(f"final_split={self.final_split!r} is not supported; allowed values: "
                              "('object', 'test', 'all')")

    @property
    def distill_augmentations(self) -> tuple[str, ...]:
        """The names of distill_augment, in order."""
        return tuple(name for name in (n.strip() for n in self.distill_augment.split(",")) if name)

    @property
    def steps(self) -> int:
        return self.phase1_steps + self.phase2a_steps + self.phase2b_steps

    @property
    def mask_fraction(self) -> float:
        """L_RM's target as a number: the value of mask_target, or the estimate an `auto` was resolved to."""
        if self.mask_target == AUTO:
            raise ConfigError("mask_target=auto has not been estimated yet: onegan_tf.train and onegan_tf.bench "
                              "resolve it from the data when they start (data.protocol.resolve_from_data), or "
                              "give a fraction in (0, 1)")
        text = self.mask_target.removeprefix(AUTO + ":")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0.0 < value < 1.0:
            raise ConfigError(f"mask_target={self.mask_target!r} must be a fraction in (0, 1) or auto")
        return value

    @property
    def profile_range(self) -> tuple[int, int] | None:
        if not self.profile_steps:
            return None
        try:
            start, end = (int(x) for x in self.profile_steps.split(","))
        except ValueError:
            raise ConfigError(f"profile_steps={self.profile_steps!r} must be START,END (two step numbers)") from None
        if not 0 <= start < end:
            raise ConfigError(f"profile_steps={self.profile_steps!r} needs 0 <= START < END")
        return start, end


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


# What only the distillation reads (and the choice of generator weights, which training keeps both of): a
# run started with --distill_from may set these otherwise than the run it starts from.
DISTILLATION_SETTINGS = ("generator_weights", "distill_steps", "distill_target", "distill_learning_rate",
                         "distill_real", "distill_real_backgrounds", "distill_augment", "distill_cosine",
                         "distill_width", "distill_flip_average", "distill_from")


def resumable_settings() -> tuple[str, ...]:
    """The fields marked `_resumable`: a run may be resumed with other values of these."""
    return tuple(f.name for cls in (ModelConfig, DataConfig, TrainConfig) for f in dataclasses.fields(cls)
                 if f.metadata.get("resumable"))


def config_differences(saved: dict, current: dict, ignore: tuple = ()) -> list[str]:
    """Settings that differ between a run directory's config and this run's, as 'section.name: a -> b';
    `ignore` names settings left out (the resumable ones, when checking a resumption)."""
    diffs = []
    for section in sorted(set(saved) | set(current)):
        a, b = saved.get(section, {}), current.get(section, {})
        for name in sorted(set(a) | set(b)):
            if name in ignore:
                continue
            if a.get(name) != b.get(name):
                diffs.append(f"{section}.{name}: {a.get(name)!r} (checkpoint) -> {b.get(name)!r} (now)")
    return diffs
