"""An eager PyTorch implementation of onegan_tf's architecture and training step: the speed baseline.

Standalone (torch + numpy only); not part of the onegan_tf package and not one of its dependencies. It
mirrors docs/design.md §2-5 as onegan_tf builds it:

- the blocks of `onegan_tf/layers.py` (GLU-LNorm, UPBlk, SAMEBlk, DOWNBlk, RESBlk0, RESBlk) and the 13
  networks of `onegan_tf/networks.py` with the same widths at any image size / channel multiplier
  (`ModelConfig.width`: w(c) = c at multiplier 1, else max(8, round(c * mult)); `D_BG_GEOMETRY`);
- one training step of `onegan_tf/trainer.py` (`OneGANTrainer._replica_fn`) per phase: discriminator updates
  of each path against its own (D_bg, D_c) pair on stopped fakes (Eq. 10), then one Adam update of the
  embeddings, generators, encoders and D_c's head B on L_GEN + L_AE (Eq. 11-18) with the default weights.

It is built to do the same work, not to train well. Differences from onegan_tf that do not change the model
FLOPs (`forward_flops` below counts them by hooks, to be compared with `onegan_tf.flops.step_flops`):

- layout NCHW (PyTorch's default; `--channels_last` picks NHWC memory format), so the Linear before the
  generator stems reshapes to (C, H, W) and the trunks flatten (C, H, W): a permutation of the same weights;
- weight initialisation is PyTorch's default (onegan_tf: Keras' glorot-uniform); Adam eps 1e-7 as Keras;
- random draws come from torch's generator, not TF's stateless streams (same distributions);
- LayerNorm is `GroupNorm(1, c)` (the same semantics: per sample over C, H, W, per-channel affine, eps 1e-5).

Only the generation side's gradients are taken through the discriminators (their own weights are frozen
for that backward, as TF's tape only differentiates w.r.t. the generator variables).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# onegan_tf.networks constants (full-size widths before the channel multiplier).
D_BG_GEOMETRY = {128: (126, (2, 2, 4)), 64: (62, (2, 2, 2)), 32: (30, (2, 1, 1))}
GEN_WIDTHS = (1024, 512, 256, 128, 64, 32)
FG1_WIDTHS = (128, 64, 64)
FG2_WIDTHS = (32, 16)
ENC_WIDTHS = (64, 128, 256, 512, 1024)
HIDDEN = 512
NETWORK_NAMES = ("V_bg", "V_p", "V_c", "G_bg0", "G_bg1", "G_fg0", "G_fg1", "G_fg2",
                 "E_c", "E_p", "E_bg", "D_bg", "D_c")
EPS = 1e-5


class Cfg:
    """The subset of onegan_tf.config.ModelConfig the architecture needs (defaults: Birds, paper sizes)."""

    def __init__(self, image_size=128, channel_mult=1.0, n_child=200, n_parent=20, d_z=100, d_c=32, d_p=16,
                 d_bg=32):
        self.image_size, self.channel_mult = image_size, channel_mult
        self.n_child, self.n_parent, self.d_z, self.d_c, self.d_p, self.d_bg = n_child, n_parent, d_z, d_c, d_p, d_bg

    def width(self, c):
        return c if self.channel_mult == 1.0 else max(8, int(round(c * self.channel_mult)))


def layer_norm(c):
    return nn.GroupNorm(1, c, eps=EPS)


def lrelu(x):
    return F.leaky_relu(x, 0.2)


# ------------------------------------------------------------------------------------------------ blocks


class GLUNorm(nn.Module):
    """GLU-LNorm: LN(x_L) * sigmoid(x_R) on 2c channels -> c."""

    def __init__(self, c):
        super().__init__()
        self.norm = layer_norm(c)

    def forward(self, x):
        x_l, x_r = x.chunk(2, dim=1)
        return self.norm(x_l) * torch.sigmoid(x_r)


class UpBlock(nn.Module):
    upsample = True

    def __init__(self, ci, co):
        super().__init__()
        self.conv = nn.Conv2d(ci, 2 * co, 3, padding=1, bias=False)
        self.glu = GLUNorm(co)

    def forward(self, x):
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.glu(self.conv(x))


class SameBlock(UpBlock):
    upsample = False


class DownBlock(nn.Module):
    def __init__(self, ci, co):
        super().__init__()
        self.conv = nn.Conv2d(ci, co, 4, stride=2, padding=1, bias=False)
        self.norm = layer_norm(co)

    def forward(self, x):
        return lrelu(self.norm(self.conv(x)))


class ResBlock0(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, 2 * c, 3, padding=1, bias=False)
        self.glu1 = GLUNorm(c)
        self.conv2 = nn.Conv2d(c, 2 * c, 3, padding=1, bias=False)
        self.glu2 = GLUNorm(c)

    def forward(self, x):
        return x + self.glu2(self.conv2(self.glu1(self.conv1(x))))


def broadcast_code(code, like):
    return code[:, :, None, None].expand(-1, -1, like.shape[2], like.shape[3])


class ResBlock(nn.Module):
    def __init__(self, ci, d, co):
        super().__init__()
        self.conv_in = nn.Conv2d(ci + d, 2 * ci, 3, padding=1, bias=False)
        self.glu_in = GLUNorm(ci)
        self.res1, self.res2 = ResBlock0(ci), ResBlock0(ci)
        self.conv_out = nn.Conv2d(ci, 2 * co, 3, padding=1, bias=False)
        self.glu_out = GLUNorm(co)

    def forward(self, x, code):
        x = torch.cat([x, broadcast_code(code, x)], 1)
        x = self.res2(self.res1(self.glu_in(self.conv_in(x))))
        return self.glu_out(self.conv_out(x))


# ---------------------------------------------------------------------------------------------- networks


class Embedding(nn.Module):
    def __init__(self, n, d):
        super().__init__()
        self.table = nn.Linear(n, d, bias=False)

    def forward(self, one_hot):
        return self.table(one_hot)


class PreImageGenerator(nn.Module):
    """G_bg0 / G_fg0: Linear(d + d_z -> s*s*2w0) -> reshape -> GLU-LNorm -> UPBlk -> UPBlk = A."""

    def __init__(self, image_size, d, d_z, widths):
        super().__init__()
        self.side, self.w0 = image_size // 32, widths[0]
        self.fc = nn.Linear(d + d_z, self.side * self.side * 2 * widths[0], bias=False)
        self.glu = GLUNorm(widths[0])
        self.up1 = UpBlock(widths[0], widths[1])
        self.up2 = UpBlock(widths[1], widths[2])

    def forward(self, v, z):
        x = self.fc(torch.cat([v, z], -1)).reshape(-1, 2 * self.w0, self.side, self.side)
        return self.up2(self.up1(self.glu(x)))


class ForegroundUpsampler(nn.Module):
    def __init__(self, ci, widths):
        super().__init__()
        ins = (ci,) + tuple(widths[:-1])
        self.ups = nn.ModuleList(UpBlock(i, o) for i, o in zip(ins, widths))

    def forward(self, A):
        for up in self.ups:
            A = up(A)
        return A


class BackgroundRenderer(ForegroundUpsampler):
    def __init__(self, ci, widths):
        super().__init__(ci, widths)
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def forward(self, A):
        return torch.tanh(self.to_rgb(super().forward(A)))


class ForegroundRenderer(nn.Module):
    def __init__(self, ci, widths, d_p, d_c):
        super().__init__()
        self.res_p = ResBlock(ci, d_p, widths[0])
        self.res_c = ResBlock(widths[0], d_c, widths[1])
        self.to_rgb = nn.Conv2d(widths[1], 3, 3, padding=1)
        self.to_mask = nn.Conv2d(widths[1], 1, 3, padding=1)

    def forward(self, C_fg0, v_p, v_c):
        C = self.res_c(self.res_p(C_fg0, v_p), v_c)
        return torch.tanh(self.to_rgb(C)), torch.sigmoid(self.to_mask(C))


class DenseNormAct(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.fc = nn.Linear(i, o, bias=False)
        self.norm = nn.LayerNorm(o, eps=EPS)

    def forward(self, x):
        return lrelu(self.norm(self.fc(x)))


class Stem(nn.Module):
    def __init__(self, ci, widths):
        super().__init__()
        self.conv = nn.Conv2d(ci, widths[0], 4, stride=2, padding=1, bias=False)
        self.norm = layer_norm(widths[0])
        self.down1 = DownBlock(widths[0], widths[1])
        self.down2 = DownBlock(widths[1], widths[2])

    def forward(self, x):
        return self.down2(self.down1(lrelu(self.norm(self.conv(x)))))


class Trunk(nn.Module):
    def __init__(self, ci, widths):
        super().__init__()
        self.down1 = DownBlock(ci, widths[0])
        self.down2 = DownBlock(widths[0], widths[1])
        self.conv = nn.Conv2d(widths[1], widths[1], 3, padding=1, bias=False)
        self.norm = layer_norm(widths[1])

    def forward(self, H):
        C = self.down1(H)
        return C, lrelu(self.norm(self.conv(self.down2(C)))).flatten(1)


def _flat(cfg, enc):
    s = cfg.image_size // 32
    return enc[4] * s * s


class StyleEncoder(nn.Module):
    """E_c."""

    def __init__(self, cfg, enc, hidden):
        super().__init__()
        self.stem, self.trunk = Stem(3, enc[:3]), Trunk(enc[2], enc[3:])
        self.fc = DenseNormAct(_flat(cfg, enc), hidden)
        self.logits = nn.Linear(hidden, cfg.n_child)
        self.mu, self.sigma = nn.Linear(hidden, cfg.d_c), nn.Linear(hidden, cfg.d_c)

    def forward(self, I):
        h = self.fc(self.trunk(self.stem(I))[1])
        return {"e_c_hat": self.logits(h), "mu_c": self.mu(h), "sigma_c": self.sigma(h)}


class ShapeEncoder(nn.Module):
    """E_p: stem -> bypass SAMEBlk x2 = B_fg; trunk -> h_p (logits, mu_p, sigma_p), h_z (mu_z, sigma_z)."""

    def __init__(self, cfg, enc, hidden, bypass):
        super().__init__()
        self.stem = Stem(3, enc[:3])
        self.bypass1, self.bypass2 = SameBlock(enc[2], bypass), SameBlock(bypass, bypass)
        self.trunk = Trunk(enc[2], enc[3:])
        self.fc_p, self.fc_z = DenseNormAct(_flat(cfg, enc), hidden), DenseNormAct(_flat(cfg, enc), hidden)
        self.logits = nn.Linear(hidden, cfg.n_parent)
        self.mu_p, self.sigma_p = nn.Linear(hidden, cfg.d_p), nn.Linear(hidden, cfg.d_p)
        self.mu_z, self.sigma_z = nn.Linear(hidden, cfg.d_z), nn.Linear(hidden, cfg.d_z)

    def forward(self, I):
        H = self.stem(I)
        h = self.trunk(H)[1]
        h_p, h_z = self.fc_p(h), self.fc_z(h)
        return {"B_fg": self.bypass2(self.bypass1(H)), "e_p_hat": self.logits(h_p), "mu_p": self.mu_p(h_p),
                "sigma_p": self.sigma_p(h_p), "mu_z": self.mu_z(h_z), "sigma_z": self.sigma_z(h_z)}


class BackgroundEncoder(nn.Module):
    def __init__(self, enc, bypass):
        super().__init__()
        self.stem = Stem(4, enc[:3])
        self.bypass1, self.bypass2 = SameBlock(enc[2], bypass), SameBlock(bypass, bypass)

    def forward(self, I, I_m):
        return self.bypass2(self.bypass1(self.stem(torch.cat([I, I_m], 1))))


class BackgroundDiscriminator(nn.Module):
    """D_bg: bilinear resize -> 3 valid convs + lReLU = D_bgC; heads D_bgA, D_bgB (patch logits)."""

    def __init__(self, image_size, widths):
        super().__init__()
        self.resize_to, strides = D_BG_GEOMETRY[image_size]
        ins = (3,) + tuple(widths[:-1])
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 4, stride=s) for i, o, s in zip(ins, widths, strides))
        self.head_a, self.head_b = nn.Conv2d(widths[-1], 1, 4), nn.Conv2d(widths[-1], 1, 4)

    def forward(self, I):
        x = F.interpolate(I, size=(self.resize_to, self.resize_to), mode="bilinear", align_corners=False)
        for conv in self.convs:
            x = lrelu(conv(x))
        return {"D_bgC": x, "D_bgA": self.head_a(x), "D_bgB": self.head_b(x)}


class ObjectDiscriminator(nn.Module):
    """D_c: stem -> trunk (D_cC after its first DOWNBlk) -> head A (real/fake), head B (N_C logits)."""

    def __init__(self, cfg, enc, hidden):
        super().__init__()
        self.stem, self.trunk = Stem(3, enc[:3]), Trunk(enc[2], enc[3:])
        self.head_a_fc, self.head_a = DenseNormAct(_flat(cfg, enc), hidden), nn.Linear(hidden, 1)
        self.head_b_fc, self.head_b = DenseNormAct(_flat(cfg, enc), hidden), nn.Linear(hidden, cfg.n_child)

    def forward(self, I):
        C, H = self.trunk(self.stem(I))
        return {"D_cC": C, "D_cA": self.head_a(self.head_a_fc(H)), "D_cB": self.head_b(self.head_b_fc(H))}

    def head_b_parameters(self):
        return list(self.head_b_fc.parameters()) + list(self.head_b.parameters())

    def own_parameters(self):
        hb = {id(p) for p in self.head_b_parameters()}
        return [p for p in self.parameters() if id(p) not in hb]


def build_networks(cfg: Cfg) -> dict:
    """The 13 networks of onegan_tf.networks.build_networks, same widths."""
    w, S = cfg.width, cfg.image_size
    gen = tuple(w(c) for c in GEN_WIDTHS)
    enc = tuple(w(c) for c in ENC_WIDTHS)
    fg1 = tuple(w(c) for c in FG1_WIDTHS)
    hidden = w(HIDDEN)
    return {
        "V_bg": Embedding(cfg.n_parent, cfg.d_bg), "V_p": Embedding(cfg.n_parent, cfg.d_p),
        "V_c": Embedding(cfg.n_child, cfg.d_c),
        "G_bg0": PreImageGenerator(S, cfg.d_bg, cfg.d_z, gen[:3]),
        "G_bg1": BackgroundRenderer(gen[2], gen[3:]),
        "G_fg0": PreImageGenerator(S, cfg.d_p, cfg.d_z, gen[:3]),
        "G_fg1": ForegroundUpsampler(gen[2], fg1),
        "G_fg2": ForegroundRenderer(fg1[-1], tuple(w(c) for c in FG2_WIDTHS), cfg.d_p, cfg.d_c),
        "E_c": StyleEncoder(cfg, enc, hidden),
        "E_p": ShapeEncoder(cfg, enc, hidden, gen[2]),
        "E_bg": BackgroundEncoder(enc, gen[2]),
        **dict(zip(("D_bg", "D_c"), build_discriminators(cfg))),
    }


def parameter_counts(nets: dict) -> dict:
    return {k: sum(p.numel() for p in nets[k].parameters()) for k in NETWORK_NAMES}


# ------------------------------------------------------------------------------------------------ losses


# The losses are computed in float32 whatever dtype autocast gave their inputs (as onegan_tf's losses are
# under a mixed policy); in float32 the casts are no-ops.
def bce(logits, target):
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def mse(target, pred):
    return F.mse_loss(pred.float(), target.detach().float())


def l1(target, pred):
    return (pred.float() - target.float()).abs().mean()


def kl(mu, sigma, mean=None):
    mu, sigma = mu.float(), sigma.float()
    diff = mu if mean is None else mu - mean.float()
    return (0.5 * (sigma.exp() + diff.square() - 1.0 - sigma).sum(-1)).mean()


def adv(D_bgA, D_bgB, D_cA):
    """Eq. 11."""
    return 10.0 * bce(D_bgA, 1.0) + bce(D_bgB, 1.0) + bce(D_cA, 1.0)


def mask_reg(I_m, t=0.5):
    I_m = I_m.float()
    m = I_m.mean((1, 2, 3))
    s = 2.0 * I_m - 1.0
    md = (s.clamp(min=0).mean((1, 2, 3)) - t).abs() + (s.clamp(max=0).mean((1, 2, 3)) + (1 - t)).abs()
    return ((m - t).abs() + 0.1 * md).mean()


def compose(I_bg, I_fg, I_m):
    return I_bg * (1.0 - I_m) + I_fg * I_m


def mix(a, b, beta):
    beta = beta.reshape((-1,) + (1,) * (a.dim() - 1))
    return a * (1.0 - beta) + b * beta


# ------------------------------------------------------------------------------------------------ trainer


PHASE_REC = {"I": (), "IIa": ("rec_fake",), "IIb": ("rec_fake", "rec_real")}
# Eq. 14 / 18 weights: onegan_tf.config.TrainConfig defaults.
W = {"L_G": 1.0, "L_E": 1.0, "L_MSE": 1.0, "L_Rv": 0.1, "L_RM": 2.0, "L_VAE": 1.0, "L_REC": 1.0, "L_PER": 1.0,
     "L_adv_rec": 1.0}


ADAM_IMPLS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for_loop": {"foreach": False}}
# Mixed precision: PyTorch's CPU autocast, the counterpart of onegan_tf's --mixed_precision=mixed_bfloat16.
AUTOCAST = {"off": None, "bf16": torch.bfloat16}


def tune_malloc() -> bool:
    """glibc malloc as a PyTorch CPU user tunes it: no mmap for large blocks, no trimming of the heap.

    The same effect as MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the environment, applied from inside
    the process (mallopt takes an int: 2 GiB - 1 is the largest threshold it accepts). Without it every
    activation above the dynamic mmap threshold is a fresh mmap + page faults + munmap at every step.
    """
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    biggest = 2 ** 31 - 1
    return bool(libc.mallopt(M_MMAP_THRESHOLD, biggest)) and bool(libc.mallopt(M_TRIM_THRESHOLD, biggest))


TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"  # Debian's libtcmalloc-minimal4


def preload_tcmalloc(argv) -> None:
    """Run this program again with tcmalloc preloaded, unless it already is (an allocator is chosen before
    a process starts: LD_PRELOAD). The same as starting it with LD_PRELOAD=<libtcmalloc_minimal.so.4>."""
    import os
    import sys

    if TCMALLOC in os.environ.get("LD_PRELOAD", "").split(":"):
        return
    if not os.path.exists(TCMALLOC):
        raise SystemExit(f"--malloc=tcmalloc: {TCMALLOC} is missing; install it with "
                         "`apt-get install libtcmalloc-minimal4`, or pick --malloc=tuned (glibc, mallopt)")
    preload = ":".join(p for p in (TCMALLOC, os.environ.get("LD_PRELOAD", "")) if p)
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *argv],
              {**os.environ, "LD_PRELOAD": preload})


class Trainer:
    """Networks, the two discriminator clone pairs, four Adam optimisers and `step(batch, phase)`."""

    def __init__(self, cfg: Cfg, channels_last: bool = False, adam_impl: str = "fused", lr=2e-4,
                 betas=(0.5, 0.999), autocast: str = "off"):
        self.cfg = cfg
        if autocast not in AUTOCAST:
            raise ValueError(f"autocast={autocast!r}: one of {tuple(AUTOCAST)}")
        self.autocast_dtype = AUTOCAST[autocast]
        self.n = build_networks(cfg)
        self.D = {"gen": (self.n["D_bg"], self.n["D_c"])}
        for path in ("rec_fake", "rec_real"):   # clones: weights copied, as on entering Phase II
            bg, c = build_discriminators(cfg)
            bg.load_state_dict(self.n["D_bg"].state_dict())
            c.load_state_dict(self.n["D_c"].state_dict())
            self.D[path] = (bg, c)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        for m in list(self.n.values()) + [m for pair in self.D.values() for m in pair]:
            m.to(memory_format=self.memory_format)
            m.train()
        self.g_params = [p for k in NETWORK_NAMES[:11] for p in self.n[k].parameters()]
        self.g_params += self.n["D_c"].head_b_parameters()
        # ADAM_IMPLS: the three CPU implementations PyTorch offers; "fused" is one kernel over all parameters.
        adam = dict(lr=lr, betas=betas, eps=1e-7, **ADAM_IMPLS[adam_impl])
        self.opt_G = torch.optim.Adam(self.g_params, **adam)
        self.d_params = {p: list(bg.parameters()) + c.own_parameters() for p, (bg, c) in self.D.items()}
        self.opt_D = {p: torch.optim.Adam(v, **adam) for p, v in self.d_params.items()}
        self._d_all = {p: [q for m in pair for q in m.parameters()] for p, pair in self.D.items()}

    def autocast(self):
        """torch.autocast on the CPU at the chosen dtype; a no-op context without one."""
        return torch.autocast("cpu", dtype=self.autocast_dtype or torch.bfloat16,
                              enabled=self.autocast_dtype is not None)

    def _d_trainable(self, path, flag):
        for p in self._d_all[path]:
            p.requires_grad_(flag)
        if path == "gen":   # head B of D_c is trained by L_E (generator side)
            for p in self.n["D_c"].head_b_parameters():
                p.requires_grad_(True)

    def embed(self, child, parent):
        c = self.cfg
        e_c, e_p = F.one_hot(child, c.n_child).float(), F.one_hot(parent, c.n_parent).float()
        return {"v_c": self.n["V_c"](e_c), "v_p": self.n["V_p"](e_p), "v_bg": self.n["V_bg"](e_p)}

    def generate(self, child, z):
        n = self.n
        codes = self.embed(child, child // (self.cfg.n_child // self.cfg.n_parent))
        A_bg, A_fg = n["G_bg0"](codes["v_bg"], z), n["G_fg0"](codes["v_p"], z)
        I_bg = n["G_bg1"](A_bg)
        I_fg, I_m = n["G_fg2"](n["G_fg1"](A_fg), codes["v_p"], codes["v_c"])
        return {**codes, "A_bg": A_bg, "A_fg": A_fg, "I_bg": I_bg, "I_fg": I_fg, "I_m": I_m,
                "I": compose(I_bg, I_fg, I_m)}

    def encode(self, I):
        return {**self.n["E_p"](I), **self.n["E_c"](I)}

    def reconstruct(self, I, noise):
        n = self.n
        enc = self.encode(I)
        v_p_hat = enc["mu_p"] + (0.5 * enc["sigma_p"]).exp() * noise["eps_p"]
        v_c_hat = enc["mu_c"] + (0.5 * enc["sigma_c"]).exp() * noise["eps_c"]
        z_hat = enc["mu_z"] + (0.5 * enc["sigma_z"]).exp() * noise["eps_z"]
        codes = self.embed(enc["e_c_hat"].argmax(-1), enc["e_p_hat"].argmax(-1))
        v_pmix = mix(codes["v_p"], v_p_hat, noise["beta1"])
        v_cmix = mix(codes["v_c"], v_c_hat, noise["beta2"])
        A_fg = mix(n["G_fg0"](v_pmix, z_hat), enc["B_fg"], noise["beta3"])
        I_fg, I_m = n["G_fg2"](n["G_fg1"](A_fg), v_pmix, v_cmix)
        A_bg = mix(n["G_bg0"](codes["v_bg"], z_hat), n["E_bg"](I, I_m), noise["beta4"])
        I_bg = n["G_bg1"](A_bg)
        return {**enc, **codes, "I_fg_hat": I_fg, "I_m_hat": I_m, "I_bg_hat": I_bg,
                "I_hat": compose(I_bg, I_fg, I_m)}

    def step(self, batch, phase="IIb"):
        """One iteration of `phase`; returns the total generator-side loss as a float (syncs). With `autocast`
        the forward passes and losses run under torch.autocast (bf16 convolutions and matrix products), each
        backward and optimiser update outside it, as PyTorch's mixed-precision recipe has it."""
        rec_paths = PHASE_REC[phase]
        x_c, x_bg, child = batch["x_c"], batch["x_bg"], batch["child"]
        b = x_c.shape[0]
        for path in self.D:
            self._d_trainable(path, False)
        with self.autocast():
            gen = self.generate(child, batch["z"])
            sources = {"rec_fake": gen["I"].detach(), "rec_real": x_c}
            recs = {p: self.reconstruct(sources[p], batch[p]) for p in rec_paths}
        # Discriminator updates (Eq. 10), each path against its own pair, on stopped fakes.
        fakes = {"gen": (gen["I_bg"], gen["I"]), **{p: (r["I_bg_hat"], r["I_hat"]) for p, r in recs.items()}}
        for path, (fake_bg, fake) in fakes.items():
            D_bg, D_c = self.D[path]
            self._d_trainable(path, True)
            with self.autocast():
                bg = D_bg(torch.cat([x_bg, fake_bg.detach(), x_c], 0))
                c = D_c(torch.cat([x_c, fake.detach()], 0))
                L_D = (10.0 * (bce(bg["D_bgA"][:b], 1.0) + bce(bg["D_bgA"][b:2 * b], 0.0))
                       + bce(bg["D_bgB"][:b], 1.0) + bce(bg["D_bgB"][2 * b:], 0.0)
                       + bce(c["D_cA"][:b], 1.0) + bce(c["D_cA"][b:], 0.0))
            opt = self.opt_D[path]
            opt.zero_grad(set_to_none=True)
            L_D.backward()
            opt.step()
            self._d_trainable(path, False)
        with self.autocast():
            total = self.generator_loss(gen, recs, sources, child, b)
        self.opt_G.zero_grad(set_to_none=True)
        total.backward()
        self.opt_G.step()
        return float(total.detach())

    def generator_loss(self, gen, recs, sources, child, b):
        """L_GEN + L_AE (Eq. 11-18) of the generator side, after the discriminator updates."""
        n = self.n
        # Generation losses (Eq. 11-14) through the updated gen pair (only head B of D_c is trained).
        D_bg, D_c = self.D["gen"]
        c_out, bg_out = D_c(gen["I"]), D_bg(gen["I_bg"])
        parent = child // (self.cfg.n_child // self.cfg.n_parent)
        enc = self.encode(gen["I"])   # L_E trains the generators through the encoders: I is not detached
        # L_MSE trains the encoders only: they read the detached fake (the fake path's encoding when that path
        # runs); `mse` detaches its targets.
        enc_fake = recs["rec_fake"] if "rec_fake" in recs else self.encode(gen["I"].detach())
        B_bg = n["E_bg"](gen["I"].detach(), gen["I_m"].detach())
        sq = lambda v: v.float().square().sum(-1).mean()  # noqa: E731
        total = (W["L_G"] * adv(bg_out["D_bgA"], bg_out["D_bgB"], c_out["D_cA"])
                 + W["L_E"] * (F.cross_entropy(enc["e_p_hat"], parent) + F.cross_entropy(enc["e_c_hat"], child)
                               + F.cross_entropy(c_out["D_cB"], child))
                 + W["L_MSE"] * (mse(gen["v_c"], enc_fake["mu_c"]) + mse(gen["v_p"], enc_fake["mu_p"])
                                 + mse(gen["A_fg"], enc_fake["B_fg"]) + mse(gen["A_bg"], B_bg))
                 + W["L_Rv"] * (sq(gen["v_p"]) + sq(gen["v_c"]) + sq(gen["v_bg"]))
                 + W["L_RM"] * mask_reg(gen["I_m"]))
        # Reconstruction losses (Eq. 15-18), each path against its own clones.
        for path, r in recs.items():
            fake = path == "rec_fake"
            D_bg, D_c = self.D[path]
            src = sources[path]
            L_VAE = (kl(r["mu_p"], r["sigma_p"], r["v_p"]) + kl(r["mu_c"], r["sigma_c"], r["v_c"])
                     + kl(r["mu_z"], r["sigma_z"]))
            L_REC = l1(src, r["I_hat"])
            if fake:
                L_REC = L_REC + l1(gen["I_bg"].detach(), r["I_bg_hat"]) + l1(gen["I_m"].detach(), r["I_m_hat"])
            c = D_c(torch.cat([src, r["I_hat"]], 0))
            L_PER = mse(c["D_cC"][:b], c["D_cC"][b:])
            if fake:
                bg = D_bg(torch.cat([gen["I_bg"].detach(), r["I_bg_hat"]], 0))
                L_PER = L_PER + mse(bg["D_bgC"][:b], bg["D_bgC"][b:])
                bg_hat = {k: v[b:] for k, v in bg.items()}
            else:
                bg_hat = D_bg(r["I_bg_hat"])
            total = (total + W["L_VAE"] * L_VAE + W["L_REC"] * L_REC + W["L_PER"] * L_PER
                     + W["L_adv_rec"] * adv(bg_hat["D_bgA"], bg_hat["D_bgB"], c["D_cA"][b:]))
        return total

    def random_batch(self, batch_size, gen: torch.Generator):
        """Random X_c, X_bg in [-1, 1] and one step's noise (child, z, per-path betas and eps)."""
        c, S = self.cfg, self.cfg.image_size
        img = lambda: (torch.rand(batch_size, 3, S, S, generator=gen) * 2 - 1).contiguous(  # noqa: E731
            memory_format=self.memory_format)
        out = {"x_c": img(), "x_bg": img(), "child": torch.randint(0, c.n_child, (batch_size,), generator=gen),
               "z": torch.randn(batch_size, c.d_z, generator=gen)}
        for path in ("rec_fake", "rec_real"):
            u = lambda lo: lo + (1 - lo) * torch.rand(batch_size, generator=gen)  # noqa: E731
            out[path] = {"beta1": u(0.0), "beta2": u(0.0), "beta3": u(0.5), "beta4": u(0.5),
                         "eps_p": torch.randn(batch_size, c.d_p, generator=gen),
                         "eps_c": torch.randn(batch_size, c.d_c, generator=gen),
                         "eps_z": torch.randn(batch_size, c.d_z, generator=gen)}
        return out


