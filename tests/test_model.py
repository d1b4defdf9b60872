"""docs/design.md §1, §4, §5 / paper Eq. 1-9: the hierarchy, composition, both paths, mixup and the input checks."""

import contextlib
import dataclasses
import functools
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from onegan_tf import model as M
from onegan_tf.config import DATASET_CLASSES, ConfigError, ModelConfig, parent_of
from onegan_tf.model import OneGAN

N_C, N_P, BATCH = 6, 3, 3


def small_config(size=32, **kw):
    return ModelConfig(image_size=size, channel_mult=0.125, n_child=N_C, n_parent=N_P, **kw)


@functools.lru_cache(maxsize=None)
def small_gan(size=32):
    keras.utils.set_random_seed(size)
    return OneGAN(small_config(size))


def images(size=32, batch=BATCH, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)), tf.float32)


def betas(**fixed):
    """Sampled betas with some of them fixed to a constant for every sample."""
    out = M.sample_betas(tf.constant([3, 4]), BATCH)
    return {**out, **{k: tf.fill((BATCH,), float(v)) for k, v in fixed.items()}}


EPS = M.sample_eps(tf.constant([5, 6]), BATCH, small_config())


@contextlib.contextmanager
def perturbed(*nets):
    """Add noise to every weight of `nets`, restoring them afterwards."""
    saved = [[w.numpy() for w in net.weights] for net in nets]
    rng = np.random.default_rng(0)
    try:
        for net in nets:
            for w in net.weights:
                w.assign(w.numpy() + rng.normal(0, 0.5, w.shape).astype("float32"))
        yield
    finally:
        for net, values in zip(nets, saved):
            for w, v in zip(net.weights, values):
                w.assign(v)


@contextlib.contextmanager
def switched(gan, **switches):
    """The same networks under a Tab. 3b configuration (bypass / mixup switches do not change the weights)."""
    cfg = gan.cfg
    gan.cfg = dataclasses.replace(cfg, **switches)
    try:
        yield gan
    finally:
        gan.cfg = cfg


