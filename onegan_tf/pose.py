"""The pose warp: the foreground drawn in a canonical pose, then placed by a pose taken from z (docs/design.md §3).

Not in the paper (`--pose_warp`, off in every paper config and in the demo). With the paper's G_fg0 the pose
code z sets the generated outline and the parent code barely moves it, while a real shape family comes in
every rotation, mirror and scale; a parent that owns one outline cannot cover that (docs/parents/README.md).
Here G_fg2 draws I_fg and I_m in a canonical frame and a small head on z turns, mirrors, scales and shifts
them, so the same parent in any pose is one code and the encoder trained on the fakes can learn a family
that does not depend on the pose.

- `pose_matrix(pose)`  the pose parameters (B, 5) = (theta, phi, rho, t_x, t_y) -> (B, 2, 3) sampling map
                       and the mirror's weight w (B,)
- `warp(images, M)`    bilinear sampling of images at M [x, y, 1] (normalised coordinates), differentiable in
                       the images and in M, zero outside the canonical frame
- `place(images, pose)` the drawing and its mirror image warped and blended
- `PoseWarp`           Linear(d_z, 2 + 3) on z -> place, for the pair (I_fg, I_m); with `discrete`,
                       Linear(d_z, 1 + 3) and one of `N_DISCRETE_POSES` quarter turns and mirrors
- `discrete_pose(z)`   that pose's index: which of z's first `N_DISCRETE_POSES` components is largest
- `compose_pose(k, fine)` such an index and the head's residual turn, scale and shift -> (B, 5) parameters
- `place_discrete(images, pose)` `place` for the discrete poses: one warp, no blend
- `unplace_discrete(x, k)` the inverse of discrete pose k, for a feature map of the image (E_p's bypass)

The pose reads each output pixel p from the canonical drawing at e^rho * R(theta) * p + t (theta an in-plane
turn, e^rho a scale, t a shift), and from its mirror image at e^rho * R(theta) * diag(-1, 1) * p + t, and
blends the two by w = (1 - cos phi) / 2: phi = 0 is the drawing, phi = pi its mirror, and the way between
is a blend of two whole outlines, so a mirror is reached continuously without narrowing the object (a turn
about the vertical axis would stretch it into a stripe on the way). All zero is the identity: the head's
weights start at zero (or with the turns spread by `turn_init`), so a model starts as the unwarped one.
With `discrete` (`--pose_discrete`) the coarse pose is not a regression from z but a class: the index k of the
largest of z's first 8 components (each k has probability 1/8 under z ~ N(0, I)) picks a quarter turn
(k mod 4) and whether to mirror (k >= 4); the head adds a residual turn, the scale and the shift. A quarter
turn or a mirror maps the pixel grid onto itself, so these 8 poses lose nothing and blend nothing, and an
encoder can learn k as a classification (E_p's `pose_class_hat`, `losses.pose_read_loss`): for a shape that
looks the same in two of the poses either is right, where a regression of the angle averages them into the
canonical pose. E_p reads the rest (`pose_fine_hat`) as a regression, and the reconstruction path places the
object by what E_p read (`PoseWarp.call`'s `pose`), not by the pose of the sampled z^.
The sampling and the trigonometry are O(1) per pixel and per sample, left out of FLOPs as the resizes are
(`flops.py`); the head's Linear layers are counted there.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from onegan_tf.layers import register

POSE_PARAMETERS = ("theta", "phi", "rho", "t_x", "t_y")
N_DISCRETE_POSES = 8   # 4 quarter turns x (drawing, mirror image)
N_FINE_POSE = 4        # with them: the residual turn, rho, t_x, t_y


def pose_matrix(pose):
    """(B, 5) pose parameters in the order of `POSE_PARAMETERS` -> the (B, 2, 3) sampling map of the drawing
    and the (B,) weight of its mirror image (whose map is the same with the x column negated)."""
    pose = ops.cast(pose, "float32")
    theta, phi, rho, t_x, t_y = (pose[:, i] for i in range(len(POSE_PARAMETERS)))
    c, s, scale = ops.cos(theta), ops.sin(theta), ops.exp(rho)
    row_x = ops.stack([scale * c, -scale * s, t_x], -1)
    row_y = ops.stack([scale * s, scale * c, t_y], -1)
    return ops.stack([row_x, row_y], -2), (1.0 - ops.cos(phi)) / 2.0


def discrete_pose(z):
    """With `--pose_discrete`: the index (B,) int32 in [0, 8) of the largest of z's first 8 components; k mod 4
    quarter turns, mirrored when k >= 4."""
    return ops.cast(ops.argmax(ops.cast(z, "float32")[:, :N_DISCRETE_POSES], -1), "int32")


def compose_pose(k, fine):
    """The (B, 5) pose of discrete pose k (B,) int — k mod 4 quarter turns, mirrored when k >= 4 — and `fine`
    (B, 4) = (residual theta, rho, t_x, t_y)."""
    k = ops.cast(k, "int32")
    fine = ops.cast(fine, "float32")
    quarter, mirror = ops.cast(k % 4, "float32"), ops.cast(k // 4, "float32")
    return ops.concatenate([ops.stack([fine[:, 0] + quarter * (np.pi / 2), mirror * np.pi], -1), fine[:, 1:]], -1)


def mirrored(matrix):
    """The sampling map of the mirror image: p -> matrix [-x, y, 1]."""
    return matrix * ops.convert_to_tensor([[-1.0, 1.0, 1.0]])


def place(images, pose):
    """`images` (B, H, W, C) in the canonical pose placed in `pose` (B, 5): the drawing and its mirror image,
    each warped, blended by the mirror's weight."""
    matrix, w = pose_matrix(pose)
    w = ops.reshape(w, (-1, 1, 1, 1))
    x = ops.cast(images, "float32")
    out = warp(x, matrix) * (1.0 - w) + warp(x, mirrored(matrix)) * w
    return ops.cast(out, images.dtype)


