"""OneGAN: the networks, the hierarchy of codes and the two paths (paper Sec. 3-4, Eq. 1-9; docs/design.md §4-5).

`OneGAN` owns the sub-networks of `networks.build_networks` and exposes
- `generate(child, z)`: the generation path, Eq. 1-5 -> dict of named tensors;
- `encode(I)`: E_p and E_c on an image, Eq. 7-8;
- `reconstruct(I, betas, eps)`: the reconstruction path with the mixup of Eq. 9; at inference the betas
  and the noise are omitted (beta = 1, encoder means); `target_child` gives image-to-image translation.

Randomness never hides inside: z, the mixup betas and the reparameterisation noise are arguments, sampled by
the small pure functions `sample_z`, `sample_betas` and `sample_eps` from a stateless seed. The trainer keys
them by (seed, step), so a resumed run draws what an uninterrupted one would, on any number of replicas.
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from onegan_tf.checks import after, check_classes, check_codes, check_images, require
from onegan_tf.config import ModelConfig, parent_of
from onegan_tf.networks import NETWORK_NAMES, build_networks
from onegan_tf.pose import compose_pose, unplace_discrete

BETA_NAMES = ("beta1", "beta2", "beta3", "beta4")
# The reparameterisation noise of the reconstruction path, by the code it samples: v^_p, v^_c, z^.
EPS_NAMES = ("p", "c", "z")
# Eq. 9: beta1, beta2 ~ U[0, 1]; beta3, beta4 ~ U[0.5, 1] (paper Sec. 3).
BETA_RANGES = {"beta1": (0.0, 1.0), "beta2": (0.0, 1.0), "beta3": (0.5, 1.0), "beta4": (0.5, 1.0)}


def compose(I_bg, I_fg, I_m):
    """Eq. 5: I = I_bg * (1 - I_m) + I_fg * I_m."""
    return I_bg * (1.0 - I_m) + I_fg * I_m


def mix(a, b, beta):
    """One mixup module of Eq. 9: a * (1 - beta) + b * beta, with a per-sample beta of shape (B,)."""
    beta = ops.reshape(ops.cast(beta, a.dtype), (-1,) + (1,) * (len(a.shape) - 1))
    return a * (1.0 - beta) + ops.cast(b, a.dtype) * beta


def reparameterize(mu, sigma, eps=None):
    """A sample mu + exp(sigma / 2) * eps (sigma is a log-variance, docs/design.md §3); the mean when eps is None."""
    return mu if eps is None else mu + ops.exp(0.5 * sigma) * eps


def sample_z(seed, batch: int, d_z: int):
    """z ~ N(0, I_{d_z}) (Eq. 2), from a stateless seed (a shape-(2,) int tensor)."""
    return tf.random.stateless_normal((batch, d_z), seed=seed)


def sample_children(seed, batch: int, n_child: int):
    """Child classes drawn uniformly (docs/design.md §5)."""
    return tf.random.stateless_uniform((batch,), seed=seed, minval=0, maxval=n_child, dtype=tf.int32)


def sample_betas(seed, batch: int) -> dict:
    """Per-sample mixup weights of Eq. 9, drawn afresh every iteration in the ranges of `BETA_RANGES`."""
    seeds = tf.random.experimental.stateless_split(seed, len(BETA_NAMES))
    return {name: tf.random.stateless_uniform((batch,), seed=seeds[i], minval=lo, maxval=hi)
            for i, (name, (lo, hi)) in enumerate(BETA_RANGES.items())}


def inference_betas(batch: int) -> dict:
    """docs/design.md §4's inference defaults: beta1 = beta2 = beta3 = beta4 = 1 (encoded codes and bypasses)."""
    return {name: tf.ones((batch,)) for name in BETA_NAMES}


def inference_beta_values(cfg: ModelConfig) -> tuple:
    """The inference defaults after the Tab. 3b switches (beta1..beta4): all 1, but beta3 = beta4 = 0 for a
    model without bypass, so that user-facing defaults pass `OneGAN.check_inference_betas`."""
    return (1.0, 1.0, 1.0, 1.0) if cfg.bypass else (1.0, 1.0, 0.0, 0.0)


