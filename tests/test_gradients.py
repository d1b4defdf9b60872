"""What one training iteration optimises, read from a logged step (Eq. 10, 14, 18; docs/design.md §5).

- Eq. 14 and 18: the logged `total/L_GEN` (Phase I) and `total/L_AE` (Phase II) are the sums of the logged
  terms, each times its configured weight; the weights here are all different from 1 and from each other,
  so a term summed with the wrong weight, or not at all, changes the total.
- docs/design.md §5's routing as one table: for every logged term of a Phase IIb step, the network groups it trains,
  i.e. whose variables are both in the list the term's optimiser updates and reached by the term's gradient.
  Every stop-gradient of the step (stopped fakes, stopped targets, the fake reconstruction's stopped input)
  is one cell of this table.

The step runs eagerly (`tf.config.run_functions_eagerly`, seconds instead of a trace) with every
`tf.GradientTape` it opens made persistent and kept, so each logged term's gradient can be taken afterwards
from the very tensors the step computed.
"""

import contextlib
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from onegan_tf.trainer import OneGANTrainer, step_noise
from tests.tiny import tiny_config

# Every weight of Eq. 14 and 18 away from 1 and from the others (weight_MS switches the mode-seeking term on).
WEIGHTS = {"weight_G": 1.5, "weight_E": 0.7, "weight_MSE": 2.5, "weight_Rv": 0.3, "weight_RM": 3.0,
           "weight_MS": 0.5, "weight_VAE": 0.2, "weight_REC": 10.0, "weight_PER": 0.4, "weight_adv_rec": 0.1}
# Logged term -> the weight it carries: the generation path's terms by name (Eq. 14), the reconstruction
# paths' by the suffix they share (Eq. 18; their adversarial terms have a weight of their own).
GEN_WEIGHT = {"gen/L_G": "weight_G", "gen/L_E": "weight_E", "gen/L_MSE": "weight_MSE", "gen/L_Rv": "weight_Rv",
              "gen/L_RM": "weight_RM", "gen/L_MS": "weight_MS"}
REC_WEIGHT = {"L_VAE": "weight_VAE", "L_REC": "weight_REC", "L_PER": "weight_PER", "L_G": "weight_adv_rec"}

EMBEDDINGS = {"V_bg", "V_p", "V_c"}
GENERATORS = {"G_bg0", "G_bg1", "G_fg0", "G_fg1", "G_fg2"}
ENCODERS = {"E_c", "E_p", "E_p bypass", "E_bg"}
RECONSTRUCTION = EMBEDDINGS | GENERATORS | ENCODERS   # what the reconstructed image depends on
# Logged term of a Phase IIb step -> the groups it trains (the design's stop-gradients, docs/design.md §5).
ROUTES = {
    # Generation path: the generated images train embeddings and generators; the discriminators judging
    # them are not in the generators' update.
    "gen/L_G": EMBEDDINGS | GENERATORS,
    # Classification of the generated image (InfoGAN style): encoders' class heads, D_c's head B (trained by
    # this loss alone) and, through the image, the generators.
    "gen/L_E": EMBEDDINGS | GENERATORS | {"E_c", "E_p", "D_c head B"},
    # Code distance: the generation side (codes, pre-images, the image and mask the encoders see) is the
    # target, so only the encoders learn from it.
    "gen/L_MSE": ENCODERS,
    "gen/L_Rv": EMBEDDINGS,
    "gen/L_RM": {"V_p", "V_c", "G_fg0", "G_fg1", "G_fg2"},   # I_m depends on the foreground branch alone
    "gen/L_MS": EMBEDDINGS | GENERATORS,
    "total/L_AE": RECONSTRUCTION | {"D_c head B"},
}
for _path in ("rec_fake", "rec_real"):
    ROUTES.update({
        # KL of the encoded codes to the embeddings of the predicted classes: the fake image is stopped.
        f"{_path}/L_VAE": {"V_p", "V_c", "E_c", "E_p"},
        f"{_path}/L_REC": RECONSTRUCTION,
        f"{_path}/L_PER": RECONSTRUCTION,
        f"{_path}/L_G": RECONSTRUCTION,
    })
# Eq. 10, per path: each discriminator pair trains on its own terms only, never D_c's head B.
for _path, _suffix in (("gen", ""), ("rec_fake", " rec_fake"), ("rec_real", " rec_real")):
    ROUTES.update({f"D_{_path}/L_DbgA": {f"D_bg{_suffix}"}, f"D_{_path}/L_DbgB": {f"D_bg{_suffix}"},
                   f"D_{_path}/L_DcA": {f"D_c{_suffix}"}, f"D_{_path}/L_D": {f"D_bg{_suffix}", f"D_c{_suffix}"}})