def unplace_discrete(images, k):
    """The inverse of placing `images` (B, H, W, C) in discrete pose k (B,) with no residual: a feature map of an
    image brought back to the canonical frame, exactly (quarter turns and mirrors map the grid onto itself).
    On the reconstruction path E_p's bypass B_fg, which sees the object where it is, is brought this way into
    the frame G_fg1 and G_fg2 draw in."""
    k = ops.cast(k, "int32")
    map_ = _exact_map(*pose_matrix(compose_pose(k, ops.zeros((ops.shape(k)[0], N_FINE_POSE)))))
    # placed(p) = canonical(M p) with M a turn (and mirror): orthogonal, so canonical(q) = placed(M^T q).
    inverse = ops.transpose(map_[:, :, :2], (0, 2, 1))
    return warp(images, ops.concatenate([inverse, ops.zeros_like(map_[:, :, 2:])], -1))


def place_discrete(images, pose):
    """`place` for a pose whose mirror weight is exactly 0 or 1 (`compose_pose`'s): one warp, by the drawing's map
    or its mirror image's, where `place` would warp both and weigh one by 0."""
    out = warp(ops.cast(images, "float32"), _exact_map(*pose_matrix(pose)))
    return ops.cast(out, images.dtype)


def _exact_map(matrix, w):
    """The sampling map of the drawing (w = 0) or of its mirror image (w = 1), per sample."""
    sign = 1.0 - 2.0 * ops.reshape(w, (-1, 1, 1))
    return matrix * ops.concatenate([sign, ops.ones_like(sign), ops.ones_like(sign)], -1)


def _grid(size: int):
    """Pixel centres of a side in normalised coordinates, -1 + 1/size ... 1 - 1/size."""
    return (2.0 * ops.arange(size, dtype="float32") + 1.0) / size - 1.0


