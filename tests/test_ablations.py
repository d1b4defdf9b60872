"""Paper Tab. 1-3 ablations (configs/ablations/): each variant is one flagfile, each switch has its effect.

- The flagfiles resolve to the CUB setting plus exactly the variant's change, each with its own run_dir.
- Tab. 3a: the normalisation variants have the expected parameter counts and different forwards.
- Tab. 3b: with a switch off, the networks it disconnects receive no gradient from a Phase IIb step.
- Tab. 3c: a loss of weight 0 is neither computed nor logged.
- Tab. 1-2: the schedules' step plans; one short run of every variant with finite losses (slow).
- Contradictory switches fail with errors that name both flags.

The training steps run eagerly (`tf.config.run_functions_eagerly`): a Phase IIb step takes seconds instead
of a trace of minutes on a CPU. One trainer serves every gradient test: its state is restored from a
checkpoint before each step and its config is replaced by one with the switches of the test (the Tab. 3b
switches and the loss weights change no weight, only what the step computes).
"""

import contextlib
import dataclasses
import functools
import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from onegan_tf import train
from onegan_tf.config import Config, ConfigError, ModelConfig
from onegan_tf.flags import config_from_flags, define_config_flags
from onegan_tf.layers import GLUNorm
from onegan_tf.model import OneGAN, inference_betas, sample_betas, sample_eps
from onegan_tf.trainer import OneGANTrainer, phase_at, step_noise, step_plan
from tests.tiny import REPO, tiny_config

ABLATIONS = os.path.join(REPO, "configs", "ablations")
PHASE_FIELDS = ("phase1_steps", "phase2a_steps", "phase2b_steps")
GEN_WEIGHTS = ("weight_G", "weight_E", "weight_MSE", "weight_Rv", "weight_RM")

# Variant -> the config fields it changes with respect to configs/cub.cfg (besides run_dir).
VARIANTS = {
    "glu_inorm": {"norm": "glu_inorm"},
    "lnorm": {"norm": "lnorm"},
    "inorm": {"norm": "inorm"},
    "no_bypass": {"bypass": False},
    "no_mixup_codes": {"mixup_codes": False},
    "no_mixup_preimages": {"mixup_preimages": False},
    "no_rm": {"weight_RM": 0.0},
    "no_vae": {"weight_VAE": 0.0},
    "no_per": {"weight_PER": 0.0},
    "no_real_recon": {"phase2a_steps": 400_000, "phase2b_steps": 0},
    "phase1_only": {"phase1_steps": 600_000, "phase2a_steps": 0, "phase2b_steps": 0},
    "no_multi_phase": {"phase1_steps": 0, "phase2a_steps": 0, "phase2b_steps": 600_000},
}
# Tab. 1-2 schedules: (phase, steps, paths) rows of the step plan.
SCHEDULES = {
    "no_real_recon": [("I", 200_000, "gen"), ("IIa", 400_000, "gen + rec_fake")],
    "phase1_only": [("I", 600_000, "gen")],
    "no_multi_phase": [("IIb", 600_000, "gen + rec_fake + rec_real")],
}


def parse(*argv) -> Config:
    """The Config of command-line flags, parsed in-process from the repository root (as the CLI is run)."""
    fv = flags.FlagValues()
    define_config_flags(fv)
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        fv(["onegan_tf.train", *argv])
        return config_from_flags(fv)
    finally:
        os.chdir(cwd)


def flat(cfg: Config) -> dict:
    return {k: v for section in cfg.to_dict().values() for k, v in section.items()}


def variant(name: str) -> Config:
    return parse(f"--flagfile=configs/ablations/{name}.cfg")


# ---------------------------------------------------------------------------------------------- flagfiles


