"""The training step under tf.distribute (docs/design.md §5): one replica and two replicas give the same gradients and
update, and a two-worker MultiWorkerMirroredStrategy run on 127.0.0.1 logs the losses of a one-process run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from tiny import REPO, RUN_FLAGS, tiny_flags, train_command, train_env

# Runs in a fresh process: the two logical CPUs must be configured before TensorFlow initialises devices. The
# steps run eagerly: the same replica function, all-reduce and updates, without tracing Phase IIb twice (once
# per strategy), which would cost more than the comparison; the traced distributed step is run by the
# two-worker test below.
ONE_VS_TWO_REPLICAS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    tf.config.run_functions_eagerly(True)
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    sys.path.insert(0, "tests")
    from tiny import tiny_config
    from onegan_tf.trainer import OneGANTrainer, step_noise

    cfg = tiny_config(seed=3)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    trainers = {}
    for name, strategy in (("one", tf.distribute.get_strategy()), ("two", mirrored)):
        keras.utils.set_random_seed(0)
        trainers[name] = OneGANTrainer(cfg, strategy)
    one, two = trainers["one"], trainers["two"]
    nets = lambda t: [t.model.networks[k] for k in sorted(t.model.networks)] + [
        n for p in ("rec_fake", "rec_real") for n in t.discriminators(p)]
    for a, b in zip(nets(one), nets(two)):  # identical start, whatever the initialisers did
        b.set_weights(a.get_weights())
    for t in (one, two):
        t.init_clones()
    b, s = cfg.train.batch_size, cfg.model.image_size
    rng = np.random.default_rng(0)
    batch = {k: tf.constant(rng.uniform(-1, 1, (b, s, s, 3)).astype(np.float32)) for k in ("x_c", "x_bg")}
    batch.update(step_noise(cfg.train.seed, 0, b, cfg))
    dist = next(iter(mirrored.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch))))
    assert two.strategy.num_replicas_in_sync == 2
    out = {"one": one.train_step(batch, phase="IIb"), "two": two.train_step(dist, phase="IIb")}
    loss_diff = max(abs(float(out["one"][k]) - float(out["two"][k])) for k in out["one"])
    diffs = np.concatenate([np.abs(np.array(va) - np.array(vb)).ravel()
                            for a, b in zip(nets(one), nets(two)) for va, vb in zip(a.weights, b.weights)])
    # The EMA's first update (ramp-up: beta = 0) copies the updated generators, on every replica.
    ema_diff = max(float(np.abs(np.array(va) - np.array(vb)).max()) for k in sorted(one.ema.networks)
                   for va, vb in zip(one.ema.networks[k].weights, two.ema.networks[k].weights))
    # The gradients themselves: after Adam's first update its first moment is m = (1 - beta_1) * g of the
    # all-reduced gradient, for every variable of every optimiser (G and the three discriminator pairs).
    grad_diff, n_grads = 0.0, 0
    opts = lambda t: [t.opt_G, *t.d_optimizers().values()]
    for opt_one, opt_two in zip(opts(one), opts(two)):
        for m_one, m_two in zip(opt_one._momentums, opt_two._momentums, strict=True):
            m_one, m_two = np.array(m_one), np.array(m_two)
            scale = float(np.abs(m_one).max())
            if scale == 0.0:  # a variable this step does not train must stay untrained on two replicas too
                grad_diff = max(grad_diff, float(np.abs(m_two).max()))
                continue
            grad_diff = max(grad_diff, float(np.abs(m_one - m_two).max()) / scale)
            n_grads += 1
    print(json.dumps({"loss_diff": loss_diff, "weight_diff": float(diffs.max()), "ema_diff": ema_diff,
                      "mean_weight_diff": float(diffs.mean()), "n_weights": int(diffs.size),
                      "grad_diff": grad_diff, "n_grads": n_grads,
                      "keys_equal": sorted(out["one"]) == sorted(out["two"]),
                      "steps": [int(one.step.numpy()), int(two.step.numpy())]}))
""")


