"""Model FLOPs of OneGAN's networks and of one training step of each phase, from the layer shapes.

Forward FLOPs of a network are the sum over its Conv2D and Dense layers (a multiply-add counts 2):
    Conv2D: 2 * k_h * k_w * c_in * c_out * H_out * W_out per sample        Dense: 2 * in * out per sample

read from each built layer's recorded input shape (Keras keeps it in `_build_shapes_dict`; every layer of
`onegan_tf.networks` is built on an example input, so spatial sizes are known) and `compute_output_shape`.
Every such layer runs exactly once per call of its network. Normalisations, activations, the nearest/bilinear
resizes, elementwise mixing, losses and the Adam updates are left out: each costs O(1) FLOPs per activation
element or parameter, where a convolution costs 2 * k * k * c_in per output element. `tests/test_bench.py`
checks the count against TF's profiler, which counts Conv2D and MatMul ops the same way.

A training step (`step_flops`) is the list of network calls the trainer makes in that phase
(`trainer.step_calls`, declared beside the step itself), each with the number of samples it sees and how
gradients flow through it. The convention:
    training FLOPs = sum over calls of forward FLOPs * (1 + [gradient w.r.t. its inputs flows] +
                                                         [its weights are trained by this call])

i.e. 3x forward for a call whose weights are trained and whose input gradient is needed (the generators,
encoders), 2x for a discriminator the generator loss back-propagates through without training it, ~3x for
the discriminator updates (weights trained; the input gradient of their first layer is not needed, which
this convention ignores), 1x for a call no gradient passes through. The common "3 x forward" rule is the
upper bound of this count.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from onegan_tf.config import TrainConfig
from onegan_tf.trainer import step_calls


def layer_flops(layer) -> int:
    """Forward FLOPs per sample of one built Conv2D or Dense layer; 0 for any other layer."""
    if isinstance(layer, keras.layers.Conv2D):
        shape = _input_shape(layer)
        _, h, w, _ = layer.compute_output_shape(shape)
        k_h, k_w, c_in, c_out = layer.kernel.shape
        return 2 * k_h * k_w * c_in * c_out * h * w
    if isinstance(layer, keras.layers.Dense):
        c_in, c_out = layer.kernel.shape
        return 2 * c_in * c_out
    return 0


def _input_shape(layer):
    shapes = getattr(layer, "_build_shapes_dict", None)
    if not shapes:
        raise ValueError(f"layer {layer.name} is not built; call its network once before counting FLOPs")
    shape = tuple(next(iter(shapes.values())))
    if any(d is None for d in shape[1:3]):
        raise ValueError(f"layer {layer.name} was built with unknown spatial size {shape}; build the network "
                         "on a concrete example input (networks.network_inputs)")
    return shape


def network_flops(net: keras.Model) -> int:
    """Forward FLOPs per sample of one network (sum over its Conv2D and Dense layers)."""
    return sum(layer_flops(layer) for layer in net._flatten_layers(include_self=False, recursive=True))


def network_table(model) -> dict[str, int]:
    """Forward FLOPs per sample of every network of a `model.OneGAN`, by paper name."""
    return {name: network_flops(net) for name, net in model.networks.items()}


def step_flops(model, tc: TrainConfig, phase: str, batch: int) -> dict:
    """FLOPs of one training step of `phase` (a name of `trainer.PHASES`) at global batch `batch`.

    Returns {"forward": forward FLOPs of every call, "training": the count of the module docstring,
    "by_network": training FLOPs per network, "by_call": training FLOPs per part of the step}.
    """
    table = network_table(model)
    forward = training = 0
    by_network: dict[str, int] = {}
    by_call: dict[str, int] = {}
    for what, net, n, input_grad, weight_grad in step_calls(phase, tc, model.cfg.bypass):
        f = table[net] * n * batch
        t = f * (1 + int(input_grad) + int(weight_grad))
        forward += f
        training += t
        by_network[net] = by_network.get(net, 0) + t
        by_call[what] = by_call.get(what, 0) + t
    return {"forward": forward, "training": training, "by_network": by_network, "by_call": by_call}


def conv_flops(batch: int, size: int, c_in: int, c_out: int, kernel: int) -> int:
    """FLOPs of one 'same' stride-1 convolution (the bench's practical-ceiling kernel)."""
    return 2 * kernel * kernel * c_in * c_out * size * size * batch


def profiler_flops(net: keras.Model, inputs) -> int:
    """Forward FLOPs of `net` on `inputs` counted on the traced graph of a concrete function with static
    shapes, independently of `network_flops`: Conv2D ops by TF's profiler (its registered statistic,
    2 * output elements * k_h * k_w * c_in), MatMul ops by the same formula from the graph's op shapes
    (the profiler reports no statistic for a function graph's MatMul in TF 2.21)."""
    specs = tf.nest.map_structure(lambda x: tf.TensorSpec(x.shape, x.dtype), inputs)
    graph = tf.function(lambda x: net(x, training=False)).get_concrete_function(specs).graph
    opts = tf.compat.v1.profiler.ProfileOptionBuilder(
        tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()).with_empty_output().build()
    prof = tf.compat.v1.profiler.profile(graph, cmd="op", options=opts)
    # float_ops: the ops of that type themselves (total_float_ops would add the ops feeding them).
    conv = sum(child.float_ops for child in prof.children if child.name == "Conv2D")
    matmul = 0
    for op in graph.get_operations():
        if op.type == "MatMul":
            a = op.inputs[0].shape
            k = a[0] if op.get_attr("transpose_a") else a[-1]
            matmul += 2 * int(k) * int(np.prod(op.outputs[0].shape))
    return conv + matmul
