"""OneGAN in TensorFlow 2 / Keras 3. Importing the package applies the process' start-up settings first
(`onegan_tf.runtime`): they must be in place before any module here imports TensorFlow."""

from onegan_tf import runtime

runtime.APPLIED.update(runtime.apply())
