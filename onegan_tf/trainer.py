"""One training iteration of OneGAN under a `tf.distribute` strategy (paper Sec. 4; docs/design.md §5).

Reads top to bottom like Sec. 4: the generation path every step, the reconstruction of fake images from
Phase IIa, of real images in Phase IIb; the discriminators (and, in Phase II, their per-path clones) updated
on stopped fakes; then one update of generators, encoders, embeddings and D_c's head B on the sum of every
path's losses (L_GEN + L_AE, Eq. 14 and 18).

`OneGANTrainer` owns the model, the discriminator clones, the optimisers and the step counter; it is a
`tf.Module`, so one `tf.train.Checkpoint(trainer=...)` holds the whole training state. Randomness is drawn
per step from a stateless seed (`step_noise`), so the state of the random streams is the step itself.
"""

from __future__ import annotations

import types
from typing import NamedTuple

import keras
import tensorflow as tf

from onegan_tf import losses
from onegan_tf.adam import FusedAdam
from onegan_tf.config import Config, TrainConfig, parent_of
from onegan_tf.distill import Distiller
from onegan_tf.ema import GeneratorEMA
from onegan_tf.model import BETA_NAMES, EPS_NAMES, OneGAN, sample_betas, sample_children, sample_eps, sample_z
from onegan_tf.networks import network_inputs
from onegan_tf.pose import discrete_pose, pose_matrix, unplace_discrete

# The phases in schedule order (Sec. 4.3) and the paths each runs: generation always; the reconstruction of
# fake images from IIa; of real images from IIb. A checkpoint's `phase` variable stores the index into PHASES.
PHASES = ("I", "IIa", "IIb")
PHASE_PATHS = {"I": ("gen",), "IIa": ("gen", "rec_fake"), "IIb": ("gen", "rec_fake", "rec_real")}
CLONED_PATHS = ("rec_fake", "rec_real")
# The generation path's networks, in the order `OneGAN.generate` calls them (Eq. 1-5).
GENERATION_NETWORKS = ("V_c", "V_p", "V_bg", "G_bg0", "G_fg0", "G_bg1", "G_fg1", "G_fg2")


class NetworkCall(NamedTuple):
    """One network call of a training step: `samples` per sample of the global batch; whether the gradient
    with respect to its inputs flows (`input_grad`) and whether this call's loss trains its weights."""
    what: str
    network: str
    samples: int
    input_grad: bool
    weight_grad: bool


def check_phase(phase: str) -> str:
    """`phase` if it names a phase of PHASES; a ValueError naming the allowed ones otherwise."""
    if phase not in PHASE_PATHS:
        raise ValueError(f"unknown phase {phase!r}; the phases are {PHASES}")
    return phase


def phase_at(step: int, tc: TrainConfig) -> str:
    """The phase (a name of PHASES) that `step` (0-based) belongs to."""
    if step < tc.phase1_steps:
        return "I"
    if step < tc.phase1_steps + tc.phase2a_steps:
        return "IIa"
    return "IIb"


def step_plan(tc: TrainConfig) -> list[dict]:
    """The schedule as rows {phase, first, last, steps, paths}; phases of length 0 are left out."""
    rows, first = [], 0
    for phase, length in zip(PHASES, (tc.phase1_steps, tc.phase2a_steps, tc.phase2b_steps)):
        if length:
            rows.append({"phase": phase, "first": first, "last": first + length - 1, "steps": length,
                         "paths": " + ".join(PHASE_PATHS[phase])})
        first += length
    return rows