def sample_eps(seed, batch: int, cfg: ModelConfig) -> dict:
    """Standard-normal noise for the reparameterised samples v^_p, v^_c, z^ of the reconstruction path."""
    s = tf.random.experimental.stateless_split(seed, len(EPS_NAMES))
    dims = {"p": cfg.d_p, "c": cfg.d_c, "z": cfg.d_z}
    return {k: tf.random.stateless_normal((batch, dims[k]), seed=s[i]) for i, k in enumerate(EPS_NAMES)}


class OneGAN(tf.Module):
    """The compound model: embeddings V_*, generators G_bg, G_fg, encoders E_c, E_p, E_bg, discriminators D_bg, D_c.

    Every network is an attribute named as in the paper (`model.G_fg0`, `model.E_bg`, ...); `networks` maps
    the names to them. Construction builds every weight, so parameter counts and checkpoints need no step.
    """

    def __init__(self, cfg: ModelConfig, name: str = "onegan", networks: dict | None = None):
        super().__init__(name=name)
        self.cfg = cfg
        nets = build_networks(cfg) if networks is None else networks
        for key in NETWORK_NAMES:
            setattr(self, key, nets[key])

    def with_networks(self, **replacements) -> "OneGAN":
        """The same model with some networks swapped, sharing the rest (e.g. the EMA's V_* and G_*)."""
        return OneGAN(self.cfg, name=self.name, networks={**self.networks, **replacements})

    @property
    def networks(self) -> dict:
        return {key: getattr(self, key) for key in NETWORK_NAMES}

    def parameter_counts(self) -> dict:
        return {key: net.count_params() for key, net in self.networks.items()}

    # -- codes (Eq. 1-2) -------------------------------------------------------------------------------------
    def embed(self, child, parent=None) -> dict:
        """Eq. 1-2: one-hot codes and their embeddings; the parent follows the hierarchy unless given."""
        child = check_classes(child, self.cfg.n_child, "child")
        parent = (parent_of(child, self.cfg.children_per_parent) if parent is None
                  else check_classes(parent, self.cfg.n_parent, "parent", batch=tf.shape(child)[0]))
        e_c = tf.one_hot(child, self.cfg.n_child)
        e_p = tf.one_hot(parent, self.cfg.n_parent)
        e_bg = e_p
        return {"child": child, "parent": parent, "e_c": e_c, "e_p": e_p, "e_bg": e_bg,
                "v_c": self.V_c(e_c), "v_p": self.V_p(e_p), "v_bg": self.V_bg(e_bg)}

    # -- generation path (Sec. 4.1, Eq. 3-5) ----------------------------------------------------------------
    def generate(self, child, z, parent=None, training: bool = False) -> dict:
        """Generate I_bg, I_fg, I_m and I from child classes (parents derived) and pose codes z."""
        codes = self.embed(child, parent)
        z = check_codes(z, self.cfg.d_z, "z", batch=tf.shape(codes["child"])[0])
        A_bg = self.G_bg0((codes["v_bg"], z), training=training)
        A_fg = self.G_fg0((codes["v_p"], z), training=training)
        I_bg = self.G_bg1(A_bg, training=training)
        fg = self.draw_foreground(A_fg, codes["v_p"], codes["v_c"], z, training=training)
        return {**codes, "z": z, "A_bg": A_bg, "A_fg": A_fg, "I_bg": I_bg, **fg,
                "I": compose(I_bg, fg["I_fg"], fg["I_m"])}

    def draw_foreground(self, A_fg, v_p, v_c, z, pose=None, training: bool = False) -> dict:
        """G_fg1 then G_fg2 (Eq. 4): I_fg and I_m from a foreground pre-image (A_fg, or A_fgmix on the
        reconstruction path) and the codes. With `--pose_warp` G_fg2 draws in a canonical frame and places the
        drawing by the pose of z (z^ on the reconstruction path, so the bypass B_fg learns the object in the
        canonical pose too), or by `pose` where given: the pose E_p reads under `--pose_discrete` (`read_pose`;
        docs/design.md §3). Flag off, z and pose are not used and G_fg2 is called as in the paper."""
        inputs = (self.G_fg1(A_fg, training=training), v_p, v_c) + ((z,) if self.cfg.pose_warp else ())
        placed_by = {} if pose is None else {"pose": pose}
        return self.G_fg2(inputs, training=training, **placed_by)

    def read_pose(self, enc: dict):
        """With `--pose_discrete`, the pose E_p reads from the image (`encode`'s output): (k, pose) with k (B,)
        the argmax of its discrete pose logits, taken as the predicted parent and child are, and pose (B, 5) k
        composed with its residual turn, scale and shift. The reconstruction path places the foreground by the
        pose and brings the bypass B_fg into the canonical frame by k. Else None (the pose of z^)."""
        if not self.cfg.pose_discrete:
            return None
        k = tf.argmax(enc["pose_class_hat"], -1, output_type=tf.int32)
        return k, compose_pose(k, enc["pose_fine_hat"])

    # -- encoders (Eq. 6-8) ------------------------------------------------------------------------------
    def encode(self, I, training: bool = False) -> dict:
        """Eq. 7-8: E_p(I) and E_c(I) merged into one dict (e_p_hat, mu_p, sigma_p, B_fg, mu_z, sigma_z, e_c_hat,
        ...)."""
        I = check_images(I, self.cfg.image_size)
        return {**self.E_p(I, training=training), **self.E_c(I, training=training)}

    # -- reconstruction path (Sec. 4.2, Eq. 6-9) ------------------------------------------------------------
    def reconstruct(self, I, betas: dict | None = None, eps: dict | None = None, target_child=None,
                    training: bool = False, encoded: dict | None = None) -> dict:
        """Reconstruct image I through encoders and generators (docs/design.md §5 steps 1-4).

        betas: per-sample mixup weights {beta1..beta4: (B,)}; None = inference defaults (all 1).
        eps:   reparameterisation noise {"p", "c", "z"}; None = encoder means (inference).
        target_child: (B,) classes whose V_c code replaces v_cmix — image-to-image translation (docs/design.md §4).
        encoded: `encode(I)` if already computed this step (the generation path's losses need it too).
        Returns every intermediate by its paper name; reconstructed tensors carry a `_hat` suffix.
        """
        I = check_images(I, self.cfg.image_size)
        batch = tf.shape(I)[0]
        if target_child is not None:  # checked with the image, before the encoders
            target_child = check_classes(target_child, self.cfg.n_child, "target_child", batch=batch)
        enc = self.encode(I, training=training) if encoded is None else encoded
        betas = self.effective_betas(inference_betas(batch) if betas is None else betas)
        eps = eps or {}
        v_p_hat = reparameterize(enc["mu_p"], enc["sigma_p"], eps.get("p"))
        v_c_hat = reparameterize(enc["mu_c"], enc["sigma_c"], eps.get("c"))
        z_hat = reparameterize(enc["mu_z"], enc["sigma_z"], eps.get("z"))
        # Step 2: predicted classes and their embeddings (e_bg = e_p).
        pred_child = tf.argmax(enc["e_c_hat"], -1, output_type=tf.int32)
        pred_parent = tf.argmax(enc["e_p_hat"], -1, output_type=tf.int32)
        codes = self.embed(pred_child, pred_parent)
        v_pmix = mix(codes["v_p"], v_p_hat, betas["beta1"])                                       # mixup 1
        v_cmix = mix(codes["v_c"], v_c_hat, betas["beta2"])                                       # mixup 2
        if target_child is not None:
            v_cmix = self.V_c(tf.one_hot(target_child, self.cfg.n_child))
        # Step 3: foreground (with --pose_discrete placed by the pose E_p reads, the bypass un-placed by it).
        read = self.read_pose(enc)
        A_fg = self.G_fg0((v_pmix, z_hat), training=training)
        B_fg = enc["B_fg"] if read is None else unplace_discrete(enc["B_fg"], read[0])
        A_fgmix = mix(A_fg, B_fg, betas["beta3"]) if self.cfg.bypass else A_fg                   # mixup 3
        fg = self.draw_foreground(A_fgmix, v_pmix, v_cmix, z_hat, pose=None if read is None else read[1],
                                  training=training)
        # Step 4: background, encoded with the predicted mask.
        A_bg = self.G_bg0((codes["v_bg"], z_hat), training=training)
        out = {}
        if self.cfg.bypass:
            out = self.E_bg((I, fg["I_m"]), training=training)
            A_bgmix = mix(A_bg, out["B_bg"], betas["beta4"])                                      # mixup 4
        else:
            A_bgmix = A_bg
        I_bg_hat = self.G_bg1(A_bgmix, training=training)
        return {**enc, **codes, **out, **betas, "pred_child": pred_child, "pred_parent": pred_parent,
                "v_p_hat": v_p_hat, "v_c_hat": v_c_hat, "z_hat": z_hat, "v_pmix": v_pmix, "v_cmix": v_cmix,
                "A_fg": A_fg, "A_bg": A_bg, "A_fgmix": A_fgmix, "A_bgmix": A_bgmix,
                "I_fg_hat": fg["I_fg"], "I_m_hat": fg["I_m"], "I_bg_hat": I_bg_hat,
                "I_hat": compose(I_bg_hat, fg["I_fg"], fg["I_m"])}

    def effective_betas(self, betas: dict) -> dict:
        """Apply the Tab. 3b switches: no mixup(1,2) feeds the encoded codes alone (beta1 = beta2 = 1);
        no mixup(3,4) feeds the bypass alone (beta3 = beta4 = 1); no bypass feeds the pre-image alone."""
        betas = dict(betas)
        missing = [n for n in BETA_NAMES if n not in betas]
        if missing:
            raise ValueError(f"betas is missing {missing}; expected keys {BETA_NAMES}")
        if not self.cfg.mixup_codes:
            betas["beta1"] = tf.ones_like(betas["beta1"])
            betas["beta2"] = tf.ones_like(betas["beta2"])
        if not self.cfg.bypass:
            betas["beta3"] = tf.zeros_like(betas["beta3"])
            betas["beta4"] = tf.zeros_like(betas["beta4"])
        elif not self.cfg.mixup_preimages:
            betas["beta3"] = tf.ones_like(betas["beta3"])
            betas["beta4"] = tf.ones_like(betas["beta4"])
        return betas

    def check_inference_betas(self, betas: dict) -> dict:
        """Refuse user inference betas that the Tab. 3b switches fix, rather than let `effective_betas` replace
        them silently: beta3, beta4 > 0 without bypass (the bypass branches were never trained to feed the
        generators), beta3, beta4 != 1 without mixup(3,4), beta1, beta2 != 1 without mixup(1,2).

        Returns `betas`. Eager values raise ValueError naming the beta and the training flag; symbolic ones
        (a SavedModel's `betas` input) get an in-graph assertion with the same message.
        """
        rules = []
        if not self.cfg.bypass:
            rules.append((("beta3", "beta4"), 0.0, "--nobypass", "B_fg, B_bg never reach its generators"))
        elif not self.cfg.mixup_preimages:
            rules.append((("beta3", "beta4"), 1.0, "--nomixup_preimages", "its generators saw the bypasses alone"))
        if not self.cfg.mixup_codes:
            rules.append((("beta1", "beta2"), 1.0, "--nomixup_codes", "its generators saw the encoded codes alone"))
        checks = []
        for names, value, flag, why in rules:
            for name in names:
                beta = tf.convert_to_tensor(betas[name])
                ok = tf.reduce_all(tf.equal(beta, tf.cast(value, beta.dtype)))
                checks.append(require(ok, f"betas: {name} must be {value:g} for this model, trained with {flag} "
                                          f"({why}); leave the betas at their defaults or set {name} = {value:g}. "
                                          f"Got {name} =", beta))
        if any(c is not None for c in checks):
            betas = {k: after(v, *checks) for k, v in betas.items()}
        return betas


def class_predictions(encoded: dict) -> dict:
    """Clustering (Tab. 2) from E_c's and E_p's logits (`OneGAN.encode` or `reconstruct`): child = argmax ê_c,
    parent = argmax ê_p (int32, as the reconstruction path's pred_child and pred_parent), child_probs and
    parent_probs (softmax), child_prob and parent_prob (the probability of the chosen cluster)."""
    out = {}
    for level, logits in (("child", encoded["e_c_hat"]), ("parent", encoded["e_p_hat"])):
        probs = tf.nn.softmax(logits, axis=-1)
        out.update({level: tf.argmax(logits, axis=-1, output_type=tf.int32), f"{level}_probs": probs,
                    f"{level}_prob": tf.reduce_max(probs, axis=-1)})
    return out
