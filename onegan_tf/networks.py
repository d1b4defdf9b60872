"""The sub-networks of OneGAN (supplementary Tab. 3-9, as read by docs/design.md §3).

Every network is a serializable `keras.Model` whose constructor takes plain sizes, so each one saves to and
loads from a `.keras` file on its own. `build_networks(ModelConfig)` derives those sizes from the config:
at image size 128 and channel multiplier 1.0 the parameter counts are exactly the paper's (docs/design.md §3).

Scaled configurations keep the paper's structure: pre-images and bypasses at 1/8 of the image size, the
generator stems start at 1/32 (1x1 for 32x32 images), every width is multiplied by `channel_mult`.
The patch discriminator D_bg changes its resize target and strides with the size so it keeps a patch grid
of at least 2x2 (`D_BG_GEOMETRY`).

Outputs are dicts keyed by the paper's names (`A_bg`, `B_fg`, `I_m`, `mu_c`, `sigma_c`, `D_cC`, ...);
`sigma_*` are log-variances (docs/design.md §3) and `*_hat` are class logits.
"""

from __future__ import annotations

import keras
from keras import ops

from onegan_tf.config import ModelConfig
from onegan_tf.layers import DownBlock, GLUNorm, Normalize, ResBlock, SameBlock, UpBlock, broadcast_code, conv, register
from onegan_tf.pose import N_DISCRETE_POSES, N_FINE_POSE, PoseWarp

# image size -> (resize target, strides of the three convs); Tab. 8 is the 128 row. Patch grids: 4x4, 3x3, 5x5.
D_BG_GEOMETRY = {128: (126, (2, 2, 4)), 64: (62, (2, 2, 2)), 32: (30, (2, 1, 1))}

# Full-size widths (Tab. 3-9), before `channel_mult`.
GEN_WIDTHS = (1024, 512, 256, 128, 64, 32)   # after GLU: stem, UPBlk x2 (A), G_bg1 UPBlk x3
FG1_WIDTHS = (128, 64, 64)                    # G_fg1 (docs/design.md §3: last UPBlk is (64, 64))
FG2_WIDTHS = (32, 16)                         # G_fg2 RESBlks
ENC_WIDTHS = (64, 128, 256, 512, 1024)        # stem conv, DOWNBlk x2 (H), trunk DOWNBlk x2
HIDDEN = 512                                  # Linear(16384, 512) of the encoders and D_c


def _dense(units, *, bias, name, dtype=None):
    return keras.layers.Dense(units, use_bias=bias, name=name, dtype=dtype)


def _check_image(x, channels, size, who):
    shape = tuple(x.shape)
    if len(shape) != 4 or shape[-1] != channels or (size and tuple(shape[1:3]) != (size, size)):
        raise ValueError(f"{who} expects images of shape (batch, {size}, {size}, {channels}); got {shape}")
    if not keras.backend.is_float_dtype(keras.backend.standardize_dtype(x.dtype)):
        raise TypeError(f"{who} expects float images in [-1, 1]; got dtype {keras.backend.standardize_dtype(x.dtype)}")


def _set_blocks(owner, prefix, layers):
    """Each layer of a sequence as its own attribute (`up1`, `up2`, ...): a named edge in the checkpoint graph
    (`tf.train.Checkpoint` does not follow Keras' tracked lists)."""
    for i, layer in enumerate(layers):
        setattr(owner, f"{prefix}{i + 1}", layer)


def _blocks(owner, prefix, n):
    return [getattr(owner, f"{prefix}{i + 1}") for i in range(n)]


@register
class Embedding(keras.Model):
    """V_bg, V_p, V_c (Tab. 3-4): Linear(N, d) without bias on a one-hot vector, i.e. a lookup table."""

    def __init__(self, num_classes: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.dim = num_classes, dim
        self.table = _dense(dim, bias=False, name="table")

    def call(self, one_hot):
        return self.table(one_hot)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "dim": self.dim}