@pytest.mark.slow
def test_one_and_two_replicas_give_the_same_gradients_and_update():
    """One Phase IIb step (all paths, all clones) of the same global batch of 4: on the default strategy, and on
    MirroredStrategy over two logical CPUs (2 samples per replica, gradients all-reduced).

    Adam's first step is about lr * sign(g) whatever the gradient's scale, so equal weights alone would not
    notice a replica's loss summed instead of averaged (a missing division by the replica count). The
    gradients are therefore compared too, through Adam's first moment (1 - beta_1) * g: per variable, the
    largest difference relative to that variable's largest entry must stay below 1e-4 (float rounding of
    the all-reduced sum; a gradient twice too large is off by 1).

    Weights: every updated weight within 2e-5 absolute, a tenth of the first Adam step; it is larger than
    the rounding of the sum on weights whose gradient is ~0 next to Adam's epsilon, so that rounding flips
    the step. Mean difference below 1e-8; loss terms (global-batch means) within 1e-4."""
    proc = subprocess.run([sys.executable, "-c", ONE_VS_TWO_REPLICAS], cwd=REPO, env=train_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print("1 vs 2 replicas:", report)
    assert report["keys_equal"] and report["steps"] == [1, 1]
    assert report["n_grads"] > 0 and report["grad_diff"] < 1e-4
    assert report["weight_diff"] < 2e-5 and report["ema_diff"] < 2e-5
    assert report["mean_weight_diff"] < 1e-8
    assert report["loss_diff"] < 1e-4


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _losses(run_dir: str) -> dict[int, dict]:
    """step -> {loss term: value} from metrics.jsonl."""
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return {r["step"]: {k: v for k, v in r.items() if k.startswith("loss/")} for r in records}


@pytest.mark.slow
def test_two_workers_log_the_losses_of_a_one_process_run(reference_run_dir, tmp_path):
    """Two local processes, one TF_CONFIG each, run 2 Phase I steps of global batch 4 (1 replica per worker)
    with the seed of the reference run (tiny.RUN_FLAGS, one process), whose first two steps are the same
    Phase I steps on the same data and noise streams.

    Step 1's losses match only if the workers start from the same weights and each takes its own half of
    the global batch; step 2's, only if the first update was the all-reduced one on both. Two steps are the
    fewest that compare an update. Tolerance rtol 1e-4: float rounding of the all-reduced means, and of the
    Adam step on weights whose gradient is ~0 next to epsilon."""
    ref = _losses(reference_run_dir)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    run_dir = str(tmp_path / "run")
    flags = tiny_flags(run_dir=run_dir, strategy="multi_worker", seed=RUN_FLAGS["seed"], phase1_steps=2,
                       phase2a_steps=0, phase2b_steps=0, ckpt_every=2)
    procs, logs = [], []
    try:
        for i in range(2):
            env = train_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
            log = open(tmp_path / f"worker{i}.log", "w+")
            logs.append(log)
            procs.append(subprocess.Popen(train_command(*flags), cwd=REPO, env=env, stdout=log,
                                          stderr=subprocess.STDOUT, text=True))
        codes = [p.wait(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read())
        log.close()
    assert codes == [0, 0], "\n\n".join(o[-3000:] for o in outputs)
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    assert (summary["end_step"], summary["replicas"]) == (2, 2)
    assert summary["checkpoint"].endswith("ckpt-2")
    got = _losses(run_dir)
    assert sorted(got) == [1, 2]
    worst = max(abs(got[s][k] - v) / max(abs(v), 1e-12) for s in (1, 2) for k, v in ref[s].items())
    print(f"two workers vs one process, steps 1-2: max relative loss difference {worst:.3g}")
    for step in (1, 2):
        assert sorted(got[step]) == sorted(ref[step])
        for k, v in ref[step].items():
            np.testing.assert_allclose(got[step][k], v, rtol=1e-4, atol=1e-6, err_msg=f"step {step} {k}")
