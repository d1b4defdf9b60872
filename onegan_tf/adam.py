"""`FusedAdam`: Keras 3's Adam with every variable of a step updated by one XLA-compiled function.

Keras' Adam on the TensorFlow backend updates a variable with ~10 separate elementwise ops (each a pass over
the variable) plus the bias-correction powers recomputed per variable; the training step updates ~600
variables this way. Here one `apply_gradients` is one XLA kernel launch for all its variables, each updated
in one pass with the arithmetic of TensorFlow's fused `ResourceApplyAdam` kernel, which is Keras' own, in the
same order (Keras `adam.py`, TF `training_ops.cc`):

    m += (g - m) * (1 - beta_1)             v += (g^2 - v) * (1 - beta_2)
    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)          var -= m * alpha / (sqrt(v) + epsilon)

with epsilon outside the square root ("epsilon hat"). Keras takes t = iterations + 1 for every variable; here
t is each variable's own step count: iterations + 1 minus the iterations that passed before its first update.
The two agree for a variable updated from the first iteration on. They differ for one that starts training
late (the encoders' variance and z heads, which get no gradient in Phase I): it enters with zero moments, and
a bias correction for the shared t would make its first updates sqrt(1 - beta_2^t) / sqrt(1 - beta_2) times
the learning rate (~16x for beta_2 = 0.999 and large t), where its own t gives the ~lr steps Adam intends.

The state is Keras Adam's own (`iterations`, `momentums`, `velocities`, built by `keras.optimizers.Adam.build`),
one variable per trained variable as before, plus one int vector, `skipped_iterations`, appended after them.
A checkpoint written with `keras.optimizers.Adam` restores into it (the vector stays zero: Keras' bias
correction) and one of it into Keras Adam (the vector is left out); copying `optimizer.variables` between two
of them (the trainer's clones) works as before. AMSGrad is refused (Keras' Adam has it).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from onegan_tf.layers import register


def _tf_variable(variable):
    """The tf.Variable of a Keras variable (under tf.distribute, the distributed one)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


@register
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` (same arguments, state and config), all variables updated in one XLA launch."""

    def __init__(self, *args, amsgrad: bool = False, **kwargs):
        if amsgrad:
            raise ValueError("FusedAdam has no AMSGrad variant; use keras.optimizers.Adam(amsgrad=True) instead.")
        super().__init__(*args, amsgrad=False, **kwargs)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Per variable, in the order of var_list: the iterations before its first update, counted while it
        # has none (a variable that pauses after it started keeps the shared clock, as in Keras).
        self._skipped_iterations = self.add_variable((len(var_list),), initializer="zeros", dtype="int",
                                                     aggregation="only_first_replica", name="skipped_iterations")

    def _steps(self, index):
        """Each variable's own step t = iterations + 1 - skipped (float32), for the variables at `index`."""
        skipped = tf.gather(tf.cast(tf.convert_to_tensor(self._skipped_iterations), tf.int64), index)
        return tf.cast(tf.cast(self.iterations, tf.int64) + 1 - skipped, tf.float32)

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
        # Keras' TF backend updates one variable per `distribution.extended.update`; here one call updates them
        # all: `update` hands `_apply_all` each replica's own copy of every distributed value in its args (the
        # variables' first is only the key it iterates the replicas of).
        grads_and_vars = list(grads_and_vars)
        grads = [tf.convert_to_tensor(grad) for grad, _ in grads_and_vars]
        variables = [var for _, var in grads_and_vars]
        index = [self._get_variable_index(v) for v in variables]
        momentums = [_tf_variable(self._momentums[i]) for i in index]
        velocities = [_tf_variable(self._velocities[i]) for i in index]
        distribution.extended.update(
            variables[0], lambda _, *args: self._apply_all(*args),
            args=(variables, momentums, velocities, grads, tf.convert_to_tensor(learning_rate), self._steps(index)),
            group=False)
        self._count_skipped_iterations(variables)

    def update_step(self, gradient, variable, learning_rate):
        # Not reached on the TF backend, which updates through `_distributed_tf_update_step` (where the skipped
        # iterations are counted, once per step).
        i = self._get_variable_index(variable)
        self._apply_all([_tf_variable(variable)], [_tf_variable(self._momentums[i])],
                        [_tf_variable(self._velocities[i])], [tf.convert_to_tensor(gradient)],
                        tf.convert_to_tensor(learning_rate), self._steps([i]))

    @property
    def _apply_all(self):
        """The update of a list of variables, compiled by XLA into one kernel launch (one tf.function per
        optimiser; it traces once per list of variable shapes)."""
        if "_apply_all_fn" not in self.__dict__:
            beta_1, beta_2, epsilon = self.beta_1, self.beta_2, self.epsilon

            @tf.function(jit_compile=True, autograph=False)
            def apply_all(variables, momentums, velocities, grads, learning_rate, t):
                # ResourceApplyAdam's arithmetic (see the module docstring), t per variable.
                lr = tf.cast(learning_rate, tf.float32)
                alpha = lr * tf.sqrt(1.0 - tf.pow(tf.cast(beta_2, tf.float32), t)) / (
                    1.0 - tf.pow(tf.cast(beta_1, tf.float32), t))
                for k, (var, m, v, g) in enumerate(zip(variables, momentums, velocities, grads)):
                    dtype = var.dtype
                    g = tf.cast(g, dtype)
                    m_t = m + (g - m) * tf.cast(1.0 - beta_1, dtype)
                    v_t = v + (tf.square(g) - v) * tf.cast(1.0 - beta_2, dtype)
                    m.assign(m_t)
                    v.assign(v_t)
                    var.assign_sub(m_t * tf.cast(alpha[k], dtype) / (tf.sqrt(v_t) + tf.cast(epsilon, dtype)))

            self.__dict__["_apply_all_fn"] = apply_all
        return self.__dict__["_apply_all_fn"]