def build_discriminators(cfg):
    """A new (D_bg, D_c) pair of the same architecture (the clones of a reconstruction path)."""
    w = cfg.width
    return (BackgroundDiscriminator(cfg.image_size, (w(64), w(128), w(256))),
            ObjectDiscriminator(cfg, tuple(w(c) for c in ENC_WIDTHS), w(HIDDEN)))


def count_forward_flops(trainer: Trainer, batch, phase) -> int:
    """Forward FLOPs of one training step, counted by hooks on every Conv2d and Linear call (2 per
    multiply-add, as onegan_tf.flops): compare with onegan_tf.flops.step_flops(...)["forward"]."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total[0] += 2 * k * out.numel()
        else:
            total[0] += 2 * mod.in_features * out.numel()

    mods = {id(m): m for net in list(trainer.n.values()) + [m for p in trainer.D.values() for m in p]
            for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    handles = [m.register_forward_hook(hook) for m in mods.values()]
    try:
        trainer.step(batch, phase)
    finally:
        for h in handles:
            h.remove()
    return total[0]


# ------------------------------------------------------------------------------------------------ CLI


def main(argv=None):
    """`count`: parameter counts and hook-counted forward FLOPs per phase as one JSON line.
    `bench`: seconds per training step (median of --steps after --warmup), one JSON line.
    `profile`: the ops that take the most self CPU time in one step of the last of --phases (torch.profiler)."""
    import argparse
    import json
    import os
    import platform
    import statistics
    import sys
    import time

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("mode", choices=("count", "bench", "profile"))
    ap.add_argument("--image_size", type=int, default=128)
    ap.add_argument("--channel_mult", type=float, default=1.0)
    ap.add_argument("--batch_size", type=int, default=20)
    ap.add_argument("--phases", default="I,IIa,IIb")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (intra-op)")
    ap.add_argument("--channels_last", action="store_true", help="NHWC memory format (default NCHW)")
    ap.add_argument("--adam", choices=tuple(ADAM_IMPLS), default="fused",
                    help="torch.optim.Adam implementation (default: fused, one kernel for all parameters)")
    ap.add_argument("--malloc", choices=("tcmalloc", "tuned", "default"), default="tcmalloc",
                    help="tcmalloc: Debian's libtcmalloc-minimal4 preloaded (the program starts itself again "
                    "with LD_PRELOAD); tuned: glibc mallopt without mmap/trim thresholds (tune_malloc); "
                    "default: as started")
    ap.add_argument("--autocast", choices=tuple(AUTOCAST), default="off",
                    help="bf16: forward passes and losses under torch.autocast('cpu', torch.bfloat16), the "
                    "counterpart of onegan_tf's --mixed_precision=mixed_bfloat16 (default: off, float32)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.malloc == "tcmalloc":
        preload_tcmalloc(sys.argv[1:] if argv is None else argv)
    malloc_tuned = a.malloc == "tuned" and tune_malloc()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = Cfg(a.image_size, a.channel_mult)
    trainer = Trainer(cfg, channels_last=a.channels_last, adam_impl=a.adam, autocast=a.autocast)
    gen = torch.Generator().manual_seed(a.seed)
    phases = a.phases.split(",")
    if a.mode == "count":
        batch = trainer.random_batch(a.batch_size, gen)
        print(json.dumps({"params": parameter_counts(trainer.n),
                          "forward_flops": {p: count_forward_flops(trainer, batch, p) for p in phases}}))
        return
    batches = [trainer.random_batch(a.batch_size, gen) for _ in range(a.warmup + a.steps)]
    if a.mode == "profile":
        for batch in batches[:max(a.warmup, 1)]:
            trainer.step(batch, phases[-1])
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            trainer.step(batches[-1], phases[-1])
            print(f"profiled step: {time.perf_counter() - start:.3f} s (profiler on)")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
        return
    for phase in phases:
        seconds = []
        for i, batch in enumerate(batches):
            start = time.perf_counter()
            trainer.step(batch, phase)
            if i >= a.warmup:
                seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "")
        print(json.dumps({
            "framework": "torch", "what": "train", "phase": phase, "seconds_per_step": median,
            "images_per_s": a.batch_size / median, "step_seconds": seconds,
            "config": {"image_size": a.image_size, "channel_mult": a.channel_mult, "batch_size": a.batch_size,
                       "channels_last": a.channels_last, "adam": a.adam, "malloc": a.malloc,
                       "autocast": a.autocast,
                       "malloc_tuned": malloc_tuned, "ld_preload": os.environ.get("LD_PRELOAD", "")},
            "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()},
            "torch": torch.__version__, "cpu_model": cpu, "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "loadavg": list(os.getloadavg())}), flush=True)


if __name__ == "__main__":
    main()
