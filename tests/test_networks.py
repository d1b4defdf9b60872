"""docs/design.md §3 / supplementary Tab. 3-9: the sub-networks' parameter counts, output shapes and input checks."""

import keras
import numpy as np
import pytest

from onegan_tf import networks
from onegan_tf.config import DATASET_CLASSES, ModelConfig

# docs/design.md §3, Birds (N_C = 200, N_P = 20), image size 128, channel multiplier 1.0.
PAPER_COUNTS = {
    "V_bg": 640, "V_p": 320, "V_c": 6_400, "G_bg0": 16_125_440, "G_bg1": 775_459, "G_fg0": 15_601_152,
    "G_fg1": 811_520, "G_fg2": 545_380, "E_c": 29_112_456, "E_p": 39_856_252, "E_bg": 3_020_672,
    "D_bg": 667_074, "D_c": 37_469_769,
}
PAPER_TOTAL = 143_992_534


def class_dependent_difference(n_child, n_parent, cfg=ModelConfig(), hidden=networks.HIDDEN):
    """Parameters that change with the class counts, relative to Birds: the embeddings V_c (N_C x d_c),
    V_bg and V_p (N_P x d), the logits heads Linear(hidden, N) with bias of E_c (N_C), E_p (N_P) and D_c's
    head B (N_C). Nothing else depends on the classes (the generators' stems see d + d_z, not N)."""
    dc, dp = n_child - 200, n_parent - 20
    return dc * (cfg.d_c + 2 * (hidden + 1)) + dp * (cfg.d_bg + cfg.d_p + (hidden + 1))


# The networks whose size depends on the class counts (the small-scale test below shows no other one does).
CLASS_DEPENDENT = ("V_bg", "V_p", "V_c", "E_c", "E_p", "D_c")


@pytest.mark.slow
def test_parameter_counts_match_the_paper_table_for_birds(full_size_trainer):
    counts = full_size_trainer.model.parameter_counts()
    assert counts == PAPER_COUNTS
    assert sum(counts.values()) == PAPER_TOTAL


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["dogs", "cars"])
def test_parameter_counts_of_dogs_and_cars_differ_from_birds_only_in_class_dependent_layers(dataset):
    """Only the class-dependent networks are built at full size; the others keep Birds' counts."""
    n_child, n_parent = DATASET_CLASSES[dataset]
    built = networks.build_networks(ModelConfig(n_child=n_child, n_parent=n_parent), names=CLASS_DEPENDENT)
    assert tuple(built) == CLASS_DEPENDENT
    counts = dict(PAPER_COUNTS, **{k: v.count_params() for k, v in built.items()})
    cfg = ModelConfig()
    expected = dict(PAPER_COUNTS, V_bg=n_parent * cfg.d_bg, V_p=n_parent * cfg.d_p, V_c=n_child * cfg.d_c,
                    E_c=PAPER_COUNTS["E_c"] + (n_child - 200) * 513,
                    E_p=PAPER_COUNTS["E_p"] + (n_parent - 20) * 513,
                    D_c=PAPER_COUNTS["D_c"] + (n_child - 200) * 513)
    assert counts == expected
    assert sum(counts.values()) == PAPER_TOTAL + class_dependent_difference(n_child, n_parent)
    assert sum(counts.values()) == {"dogs": 143_903_406, "cars": 143_984_936}[dataset]


def test_class_counts_change_only_the_embeddings_and_logits_heads_at_small_scale():
    def counts(n_child, n_parent):
        cfg = ModelConfig(image_size=32, channel_mult=0.125, n_child=n_child, n_parent=n_parent)
        return {k: v.count_params() for k, v in networks.build_networks(cfg).items()}

    a, b = counts(200, 20), counts(12, 4)
    changed = {k for k in a if a[k] != b[k]}
    assert changed == set(CLASS_DEPENDENT)
    hidden = ModelConfig(channel_mult=0.125).width(networks.HIDDEN)
    assert sum(b.values()) - sum(a.values()) == class_dependent_difference(12, 4, hidden=hidden)


# ---------------------------------------------------------------------------------------------------------
# Output shapes at the three supported image sizes (channel multiplier 1/8, small class counts).

N_C, N_P, BATCH = 6, 3, 2
D_BG_GRID = {32: 5, 64: 3, 128: 4}
D_BG_FEATURES = {32: 8, 64: 6, 128: 7}


def small_config(size, **kw):
    return ModelConfig(image_size=size, channel_mult=0.125, n_child=N_C, n_parent=N_P, **kw)