@register
class PreImageGenerator(keras.Model):
    """G_bg0 and G_fg0 (Tab. 3-4): Linear(d + d_z, s*s*2w) -> reshape -> GLU-LNorm -> UPBlk -> UPBlk = A.

    Called on `(v, z)`; returns the pre-image A (image_size/8 square, `widths[2]` channels). `code_gain`
    multiplies v before the Linear layer (1 in the paper; docs/design.md §3, `--shape_code_gain` for G_fg0).
    """

    def __init__(self, image_size: int, widths: tuple, norm: str = "glu_lnorm", code_gain: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.widths, self.norm = image_size, tuple(widths), norm
        self.code_gain = float(code_gain)
        self.side = image_size // 32
        self.fc = _dense(self.side * self.side * 2 * widths[0], bias=False, name="fc")
        self.glu = GLUNorm(norm, name="glu")
        self.up1 = UpBlock(widths[1], norm, name="up1")
        self.up2 = UpBlock(widths[2], norm, name="up2")

    def call(self, inputs):
        v, z = inputs
        if self.code_gain != 1.0:
            v = v * self.code_gain
        x = self.fc(ops.concatenate([v, ops.cast(z, v.dtype)], -1))
        x = ops.reshape(x, (-1, self.side, self.side, 2 * self.widths[0]))
        return self.up2(self.up1(self.glu(x)))

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "widths": list(self.widths),
                "norm": self.norm, "code_gain": self.code_gain}


@register
class ForegroundUpsampler(keras.Model):
    """G_fg1 (Tab. 4): UPBlk(256,128) -> UPBlk(128,64) -> UPBlk(64,64) = C_fg0 (docs/design.md §3 reading)."""

    def __init__(self, widths: tuple, norm: str = "glu_lnorm", **kwargs):
        super().__init__(**kwargs)
        self.widths, self.norm = tuple(widths), norm
        _set_blocks(self, "up", [UpBlock(w, norm, name=f"up{i + 1}") for i, w in enumerate(widths)])

    def call(self, A):
        for up in _blocks(self, "up", len(self.widths)):
            A = up(A)
        return A

    def get_config(self):
        return {**super().get_config(), "widths": list(self.widths), "norm": self.norm}


@register
class BackgroundRenderer(ForegroundUpsampler):
    """G_bg1 (Tab. 3): UPBlk(256,128) -> UPBlk(128,64) -> UPBlk(64,32) -> K3P1Conv2d(32, 3) + tanh = I_bg."""

    def __init__(self, widths: tuple, norm: str = "glu_lnorm", **kwargs):
        super().__init__(widths, norm, **kwargs)
        self.to_rgb = conv(3, 3, bias=True, name="to_rgb", dtype="float32")

    def call(self, A):
        return ops.tanh(self.to_rgb(ops.cast(super().call(A), "float32")))