def test_every_variant_has_a_flagfile_and_a_readme_row():
    files = sorted(os.path.basename(f)[:-4] for f in glob.glob(os.path.join(ABLATIONS, "*.cfg")))
    assert files == sorted(VARIANTS)
    with open(os.path.join(ABLATIONS, "README.md")) as f:
        readme = f.read()
    for name in VARIANTS:
        assert f"`{name}.cfg`" in readme


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_flagfile_is_the_cub_setting_with_one_change_and_its_own_run_dir(name):
    base, cfg = flat(parse("--flagfile=configs/cub.cfg")), flat(variant(name))
    changed = {k: v for k, v in cfg.items() if base[k] != v and k != "run_dir"}
    assert changed == VARIANTS[name]
    assert cfg["run_dir"] == f"runs/cub_ablation_{name}"
    assert sum(cfg[k] for k in PHASE_FIELDS) == 600_000  # every row of the tables trains 600k iterations


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_variants_plan_the_phases_the_paper_describes(name):
    plan = step_plan(variant(name).train)
    assert [(r["phase"], r["steps"], r["paths"]) for r in plan] == SCHEDULES[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_dry_run_of_a_schedule_variant_prints_its_phases(name, monkeypatch, capsys):
    """The command's `main` from the repository root, in this process; a small model keeps the parameter count
    quick, the plan is unchanged."""
    monkeypatch.chdir(REPO)
    assert train.main(["onegan_tf.train", f"--flagfile=configs/ablations/{name}.cfg", "--image_size=32",
                       "--channel_mult=0.125", "--dry_run"]) == 0
    stdout = capsys.readouterr().out
    expected, first = [], 0
    for phase, n, paths in SCHEDULES[name]:
        expected.append(f"  Phase {phase:<4} steps {first:>8,} .. {first + n - 1:>8,} ({n:,} steps): {paths}")
        first += n
    assert stdout.split("Step plan:\n")[1].splitlines() == expected
    assert f'"run_dir": "runs/cub_ablation_{name}"' in stdout


# ---------------------------------------------------------------------------------------------- Tab. 3a


@functools.lru_cache(maxsize=None)
def _gan(norm: str) -> OneGAN:
    keras.utils.set_random_seed(0)
    return OneGAN(dataclasses.replace(tiny_config().model, norm=norm))


def _generator_params(norm: str) -> int:
    return sum(v for k, v in _gan(norm).parameter_counts().items() if k.startswith("G_"))


def _glu_halves(norm: str) -> list:
    """c of every GLUNorm (2c channels in, c out) of the generators."""
    return [layer.normalize.gamma.shape[0] for key, net in _gan(norm).networks.items() if key.startswith("G_")
            for layer in net._flatten_layers() if isinstance(layer, GLUNorm)]


def test_norm_variants_have_the_expected_generator_parameter_counts():
    """GLU-LNorm and GLU-INorm normalise x_L (c channels: gamma, beta of size c); LNorm and INorm normalise
    all 2c channels, so each GLUNorm has 2c more parameters."""
    counts = {norm: _generator_params(norm) for norm in ("glu_lnorm", "glu_inorm", "lnorm", "inorm")}
    halves = _glu_halves("glu_lnorm")
    assert halves and _glu_halves("lnorm") == [2 * c for c in halves]
    assert counts["glu_inorm"] == counts["glu_lnorm"]
    assert counts["lnorm"] == counts["inorm"] == counts["glu_lnorm"] + sum(2 * c for c in halves)


def test_each_norm_variant_generates_a_different_image_from_the_same_weights():
    child, z = tf.constant([0, 5, 11, 3]), tf.random.stateless_normal((4, 100), seed=[1, 2])
    ref = _gan("glu_lnorm")
    images = {"glu_lnorm": ref.generate(child, z)["I"].numpy()}
    for norm in ("glu_inorm", "lnorm", "inorm"):
        gan = _gan(norm)
        for key, net in gan.networks.items():  # same convolutions; the affine stays at its identity init
            for a, b in zip(ref.networks[key].weights, net.weights):
                if tuple(a.shape) == tuple(b.shape):
                    b.assign(a)
        images[norm] = gan.generate(child, z)["I"].numpy()
    for norm in ("glu_inorm", "lnorm", "inorm"):
        assert np.abs(images[norm] - images["glu_lnorm"]).max() > 1e-3, norm
    assert np.abs(images["lnorm"] - images["inorm"]).max() > 1e-3


# ---------------------------------------------------------------------------------------------- Tab. 3b, 3c


@contextlib.contextmanager
def eagerly():
    """Training steps run as Python: seconds per step, where tracing a Phase IIb step takes minutes on a CPU."""
    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(False)


@dataclasses.dataclass
class Saved:
    """A tiny trainer in Phase II and its initial state (weights, clones, optimiser state) on disk."""
    trainer: OneGANTrainer
    ckpt: tf.train.Checkpoint
    path: str
    steps: dict = dataclasses.field(default_factory=dict)  # step()'s results by its arguments

    def restore(self) -> OneGANTrainer:
        self.ckpt.read(self.path).assert_existing_objects_matched()
        return self.trainer


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    keras.utils.set_random_seed(0)
    tr = OneGANTrainer(tiny_config())
    tr.init_clones()
    ckpt = tf.train.Checkpoint(trainer=tr)
    return Saved(tr, ckpt, ckpt.write(str(tmp_path_factory.mktemp("ablation") / "state")))


def step(saved, phase="IIb", zero_eps=False, **switches) -> tuple[dict, dict]:
    """One step from the saved state under `switches` -> (logged terms, {network: largest weight change})."""
    key = (phase, zero_eps, tuple(sorted(switches.items())))
    if key not in saved.steps:
        saved.steps[key] = _step(saved.restore(), phase, zero_eps, switches)
    return saved.steps[key]


def _step(trainer, phase, zero_eps, switches):
    cfg = tiny_config(**switches)
    trainer.cfg, trainer.model.cfg = cfg, cfg.model
    trainer._untracked.step_fns.clear()  # the step reads the switches when it is (re)built
    b, s = cfg.train.batch_size, cfg.model.image_size
    rng = np.random.default_rng(0)
    batch = {k: tf.constant(rng.uniform(-1, 1, (b, s, s, 3)), tf.float32) for k in ("x_c", "x_bg")}
    batch.update(step_noise(cfg.train.seed, 0, b, cfg))
    if zero_eps:  # the encoder means: sigma reaches the reconstruction only through mu + exp(sigma/2) * eps
        batch.update({k: tf.zeros_like(v) for k, v in batch.items() if "/eps_" in k})
    nets = _watched(trainer.model)
    before = {k: [w.numpy() for w in ws] for k, ws in nets.items()}
    with eagerly():
        out = trainer.train_step(batch, phase)
    moved = {k: max(float(np.abs(w.numpy() - b0).max()) for w, b0 in zip(ws, before[k])) for k, ws in nets.items()}
    return {k: float(v) for k, v in out.items()}, moved


def _watched(m) -> dict:
    return {"E_bg": m.E_bg.trainable_weights,
            "E_p bypass": m.E_p.bypass1.trainable_weights + m.E_p.bypass2.trainable_weights,
            "E_p trunk": m.E_p.logits.trainable_weights,
            "sigma heads": (m.E_c.sigma.trainable_weights + m.E_p.sigma_p.trainable_weights
                            + m.E_p.sigma_z.trainable_weights),
            "V_p": m.V_p.trainable_weights, "V_c": m.V_c.trainable_weights,
            "G_fg0": m.G_fg0.trainable_weights, "G_bg0": m.G_bg0.trainable_weights,
            "G_fg1": m.G_fg1.trainable_weights, "G_bg1": m.G_bg1.trainable_weights}


def test_no_bypass_leaves_e_bg_and_the_bypass_branch_of_e_p_without_gradient(trainer):
    """Phase IIb with the paper's weights: E_bg and E_p's bypass branch train only through B_fg, B_bg."""
    _, moved = step(trainer)
    assert moved["E_bg"] > 0 and moved["E_p bypass"] > 0
    terms, moved = step(trainer, bypass=False)
    assert moved["E_bg"] == 0 and moved["E_p bypass"] == 0
    assert moved["E_p trunk"] > 0 and all(np.isfinite(v) for v in terms.values())


def test_no_bypass_reconstruction_ignores_e_bg_and_the_bypass_branch_of_e_p(trainer):
    m = trainer.restore().model
    m.cfg = dataclasses.replace(tiny_config().model, bypass=False)
    I = tf.random.stateless_uniform((4, 32, 32, 3), seed=[3, 4], minval=-1, maxval=1)
    betas, eps = sample_betas(tf.constant([5, 6]), 4), sample_eps(tf.constant([7, 8]), 4, m.cfg)
    before = m.reconstruct(I, betas, eps)["I_hat"].numpy()
    for w in m.E_bg.weights + m.E_p.bypass1.weights + m.E_p.bypass2.weights:
        w.assign(w + 0.5)
    np.testing.assert_array_equal(m.reconstruct(I, betas, eps)["I_hat"].numpy(), before)


RECONSTRUCTION_ONLY = {**{w: 0.0 for w in GEN_WEIGHTS}, "weight_VAE": 0.0}


@pytest.mark.parametrize("switch,frozen", [("mixup_codes", ("V_p", "V_c")),
                                           ("mixup_preimages", ("G_fg0", "G_bg0"))])
def test_no_mixup_cuts_the_reconstruction_gradient_to_what_it_no_longer_mixes(trainer, switch, frozen):
    """No mixup(1,2): beta1 = beta2 = 1 give the embedded codes of the predicted classes weight 0, so V_p, V_c
    get no gradient from the reconstruction paths; no mixup(3,4): beta3 = beta4 = 1 do the same to the
    pre-images of G_fg0, G_bg0. The generation losses (and L_VAE, whose targets are V_p, V_c codes) are
    zeroed so that the reconstruction paths are their only source of gradient."""
    _, moved = step(trainer, **RECONSTRUCTION_ONLY)
    assert all(moved[k] > 0 for k in frozen)
    _, moved = step(trainer, **RECONSTRUCTION_ONLY, **{switch: False})
    assert all(moved[k] == 0 for k in frozen), moved
    assert moved["G_fg1"] > 0 and moved["G_bg1"] > 0


@pytest.mark.parametrize("weight,term,phase", [("weight_RM", "gen/L_RM", "I"), ("weight_VAE", "L_VAE", "IIb"),
                                               ("weight_PER", "L_PER", "IIb")])
def test_a_loss_of_weight_zero_is_neither_computed_nor_logged(trainer, weight, term, phase):
    paths = [""] if term.startswith("gen/") else ["rec_fake/", "rec_real/"]
    terms, _ = step(trainer, phase=phase)
    assert all(f"{p}{term}" in terms for p in paths)
    terms, _ = step(trainer, phase=phase, **{weight: 0.0})
    assert not any(f"{p}{term}" in terms for p in paths)
    assert all(np.isfinite(v) for v in terms.values())


def test_no_vae_leaves_the_variance_heads_without_gradient_at_the_encoder_means(trainer):
    """L_VAE is the only loss on sigma_p, sigma_c, sigma_z besides the reparameterisation noise: with the
    noise at 0 (the encoder means) and weight_VAE=0 they receive no gradient."""
    _, moved = step(trainer, zero_eps=True)
    assert moved["sigma heads"] > 0
    _, moved = step(trainer, zero_eps=True, weight_VAE=0.0)
    assert moved["sigma heads"] == 0


# ---------------------------------------------------------------------------------------------- short runs


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_one_step_of_each_phase_of_every_variant_gives_finite_losses(name):
    """The variant's flagfile on the tiny setting: its switches, and 1 step for each phase its plan has."""
    base, cfg = flat(parse("--flagfile=configs/cub.cfg")), flat(variant(name))
    switches = {k: v for k, v in cfg.items() if base[k] != v and k not in ("run_dir",) + PHASE_FIELDS}
    cfg = tiny_config(**switches, **{k: int(cfg[k] > 0) for k in PHASE_FIELDS})
    keras.utils.set_random_seed(0)
    tr = OneGANTrainer(cfg)
    b, s = cfg.train.batch_size, cfg.model.image_size
    rng = np.random.default_rng(0)
    for i in range(cfg.train.steps):
        phase = phase_at(i, cfg.train)
        if phase != "I" and not bool(tr.clones_ready.numpy()):
            tr.init_clones()
        batch = {k: tf.constant(rng.uniform(-1, 1, (b, s, s, 3)), tf.float32) for k in ("x_c", "x_bg")}
        with eagerly():
            out = tr.train_step({**batch, **step_noise(0, i, b, cfg)}, phase)
        bad = [k for k, v in out.items() if not np.isfinite(float(v))]
        assert not bad, f"{name}, Phase {phase}: non-finite {bad}"
        for w, t in (("weight_RM", "L_RM"), ("weight_VAE", "L_VAE"), ("weight_PER", "L_PER")):
            if not getattr(cfg.train, w):
                assert not any(k.endswith(t) for k in out)


# ---------------------------------------------------------------------------------------------- contradictions


def test_no_bypass_with_no_mixup_preimages_is_an_error_naming_both_flags():
    with pytest.raises(ConfigError, match=r"--nobypass.*--nomixup_preimages"):
        ModelConfig(bypass=False, mixup_preimages=False)


def test_the_contradiction_is_refused_on_the_command_line():
    with pytest.raises(ConfigError, match=r"--nobypass.*--nomixup_preimages"):
        parse("--flagfile=configs/ablations/no_bypass.cfg", "--nomixup_preimages")


def test_a_zero_weight_for_a_term_the_schedule_never_computes_is_allowed():
    cfg = parse("--flagfile=configs/ablations/phase1_only.cfg", "--weight_PER=0", "--weight_VAE=0")
    assert cfg.train.weight_PER == 0 and cfg.train.steps == 600_000


def _small(**switches) -> OneGAN:
    keras.utils.set_random_seed(0)
    return OneGAN(dataclasses.replace(tiny_config().model, **switches))


def _betas(**values):
    return {**inference_betas(2), **{k: tf.fill((2,), float(v)) for k, v in values.items()}}


@pytest.mark.parametrize("switch,betas,flag", [
    ("bypass", {"beta3": 0.5, "beta4": 0.0}, "--nobypass"),
    ("bypass", {"beta3": 0.0, "beta4": 1.0}, "--nobypass"),
    ("mixup_preimages", {"beta3": 1.0, "beta4": 0.7}, "--nomixup_preimages"),
    ("mixup_codes", {"beta1": 0.3}, "--nomixup_codes"),
])
def test_inference_betas_that_a_switch_fixes_are_refused_naming_the_flag(switch, betas, flag):
    from onegan_tf import tasks

    gan = _small(**{switch: False})
    given = _betas(**{**({"beta3": 0.0, "beta4": 0.0} if switch == "bypass" else {}), **betas})
    name = next(k for k, v in betas.items() if v != (0.0 if switch == "bypass" else 1.0))
    with pytest.raises(ValueError, match=rf"{name} must be .*{flag}"):
        gan.check_inference_betas(given)
    images = tf.zeros((2, 32, 32, 3))
    with pytest.raises(ValueError, match=flag):
        tasks.reconstruct(gan, images, betas=given)
    tasks.reconstruct(gan, images)  # the defaults are always valid


def test_inference_betas_the_switches_allow_pass_unchanged():
    no_bypass = _betas(beta1=0.2, beta3=0.0, beta4=0.0)
    assert _small(bypass=False).check_inference_betas(no_bypass) is no_bypass
    full = _betas(beta1=0.2, beta3=0.6)
    assert _small().check_inference_betas(full) is full


def test_the_saved_model_refuses_bypass_betas_for_a_model_without_bypass():
    from onegan_tf.serving import OneGANServing

    serving = OneGANServing(_small(bypass=False))
    image, no_seed = tf.zeros((1, 32, 32, 3)), tf.zeros((0,), tf.int64)
    default = serving.reconstruct(image, tf.zeros((0,), tf.float32), no_seed)["I_hat"].numpy()
    explicit = serving.reconstruct(image, tf.constant([1.0, 1.0, 0.0, 0.0]), no_seed)["I_hat"].numpy()
    np.testing.assert_array_equal(default, explicit)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"beta3 must be 0 .*--nobypass"):
        serving.reconstruct(image, tf.constant([1.0, 1.0, 0.5, 0.0]), no_seed)