@contextlib.contextmanager
def recorded_tapes():
    """Every `tf.GradientTape` opened inside is persistent and appended to the yielded list."""
    tapes, real = [], tf.GradientTape

    class Recording(real):
        def __init__(self, persistent=False, watch_accessed_variables=True):
            super().__init__(persistent=True, watch_accessed_variables=watch_accessed_variables)
            tapes.append(self)

    tf.GradientTape = Recording
    tf.config.run_functions_eagerly(True)
    try:
        yield tapes
    finally:
        tf.GradientTape = real
        tf.config.run_functions_eagerly(False)


@dataclasses.dataclass
class LoggedStep:
    trainer: OneGANTrainer
    terms: dict    # logged name -> the tensor the step computed
    tapes: list

    def trained(self, term: str) -> set:
        """The groups whose variables the term's optimiser updates and the term's gradient reaches."""
        tr = self.trainer
        var_list = tr.d_vars[term.split("/")[0][2:]] if term.startswith("D_") else tr.g_vars
        reached = set()
        for tape in self.tapes:
            for v, g in zip(var_list, tape.gradient(self.terms[term], var_list)):
                if g is not None and np.any(tf.convert_to_tensor(g).numpy() != 0):
                    reached.add(id(v))
        return {name for name, ws in groups(tr).items() if any(id(v) in reached for v in ws)}


def groups(tr: OneGANTrainer) -> dict:
    """Network group -> its trainable variables: embeddings, generators, encoders (E_p's bypass apart),
    D_c's head B and each path's discriminators without it."""
    m = tr.model
    out = {k: getattr(m, k).trainable_variables for k in sorted(EMBEDDINGS | GENERATORS | {"E_c", "E_bg"})}
    out["E_p bypass"] = m.E_p.bypass1.trainable_variables + m.E_p.bypass2.trainable_variables
    bypass = {id(v) for v in out["E_p bypass"]}
    out["E_p"] = [v for v in m.E_p.trainable_variables if id(v) not in bypass]
    out["D_c head B"] = m.D_c.head_b_variables
    for path, suffix in (("gen", ""), ("rec_fake", " rec_fake"), ("rec_real", " rec_real")):
        D_bg, D_c = tr.discriminators(path)
        out[f"D_bg{suffix}"], out[f"D_c{suffix}"] = D_bg.trainable_variables, D_c.own_variables
    return out


def logged_step(phase: str, **overrides) -> LoggedStep:
    keras.utils.set_random_seed(0)
    cfg = tiny_config(**WEIGHTS, **overrides)
    tr = OneGANTrainer(cfg)
    tr.init_clones()
    b, s = cfg.train.batch_size, cfg.model.image_size
    rng = np.random.default_rng(0)
    batch = {k: tf.constant(rng.uniform(-1, 1, (b, s, s, 3)), tf.float32) for k in ("x_c", "x_bg")}
    batch.update(step_noise(cfg.train.seed, 0, b, cfg))
    with recorded_tapes() as tapes:
        terms = tr.train_step(batch, phase)
    return LoggedStep(tr, terms, tapes)


@pytest.fixture(scope="module")
def phase_iib():
    return logged_step("IIb")


def weighted_sum(terms: dict) -> float:
    total = 0.0
    for name, value in terms.items():
        if name.startswith(("D_", "total/")):
            continue
        weight = GEN_WEIGHT[name] if name.startswith("gen/") else REC_WEIGHT[name.split("/")[1]]
        total += WEIGHTS[weight] * float(value)
    return total


def test_phase_one_total_is_eq_14_with_the_configured_weights():
    terms = logged_step("I").terms
    assert set(GEN_WEIGHT) <= set(terms)
    np.testing.assert_allclose(float(terms["total/L_GEN"]), weighted_sum(terms), rtol=1e-5)


def test_phase_two_total_is_eq_18_with_the_configured_weights(phase_iib):
    terms = phase_iib.terms
    assert {f"{p}/{t}" for p in ("rec_fake", "rec_real") for t in REC_WEIGHT} <= set(terms)
    np.testing.assert_allclose(float(terms["total/L_AE"]), weighted_sum(terms), rtol=1e-5)


def test_the_table_names_every_logged_term(phase_iib):
    assert set(phase_iib.terms) == set(ROUTES)


def test_the_two_updates_train_disjoint_variables(phase_iib):
    tr = phase_iib.trainer
    g = {id(v) for v in tr.g_vars}
    for path, d in tr.d_vars.items():
        assert not g & {id(v) for v in d}, path
    assert {id(v) for v in tr.model.D_c.head_b_variables} <= g


@pytest.mark.parametrize("term", sorted(ROUTES))
def test_each_logged_term_trains_the_networks_the_design_says(phase_iib, term):
    assert phase_iib.trained(term) == ROUTES[term]


def test_a_stopped_vae_target_trains_the_encoders_alone():
    # --vae_stop_target: the other reading of Eq. 15's target v (docs/design.md, Readings of the training step).
    step = logged_step("IIb", vae_stop_target=True)
    for path in ("rec_fake", "rec_real"):
        assert step.trained(f"{path}/L_VAE") == {"E_c", "E_p"}