def expected_shapes(cfg, batch=BATCH):
    """The named outputs of every network (docs/design.md §3), from the spec's sizes and `cfg.width`."""
    S, a, w, hidden = cfg.image_size, cfg.image_size // 8, cfg.width, cfg.width(networks.HIDDEN)
    A = (batch, a, a, w(256))
    grid, feat = D_BG_GRID[S], D_BG_FEATURES[S]
    return {
        "V_bg": (batch, cfg.d_bg), "V_p": (batch, cfg.d_p), "V_c": (batch, cfg.d_c),
        "G_bg0": A, "G_fg0": A, "G_bg1": (batch, S, S, 3), "G_fg1": (batch, S, S, w(64)),
        "G_fg2": {"I_fg": (batch, S, S, 3), "I_m": (batch, S, S, 1)},
        "E_c": {"H_c": A, "h_c": (batch, hidden), "e_c_hat": (batch, cfg.n_child), "mu_c": (batch, cfg.d_c),
                "sigma_c": (batch, cfg.d_c)},
        "E_p": {"H_p": A, "B_fg": A, "h_p": (batch, hidden), "h_z": (batch, hidden),
                "e_p_hat": (batch, cfg.n_parent), "mu_p": (batch, cfg.d_p), "sigma_p": (batch, cfg.d_p),
                "mu_z": (batch, cfg.d_z), "sigma_z": (batch, cfg.d_z)},
        "E_bg": {"H_bg": A, "B_bg": A},
        "D_bg": {"D_bgA": (batch, grid, grid, 1), "D_bgB": (batch, grid, grid, 1),
                 "D_bgC": (batch, feat, feat, w(256))},
        "D_c": {"D_cC": (batch, S // 16, S // 16, w(512)), "D_cA": (batch, 1), "D_cB": (batch, cfg.n_child)},
    }


def shapes_of(out):
    return {k: tuple(v.shape) for k, v in out.items()} if isinstance(out, dict) else tuple(out.shape)


@pytest.fixture(scope="module", params=[32, 64, 128])
def small_nets(request):
    keras.utils.set_random_seed(0)
    cfg = small_config(request.param)
    return cfg, networks.build_networks(cfg)


def test_every_network_outputs_the_named_tensors_of_spec_shapes(small_nets):
    cfg, nets = small_nets
    assert tuple(nets) == networks.NETWORK_NAMES
    expected = expected_shapes(cfg)
    for name, net in nets.items():
        assert shapes_of(net(networks.network_inputs(name, cfg, BATCH))) == expected[name], name


def test_patch_discriminator_keeps_a_grid_of_at_least_two_by_two_patches(small_nets):
    cfg, nets = small_nets
    out = nets["D_bg"](networks.network_inputs("D_bg", cfg, 1))
    assert out["D_bgA"].shape[1] >= 2 and out["D_bgA"].shape[2] >= 2
    if cfg.image_size == 128:
        assert networks.D_BG_GEOMETRY[128] == (126, (2, 2, 4))  # Tab. 8: resize to 126, strides 2, 2, 4


def test_outputs_of_one_sample_do_not_depend_on_the_rest_of_the_batch(small_nets):
    cfg, nets = small_nets
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (2, cfg.image_size, cfg.image_size, 3)).astype("float32")
    for name in ("E_c", "E_p", "D_c", "D_bg"):
        both, alone = nets[name](images), nets[name](images[:1])
        for key in both:
            np.testing.assert_allclose(np.asarray(both[key])[:1], np.asarray(alone[key]), atol=1e-4,
                                       err_msg=f"{name}.{key}")


@pytest.mark.parametrize("norm", ["glu_inorm", "inorm"])
def test_norm_variants_build_every_generator_with_the_same_shapes(norm):
    cfg = small_config(32, norm=norm)
    nets = networks.build_networks(cfg)
    expected = expected_shapes(cfg)
    for name in ("G_bg0", "G_bg1", "G_fg0", "G_fg1", "G_fg2", "E_p", "E_bg"):
        assert shapes_of(nets[name](networks.network_inputs(name, cfg, BATCH))) == expected[name], name
    glu = nets["G_fg1"].up1.glu
    assert glu.norm == norm


def test_mask_head_sees_the_parent_code_only_when_asked():
    cfg = small_config(32)
    inputs = networks.network_inputs("G_fg2", cfg, 1)
    widths = (cfg.width(32), cfg.width(16))
    for sees_parent, extra in ((True, cfg.d_p), (False, 0)):
        G_fg2 = networks.ForegroundRenderer(widths, mask_sees_parent=sees_parent)
        G_fg2(inputs)
        assert G_fg2.to_mask.kernel.shape == (3, 3, widths[-1] + extra, 1)


@pytest.mark.parametrize("before_child", [False, True])
def test_mask_before_child_draws_the_outline_from_the_parent_code_and_z_alone(before_child):
    cfg = small_config(32)
    rng = np.random.default_rng(0)
    C_fg0, v_p, v_c, other_v_c = (rng.normal(size=np.shape(x)).astype("float32")
                                  for x in networks.network_inputs("G_fg2", cfg, 2) + (np.zeros((2, cfg.d_c)),))
    G_fg2 = networks.ForegroundRenderer((cfg.width(32), cfg.width(16)), mask_before_child=before_child)
    a, b = G_fg2((C_fg0, v_p, v_c)), G_fg2((C_fg0, v_p, other_v_c))
    assert not np.allclose(a["I_fg"], b["I_fg"])   # the child code still paints the object
    assert np.allclose(a["I_m"], b["I_m"]) == before_child


# ---------------------------------------------------------------------------------------------------------
# Structure the counts do not show.


def test_build_networks_builds_the_named_networks_only_and_refuses_unknown_names():
    cfg = small_config(32)
    assert tuple(networks.build_networks(cfg, names=("D_c", "V_bg"))) == ("V_bg", "D_c")
    with pytest.raises(ValueError, match="no network named G_fg3; the networks are V_bg, V_p"):
        networks.build_networks(cfg, names=("G_fg3",))


def test_embeddings_are_lookup_tables_without_bias():
    V_c = networks.Embedding(5, 3)
    V_c(np.eye(5, dtype="float32"))
    assert len(V_c.weights) == 1
    table = np.asarray(V_c.table.kernel)
    np.testing.assert_array_equal(np.asarray(V_c(np.eye(5, dtype="float32")[[4, 1]])), table[[4, 1]])


def test_bias_rule_only_layers_not_followed_by_a_norm_have_a_bias(small_nets):
    _, nets = small_nets
    followed_by_norm = [nets["G_bg0"].fc, nets["G_fg0"].fc, nets["E_c"].stem.conv, nets["E_c"].fc.fc,
                        nets["E_p"].fc_z.fc, nets["E_bg"].stem.conv, nets["D_c"].trunk.conv,
                        nets["D_c"].head_b_fc.fc, nets["G_fg2"].res_p.conv_in]
    assert not any(layer.use_bias for layer in followed_by_norm)
    heads = [nets["G_bg1"].to_rgb, nets["G_fg2"].to_rgb, nets["G_fg2"].to_mask, nets["E_c"].logits,
             nets["E_c"].mu, nets["E_c"].sigma, nets["E_p"].logits, nets["E_p"].mu_z, nets["D_c"].head_a,
             nets["D_c"].head_b, nets["D_bg"].head_a, nets["D_bg"].head_b, nets["D_bg"].conv1, nets["D_bg"].conv2,
             nets["D_bg"].conv3]
    assert all(layer.use_bias for layer in heads)


def test_object_discriminator_head_b_variables_are_apart_from_its_own(small_nets):
    _, nets = small_nets
    D_c = nets["D_c"]
    head_b, own = {id(v) for v in D_c.head_b_variables}, {id(v) for v in D_c.own_variables}
    assert head_b and own and not head_b & own
    assert head_b | own == {id(v) for v in D_c.trainable_variables}
    assert {v.path.split("/")[1] for v in D_c.head_b_variables} == {"head_b_fc", "D_cB"}


# ---------------------------------------------------------------------------------------------------------
# Bad input: a clear error that names the expected shape.


@pytest.mark.parametrize("name", ["E_c", "E_p", "D_bg", "D_c"])
def test_image_networks_reject_images_of_the_wrong_size_or_channels(small_nets, name):
    cfg, nets = small_nets
    S = cfg.image_size
    for bad in [(1, S // 2, S // 2, 3), (1, S, S, 1), (S, S, 3)]:
        with pytest.raises(ValueError, match=rf"expects images of shape \(batch, {S}, {S}, 3\)"):
            nets[name](np.zeros(bad, "float32"))


def test_background_encoder_rejects_a_mask_with_the_wrong_shape(small_nets):
    cfg, nets = small_nets
    S = cfg.image_size
    images = np.zeros((1, S, S, 3), "float32")
    with pytest.raises(ValueError, match=r"E_bg \(mask\) expects images of shape .*1\)"):
        nets["E_bg"]((images, np.zeros((1, S, S, 3), "float32")))
    with pytest.raises(ValueError, match="E_bg expects"):
        nets["E_bg"]((np.zeros((1, S, S, 4), "float32"), np.zeros((1, S, S, 1), "float32")))


@pytest.mark.parametrize("name", ["E_c", "D_c"])
def test_image_networks_reject_integer_images_with_an_error_naming_the_dtype(small_nets, name):
    cfg, nets = small_nets
    with pytest.raises(TypeError, match="float"):
        nets[name](np.zeros((1, cfg.image_size, cfg.image_size, 3), "int32"))


def test_pre_image_generator_rejects_a_code_of_the_wrong_width(small_nets):
    cfg, nets = small_nets
    with pytest.raises(ValueError, match=str(cfg.d_bg + cfg.d_z)):
        nets["G_bg0"]((np.zeros((1, cfg.d_bg), "float32"), np.zeros((1, 10), "float32")))


def test_shape_code_gain_scales_the_parent_code_where_it_meets_z():
    cfg = small_config(32)
    rng = np.random.default_rng(0)
    v_p = rng.normal(size=(2, cfg.d_p)).astype("float32")
    z = rng.normal(size=(2, cfg.d_z)).astype("float32")
    widths = networks.build_networks(cfg, names=("G_fg0",))["G_fg0"].widths
    plain = networks.PreImageGenerator(32, widths)
    gained = networks.PreImageGenerator(32, widths, code_gain=3.0)
    plain((v_p, z))
    gained((v_p, z))
    gained.set_weights(plain.get_weights())
    np.testing.assert_allclose(gained((v_p, z)), plain((3.0 * v_p, z)), rtol=1e-5, atol=1e-6)
    assert not np.allclose(gained((v_p, z)), plain((v_p, z)), atol=1e-3)