def step_calls(phase: str, tc: TrainConfig, bypass: bool = True) -> list[NetworkCall]:
    """Every network call of one training step of `phase`, in the order `OneGANTrainer._replica_fn` makes
    them; loss terms of weight 0 are not computed, so their calls are left out. The FLOP count of a step
    (`flops.step_flops`) is read from this list; `tests/test_bench.py` checks it against the traced step."""
    calls = []

    def add(what, nets, samples, input_grad, weight_grad):
        calls.extend(NetworkCall(what, net, samples, input_grad, weight_grad) for net in nets)

    # Generation path (Eq. 1-5): every generator, trained by L_GEN.
    add("generate", GENERATION_NETWORKS, 1, True, True)
    rec = PHASE_PATHS[check_phase(phase)][1:]
    # E_p, E_c on the stopped fake, once for L_MSE and the fake reconstruction path (`_paths`).
    if "rec_fake" in rec:
        add("reconstruct rec_fake", ("E_p", "E_c"), 1, True, True)
    elif tc.weight_MSE:
        add("L_MSE", ("E_p", "E_c"), 1, False, True)
    # Reconstruction paths (Eq. 6-9): the generators on the mixed codes (real images are encoded here).
    for path in rec:
        nets = ("E_p", "E_c") if path == "rec_real" else ()
        nets += ("V_c", "V_p", "V_bg", "G_fg0", "G_fg1", "G_fg2", "G_bg0") + (("E_bg",) if bypass else ()) + ("G_bg1",)
        add(f"reconstruct {path}", nets, 1, True, True)
    # Discriminator updates (Eq. 10), one pair per path, on stopped fakes: D_bg on [X_bg, fake_bg, X_c],
    # D_c on [X_c, fake].
    for path in ("gen",) + rec:
        add(f"D update {path}", ("D_bg",), 3, True, True)
        add(f"D update {path}", ("D_c",), 2, True, True)
    # Generation losses (Eq. 11-14): D_c's head B is trained by L_E (its trunk is not; counted as not).
    if tc.weight_G or tc.weight_E:
        add("L_G/L_E", ("D_c",), 1, True, False)
    if tc.weight_G:
        add("L_G", ("D_bg",), 1, True, False)
    if tc.weight_E:
        add("L_E", ("E_p", "E_c"), 1, True, True)
    if tc.weight_MSE and bypass:
        add("L_MSE", ("E_bg",), 1, False, True)
    # Reconstruction losses (Eq. 15-18): D_c, and D_bg for the fake path's L_PER, judge the reconstructions.
    for path in rec:
        if tc.weight_PER or tc.weight_adv_rec:
            add(f"L_PER/L_G {path}", ("D_c",), 2 if tc.weight_PER else 1, True, False)
        per_bg = tc.weight_PER and path == "rec_fake"
        if per_bg or tc.weight_adv_rec:
            add(f"L_PER/L_G {path}", ("D_bg",), 2 if per_bg else 1, True, False)
    return calls