@register
class ForegroundRenderer(keras.Model):
    """G_fg2 (Tab. 4): RESBlk(64, d_p, 32)(C_fg0, v_p) -> RESBlk(32, d_c, 16)(., v_c) -> I_fg, I_m.

    Called on `(C_fg0, v_p, v_c)`; returns {"I_fg": tanh image, "I_m": sigmoid mask}. With `mask_sees_parent`
    the mask head also receives v_p (a documented deviation for small-scale training; off in the paper configs).
    With `mask_before_child` it reads res_p's output instead of res_c's, so that the mask is a function of v_p
    and z alone, as FineGAN's parent stage draws the shape (a deviation; off in the paper configs).
    With `pose_warp` it is called on `(C_fg0, v_p, v_c, z)`: I_fg and I_m are drawn in a canonical pose and
    placed by a pose taken from z (`pose.PoseWarp` on d_z codes, `turn_init` its initial spread of turns,
    `pose_discrete` its 8 quarter turns and mirrors), or by `pose` (B, 5) where the caller gives it (the pose
    E_p reads; off in the paper configs, a deviation; docs/design.md §3).
    """

    def __init__(self, widths: tuple, norm: str = "glu_lnorm", mask_sees_parent: bool = False,
                 mask_before_child: bool = False, pose_warp: bool = False, d_z: int = 100, turn_init: float = 0.0,
                 pose_discrete: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.widths, self.norm, self.mask_sees_parent = tuple(widths), norm, mask_sees_parent
        self.mask_before_child = mask_before_child
        self.pose_warp, self.d_z, self.turn_init = pose_warp, int(d_z), float(turn_init)
        self.pose_discrete = bool(pose_discrete)
        self.res_p = ResBlock(widths[0], norm, name="res_p")
        self.res_c = ResBlock(widths[1], norm, name="res_c")
        self.to_rgb = conv(3, 3, bias=True, name="to_rgb", dtype="float32")
        self.to_mask = conv(1, 3, bias=True, name="to_mask", dtype="float32")
        if pose_warp:
            self.pose = PoseWarp(d_z, turn_init, pose_discrete, name="pose")

    def call(self, inputs, pose=None):
        if self.pose_warp != (len(inputs) == 4):
            raise ValueError(f"G_fg2 {'with' if self.pose_warp else 'without'} pose_warp is called on "
                             f"{'(C_fg0, v_p, v_c, z)' if self.pose_warp else '(C_fg0, v_p, v_c)'}; "
                             f"got {len(inputs)} inputs")
        drawn = self.draw(inputs[:3])
        if not self.pose_warp:
            return drawn
        I_fg, I_m = self.pose(([drawn["I_fg"], drawn["I_m"]], inputs[3]), pose=pose)
        return {"I_fg": I_fg, "I_m": I_m}

    def draw(self, inputs):
        """I_fg and I_m from `(C_fg0, v_p, v_c)` before the pose warp: with `pose_warp`, in the canonical pose."""
        C_fg0, v_p, v_c = inputs
        C_fg1 = self.res_p((C_fg0, v_p))
        C_fg2 = ops.cast(self.res_c((C_fg1, v_c)), "float32")
        mask_in = ops.cast(C_fg1, "float32") if self.mask_before_child else C_fg2
        if self.mask_sees_parent:
            mask_in = ops.concatenate([mask_in, broadcast_code(v_p, mask_in)], -1)
        return {"I_fg": ops.tanh(self.to_rgb(C_fg2)), "I_m": ops.sigmoid(self.to_mask(mask_in))}

    def get_config(self):
        return {**super().get_config(), "widths": list(self.widths), "norm": self.norm,
                "mask_sees_parent": self.mask_sees_parent, "mask_before_child": self.mask_before_child,
                "pose_warp": self.pose_warp, "d_z": self.d_z, "turn_init": self.turn_init,
                "pose_discrete": self.pose_discrete}


class _DenseNormAct(keras.layers.Layer):
    """Linear (no bias) -> LayerNorm over features -> lReLU(0.2): the hidden layer of E_c, E_p, D_c heads."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.fc = _dense(units, bias=False, name="fc")
        self.normalize = Normalize("layer", name="norm")

    def call(self, x):
        return ops.leaky_relu(self.normalize(self.fc(x)), 0.2)


class _Stem(keras.layers.Layer):
    """The encoder stem (Tab. 5-7, 9): K4S2P1Conv2d -> LayerNorm -> lReLU -> DOWNBlk -> DOWNBlk = H (1/8 size)."""

    def __init__(self, widths, **kwargs):
        super().__init__(**kwargs)
        self.conv = conv(widths[0], 4, 2, bias=False, name="conv")
        self.normalize = Normalize("layer", name="norm")
        self.down1 = DownBlock(widths[1], name="down1")
        self.down2 = DownBlock(widths[2], name="down2")

    def call(self, x):
        x = ops.leaky_relu(self.normalize(self.conv(x)), 0.2)
        return self.down2(self.down1(x))


class _Trunk(keras.layers.Layer):
    """DOWNBlk -> DOWNBlk -> K3P1Conv2d -> LayerNorm -> lReLU -> flatten (Tab. 5-6, 9).

    Returns the feature map after the first DOWNBlk too: D_c's perceptual features D_cC.
    """

    def __init__(self, widths, **kwargs):
        super().__init__(**kwargs)
        self.down1 = DownBlock(widths[0], name="down1")
        self.down2 = DownBlock(widths[1], name="down2")
        self.conv = conv(widths[1], 3, bias=False, name="conv")
        self.normalize = Normalize("layer", name="norm")

    def call(self, H):
        C = self.down1(H)
        x = ops.leaky_relu(self.normalize(self.conv(self.down2(C))), 0.2)
        return C, ops.reshape(x, (-1, x.shape[1] * x.shape[2] * x.shape[3]))


class _EncoderBase(keras.Model):
    def __init__(self, image_size: int, widths: tuple, hidden: int, **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.widths, self.hidden = image_size, tuple(widths), hidden

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "widths": list(self.widths),
                "hidden": self.hidden}


@register
class StyleEncoder(_EncoderBase):
    """E_c (Tab. 5): I -> {e_c_hat (N_C logits), mu_c, sigma_c (d_c), h_c, H_c}."""

    def __init__(self, image_size, widths, hidden, n_child: int, d_c: int, **kwargs):
        super().__init__(image_size, widths, hidden, **kwargs)
        self.n_child, self.d_c = n_child, d_c
        self.stem = _Stem(widths[:3], name="stem")
        self.trunk = _Trunk(widths[3:], name="trunk")
        self.fc = _DenseNormAct(hidden, name="fc")
        self.logits = _dense(n_child, bias=True, name="e_c_hat", dtype="float32")
        self.mu = _dense(d_c, bias=True, name="mu_c", dtype="float32")
        self.sigma = _dense(d_c, bias=True, name="sigma_c", dtype="float32")

    def call(self, I):
        _check_image(I, 3, self.image_size, "E_c")
        H_c = self.stem(I)
        h_c = self.fc(self.trunk(H_c)[1])
        return {"H_c": H_c, "h_c": h_c, "e_c_hat": self.logits(h_c), "mu_c": self.mu(h_c),
                "sigma_c": self.sigma(h_c)}

    def get_config(self):
        return {**super().get_config(), "n_child": self.n_child, "d_c": self.d_c}


@register
class ShapeEncoder(_EncoderBase):
    """E_p (Tab. 6, docs/design.md §3): I -> {e_p_hat (N_P), mu_p, sigma_p (d_p), mu_z, sigma_z (d_z), B_fg, H_p,
    h_p, h_z}. With `pose_classes` > 0 (`--pose_discrete`) a Linear head on h_z also reads the pose of
    `pose.PoseWarp`: `pose_class_hat` (logits over the discrete poses) and `pose_fine_hat` (B, 4), the residual
    turn, scale and shift (not in the paper)."""

    def __init__(self, image_size, widths, hidden, n_parent: int, d_p: int, d_z: int, bypass_width: int,
                 norm: str = "glu_lnorm", pose_classes: int = 0, **kwargs):
        super().__init__(image_size, widths, hidden, **kwargs)
        self.n_parent, self.d_p, self.d_z, self.bypass_width, self.norm = n_parent, d_p, d_z, bypass_width, norm
        self.pose_classes = int(pose_classes)
        self.stem = _Stem(widths[:3], name="stem")
        self.bypass1 = SameBlock(bypass_width, norm, name="bypass1")
        self.bypass2 = SameBlock(bypass_width, norm, name="bypass2")
        self.trunk = _Trunk(widths[3:], name="trunk")
        self.fc_p = _DenseNormAct(hidden, name="fc_p")
        self.fc_z = _DenseNormAct(hidden, name="fc_z")
        self.logits = _dense(n_parent, bias=True, name="e_p_hat", dtype="float32")
        self.mu_p = _dense(d_p, bias=True, name="mu_p", dtype="float32")
        self.sigma_p = _dense(d_p, bias=True, name="sigma_p", dtype="float32")
        self.mu_z = _dense(d_z, bias=True, name="mu_z", dtype="float32")
        self.sigma_z = _dense(d_z, bias=True, name="sigma_z", dtype="float32")
        if self.pose_classes:
            self.pose_hat = _dense(self.pose_classes + N_FINE_POSE, bias=True, name="pose_hat", dtype="float32")

    def call(self, I):
        _check_image(I, 3, self.image_size, "E_p")
        H_p = self.stem(I)
        h = self.trunk(H_p)[1]
        h_p, h_z = self.fc_p(h), self.fc_z(h)
        out = {"H_p": H_p, "B_fg": self.bypass2(self.bypass1(H_p)), "h_p": h_p, "h_z": h_z,
               "e_p_hat": self.logits(h_p), "mu_p": self.mu_p(h_p), "sigma_p": self.sigma_p(h_p),
               "mu_z": self.mu_z(h_z), "sigma_z": self.sigma_z(h_z)}
        if self.pose_classes:
            read = self.pose_hat(h_z)
            out.update(pose_class_hat=read[:, :self.pose_classes], pose_fine_hat=read[:, self.pose_classes:])
        return out

    def get_config(self):
        return {**super().get_config(), "n_parent": self.n_parent, "d_p": self.d_p, "d_z": self.d_z,
                "bypass_width": self.bypass_width, "norm": self.norm, "pose_classes": self.pose_classes}


@register
class BackgroundEncoder(keras.Model):
    """E_bg (Tab. 7, docs/design.md §3): concat(I, I_m) -> stem (4 channels) -> SAMEBlk x2 = B_bg."""

    def __init__(self, image_size: int, widths: tuple, bypass_width: int, norm: str = "glu_lnorm", **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.widths, self.bypass_width, self.norm = image_size, tuple(widths), bypass_width, norm
        self.stem = _Stem(widths, name="stem")
        self.bypass1 = SameBlock(bypass_width, norm, name="bypass1")
        self.bypass2 = SameBlock(bypass_width, norm, name="bypass2")

    def call(self, inputs):
        I, I_m = inputs
        _check_image(I, 3, self.image_size, "E_bg")
        _check_image(I_m, 1, self.image_size, "E_bg (mask)")
        H_bg = self.stem(ops.concatenate([ops.cast(I, self.compute_dtype), ops.cast(I_m, self.compute_dtype)], -1))
        return {"H_bg": H_bg, "B_bg": self.bypass2(self.bypass1(H_bg))}

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "widths": list(self.widths),
                "bypass_width": self.bypass_width, "norm": self.norm}


@register
class BackgroundDiscriminator(keras.Model):
    """D_bg (Tab. 8, FineGAN's patch discriminator): I -> {D_bgA, D_bgB (patch logits), D_bgC (features)}."""

    def __init__(self, image_size: int, widths: tuple, **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.widths = image_size, tuple(widths)
        self.resize_to, strides = D_BG_GEOMETRY[image_size]
        _set_blocks(self, "conv", [conv(w, 4, s, bias=True, padding="valid", name=f"conv{i + 1}")
                                   for i, (w, s) in enumerate(zip(widths, strides))])
        self.head_a = conv(1, 4, bias=True, padding="valid", name="D_bgA", dtype="float32")
        self.head_b = conv(1, 4, bias=True, padding="valid", name="D_bgB", dtype="float32")

    def call(self, I):
        _check_image(I, 3, self.image_size, "D_bg")
        x = ops.image.resize(I, (self.resize_to, self.resize_to), interpolation="bilinear", antialias=False)
        for layer in _blocks(self, "conv", len(self.widths)):
            x = ops.leaky_relu(layer(x), 0.2)
        x32 = ops.cast(x, "float32")
        return {"D_bgC": x, "D_bgA": self.head_a(x32), "D_bgB": self.head_b(x32)}

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "widths": list(self.widths)}


@register
class ObjectDiscriminator(keras.Model):
    """D_c (Tab. 9): I -> {D_cA (real/fake logit), D_cB (N_C logits), D_cC (perceptual features, 1/16 size)}.

    Head B (`head_b_*` layers) is trained by the classification loss L_E alone (docs/design.md §5); its variables are
    listed by `head_b_variables` so the trainer keeps them out of the discriminator's own update.
    """

    def __init__(self, image_size: int, widths: tuple, hidden: int, n_child: int, **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.widths, self.hidden, self.n_child = image_size, tuple(widths), hidden, n_child
        self.stem = _Stem(widths[:3], name="stem")
        self.trunk = _Trunk(widths[3:], name="trunk")
        self.head_a_fc = _DenseNormAct(hidden, name="head_a_fc")
        self.head_a = _dense(1, bias=True, name="D_cA", dtype="float32")
        self.head_b_fc = _DenseNormAct(hidden, name="head_b_fc")
        self.head_b = _dense(n_child, bias=True, name="D_cB", dtype="float32")

    def call(self, I):
        _check_image(I, 3, self.image_size, "D_c")
        D_cC, H = self.trunk(self.stem(I))
        return {"D_cC": D_cC, "D_cA": self.head_a(self.head_a_fc(H)), "D_cB": self.head_b(self.head_b_fc(H))}

    @property
    def head_b_variables(self):
        return self.head_b_fc.trainable_variables + self.head_b.trainable_variables

    @property
    def own_variables(self):
        """Every trainable variable but head B's: what the discriminator loss (Eq. 10) updates."""
        head_b = {id(v) for v in self.head_b_variables}
        return [v for v in self.trainable_variables if id(v) not in head_b]

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "widths": list(self.widths),
                "hidden": self.hidden, "n_child": self.n_child}


# The networks of one OneGAN, in the order of docs/design.md §3, by their paper names.
NETWORK_NAMES = ("V_bg", "V_p", "V_c", "G_bg0", "G_bg1", "G_fg0", "G_fg1", "G_fg2",
                 "E_c", "E_p", "E_bg", "D_bg", "D_c")


def build_networks(cfg: ModelConfig, names: tuple[str, ...] = NETWORK_NAMES) -> dict[str, keras.Model]:
    """Every sub-network of one OneGAN (or those in `names`), sized by `cfg`, built (weights created) without
    a training step."""
    unknown = sorted(set(names) - set(NETWORK_NAMES))
    if unknown:
        raise ValueError(f"no network named {', '.join(unknown)}; the networks are {', '.join(NETWORK_NAMES)}")
    w = cfg.width
    S = cfg.image_size
    gen = tuple(w(c) for c in GEN_WIDTHS)
    enc = tuple(w(c) for c in ENC_WIDTHS)
    hidden = w(HIDDEN)
    nets = {
        "V_bg": Embedding(cfg.n_parent, cfg.d_bg, name="V_bg"),
        "V_p": Embedding(cfg.n_parent, cfg.d_p, name="V_p"),
        "V_c": Embedding(cfg.n_child, cfg.d_c, name="V_c"),
        "G_bg0": PreImageGenerator(S, gen[:3], cfg.norm, name="G_bg0"),
        "G_bg1": BackgroundRenderer(gen[3:], cfg.norm, name="G_bg1"),
        "G_fg0": PreImageGenerator(S, gen[:3], cfg.norm, cfg.shape_code_gain, name="G_fg0"),
        "G_fg1": ForegroundUpsampler(tuple(w(c) for c in FG1_WIDTHS), cfg.norm, name="G_fg1"),
        "G_fg2": ForegroundRenderer(tuple(w(c) for c in FG2_WIDTHS), cfg.norm, cfg.mask_sees_parent,
                                    cfg.mask_before_child, cfg.pose_warp, cfg.d_z, cfg.pose_turn_init,
                                    cfg.pose_discrete, name="G_fg2"),
        "E_c": StyleEncoder(S, enc, hidden, cfg.n_child, cfg.d_c, name="E_c"),
        "E_p": ShapeEncoder(S, enc, hidden, cfg.n_parent, cfg.d_p, cfg.d_z, gen[2], cfg.norm,
                            N_DISCRETE_POSES if cfg.pose_discrete else 0, name="E_p"),
        "E_bg": BackgroundEncoder(S, enc[:3], gen[2], cfg.norm, name="E_bg"),
        "D_bg": BackgroundDiscriminator(S, (w(64), w(128), w(256)), name="D_bg"),
        "D_c": ObjectDiscriminator(S, enc, hidden, cfg.n_child, name="D_c"),
    }
    nets = {name: nets[name] for name in NETWORK_NAMES if name in names}
    _build(nets, cfg)
    return nets


def network_inputs(name: str, cfg: ModelConfig, batch: int = 1):
    """Zero inputs of the right shapes for network `name` (used to build it and in tests)."""
    S, a = cfg.image_size, cfg.image_size // 8
    A = ops.zeros((batch, a, a, cfg.width(GEN_WIDTHS[2])))
    img = ops.zeros((batch, S, S, 3))
    return {
        "V_bg": ops.zeros((batch, cfg.n_parent)), "V_p": ops.zeros((batch, cfg.n_parent)),
        "V_c": ops.zeros((batch, cfg.n_child)),
        "G_bg0": (ops.zeros((batch, cfg.d_bg)), ops.zeros((batch, cfg.d_z))),
        "G_fg0": (ops.zeros((batch, cfg.d_p)), ops.zeros((batch, cfg.d_z))),
        "G_bg1": A, "G_fg1": A,
        "G_fg2": (ops.zeros((batch, S, S, cfg.width(FG1_WIDTHS[-1]))), ops.zeros((batch, cfg.d_p)),
                  ops.zeros((batch, cfg.d_c))) + ((ops.zeros((batch, cfg.d_z)),) if cfg.pose_warp else ()),
        "E_c": img, "E_p": img, "E_bg": (img, ops.zeros((batch, S, S, 1))), "D_bg": img, "D_c": img,
    }[name]


def _build(nets, cfg):
    for name, net in nets.items():
        net(network_inputs(name, cfg))