def assert_same(a, b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ---------------------------------------------------------------------------------------------------------
# Hierarchy (docs/design.md §1, Eq. 1) and composition (Eq. 5).


@pytest.mark.parametrize("dataset", sorted(DATASET_CLASSES))
def test_parent_of_groups_consecutive_children_evenly(dataset):
    n_child, n_parent = DATASET_CLASSES[dataset]
    cfg = ModelConfig(n_child=n_child, n_parent=n_parent)
    parents = np.asarray(parent_of(tf.range(n_child), cfg.children_per_parent))
    np.testing.assert_array_equal(parents, np.repeat(np.arange(n_parent), n_child // n_parent))
    assert parent_of(n_child - 1, cfg.children_per_parent) == n_parent - 1


def test_embed_derives_the_parent_and_uses_it_as_the_background_class():
    gan = small_gan()
    codes = gan.embed(tf.constant([0, 1, 2, 5]))
    assert_same(codes["parent"], [0, 0, 1, 2])
    assert_same(codes["e_bg"], codes["e_p"])
    assert_same(codes["e_p"], np.eye(N_P)[[0, 0, 1, 2]])
    assert_same(codes["v_bg"], np.asarray(gan.V_bg.table.kernel)[[0, 0, 1, 2]])
    assert_same(codes["v_c"], np.asarray(gan.V_c.table.kernel)[[0, 1, 2, 5]])


def test_compose_is_eq5_exactly():
    rng = np.random.default_rng(0)
    I_bg, I_fg = rng.uniform(-1, 1, (2, 4, 4, 3)), rng.uniform(-1, 1, (2, 4, 4, 3))
    I_m = rng.uniform(0, 1, (2, 4, 4, 1))
    np.testing.assert_allclose(np.asarray(M.compose(I_bg, I_fg, I_m)), I_bg * (1 - I_m) + I_fg * I_m, rtol=1e-12)
    assert_same(M.compose(I_bg, I_fg, np.ones_like(I_m)), I_fg)
    assert_same(M.compose(I_bg, I_fg, np.zeros_like(I_m)), I_bg)


def test_generated_image_is_the_composition_of_background_foreground_and_mask():
    gan = small_gan()
    out = gan.generate(tf.constant([0, 3, 5]), M.sample_z(tf.constant([1, 2]), BATCH, gan.cfg.d_z))
    assert_same(out["I"], M.compose(out["I_bg"], out["I_fg"], out["I_m"]))
    assert float(tf.reduce_min(out["I_m"])) >= 0.0 and float(tf.reduce_max(out["I_m"])) <= 1.0
    assert float(tf.reduce_max(tf.abs(out["I"]))) <= 1.0


def test_generation_depends_on_the_child_through_v_c_and_on_z():
    gan = small_gan()
    z = M.sample_z(tf.constant([1, 2]), 2, gan.cfg.d_z)
    a = gan.generate(tf.constant([0, 1]), z)
    b = gan.generate(tf.constant([0, 1]), z)
    assert_same(a["I"], b["I"])
    # Children 0 and 1 share parent 0: with one z, the same background and pre-image, a different style.
    same_z = gan.generate(tf.constant([0, 1]), tf.repeat(z[:1], 2, axis=0))
    assert_same(same_z["I_bg"][0], same_z["I_bg"][1])
    assert_same(same_z["A_fg"][0], same_z["A_fg"][1])
    assert float(tf.reduce_max(tf.abs(same_z["I_fg"][0] - same_z["I_fg"][1]))) > 0
    other_z = gan.generate(tf.constant([0, 1]), M.sample_z(tf.constant([9, 9]), 2, gan.cfg.d_z))
    assert float(tf.reduce_max(tf.abs(other_z["I"] - a["I"]))) > 0


# ---------------------------------------------------------------------------------------------------------
# Sampling: per-sample, in range, a pure function of the seed.


def test_sample_betas_are_per_sample_in_the_ranges_of_eq9():
    b = {k: v.numpy() for k, v in M.sample_betas(tf.constant([1, 2]), 2000).items()}
    assert set(b) == set(M.BETA_NAMES)
    for name, (lo, hi) in {"beta1": (0, 1), "beta2": (0, 1), "beta3": (0.5, 1), "beta4": (0.5, 1)}.items():
        assert b[name].shape == (2000,)
        assert b[name].min() >= lo and b[name].max() <= hi, name
        assert b[name].min() < lo + 0.02 and b[name].max() > hi - 0.02, name  # the whole range is used
        assert len(np.unique(b[name])) == 2000, name  # one beta per sample
    assert not np.array_equal(b["beta1"], b["beta2"]) and not np.array_equal(b["beta3"], b["beta4"])


def test_sample_betas_differ_across_seeds_and_repeat_for_a_seed():
    a, again = M.sample_betas(tf.constant([1, 2]), 8), M.sample_betas(tf.constant([1, 2]), 8)
    other = M.sample_betas(tf.constant([1, 3]), 8)
    for name in M.BETA_NAMES:
        assert_same(a[name], again[name])
        assert not np.array_equal(a[name].numpy(), other[name].numpy()), name


def test_sample_z_children_and_eps_are_deterministic_for_a_seed():
    cfg = small_config()
    seed, other = tf.constant([7, 0]), tf.constant([7, 1])
    assert_same(M.sample_z(seed, 4, 100), M.sample_z(seed, 4, 100))
    assert M.sample_z(seed, 4, 100).shape == (4, 100)
    assert not np.array_equal(M.sample_z(seed, 4, 100).numpy(), M.sample_z(other, 4, 100).numpy())
    children = M.sample_children(seed, 600, N_C).numpy()
    assert_same(children, M.sample_children(seed, 600, N_C))
    assert children.dtype == np.int32 and set(children) == set(range(N_C))
    eps, eps_again = M.sample_eps(seed, 4, cfg), M.sample_eps(seed, 4, cfg)
    assert {k: v.shape for k, v in eps.items()} == {"p": (4, cfg.d_p), "c": (4, cfg.d_c), "z": (4, cfg.d_z)}
    for key in eps:
        assert_same(eps[key], eps_again[key])
    assert not np.array_equal(eps["c"].numpy(), M.sample_eps(other, 4, cfg)["c"].numpy())


# ---------------------------------------------------------------------------------------------------------
# Mixup (Eq. 9) in the reconstruction path.


def test_mix_uses_per_sample_betas():
    a = np.zeros((3, 2, 2, 1), "float32")
    b = np.ones((3, 2, 2, 1), "float32") * 4
    out = np.asarray(M.mix(a, b, tf.constant([0.0, 1.0, 0.25])))
    np.testing.assert_allclose(out[:, 0, 0, 0], [0.0, 4.0, 1.0])
    v = np.asarray(M.mix(np.array([[1.0, 1.0], [2.0, 2.0]], "float32"), np.zeros((2, 2), "float32"),
                         tf.constant([0.5, 0.0])))
    np.testing.assert_allclose(v, [[0.5, 0.5], [2.0, 2.0]])


def test_bypass_alone_reaches_the_generators_when_beta3_and_beta4_are_one():
    gan, I = small_gan(), images()
    out = gan.reconstruct(I, betas(beta3=1, beta4=1), EPS)
    assert_same(out["A_fgmix"], out["B_fg"])
    assert_same(out["A_bgmix"], out["B_bg"])
    with perturbed(gan.G_fg0, gan.G_bg0):
        again = gan.reconstruct(I, betas(beta3=1, beta4=1), EPS)
        mixed = gan.reconstruct(I, betas(beta3=0.75, beta4=0.75), EPS)
    assert_same(again["I_hat"], out["I_hat"])
    assert float(tf.reduce_max(tf.abs(again["A_fg"] - out["A_fg"]))) > 0  # the pre-images did change
    reference = gan.reconstruct(I, betas(beta3=0.75, beta4=0.75), EPS)
    assert float(tf.reduce_max(tf.abs(mixed["I_hat"] - reference["I_hat"]))) > 1e-4


def test_pre_image_mixup_weights_each_sample_by_its_own_beta():
    gan, I = small_gan(), images()
    b = betas()
    out = gan.reconstruct(I, b, EPS)
    for mixed, A, B, beta in (("A_fgmix", "A_fg", "B_fg", "beta3"), ("A_bgmix", "A_bg", "B_bg", "beta4")):
        w = b[beta].numpy()[:, None, None, None]
        np.testing.assert_allclose(out[mixed], (1 - w) * out[A].numpy() + w * out[B].numpy(), atol=1e-6)


def test_encoded_codes_alone_are_used_when_beta1_and_beta2_are_one():
    gan, I = small_gan(), images()
    out = gan.reconstruct(I, betas(beta1=1, beta2=1), EPS)
    assert_same(out["v_pmix"], out["v_p_hat"])
    assert_same(out["v_cmix"], out["v_c_hat"])
    with perturbed(gan.V_p, gan.V_c):
        again = gan.reconstruct(I, betas(beta1=1, beta2=1), EPS)
    assert_same(again["I_hat"], out["I_hat"])
    assert float(tf.reduce_max(tf.abs(again["v_p"] - out["v_p"]))) > 0


def test_embedded_codes_of_the_predicted_classes_alone_are_used_when_beta1_and_beta2_are_zero():
    gan, I = small_gan(), images()
    out = gan.reconstruct(I, betas(beta1=0, beta2=0), EPS)
    assert_same(out["pred_child"], tf.argmax(out["e_c_hat"], -1))
    assert_same(out["pred_parent"], tf.argmax(out["e_p_hat"], -1))
    assert_same(out["v_pmix"], gan.V_p(tf.one_hot(out["pred_parent"], N_P)))
    assert_same(out["v_cmix"], gan.V_c(tf.one_hot(out["pred_child"], N_C)))
    assert_same(out["e_bg"], out["e_p"])
    b = betas()
    mixed = gan.reconstruct(I, b, EPS)
    w = b["beta1"].numpy()[:, None]
    np.testing.assert_allclose(mixed["v_pmix"], (1 - w) * mixed["v_p"].numpy() + w * mixed["v_p_hat"].numpy(),
                               atol=1e-6)


def test_reparameterised_samples_use_log_variances():
    gan, I = small_gan(), images()
    out = gan.reconstruct(I, betas(), EPS)
    for code, key in (("v_p_hat", "p"), ("v_c_hat", "c"), ("z_hat", "z")):
        mu, sigma = {"p": (out["mu_p"], out["sigma_p"]), "c": (out["mu_c"], out["sigma_c"]),
                     "z": (out["mu_z"], out["sigma_z"])}[key]
        np.testing.assert_allclose(out[code], mu.numpy() + np.exp(sigma.numpy() / 2) * EPS[key].numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_inference_defaults_are_beta_one_and_encoder_means():
    gan, I = small_gan(), images()
    out = gan.reconstruct(I)
    for name in M.BETA_NAMES:
        assert_same(out[name], np.ones(BATCH))
    assert_same(out["v_p_hat"], out["mu_p"])
    assert_same(out["v_c_hat"], out["mu_c"])
    assert_same(out["z_hat"], out["mu_z"])
    assert_same(out["I_hat"], gan.reconstruct(I)["I_hat"])


def test_background_bypass_is_encoded_from_the_image_and_the_predicted_mask():
    gan, I = small_gan(), images()
    out = gan.reconstruct(I, betas(), EPS)
    assert_same(out["B_bg"], gan.E_bg((I, out["I_m_hat"]))["B_bg"])
    assert_same(out["I_hat"], M.compose(out["I_bg_hat"], out["I_fg_hat"], out["I_m_hat"]))


def test_target_child_replaces_v_cmix_for_image_to_image_translation():
    gan, I = small_gan(), images()
    target = tf.constant([5, 4, 0])
    out = gan.reconstruct(I, target_child=target)
    assert_same(out["v_cmix"], gan.V_c(tf.one_hot(target, N_C)))
    plain = gan.reconstruct(I)
    assert_same(out["v_pmix"], plain["v_pmix"])  # the shape code stays the encoded one


def test_precomputed_encoding_gives_the_same_reconstruction():
    gan, I = small_gan(), images()
    assert_same(gan.reconstruct(I, betas(), EPS, encoded=gan.encode(I))["I_hat"],
                gan.reconstruct(I, betas(), EPS)["I_hat"])


@pytest.mark.parametrize("switches,expected", [
    ({}, None),
    ({"mixup_codes": False}, {"beta1": 1.0, "beta2": 1.0}),
    ({"mixup_preimages": False}, {"beta3": 1.0, "beta4": 1.0}),
    ({"bypass": False}, {"beta3": 0.0, "beta4": 0.0}),
    ({"mixup_codes": False, "mixup_preimages": False}, {"beta1": 1.0, "beta2": 1.0, "beta3": 1.0, "beta4": 1.0}),
])
def test_table_3b_switches_fix_the_betas(switches, expected):
    b = betas()
    with switched(small_gan(), **switches) as gan:
        effective = gan.effective_betas(b)
    for name in M.BETA_NAMES:
        want = b[name].numpy() if not expected or name not in expected else np.full(BATCH, expected[name])
        assert_same(effective[name], want)


def test_without_bypass_the_pre_images_alone_reach_the_generators():
    I = images()
    with switched(small_gan(), bypass=False) as gan:
        out = gan.reconstruct(I, betas(), EPS)
    assert "B_bg" not in out
    assert_same(out["A_fgmix"], out["A_fg"])
    assert_same(out["A_bgmix"], out["A_bg"])


def test_effective_betas_names_the_missing_betas():
    with pytest.raises(ValueError, match=r"missing \['beta3'\]"):
        small_gan().effective_betas({k: tf.ones(2) for k in ("beta1", "beta2", "beta4")})


# ---------------------------------------------------------------------------------------------------------
# Named tensors of both paths at every supported size.


def expected_path_shapes(cfg, batch=BATCH):
    S, a, hidden, w = cfg.image_size, cfg.image_size // 8, cfg.width(512), cfg.width
    A, img = (batch, a, a, w(256)), (batch, S, S, 3)
    codes = {"child": (batch,), "parent": (batch,), "e_c": (batch, cfg.n_child), "e_p": (batch, cfg.n_parent),
             "e_bg": (batch, cfg.n_parent), "v_c": (batch, cfg.d_c), "v_p": (batch, cfg.d_p),
             "v_bg": (batch, cfg.d_bg)}
    generate = {**codes, "z": (batch, cfg.d_z), "A_bg": A, "A_fg": A, "I_bg": img, "I_fg": img,
                "I_m": (batch, S, S, 1), "I": img}
    reconstruct = {
        **codes, "H_p": A, "B_fg": A, "h_p": (batch, hidden), "h_z": (batch, hidden),
        "e_p_hat": (batch, cfg.n_parent), "mu_p": (batch, cfg.d_p), "sigma_p": (batch, cfg.d_p),
        "mu_z": (batch, cfg.d_z), "sigma_z": (batch, cfg.d_z), "H_c": A, "h_c": (batch, hidden),
        "e_c_hat": (batch, cfg.n_child), "mu_c": (batch, cfg.d_c), "sigma_c": (batch, cfg.d_c),
        "H_bg": A, "B_bg": A, **{n: (batch,) for n in M.BETA_NAMES}, "pred_child": (batch,),
        "pred_parent": (batch,), "v_p_hat": (batch, cfg.d_p), "v_c_hat": (batch, cfg.d_c),
        "z_hat": (batch, cfg.d_z), "v_pmix": (batch, cfg.d_p), "v_cmix": (batch, cfg.d_c), "A_fg": A,
        "A_bg": A, "A_fgmix": A, "A_bgmix": A, "I_fg_hat": img, "I_m_hat": (batch, S, S, 1),
        "I_bg_hat": img, "I_hat": img}
    return generate, reconstruct


def shapes(out):
    return {k: tuple(v.shape) for k, v in out.items()}


@pytest.mark.parametrize("size", [32, 64, 128])
def test_both_paths_return_every_named_tensor_with_spec_shapes(size):
    gan = small_gan(size)
    want_gen, want_rec = expected_path_shapes(gan.cfg)
    gen = gan.generate(tf.constant([0, 2, 5]), M.sample_z(tf.constant([0, 1]), BATCH, gan.cfg.d_z))
    assert shapes(gen) == want_gen
    rec = gan.reconstruct(gen["I"], M.sample_betas(tf.constant([0, 2]), BATCH),
                          M.sample_eps(tf.constant([0, 3]), BATCH, gan.cfg))
    assert shapes(rec) == want_rec


@pytest.mark.slow
def test_full_size_forward_pass_of_both_paths_on_cpu(full_size_trainer):
    gan = full_size_trainer.model
    cfg = gan.cfg
    assert cfg == ModelConfig()
    want_gen, want_rec = expected_path_shapes(cfg, batch=2)
    gen = gan.generate(tf.constant([0, 199]), M.sample_z(tf.constant([0, 1]), 2, cfg.d_z))
    assert shapes(gen) == want_gen
    assert_same(gen["parent"], [0, 19])
    rec = gan.reconstruct(gen["I"], M.sample_betas(tf.constant([0, 2]), 2), M.sample_eps(tf.constant([0, 3]), 2, cfg))
    assert shapes(rec) == want_rec
    assert rec["B_fg"].shape == (2, 16, 16, 256)
    for out in (gen, rec):
        for key, value in out.items():
            if value.dtype.is_floating:
                assert bool(tf.reduce_all(tf.math.is_finite(value))), key
    for key in ("I", "I_bg", "I_fg"):
        assert float(tf.reduce_max(tf.abs(gen[key]))) <= 1.0
        assert float(tf.reduce_max(tf.abs(rec[key + "_hat"]))) <= 1.0


# ---------------------------------------------------------------------------------------------------------
# Bad input: clear errors that name the argument and the allowed values.


@pytest.mark.parametrize("kwargs,names", [
    ({"image_size": 100}, ["image_size=100", "(32, 64, 128)"]),
    ({"image_size": 256}, ["image_size=256", "(32, 64, 128)"]),
    ({"channel_mult": 2.0}, ["channel_mult=2.0", "[0.015625, 1.0]"]),
    ({"channel_mult": 0.001}, ["channel_mult=0.001", "[0.015625, 1.0]"]),
    ({"n_child": 200, "n_parent": 30}, ["n_child=200", "multiple of n_parent=30"]),
    ({"n_child": 7, "n_parent": 3}, ["n_child=7", "n_parent=3"]),
    ({"norm": "batch"}, ["norm='batch'", "glu_lnorm", "glu_inorm", "lnorm", "inorm"]),
    ({"d_z": 0}, ["d_z=0", "positive"]),
])
def test_unsupported_configurations_raise_config_errors_naming_the_argument(kwargs, names):
    with pytest.raises(ConfigError, match=re.escape(names[0])) as err:
        ModelConfig(**kwargs)
    for name in names[1:]:
        assert name in str(err.value)


@pytest.mark.parametrize("bad", [(BATCH, 64, 64, 3), (BATCH, 32, 32, 1), (32, 32, 3)])
def test_encode_and_reconstruct_reject_images_of_the_wrong_shape(bad):
    gan = small_gan()
    for call in (gan.encode, gan.reconstruct):
        with pytest.raises(ValueError, match=r"input `images` must be float \[batch, 32, 32, 3\]"):
            call(tf.zeros(bad))


def test_encode_and_reconstruct_reject_integer_images():
    gan = small_gan()
    for call in (gan.encode, gan.reconstruct):
        with pytest.raises(TypeError, match="input `images` must be float .* got dtype int32"):
            call(tf.zeros((BATCH, 32, 32, 3), tf.int32))


def test_encode_accepts_a_numpy_batch_of_images():
    gan = small_gan()
    out = gan.encode(images().numpy())
    assert out["mu_c"].shape == (BATCH, gan.cfg.d_c)


def test_generate_rejects_non_integer_child_labels():
    gan = small_gan()
    z = tf.zeros((2, gan.cfg.d_z))
    with pytest.raises(TypeError, match="input `child` must be integer class ids .* got dtype float32"):
        gan.generate(tf.constant([0.0, 1.0]), z)
    with pytest.raises(TypeError, match="integer"):
        gan.reconstruct(images(), target_child=tf.constant([0.0, 1.0, 2.0]))


@pytest.mark.parametrize("z_shape", [(2, 10), (2, 100, 1), (100,)])
def test_generate_rejects_a_z_of_the_wrong_shape(z_shape):
    with pytest.raises(ValueError, match=r"input `z` must be float \[batch, 100\], one row per class id"):
        small_gan().generate(tf.constant([0, 1]), tf.zeros(z_shape))


def test_generate_rejects_child_labels_outside_the_classes():
    gan = small_gan()
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match=f"child.*{N_C}"):
        gan.generate(tf.constant([0, N_C]), tf.zeros((2, gan.cfg.d_z)))