def step_noise(seed: int, step, batch: int, cfg: Config) -> dict:
    """Every random draw of one iteration, for the global batch, from the stateless seed (seed, step).

    child classes and z (generation path), per-sample mixup betas and reparameterisation noise for each
    reconstruction path. With a mode-seeking weight, samples 2i and 2i+1 share their classes.
    """
    mc = cfg.model
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
    s = tf.random.experimental.stateless_split(key, 6)
    child = sample_children(s[0], batch, mc.n_child)
    if cfg.train.weight_MS:
        child = tf.repeat(child[: batch // 2], 2)
    noise = {"child": child, "z": sample_z(s[1], batch, mc.d_z)}
    for path, (sb, se) in (("rec_fake", (s[2], s[3])), ("rec_real", (s[4], s[5]))):
        for k, v in sample_betas(sb, batch).items():
            noise[f"{path}/{k}"] = v
        for k, v in sample_eps(se, batch, mc).items():
            noise[f"{path}/eps_{k}"] = v
    return noise


def _clone(net: keras.Model, key: str, path: str, cfg) -> keras.Model:
    """A new network of the same architecture as `net` (weights are copied later, by `init_clones`)."""
    clone = type(net).from_config({**net.get_config(), "name": f"{key}_{path}"})
    clone(network_inputs(key, cfg))
    return clone


class OneGANTrainer(tf.Module):
    """Model, discriminator clones, optimisers and the step counter, with one `train_step` per phase."""

    def __init__(self, cfg: Config, strategy: tf.distribute.Strategy | None = None):
        super().__init__(name="trainer")
        self.cfg = cfg
        self.strategy = strategy or tf.distribute.get_strategy()
        tc = cfg.train
        with self.strategy.scope():
            self.model = OneGAN(cfg.model)
            m = self.model
            # Sec. 4.3: one (D_bg, D_c) pair per reconstruction path, copied from the generation path's pair
            # on entering Phase II. They exist from the start so a checkpoint always has the same structure.
            for path in CLONED_PATHS:
                setattr(self, f"D_bg_{path}", _clone(m.D_bg, "D_bg", path, cfg.model))
                setattr(self, f"D_c_{path}", _clone(m.D_c, "D_c", path, cfg.model))
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            # The phase of the last step run, as its index into PHASES (what checkpoints have always stored).
            self.phase = tf.Variable(0, dtype=tf.int64, trainable=False, name="phase")
            self.clones_ready = tf.Variable(False, trainable=False, name="clones_ready")
            # Variable lists: the discriminators' own weights (Eq. 10) and everything L_GEN + L_AE trains.
            # Held outside the checkpointed object graph (they only point at the networks' variables).
            d_vars = {path: pair[0].trainable_variables + pair[1].own_variables
                      for path, pair in ((p, self.discriminators(p)) for p in ("gen",) + CLONED_PATHS)}
            g_vars = [v for key in ("V_bg", "V_p", "V_c", "G_bg0", "G_bg1", "G_fg0", "G_fg1", "G_fg2",
                                    "E_c", "E_p", "E_bg") for v in getattr(m, key).trainable_variables]
            self._untracked = types.SimpleNamespace(d_vars=d_vars, g_vars=g_vars + m.D_c.head_b_variables,
                                                    step_fns={})
            self.opt_G = self._optimizer("opt_G")
            self.opt_D = self._optimizer("opt_D")
            self.opt_D_rec_fake = self._optimizer("opt_D_rec_fake")
            self.opt_D_rec_real = self._optimizer("opt_D_rec_real")
            self.opt_G.build(self.g_vars)
            for path, opt in self.d_optimizers().items():
                opt.build(self.d_vars[path])
            # First non-finite step (-1 = none yet): checked by the host before any checkpoint is written.
            self.bad_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="bad_step")
            # Not in the paper: the generators' moving average, updated after every step (onegan_tf.ema).
            if tc.ema_kimg:
                self.ema = GeneratorEMA(m, tc.batch_size, tc.ema_kimg, tc.ema_rampup)
        # Distillation runs after the schedule, on one device, outside the replicated training step.
        if tc.distill_steps:
            self.distiller = Distiller(cfg)

    @property
    def generation_model(self) -> OneGAN:
        """The model with the generator weights of `--generator_weights` (the EMA's V_*, G_* by default)."""
        if self.cfg.train.generator_weights == "raw":
            return self.model
        if "generation_model" not in vars(self._untracked):
            self._untracked.generation_model = self.model.with_networks(**self.ema.networks)
        return self._untracked.generation_model

    @property
    def g_vars(self) -> list:
        """What L_GEN + L_AE trains: embeddings, generators, encoders and D_c's head B (docs/design.md §5)."""
        return self._untracked.g_vars

    @property
    def d_vars(self) -> dict:
        """Per path, what its discriminator loss (Eq. 10) trains: D_bg and D_c without head B."""
        return self._untracked.d_vars

    def _optimizer(self, name):
        # keras.optimizers.Adam's update and state, applied with one fused kernel per variable.
        tc = self.cfg.train
        opt = FusedAdam(tc.learning_rate, beta_1=tc.beta_1, beta_2=tc.beta_2, name=name)
        if tc.mixed_precision == "mixed_float16":
            opt = keras.optimizers.LossScaleOptimizer(opt, name=f"{name}_loss_scale")
        return opt

    def discriminators(self, path: str):
        """The (D_bg, D_c) pair that judges `path`'s images: the originals for "gen", a clone otherwise."""
        if path == "gen":
            return self.model.D_bg, self.model.D_c
        return getattr(self, f"D_bg_{path}"), getattr(self, f"D_c_{path}")

    def d_optimizers(self) -> dict:
        return {"gen": self.opt_D, "rec_fake": self.opt_D_rec_fake, "rec_real": self.opt_D_rec_real}

    # -- Phase II entry (Sec. 4.3) ------------------------------------------------------------------------
    def init_clones(self) -> None:
        """Copy D_bg, D_c and their optimiser state into both clone pairs; called once, entering Phase II."""
        src_opt = self.opt_D
        for path in CLONED_PATHS:
            for src, dst in zip(self.discriminators("gen"), self.discriminators(path)):
                for a, b in zip(src.weights, dst.weights):
                    b.assign(a)
            dst_opt = self.d_optimizers()[path]
            for a, b in zip(src_opt.variables, dst_opt.variables):
                if tuple(a.shape) != tuple(b.shape):
                    raise RuntimeError(f"optimizer state mismatch copying {a.name} -> {b.name}")
                b.assign(a)
        self.clones_ready.assign(True)

    # -- one iteration --------------------------------------------------------------------------------------
    def train_step(self, dist_batch, phase: str) -> dict:
        """Run one distributed iteration of `phase` (a name of PHASES); returns the global-batch mean of every
        loss term."""
        check_phase(phase)
        fns = self._untracked.step_fns
        if phase not in fns:
            fns[phase] = tf.function(self._make_step(phase))
        return fns[phase](dist_batch)

    def tracing_counts(self) -> dict:
        """Phase name -> how often its step has been traced in this process: once, unless an input changed
        its structure, dtype or shape, or a Python value stood where a tensor belongs (a retrace per step
        re-runs Python and re-optimises the graph every iteration)."""
        return {p: int(fn.experimental_get_tracing_count())
                for p, fn in sorted(self._untracked.step_fns.items(), key=lambda item: PHASES.index(item[0]))}

    def _make_step(self, phase):
        replica = self._replica_fn(phase)
        if self.cfg.train.jit_compile:
            if self.strategy.num_replicas_in_sync > 1:
                raise ValueError("jit_compile=True supports one replica; use it with --strategy=default")
            replica = tf.function(replica, jit_compile=True)

        def step(dist_batch):
            per_replica = self.strategy.run(replica, args=(dist_batch,))
            out = {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                   for k, v in per_replica.items()}
            finite = tf.reduce_all([tf.math.is_finite(v) for v in out.values()])
            self.bad_step.assign(tf.where(tf.logical_and(tf.logical_not(finite), self.bad_step < 0),
                                          self.step, self.bad_step))
            if self.cfg.train.ema_kimg:
                self.ema.update(self.step)
            self.step.assign_add(1)
            self.phase.assign(PHASES.index(phase))
            return out
        return step

    def _replica_fn(self, phase):
        paths = PHASE_PATHS[phase]

        def replica(batch):
            n = tf.cast(tf.distribute.get_replica_context().num_replicas_in_sync, tf.float32)
            x_c, x_bg = batch["x_c"], batch["x_bg"]
            child = batch["child"]
            with tf.GradientTape() as tape:
                gen, sources, enc_fake, recs = self._paths(batch, paths)
                # Discriminators first, on stopped fakes (Eq. 10), each path against its own pair.
                with tape.stop_recording():
                    terms = self._update_discriminators(gen, recs, x_c, x_bg, n)
                # Then every loss of the generators, encoders and embeddings (Eq. 11-18).
                terms.update(self._generation_losses(gen, child, enc_fake))
                for p, rec in recs.items():
                    terms.update(self._reconstruction_losses(p, rec, sources[p], gen))
                total = tf.add_n([terms[k] * w for k, w in self._weights(paths).items()])
                terms["total/L_AE" if len(paths) > 1 else "total/L_GEN"] = total
                loss = total / n
                if isinstance(self.opt_G, keras.optimizers.LossScaleOptimizer):
                    loss = self.opt_G.scale_loss(loss)
            grads = tape.gradient(loss, self.g_vars)
            # Phase I leaves the encoders' variance and z heads without gradient; they are not touched.
            self.opt_G.apply_gradients([(g, v) for g, v in zip(grads, self.g_vars) if g is not None])
            return terms
        return replica

    def _paths(self, batch, paths) -> tuple:
        """The forward passes of one iteration: (gen, sources, enc_fake, recs)."""
        m = self.model
        # Generation path (Sec. 4.1): codes -> I_bg, I_fg, I_m, I.
        gen = m.generate(batch["child"], batch["z"], training=True)
        # Reconstruction paths (Sec. 4.2): the fake image of this step (stopped) and real X_c.
        sources = {"rec_fake": tf.stop_gradient(gen["I"]), "rec_real": batch["x_c"]}
        # E_p, E_c on the stopped fake: what L_MSE trains (the encoders alone, docs/design.md §5) and what the fake
        # reconstruction path starts from, computed once for both.
        enc_fake = (m.encode(sources["rec_fake"], training=True)
                    if self.cfg.train.weight_MSE or "rec_fake" in paths else None)
        recs = {p: m.reconstruct(sources[p], *self._path_noise(batch, p), training=True,
                                 encoded=enc_fake if p == "rec_fake" else None)
                for p in paths if p != "gen"}
        return gen, sources, enc_fake, recs

    @staticmethod
    def _path_noise(batch, path):
        betas = {k: batch[f"{path}/{k}"] for k in BETA_NAMES}
        eps = {k: batch[f"{path}/eps_{k}"] for k in EPS_NAMES}
        return betas, eps

    def _weights(self, paths) -> dict:
        """Term name -> weight of Eq. 14 and 18; terms of weight 0 are never computed (see the loss methods)."""
        tc = self.cfg.train
        w = {"gen/L_G": tc.weight_G, "gen/L_E": tc.weight_E, "gen/L_MSE": tc.weight_MSE,
             "gen/L_Rv": tc.weight_Rv, "gen/L_RM": tc.weight_RM, "gen/L_MS": tc.weight_MS}
        for p in paths[1:]:
            w.update({f"{p}/L_VAE": tc.weight_VAE, f"{p}/L_REC": tc.weight_REC, f"{p}/L_PER": tc.weight_PER,
                      f"{p}/L_G": tc.weight_adv_rec})
        return {k: v for k, v in w.items() if v}

    # -- discriminators (Eq. 10) ------------------------------------------------------------------------------
    def _update_discriminators(self, gen, recs, x_c, x_bg, n) -> dict:
        fakes = {"gen": (gen["I_bg"], gen["I"])}
        fakes.update({p: (rec["I_bg_hat"], rec["I_hat"]) for p, rec in recs.items()})
        terms = {}
        for path, (fake_bg, fake) in fakes.items():
            D_bg, D_c = self.discriminators(path)
            opt, var_list = self.d_optimizers()[path], self.d_vars[path]
            b = tf.shape(x_bg)[0]
            with tf.GradientTape() as tape:
                # One call per discriminator on [real, fake(, object)] — per-sample networks, no batch statistics.
                bg = D_bg(tf.concat([x_bg, tf.stop_gradient(fake_bg), x_c], 0), training=True)
                c = D_c(tf.concat([x_c, tf.stop_gradient(fake)], 0), training=True)
                t = losses.discriminator_terms(
                    D_bgA_real=bg["D_bgA"][:b], D_bgA_fake=bg["D_bgA"][b:2 * b],
                    D_bgB_bg=bg["D_bgB"][:b], D_bgB_obj=bg["D_bgB"][2 * b:],
                    D_cA_real=c["D_cA"][:b], D_cA_fake=c["D_cA"][b:])
                L_D = losses.discriminator_loss(t)
                scaled = L_D / n
                if isinstance(opt, keras.optimizers.LossScaleOptimizer):
                    scaled = opt.scale_loss(scaled)
            opt.apply_gradients(zip(tape.gradient(scaled, var_list), var_list))
            terms.update({f"D_{path}/{k}": v for k, v in t.items()})
            terms[f"D_{path}/L_D"] = L_D
        return terms

    # -- generation path (Eq. 11-14) ------------------------------------------------------------------------------
    def _generation_losses(self, gen, child, enc_fake) -> dict:
        """Eq. 11-14 and the regularisers. `enc_fake` is `encode` of the stopped fake image (for L_MSE)."""
        m, tc, mc = self.model, self.cfg.train, self.cfg.model
        sg = tf.stop_gradient
        D_bg, D_c = self.discriminators("gen")
        terms = {}
        c_out = D_c(gen["I"], training=True) if (tc.weight_G or tc.weight_E) else None
        if tc.weight_G:
            bg_out = D_bg(gen["I_bg"], training=True)
            terms["gen/L_G"] = losses.generator_adversarial_loss(bg_out["D_bgA"], bg_out["D_bgB"], c_out["D_cA"])
        if tc.weight_E:
            # L_E trains the generators through the encoders' classification of I (Eq. 12): I is not stopped.
            enc = m.encode(gen["I"], training=True)
            terms["gen/L_E"] = losses.classification_loss(enc["e_p_hat"], enc["e_c_hat"], c_out["D_cB"],
                                                          parent_of(child, mc.children_per_parent), child)
            if mc.pose_discrete:
                # And of the pose: the generator draws the 8 poses so that E_p can tell them apart (the
                # reconstruction paths alone would favour drawings that look alike in every pose).
                terms["gen/L_E"] += losses.pose_class_loss(discrete_pose(gen["z"]), enc["pose_class_hat"])
        if tc.weight_MSE:
            # L_MSE trains the encoders only (docs/design.md §5): their inputs I, I_m are stopped, and so are its
            # targets.
            B_bg = m.E_bg((sg(gen["I"]), sg(gen["I_m"])), training=True)["B_bg"] if mc.bypass else None
            B_fg = enc_fake["B_fg"] if mc.bypass else None
            if B_fg is not None and mc.pose_discrete:   # A_fg is drawn in the canonical frame, B_fg sees the fake
                B_fg = unplace_discrete(B_fg, discrete_pose(gen["z"]))
            terms["gen/L_MSE"] = losses.code_distance_loss(
                gen["v_c"], enc_fake["mu_c"], gen["v_p"], enc_fake["mu_p"], gen["A_fg"], B_fg, gen["A_bg"], B_bg)
            if mc.pose_mse:
                # E_p reads the pose back from the stopped fake, against the pose that placed it (docs/design.md
                # §3): with --pose_discrete its own pose head (the 8 quarter turns and mirrors as a class, the
                # rest as a regression), else its mu_z placed by the pose head with the head's weights stopped.
                head = m.G_fg2.pose
                if mc.pose_discrete:
                    terms["gen/L_MSE"] += losses.pose_read_loss(discrete_pose(gen["z"]), head.fine(gen["z"]),
                                                                enc_fake["pose_class_hat"], enc_fake["pose_fine_hat"])
                else:
                    terms["gen/L_MSE"] += losses.pose_distance_loss(
                        *pose_matrix(head.pose(gen["z"])), *pose_matrix(head.pose(enc_fake["mu_z"], frozen=True)))
        if tc.weight_Rv:
            terms["gen/L_Rv"] = losses.code_regularization(gen["v_p"], gen["v_c"], gen["v_bg"])
        if tc.weight_RM:
            terms["gen/L_RM"] = losses.mask_regularization(gen["I_m"], tc.mask_fraction)
        if tc.weight_MS:
            terms["gen/L_MS"] = losses.mode_seeking_loss(gen["I"][0::2], gen["I"][1::2],
                                                         gen["z"][0::2], gen["z"][1::2])
        return terms

    # -- reconstruction paths (Eq. 15-18) ------------------------------------------------------------------------
    def _reconstruction_losses(self, path, rec, source, gen) -> dict:
        tc = self.cfg.train
        fake = path == "rec_fake"
        sg = tf.stop_gradient
        D_bg, D_c = self.discriminators(path)
        terms = {}
        if tc.weight_VAE:
            terms[f"{path}/L_VAE"] = losses.vae_loss(rec["mu_p"], rec["sigma_p"], rec["v_p"], rec["mu_c"],
                                                     rec["sigma_c"], rec["v_c"], rec["mu_z"], rec["sigma_z"],
                                                     tc.vae_kl_per_dimension, tc.vae_stop_target)
        if tc.weight_REC:
            terms[f"{path}/L_REC"] = losses.reconstruction_loss(
                source, rec["I_hat"], *((sg(gen["I_bg"]), rec["I_bg_hat"], sg(gen["I_m"]), rec["I_m_hat"])
                                        if fake else ()))
        per_bg = tc.weight_PER and fake
        if tc.weight_PER or tc.weight_adv_rec:
            c_src, c_hat = _judge(D_c, source, rec["I_hat"], with_target=bool(tc.weight_PER))
        if per_bg or tc.weight_adv_rec:
            bg_src, bg_hat = _judge(D_bg, sg(gen["I_bg"]) if fake else None, rec["I_bg_hat"], bool(per_bg))
        if tc.weight_PER:
            terms[f"{path}/L_PER"] = losses.perceptual_loss(
                c_src["D_cC"], c_hat["D_cC"], *((bg_src["D_bgC"], bg_hat["D_bgC"]) if per_bg else ()))
        if tc.weight_adv_rec:
            terms[f"{path}/L_G"] = losses.generator_adversarial_loss(bg_hat["D_bgA"], bg_hat["D_bgB"], c_hat["D_cA"])
        return terms


def _judge(D, target, hat, with_target: bool):
    """D's outputs on (target, hat); one call on both when the target's features are needed (L_PER)."""
    if not with_target:
        return None, D(hat, training=True)
    b = tf.shape(hat)[0]
    out = D(tf.concat([target, hat], 0), training=True)
    return {k: v[:b] for k, v in out.items()}, {k: v[b:] for k, v in out.items()}
