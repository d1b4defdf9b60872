"""Does oneDNN's float32->bfloat16 "fpmath" mode change the float32 convolution kernels TensorFlow runs here?

    TF_SET_ONEDNN_FPMATH_MODE=BF16 ONEDNN_VERBOSE=1 python benchmarks/step_levers/fpmath_check.py
    ONEDNN_VERBOSE=1 python benchmarks/step_levers/fpmath_check.py

One float32 3x3 convolution (2 x 64 x 64 x 256 -> 256) forward and backward, 10 timed calls after 3; prints the
fpmath setting, the median time, and each distinct oneDNN convolution implementation with its attributes (from
ONEDNN_VERBOSE's lines on stdout, which this script reads back by re-running itself with them captured).
"""

import os
import statistics
import subprocess
import sys
import time

if os.environ.get("_FPMATH_CHILD") != "1":
    out = subprocess.run([sys.executable, __file__], env={**os.environ, "_FPMATH_CHILD": "1", "ONEDNN_VERBOSE": "1",
                         "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True, check=True).stdout
    impls = sorted({",".join(f for i, f in enumerate(line.split(",")) if i in (5, 6, 7) or f.startswith("attr-"))
                    for line in out.splitlines() if line.startswith("onednn_verbose") and ",exec," in line
                    and ",convolution," in line})
    print(next(line for line in out.splitlines() if line.startswith("fpmath")))
    print("oneDNN convolution implementations (name, kind, attributes):")
    print("\n".join("  " + i for i in impls))
    sys.exit(0)

import tensorflow as tf  # noqa: E402

x = tf.random.normal((2, 64, 64, 256))
w = tf.random.normal((3, 3, 256, 256))


@tf.function
def step(x, w):
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        loss = tf.reduce_sum(tf.nn.conv2d(x, w, 1, "SAME") ** 2)
    return tape.gradient(loss, [x, w])


for _ in range(3):
    step(x, w)
seconds = []
for _ in range(10):
    start = time.perf_counter()
    step(x, w)[0].numpy()
    seconds.append(time.perf_counter() - start)
print(f"fpmath TF_SET_ONEDNN_FPMATH_MODE={os.environ.get('TF_SET_ONEDNN_FPMATH_MODE', '(unset)')}: "
      f"median {1e3 * statistics.median(seconds):.1f} ms per forward+backward", flush=True)