def warp(images, matrix):
    """Sample `images` (B, H, W, C) at `matrix` (B, 2, 3) applied to each output pixel's normalised (x, y, 1).

    Pixel centres map to normalised coordinates (2i + 1) / side - 1, so a quarter turn or a mirror maps the
    grid onto itself and reproduces the pixels exactly. Outside the frame the samples are zero. Plain
    `keras.ops`, so a `.keras` file holding it runs under every Keras 3 backend.
    """
    images = ops.convert_to_tensor(images)
    dtype = images.dtype
    x = ops.cast(images, "float32")
    H, W, C = (int(d) for d in x.shape[1:])                                   # static, as every network's
    gx, gy = ops.meshgrid(_grid(W), _grid(H))                                 # (H, W) each, x along W
    p = ops.stack([ops.reshape(gx, (-1,)), ops.reshape(gy, (-1,)), ops.ones((H * W,))], -1)  # (HW, 3)
    src = ops.einsum("bij,nj->bni", ops.cast(matrix, "float32"), p)          # (B, HW, 2)
    sx = ((src[..., 0] + 1.0) * W - 1.0) / 2.0                                # pixel coordinates
    sy = ((src[..., 1] + 1.0) * H - 1.0) / 2.0
    x0, y0 = ops.floor(sx), ops.floor(sy)
    wx, wy = sx - x0, sy - y0
    flat = ops.reshape(x, (-1, H * W, C))
    out = 0.0
    for dx, dy, w in ((0.0, 0.0, (1 - wx) * (1 - wy)), (1.0, 0.0, wx * (1 - wy)),
                      (0.0, 1.0, (1 - wx) * wy), (1.0, 1.0, wx * wy)):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi <= W - 1) & (yi >= 0) & (yi <= H - 1)
        idx = ops.cast(ops.clip(yi, 0, H - 1) * W + ops.clip(xi, 0, W - 1), "int32")
        corner = ops.take_along_axis(flat, ops.repeat(idx[..., None], C, axis=-1), axis=1)  # (B, HW, C)
        out = out + corner * (w * ops.cast(inside, "float32"))[..., None]
    return ops.cast(ops.reshape(out, (-1, H, W, C)), dtype)


@register
class PoseWarp(keras.layers.Layer):
    """The pose head and warp of `--pose_warp`: called on `(images, z)` with images a list of (B, H, W, C)
    tensors drawn in the canonical pose; returns them placed (`place`) in the pose Linear(z).

    The head is two Linear layers on z with bias: `turn` gives theta and phi, `place` rho and t. `turn_init`
    is the spread (radians) of the turns `turn` draws at initialisation (weights N(0, turn_init^2 / d_z), as
    z ~ N(0, I)); 0 starts every sample at the identity pose. `place` starts at zero. With `discrete`, `turn`
    gives only a residual theta, added to `discrete_pose(z)`'s quarter turns, and phi is 0 or pi by that index.
    """

    def __init__(self, d_z: int, turn_init: float = 0.0, discrete: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.d_z, self.turn_init, self.discrete = int(d_z), float(turn_init), bool(discrete)
        if self.discrete and self.d_z < N_DISCRETE_POSES:
            raise ValueError(f"a discrete pose is read from z's first {N_DISCRETE_POSES} components; d_z={d_z}")
        spread = (keras.initializers.RandomNormal(stddev=self.turn_init / self.d_z ** 0.5) if self.turn_init
                  else "zeros")
        self.turn = keras.layers.Dense(1 if self.discrete else 2, kernel_initializer=spread, name="turn",
                                       dtype="float32")
        self.place = keras.layers.Dense(3, kernel_initializer="zeros", name="place", dtype="float32")

    def build(self, input_shape):
        self.turn.build((None, self.d_z))
        self.place.build((None, self.d_z))

    def fine(self, z, frozen: bool = False):
        """The head's outputs on z: (B, 5) = (theta, phi, rho, t_x, t_y), or with `discrete` (B, 4) =
        (residual theta, rho, t_x, t_y), the part of the pose that is not one of the 8. `frozen`: with the head's
        weights stopped, so a loss on the result trains only what produced z."""
        z = ops.cast(z, "float32")
        if frozen:
            stop = ops.stop_gradient
            return ops.concatenate([ops.matmul(z, stop(d.kernel)) + stop(d.bias) for d in (self.turn, self.place)],
                                   -1)
        return ops.concatenate([self.turn(z), self.place(z)], -1)

    def pose(self, z, frozen: bool = False):
        """The (B, 5) pose parameters of z (`POSE_PARAMETERS`); with `discrete`, `discrete_pose(z)`'s quarter
        turns and mirror composed with the head's residual (`compose_pose`)."""
        fine = self.fine(z, frozen)
        return compose_pose(discrete_pose(z), fine) if self.discrete else fine

    def call(self, inputs, pose=None):
        """`inputs` = (images, z): the images placed in the pose of z, or in `pose` (B, 5) where it is given (the
        pose E_p reads from an image, on the reconstruction path with `--pose_discrete`)."""
        images, z = inputs
        pose = self.pose(z) if pose is None else pose
        return [(place_discrete if self.discrete else place)(x, pose) for x in images]

    def get_config(self):
        return {**super().get_config(), "d_z": self.d_z, "turn_init": self.turn_init, "discrete": self.discrete}
