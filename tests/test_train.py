"""Training (docs/design.md §5, paper Sec. 4): every phase's loss terms finite and logged, the discriminator clones of
Phase II, TensorBoard scalars/figures/profile, a NaN stopping the run, errors on bad input before any work,
`--dry_run`, and one step of the full-size model."""

from __future__ import annotations

import glob
import json
import math
import os
import re
import time
import types

import numpy as np
import pytest
from tiny import REPO, tiny_batch, tiny_config

GEN_TERMS = {"gen/L_G", "gen/L_E", "gen/L_MSE", "gen/L_Rv", "gen/L_RM"}
D_TERMS = {"L_D", "L_DbgA", "L_DbgB", "L_DcA"}
REC_TERMS = {"L_VAE", "L_REC", "L_PER", "L_G"}


def _expected_terms(paths):
    terms = set(GEN_TERMS) | {f"D_gen/{t}" for t in D_TERMS}
    for p in paths:
        terms |= {f"{p}/{t}" for t in REC_TERMS} | {f"D_{p}/{t}" for t in D_TERMS}
    terms.add("total/L_AE" if paths else "total/L_GEN")
    return {f"loss/{t}" for t in terms}


def _records(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------------------------------------- logging


@pytest.mark.slow
def test_every_phase_logs_each_of_its_loss_terms_finite(reference_run_dir):
    """Two steps of Phase I, IIa and IIb: each step's record holds exactly the phase's terms, all finite."""
    records = _records(reference_run_dir)
    assert [r["step"] for r in records] == list(range(1, 9))
    paths = {"I": (), "IIa": ("rec_fake",), "IIb": ("rec_fake", "rec_real")}
    assert [r["phase"] for r in records] == ["I", "I", "IIa", "IIa", "IIb", "IIb", "IIb", "IIb"]
    for r in records:
        losses = {k for k in r if k.startswith("loss/")}
        assert losses == _expected_terms(paths[r["phase"]]), r["step"]
        assert all(math.isfinite(r[k]) for k in losses), r
        assert r["schedule/learning_rate"] == pytest.approx(2e-4)
        assert r["speed/images_per_s"] > 0


def _event_tags(run_dir):
    import tensorflow as tf

    scalars, images = {}, set()
    for path in glob.glob(os.path.join(run_dir, "tb", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                kind = v.metadata.plugin_data.plugin_name
                if kind == "scalars":
                    scalars.setdefault(v.tag, []).append(event.step)
                elif kind == "images":
                    images.add((v.tag, event.step))
    return scalars, images


@pytest.mark.slow
def test_tensorboard_has_every_scalar_the_figure_grids_and_a_profile(reference_run_dir):
    run_dir = reference_run_dir
    scalars, images = _event_tags(run_dir)
    expected = _expected_terms(("rec_fake", "rec_real")) | {"schedule/phase", "schedule/learning_rate",
                                                            "speed/steps_per_s", "speed/images_per_s"}
    assert expected <= set(scalars)
    assert sorted(scalars["loss/D_gen/L_D"]) == list(range(1, 9))
    assert sorted(scalars["loss/rec_real/L_REC"]) == [5, 6, 7, 8]
    # image_every=3 and the last step
    for name in ("figures/generation", "figures/reconstruction"):
        assert {s for t, s in images if t == name} == {3, 6, 8}
    assert sorted(os.listdir(os.path.join(run_dir, "samples"))) == [
        f"{n}_{s:08d}.png" for n in ("generation", "reconstruction") for s in (3, 6, 8)]
    # --profile_steps=1,3
    traces = glob.glob(os.path.join(run_dir, "tb", "plugins", "profile", "*", "*.xplane.pb"))
    assert traces and all(os.path.getsize(t) > 0 for t in traces)
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    assert (summary["end_step"], summary["phase"], summary["replicas"]) == (8, "IIb", 1)
    assert summary["checkpoint"].endswith("ckpt-8")
    # The wall time is recorded beside the machine and the speed of its ceiling convolution at that moment.
    machine = summary["machine"]
    assert machine["ceiling_conv_gflop_per_s"] > 0 and machine["cpu_count"] >= 1 and len(machine["loadavg"]) == 3


# ---------------------------------------------------------------------------------------------- clones


def _weights(net):
    return [np.array(w) for w in net.weights]


def _opt_state(opt):
    return [np.array(v) for v in opt.variables]


def _same(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.slow
def test_phase_two_clones_discriminators_with_their_optimiser_state():
    """Before init_clones the clones differ from D_bg, D_c; after it weights and Adam state are equal; one
    Phase IIa step then moves the fake path's clones apart (each path trains its own pair) and leaves the
    real path's pair, not used before Phase IIb, untouched."""
    import keras
    import tensorflow as tf

    from onegan_tf.trainer import CLONED_PATHS, OneGANTrainer

    cfg = tiny_config()
    keras.utils.set_random_seed(0)
    trainer = OneGANTrainer(cfg)
    # Give the generation path's Adam a non-zero state, as after Phase I.
    d_vars = trainer.d_vars["gen"]
    trainer.opt_D.apply_gradients([(tf.random.normal(v.shape), v) for v in d_vars])
    gen_pair = [_weights(n) for n in trainer.discriminators("gen")]
    gen_opt = _opt_state(trainer.opt_D)
    for path in CLONED_PATHS:
        pair = [_weights(n) for n in trainer.discriminators(path)]
        assert not _same(pair[0], gen_pair[0]) and not _same(pair[1], gen_pair[1])
        assert not _same(_opt_state(trainer.d_optimizers()[path]), gen_opt)
    assert not bool(trainer.clones_ready.numpy())

    trainer.init_clones()
    assert bool(trainer.clones_ready.numpy())
    for path in CLONED_PATHS:
        assert all(_same(a, _weights(n)) for a, n in zip(gen_pair, trainer.discriminators(path)))
        assert _same(_opt_state(trainer.d_optimizers()[path]), gen_opt)
    assert int(trainer.opt_D_rec_fake.iterations.numpy()) == 1

    out = trainer.train_step(tiny_batch(cfg), phase="IIa")
    assert all(np.isfinite(float(v)) for v in out.values())
    assert {"D_rec_fake/L_D", "rec_fake/L_G"} <= set(out) and not any(k.startswith("rec_real") for k in out)
    now = {p: [_weights(n) for n in trainer.discriminators(p)] for p in ("gen",) + CLONED_PATHS}
    for i in (0, 1):  # D_bg, D_c
        assert not _same(now["gen"][i], gen_pair[i])
        assert not _same(now["rec_fake"][i], gen_pair[i])
        assert not _same(now["rec_fake"][i], now["gen"][i])
        assert _same(now["rec_real"][i], gen_pair[i])
    assert int(trainer.opt_D_rec_fake.iterations.numpy()) == 2
    assert int(trainer.opt_D_rec_real.iterations.numpy()) == 1
    assert int(trainer.step.numpy()) == 1 and int(trainer.phase.numpy()) == 1


# ---------------------------------------------------------------------------------------------- gradients


GENERATORS = ("V_bg", "V_p", "V_c", "G_bg0", "G_bg1", "G_fg0", "G_fg1", "G_fg2")
ENCODERS = ("E_p", "E_c", "E_bg")


def _gradient_norms(trainer, phase, term):
    """Per network, the norm of d term / d weights in one forward pass of `phase` (0 where no gradient)."""
    import tensorflow as tf

    from onegan_tf.trainer import PHASE_PATHS

    paths = PHASE_PATHS[phase]
    batch = tiny_batch(trainer.cfg)
    with tf.GradientTape() as tape:
        gen, sources, enc_fake, recs = trainer._paths(batch, paths)
        loss = trainer._generation_losses(gen, batch["child"], enc_fake)[term]
    nets = {k: getattr(trainer.model, k).trainable_variables for k in GENERATORS + ENCODERS}
    grads = tape.gradient(loss, nets)
    return {k: float(tf.linalg.global_norm([g for g in gs if g is not None] or [tf.zeros(())]))
            for k, gs in grads.items()}


@pytest.mark.parametrize("phase", ["I", "IIa"])
def test_L_MSE_trains_the_encoders_only_and_L_E_also_the_generators(phase):
    """docs/design.md §5: L_MSE (Eq. 13) matches the encoders' codes to the generator's, so it trains E_p, E_c, E_bg and
    nothing upstream of the generated image; L_E (Eq. 12) trains the generators through the encoders'
    classification. Phase I encodes the stopped fake for L_MSE alone; from IIa the fake path shares it."""
    import keras

    from onegan_tf.trainer import OneGANTrainer

    keras.utils.set_random_seed(0)
    trainer = OneGANTrainer(tiny_config())
    mse = _gradient_norms(trainer, phase, "gen/L_MSE")
    assert all(mse[k] == 0.0 for k in GENERATORS), mse
    assert all(mse[k] > 0.0 for k in ENCODERS), mse
    e = _gradient_norms(trainer, phase, "gen/L_E")
    assert all(e[k] > 0.0 for k in ("V_p", "V_c", "G_bg0", "G_fg0", "G_fg2", "E_p", "E_c")), e


@pytest.mark.slow
def test_variables_without_gradient_in_phase_one_start_their_adam_count_in_phase_two():
    """The encoders' variance and z heads get no gradient in Phase I (nothing samples from them before the
    reconstruction paths); opt_G counts those iterations as skipped, so their first Phase II update is Adam's
    first step, of size lr, while everything else keeps the shared count."""
    import keras

    from onegan_tf.trainer import OneGANTrainer

    cfg = tiny_config()
    keras.utils.set_random_seed(0)
    trainer = OneGANTrainer(cfg)
    batch = tiny_batch(cfg)
    for _ in range(cfg.train.phase1_steps):
        trainer.train_step(batch, phase="I")
    trainer.init_clones()
    skipped = dict(zip((v.path for v in trainer.g_vars), trainer.opt_G._skipped_iterations.numpy()))
    late = {p for p, k in skipped.items() if k}
    assert all(k in (0, cfg.train.phase1_steps) for k in skipped.values()), skipped
    heads = {f"{net}/{head}" for net, heads in (("E_p", ("sigma_p", "mu_z", "sigma_z")), ("E_c", ("sigma_c",)))
             for head in heads}
    assert heads <= {p.rsplit("/", 1)[0] for p in late}, late
    assert not any(p.startswith(("G_", "V_")) for p in late), late

    before = {v.path: v.numpy() for v in trainer.g_vars if v.path in late}
    trainer.train_step(batch, phase="IIa")
    for v in trainer.g_vars:
        if v.path in late:
            step = np.abs(v.numpy() - before[v.path])
            assert step.max() <= cfg.train.learning_rate * 1.001 and np.median(step) > 0.5 * cfg.train.learning_rate


# ---------------------------------------------------------------------------------------------- NaN


@pytest.mark.slow
def test_nan_loss_stops_the_run_naming_step_and_terms_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """L_RM is made NaN from step 2 on (0-based); checkpoints every 2 steps: ckpt-2 must stay the latest."""
    import tensorflow as tf

    from onegan_tf import losses, train
    from onegan_tf.trainer import OneGANTrainer

    poison = tf.Variable(0.0)
    real_mask_regularization = losses.mask_regularization
    monkeypatch.setattr(losses, "mask_regularization", lambda *a, **kw: real_mask_regularization(*a, **kw) + poison)
    real_train_step = OneGANTrainer.train_step

    def train_step(self, batch, phase):
        poison.assign(float("nan") if int(self.step.numpy()) >= 2 else 0.0)
        return real_train_step(self, batch, phase)

    monkeypatch.setattr(OneGANTrainer, "train_step", train_step)
    run_dir = str(tmp_path / "run")
    cfg = tiny_config(run_dir=run_dir, phase1_steps=6, phase2a_steps=0, phase2b_steps=0, ckpt_every=2)
    with pytest.raises(train.NonFiniteLossError, match="at step 2") as err:
        train.train(cfg)
    msg = str(err.value)
    assert "at step 2" in msg and "gen/L_RM" in msg and "total/L_GEN" in msg
    assert "ckpt-2" in msg
    assert tf.train.latest_checkpoint(os.path.join(run_dir, "ckpt")).endswith("ckpt-2")
    assert [r["step"] for r in _records(run_dir)] == [1, 2]
    assert not os.path.exists(os.path.join(run_dir, "summary.json"))


@pytest.mark.slow
def test_a_non_finite_step_between_two_checks_is_caught_by_the_in_graph_tracker(tmp_path, monkeypatch):
    """Step 5 alone has a NaN L_RM (stopped, so the weights stay finite and step 7 is clean again); with
    log_every=4 the host sees only steps 3 and 7, so only the step's own `bad_step` record can name step 5."""
    import tensorflow as tf

    from onegan_tf import losses, train
    from onegan_tf.trainer import OneGANTrainer

    poison = tf.Variable(0.0)
    real_mask_regularization = losses.mask_regularization
    monkeypatch.setattr(losses, "mask_regularization",
                        lambda *a, **kw: real_mask_regularization(*a, **kw) + tf.stop_gradient(poison))
    real_train_step = OneGANTrainer.train_step

    def train_step(self, batch, phase):
        poison.assign(float("nan") if int(self.step.numpy()) == 5 else 0.0)
        return real_train_step(self, batch, phase)

    monkeypatch.setattr(OneGANTrainer, "train_step", train_step)
    run_dir = str(tmp_path / "run")
    cfg = tiny_config(run_dir=run_dir, phase1_steps=8, phase2a_steps=0, phase2b_steps=0, log_every=4,
                      ckpt_every=4)
    with pytest.raises(train.NonFiniteLossError, match=r"at step 5; non-finite terms now: \(recovered since\)"):
        train.train(cfg)
    assert tf.train.latest_checkpoint(os.path.join(run_dir, "ckpt")).endswith("ckpt-4")
    assert [r["step"] for r in _records(run_dir)] == [4]


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("flags, message", [
    (["--bogus_flag=1"], "Unknown command line flag 'bogus_flag'"),
    (["--flagfile=/nonexistent/cub.cfg"], "/nonexistent/cub.cfg"),
    (["--phase1_steps=2", "--phase2a_steps=2", "--phase2b_steps=2", "--total_steps=7"],
     "phase lengths do not add up"),
    (["--dataset=cub", "--data_dir=/nonexistent", "--n_child=200", "--n_parent=20"],
     "--data_dir='/nonexistent' does not exist"),
    (["--shape_code_gain=0"], "shape_code_gain=0.0 must be > 0"),
    (["--pose_turn_init=1"], "pose_turn_init=1.0 needs pose_warp=True (--pose_warp)"),
])
def test_bad_input_is_an_error_before_any_work(tmp_path, capsys, flags, message):
    """The command's `main` in this process (a process start would only add TensorFlow's import; the demo test
    runs `python -m onegan_tf.train` itself)."""
    from onegan_tf import train

    run_dir = tmp_path / "run"
    assert train.main(["onegan_tf.train", f"--run_dir={run_dir}", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not run_dir.exists()


def test_batch_not_divisible_by_replicas_is_refused_before_any_work(tmp_path, monkeypatch):
    from onegan_tf import train
    from onegan_tf.config import ConfigError

    monkeypatch.setattr(train, "make_strategy", lambda tc: types.SimpleNamespace(num_replicas_in_sync=3))
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"--batch_size=4 is not divisible by the 3 replicas"):
        train.train(tiny_config(run_dir=str(run_dir)))
    assert not run_dir.exists()


# ---------------------------------------------------------------------------------------------- dry run


@pytest.mark.slow
def test_dry_run_prints_config_parameter_counts_and_plan_without_data(monkeypatch, capsys):
    """configs/cub.cfg names a data directory that need not exist: --dry_run trains nothing, reads no data.
    The command's `main`, in this process, from the repository root."""
    from onegan_tf import train

    monkeypatch.chdir(REPO)
    run_dir = os.path.join(REPO, "runs", "cub")
    existed = os.path.exists(run_dir)
    assert train.main(["onegan_tf.train", "--flagfile=configs/cub.cfg", "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "Resolved config:" in out and '"data_dir": "data/CUB_200_2011_root"' in out
    assert "total     143,992,534" in out
    assert "Phase I    steps        0 ..  199,999 (200,000 steps): gen" in out
    assert "Phase IIa  steps  200,000 ..  399,999 (200,000 steps): gen + rec_fake" in out
    assert "Phase IIb  steps  400,000 ..  599,999 (200,000 steps): gen + rec_fake + rec_real" in out
    assert os.path.exists(run_dir) == existed


def test_dry_run_prints_the_settings_it_estimates_from_the_data():
    """--mask_target=auto reads the object boxes (only then does the dry run read data) and shows the value
    in the resolved config as auto:<value>, as config.json records it."""
    import io

    from onegan_tf import train

    out = io.StringIO()
    train.dry_run(tiny_config(mask_target="auto"), out=out)
    text = out.getvalue()
    estimate = re.search(r"Estimated from the data: mask_target=auto -> (0\.\d{3}): 0\.5 of each of the 80 object "
                         r"boxes as a fraction of its crop \(--crop=bbox\), averaged", text)
    assert estimate, text[:2000]
    assert f'"mask_target": "auto:{estimate.group(1)}"' in text


# ---------------------------------------------------------------------------------------------- full size


@pytest.mark.slow
def test_one_phase_iib_step_of_the_full_size_model_at_batch_2(full_size_trainer):
    """ModelConfig() defaults (128x128, paper widths, 200/20 classes), every path and clone, on the CPU."""
    from onegan_tf.config import Config, TrainConfig

    trainer = full_size_trainer
    cfg = trainer.cfg
    assert cfg == Config(train=TrainConfig(batch_size=2))
    assert sum(trainer.model.parameter_counts().values()) == 143_992_534
    trainer.init_clones()
    batch = tiny_batch(cfg)
    before = np.array(trainer.model.G_fg2.weights[0])
    t0 = time.time()
    out = trainer.train_step(batch, phase="IIb")
    elapsed = time.time() - t0
    print(f"full-size Phase IIb step at batch 2 (trace + run): {elapsed:.1f} s")
    assert _expected_terms(("rec_fake", "rec_real")) == {f"loss/{k}" for k in out}
    assert all(np.isfinite(float(v)) for v in out.values())
    assert not np.array_equal(before, np.array(trainer.model.G_fg2.weights[0]))
