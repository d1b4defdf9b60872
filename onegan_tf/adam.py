"""`FusedAdam`: Keras 3's Adam with each variable's update done by TensorFlow's fused `ResourceApplyAdam` kernel.

Keras' Adam on the TensorFlow backend updates a variable with ~10 separate elementwise ops (each a pass over
the variable) plus the bias-correction powers recomputed per variable; the training step updates ~600
variables this way. `ResourceApplyAdam` is one pass per variable and computes the same thing, in the same
order (Keras `adam.py`, TF `training_ops.cc`):

    m += (g - m) * (1 - beta_1)             v += (g^2 - v) * (1 - beta_2)
    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)          var -= m * alpha / (sqrt(v) + epsilon)

with epsilon outside the square root ("epsilon hat"). Keras takes t = iterations + 1 for every variable; here
t is each variable's own step count: iterations + 1 minus the iterations that passed before its first update.
The two agree for a variable updated from the first iteration on. They differ for one that starts training
late (the encoders' variance and z heads, which get no gradient in Phase I): it enters with zero moments, and
a bias correction for the shared t would make its first updates sqrt(1 - beta_2^t) / sqrt(1 - beta_2) times
the learning rate (~16x for beta_2 = 0.999 and large t), where its own t gives the ~lr steps Adam intends.

The state is Keras Adam's own (`iterations`, `momentums`, `velocities`, built by `keras.optimizers.Adam.build`)
plus one int vector, `skipped_iterations`, appended after them. A checkpoint written with
`keras.optimizers.Adam` restores into it (the vector stays zero: Keras' bias correction) and one of it into
Keras Adam (the vector is left out); copying `optimizer.variables` between two of them (the trainer's clones)
works as before. AMSGrad has no fused kernel and is refused.
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

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Per variable, in the order of var_list: the iterations before its first update, counted while it
        # has none (a variable that pauses after it started keeps the shared clock, as in Keras).
        self._skipped_iterations = self.add_variable((len(var_list),), initializer="zeros", dtype="int",
                                                     aggregation="only_first_replica", name="skipped_iterations")

    def _bias_correction_powers(self, variables):
        """[(beta_1^t, beta_2^t)] for each of `variables` at its own step t = iterations + 1 - skipped."""
        index = [self._get_variable_index(v) for v in variables]
        skipped = tf.gather(tf.cast(tf.convert_to_tensor(self._skipped_iterations), tf.int64), index)
        t = tf.cast(tf.cast(self.iterations, tf.int64) + 1 - skipped, tf.float32)
        powers = [tf.unstack(tf.pow(tf.cast(beta, tf.float32), t), num=len(index))
                  for beta in (self.beta_1, self.beta_2)]
        return list(zip(*powers))

    def _count_skipped_iterations(self, variables):
        """One more skipped iteration for every variable that is not among this step's `variables` and has
        never been updated."""
        n = len(self._trainable_variables)
        index = [[self._get_variable_index(v)] for v in variables]
        updated = tf.scatter_nd(index, tf.ones(len(index), tf.bool), [n])
        skipped = tf.cast(tf.convert_to_tensor(self._skipped_iterations), tf.int64)
        never_updated = tf.logical_and(tf.logical_not(updated), tf.equal(skipped, tf.cast(self.iterations, tf.int64)))
        self._skipped_iterations.assign(
            tf.cast(tf.where(never_updated, skipped + 1, skipped), self._skipped_iterations.dtype))

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        # Keras' TF backend calls update_step once per variable inside `distribution.extended.update`; the
        # powers of every variable are computed here once per step instead.
        grads_and_vars = list(grads_and_vars)
        variables = [var for _, var in grads_and_vars]
        powers = self._bias_correction_powers(variables)
        for (grad, var), (beta_1_power, beta_2_power) in zip(grads_and_vars, powers):
            distribution.extended.update(var, self._apply, args=(grad, learning_rate, beta_1_power, beta_2_power),
                                         group=False)
        self._count_skipped_iterations(variables)

    def update_step(self, gradient, variable, learning_rate):
        # Not reached on the TF backend, which updates through `_distributed_tf_update_step` (where the skipped
        # iterations are counted, once per step).
        self._apply(variable, gradient, learning_rate, *self._bias_correction_powers([variable])[0])

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
