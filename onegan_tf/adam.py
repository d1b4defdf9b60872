"""`FusedAdam`: Keras 3's Adam with each variable's update done by TensorFlow's fused `ResourceApplyAdam` kernel.

Keras' Adam on the TensorFlow backend updates a variable with ~10 separate elementwise ops (each a pass over
the variable) plus the bias-correction powers recomputed per variable; the training step updates ~600
variables this way. `ResourceApplyAdam` is one pass per variable and computes the same thing, in the same
order (Keras `adam.py`, TF `training_ops.cc`):

    m += (g - m) * (1 - beta_1)             v += (g^2 - v) * (1 - beta_2)
    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)          var -= m * alpha / (sqrt(v) + epsilon)

with t = iterations + 1 and epsilon outside the square root ("epsilon hat"). The state is Keras Adam's own
(`iterations`, `momentums`, `velocities`, built by `keras.optimizers.Adam.build`), so a checkpoint written
with `keras.optimizers.Adam` restores into it and back, and copying `optimizer.variables` between two of them
(the trainer's clones) works as before. AMSGrad has no fused kernel and is refused.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from onegan_tf.layers import register


def _handle(variable):
    """The resource handle of a Keras or tf variable; under tf.distribute, of this update's replica copy."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


@register
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` (same arguments, state and config) applied with `ResourceApplyAdam`."""

    def __init__(self, *args, amsgrad: bool = False, **kwargs):
        if amsgrad:
            raise ValueError("FusedAdam has no AMSGrad variant (TensorFlow's fused kernel has none); use "
                             "keras.optimizers.Adam(amsgrad=True) instead.")
        super().__init__(*args, amsgrad=False, **kwargs)

    def _bias_correction_powers(self):
        t = tf.cast(self.iterations + 1, tf.float32)
        return tf.pow(tf.cast(self.beta_1, tf.float32), t), tf.pow(tf.cast(self.beta_2, tf.float32), t)

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        # Keras' TF backend calls update_step once per variable inside `distribution.extended.update`; the
        # powers are computed here once per step instead.
        powers = self._bias_correction_powers()
        for grad, var in grads_and_vars:
            distribution.extended.update(var, self._apply, args=(grad, learning_rate, *powers), group=False)

    def update_step(self, gradient, variable, learning_rate):
        self._apply(variable, gradient, learning_rate, *self._bias_correction_powers())

    def _apply(self, variable, gradient, learning_rate, beta_1_power, beta_2_power):
        index = self._get_variable_index(variable)
        dtype = variable.dtype

        def cast(x):
            return tf.cast(x, dtype)

        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[index]), v=_handle(self._velocities[index]),
            beta1_power=cast(beta_1_power), beta2_power=cast(beta_2_power), lr=cast(learning_rate),
            beta1=cast(self.beta_1), beta2=cast(self.beta_2), epsilon=cast(self.epsilon),
            grad=cast(tf.convert_to_tensor(gradient)))
