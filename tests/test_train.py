"""The training engine: metrics, samples, checkpoints, resume, stop button, best-by-metric, strategy."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_course import dcgan, models, train

TINY = dict(image_shape=(8, 8, 1), g_filters=(8, 4), d_filters=(4, 8))
LATENT = 8


def tiny_gan():
    g, d = models.build_dcgan("mnist", latent_dim=LATENT, **TINY)
    return train.make_gan(g, d)


def tiny_data(n=64, batch=8):
    x = np.random.default_rng(0).uniform(-1, 1, (n, 8, 8, 1)).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices(x).batch(batch, drop_remainder=True)


def trainer_for(directory, **options):
    options = {"sample_every": 4, "num_samples": 4, "progress": False, "quiet": True, **options}
    return train.Trainer(tiny_gan, directory, **options)


class StopAt(keras.callbacks.Callback):
    """The stop button, simulated: KeyboardInterrupt after a given step."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.d_optimizer.iterations.numpy()) >= self.step:
            raise KeyboardInterrupt


def test_train_step_returns_the_four_metrics():
    gan = tiny_gan()
    logs = gan.train_step(tf.zeros((4, 8, 8, 1)))
    assert set(logs) == set(train.METRICS)
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert 0 < float(logs["D(x)"]) < 1 and 0 < float(logs["D(G(z))"]) < 1


def test_a_few_steps_leave_metrics_frames_gif_and_logs(tmp_path):
    import imageio.v3 as iio

    trainer = trainer_for(tmp_path, log_every=2)
    history = trainer.fit(tiny_data(), steps=9)
    assert [row["step"] for row in history] == list(range(1, 10))
    assert all(np.isfinite(row[k]) for row in history for k in train.METRICS)
    frames = sorted(p.name for p in (tmp_path / "samples").glob("*.png"))
    assert frames == ["step_000000.png", "step_000004.png", "step_000008.png", "step_000009.png"]
    gif = iio.imread(tmp_path / "samples.gif", index=None)
    assert gif.shape[0] == 4  # one frame per PNG
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))
    assert json.loads((tmp_path / "history.json").read_text())["rows"][-1]["step"] == 9
    assert trainer.images_per_second and trainer.images_per_second > 0
    # The fixed z gives the same grid for the same weights.
    np.testing.assert_array_equal(trainer.generate(), trainer.generate())


def test_stop_button_keeps_model_history_and_a_fresh_checkpoint(tmp_path):
    trainer = trainer_for(tmp_path, sample_every=100, checkpoint_every=100)
    trainer.fit(tiny_data(), steps=50, callbacks=[StopAt(5)])
    assert trainer.interrupted and trainer.step == 5
    assert len(trainer.history) == 5
    assert Path(trainer.manager.latest_checkpoint).name == "ckpt-5"
    assert (tmp_path / "samples.gif").exists()
    weights = trainer.gan.generator.get_weights()
    again = trainer_for(tmp_path)  # as after a kernel restart
    assert again.step == 5 and len(again.history) == 5
    for a, b in zip(weights, again.gan.generator.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_trainers_fitted_together_each_keep_their_own_run(tmp_path):
    first, second = trainer_for(tmp_path / "a"), trainer_for(tmp_path / "b")
    assert train.fit_together([first, second], tiny_data(), steps=6) is None  # a cell ending with it shows nothing
    histories = [first.history, second.history]
    assert [t.step for t in (first, second)] == [6, 6]
    assert [[row["step"] for row in h] for h in histories] == [list(range(1, 7))] * 2
    assert set(histories[0][-1]) == {"step", *train.METRICS}  # each trainer gets its own GAN's metrics
    assert histories[0][-1]["g_loss"] != histories[1][-1]["g_loss"]
    for trainer in (first, second):  # a frame every 4 steps and at the end, a checkpoint, a GIF
        assert sorted(p.name for p in trainer.samples_dir.glob("*.png")) == [
            "step_000000.png", "step_000004.png", "step_000006.png"]
        assert Path(trainer.manager.latest_checkpoint).name == "ckpt-6" and trainer.gif_path.exists()
    again = [trainer_for(tmp_path / "a"), trainer_for(tmp_path / "b")]  # after a kernel restart: resume
    train.fit_together(again, tiny_data(), steps=8)
    assert [t.step for t in again] == [8, 8] and [len(t.history) for t in again] == [8, 8]


def test_a_trainer_behind_the_others_catches_up_before_they_train_together(tmp_path):
    ahead, behind = trainer_for(tmp_path / "a"), trainer_for(tmp_path / "b")
    ahead.fit(tiny_data(), steps=3)  # as if a run had been stopped between their checkpoints
    train.fit_together([ahead, behind], tiny_data(), steps=5)
    assert [t.step for t in (ahead, behind)] == [5, 5]
    assert [row["step"] for row in behind.history] == [1, 2, 3, 4, 5]


def test_the_stop_button_stops_every_trainer_fitted_together_and_keeps_each(tmp_path):
    pressed = []

    def stop_once(_generator):  # the stop button, pressed during the evaluation at step 2
        if not pressed:
            pressed.append(True)
            raise KeyboardInterrupt
        return 1.0

    first = trainer_for(tmp_path / "a")
    second = trainer_for(tmp_path / "b", best_metric=stop_once, best_every=2)
    train.fit_together([first, second], tiny_data(), steps=10)
    assert first.interrupted and second.interrupted
    assert [t.step for t in (first, second)] == [2, 2]
    assert [trainer_for(tmp_path / name).step for name in "ab"] == [2, 2]


def test_best_checkpoint_is_kept_by_metric(tmp_path):
    values = iter([5.0, 3.0, 4.0, 6.0])
    snapshot = {}

    def metric(generator):
        value = next(values)
        if value == 3.0:
            snapshot["weights"] = generator.get_weights()
        return value

    trainer = trainer_for(tmp_path, best_metric=metric, best_every=2, checkpoint_every=2)
    trainer.fit(tiny_data(), steps=8)
    assert trainer.best == {"step": 4, "value": 3.0}
    assert [e["step"] for e in trainer.evaluations] == [2, 4, 6, 8]
    assert Path(trainer.best_manager.latest_checkpoint).name == "best-4"
    assert trainer.step == 8  # the last checkpoint is still the latest one
    trainer.restore_best()
    for a, b in zip(snapshot["weights"], trainer.gan.generator.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert trainer.step == 8  # restoring the best networks keeps the optimizers' state


def test_max_mode_prefers_higher_scores(tmp_path):
    values = iter([1.0, 2.0, 1.5])
    trainer = trainer_for(tmp_path, best_metric=lambda g: next(values), best_every=2, best_mode="max")
    trainer.fit(tiny_data(), steps=6)
    assert trainer.best == {"step": 4, "value": 2.0}


KILLED_RUN = textwrap.dedent("""
    import sys, time, keras, numpy as np, tensorflow as tf
    sys.path.insert(0, {tests!r})
    from test_train import trainer_for, tiny_data

    class Slow(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(0.02)

    trainer_for({directory!r}, checkpoint_every=3).fit(tiny_data(), steps=100000, callbacks=[Slow()])
""")


def _latest_step(directory: Path) -> int:
    state = directory / "checkpoints" / "checkpoint"
    if not state.exists():
        return 0
    text = state.read_text()
    return int(text.split('model_checkpoint_path: "ckpt-')[1].split('"')[0])


def test_resume_after_sigkill_continues_step_and_history(tmp_path):
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), directory=str(tmp_path))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while _latest_step(tmp_path) < 6:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "the training process made no checkpoint"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)  # mid-training: no chance to save anything
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = _latest_step(tmp_path)
    assert killed_at >= 6 and killed_at % 3 == 0

    trainer = trainer_for(tmp_path, checkpoint_every=3)
    assert trainer.step == killed_at
    assert [row["step"] for row in trainer.history] == list(range(1, killed_at + 1))
    assert all(int(p.stem.split("_")[1]) <= killed_at for p in (tmp_path / "samples").glob("*.png"))
    trainer.fit(tiny_data(), steps=killed_at + 4)
    assert trainer.step == killed_at + 4
    assert [row["step"] for row in trainer.history] == list(range(1, killed_at + 5))
    assert int(trainer.gan.g_optimizer.iterations.numpy()) == killed_at + 4


MIRRORED_RUN = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, {tests!r})
    from test_train import tiny_gan, tiny_data, trainer_for
    from gan_course import train

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    trainer = trainer_for({directory!r}, strategy=strategy)
    history = trainer.fit(tiny_data(), steps=5)
    scaled = strategy.run(lambda: train.per_replica_scale(tf.constant(1.0)))
    try:
        train.Trainer(tiny_gan(), {directory!r} + "-outside", strategy=strategy, quiet=True)
        refused = False
    except ValueError:
        refused = True
    print(json.dumps({{
        "replicas": strategy.num_replicas_in_sync,
        "variable": type(trainer.gan.generator.trainable_variables[0].value).__name__,
        "step": trainer.step,
        "last": history[-1],
        "scaled": [float(v) for v in strategy.experimental_local_results(scaled)],
        "refused": refused,
    }}))
""")


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    script = MIRRORED_RUN.format(tests=str(Path(__file__).parent), directory=str(tmp_path / "run"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["variable"] == "MirroredVariable"
    assert result["step"] == 5
    assert all(np.isfinite(result["last"][k]) for k in train.METRICS)
    assert result["scaled"] == [0.5, 0.5]  # each replica's loss counts half
    assert result["refused"]  # a GAN built outside the scope is refused with advice


# ----------------------------------------------------------------------------- speed options
def test_image_batches_visit_every_image_once_per_epoch():
    images = np.arange(12, dtype=np.float32).reshape(12, 1, 1, 1)
    batches = [b.numpy().ravel() for b in train.image_batches(images, 4, seed=3).take(6)]
    first, second = np.concatenate(batches[:3]), np.concatenate(batches[3:])
    assert sorted(first) == sorted(second) == list(range(12))  # a permutation per epoch
    assert not np.array_equal(first, second)  # reshuffled each epoch
    again = [b.numpy().ravel() for b in train.image_batches(images, 4, seed=3).take(6)]
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))  # the seed decides the order
    other = [b.numpy().ravel() for b in train.image_batches(images, 4, seed=4).take(6)]
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other))
    # 10 images in batches of 4: two whole batches an epoch, 8 different images, the other 2 left for that epoch
    epochs = np.stack([b.numpy().ravel() for b in train.image_batches(images[:10], 4, seed=0).take(8)]).reshape(4, 8)
    assert all(len(set(epoch)) == 8 for epoch in epochs)
    with pytest.raises(ValueError, match="cannot fill a batch of 16"):
        train.image_batches(images, 16)


def test_fit_takes_an_array_with_a_batch_size(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (20, 8, 8, 1)).astype(np.float32)
    trainer = trainer_for(tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        trainer.fit(x, steps=2)
    trainer.fit(x, steps=3, batch_size=8)
    assert trainer.step == 3


def test_fused_discriminator_only_without_batch_norm_and_same_step():
    g, d = models.build_dcgan("mnist", latent_dim=LATENT, **TINY)
    assert not train.GAN(g, d).fuse_discriminator  # the DCGAN's D has batch norm
    d_plain = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, strides=2),
                                keras.layers.LeakyReLU(0.2), keras.layers.Flatten(), keras.layers.Dense(1)])
    assert train.GAN(g, d_plain).fuse_discriminator
    assert not train.GAN(g, d_plain, update="simultaneous").fuse_discriminator  # measured slower there
    assert train.GAN(g, d_plain, update="simultaneous", fuse_discriminator=True).fuse_discriminator
    real = tf.random.stateless_uniform((6, 8, 8, 1), (1, 2), -1, 1)
    after = {}
    for fuse in (True, False):
        keras.utils.set_random_seed(0)
        g, _ = models.build_dcgan("mnist", latent_dim=LATENT, **TINY)
        d = keras.models.clone_model(d_plain)
        d.set_weights(d_plain.get_weights())
        gan = train.GAN(g, d, fuse_discriminator=fuse)
        gan.compile()
        keras.utils.set_random_seed(1)
        logs = gan.train_step(real)
        after[fuse] = (float(logs["d_loss"]), [w.numpy() for w in d.weights])
    assert after[True][0] == pytest.approx(after[False][0], rel=1e-5)
    for fused, apart in zip(after[True][1], after[False][1]):
        np.testing.assert_allclose(fused, apart, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("reuse", [True, False])
def test_both_generator_steps_train_the_generator(reuse):
    gan = tiny_gan()
    gan.reuse_generated = reuse
    before = [w.numpy().copy() for w in gan.generator.trainable_weights]
    logs = gan.train_step(tf.zeros((4, 8, 8, 1)))
    assert np.isfinite(float(logs["g_loss"]))
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(before, gan.generator.trainable_weights))


def plain_discriminator(logit_bias=0.0):
    """A D without batch norm: it judges each image on its own."""
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, strides=2),
                             keras.layers.LeakyReLU(0.2), keras.layers.Flatten(),
                             keras.layers.Dense(1, bias_initializer=keras.initializers.Constant(logit_bias))])


@pytest.mark.parametrize("discriminator, loss, logit_bias, compiled, fused", [
    ("dcgan", "non_saturating", 0.0, False, False),  # batch norm: two backward passes through D
    ("plain", "non_saturating", 0.0, True, False),  # one backward pass, G's gradient rescaled
    ("plain", "minimax", 0.0, True, True),
    ("plain", "hinge", -5.0, True, False),  # every fake past the hinge's margin: D's slope is zero, the second pass
    ("plain", "hinge", -5.0, False, True),
])
def test_simultaneous_update_is_the_tutorials_step(discriminator, loss, logit_bias, compiled, fused):
    """update="simultaneous": both networks step from one forward pass, each down the gradient
    of its own loss at the weights before the step (checked against a hand-written step),
    whichever way the step gets G's gradient through D."""
    with pytest.raises(ValueError, match="alternating, simultaneous"):
        train.GAN(*models.build_dcgan("mnist", latent_dim=LATENT, **TINY), update="together")
    real = tf.random.stateless_uniform((6, 8, 8, 1), (3, 4), -1, 1)
    keras.utils.set_random_seed(0)
    g, d = models.build_dcgan("mnist", latent_dim=LATENT, **TINY)
    if discriminator == "plain":
        d = plain_discriminator(logit_bias)
    g2, d2 = keras.models.clone_model(g), keras.models.clone_model(d)
    g2.set_weights(g.get_weights())
    d2.set_weights(d.get_weights())
    gan = train.GAN(g, d, update="simultaneous", loss=loss, fuse_discriminator=fused)
    assert gan.per_image_discriminator == (discriminator == "plain")
    gan.compile(d_optimizer=keras.optimizers.SGD(0.1), g_optimizer=keras.optimizers.SGD(0.1))
    z = tf.random.stateless_normal((6, LATENT), (1, 2))
    gan.sample_latent = lambda batch_size: z  # the step draws this z, compiled or not
    (tf.function(gan.train_step) if compiled else gan.train_step)(real)

    d_loss_fn, g_loss_fn = train.gan_losses.get_losses(loss)
    with tf.GradientTape(persistent=True) as tape:
        fake = g2(z, training=True)
        real_logits, fake_logits = d2(real, training=True), d2(fake, training=True)
        d_loss, g_loss = d_loss_fn(real_logits, fake_logits), g_loss_fn(fake_logits)
    for net, loss_value, trained in ((d2, d_loss, d), (g2, g_loss, g)):
        grads = tape.gradient(loss_value, net.trainable_weights)
        assert any(float(tf.reduce_max(tf.abs(grad))) > 1e-4 for grad in grads)  # a step that moves
        for w, grad, got in zip(net.trainable_weights, grads, trained.trainable_weights):
            np.testing.assert_allclose(got.numpy(), w.numpy() - 0.1 * grad.numpy(), rtol=1e-4, atol=1e-5)


def test_weight_average_is_updated_in_the_step_and_used_for_samples_and_the_metric(tmp_path):
    make = lambda: train.make_gan(*models.build_dcgan("mnist", latent_dim=LATENT, **TINY), ema_decay=0.9)  # noqa: E731
    seen = []
    trainer = train.Trainer(make, tmp_path, sample_every=4, num_samples=4, progress=False, quiet=True,
                            best_metric=lambda generator: seen.append(generator) or 1.0, best_every=4)
    gan = trainer.gan
    plain = tiny_gan()
    assert plain.ema is None and plain.sampling_generator is plain.generator
    before = [w.numpy().copy() for w in gan.ema.model.weights]
    trainer.fit(tiny_data(), steps=4)
    averaged, live = gan.ema.model.get_weights(), gan.generator.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, averaged))  # moved with training
    assert any(not np.allclose(a, b) for a, b in zip(averaged, live))  # but is not the live G
    assert seen and all(g is gan.ema.model for g in seen)
    z = gan.fixed_latent(3)
    np.testing.assert_allclose(gan.generate(z), gan.ema.model(z, training=False), atol=1e-6)
    assert "ema_generator" in gan.checkpoint_objects()
    resumed = train.Trainer(make, tmp_path, sample_every=4, num_samples=4, progress=False, quiet=True)
    for saved, restored in zip(averaged, resumed.gan.ema.model.get_weights()):
        np.testing.assert_array_equal(saved, restored)


def test_auto_precision_follows_the_hardware(monkeypatch):
    monkeypatch.delenv("GAN_COURSE_PRECISION", raising=False)  # no instructor's choice: the machine's
    monkeypatch.setattr(train, "_gpus", lambda: [])
    monkeypatch.setattr(train, "_cpu_has_bfloat16", lambda: True)
    assert train.auto_precision() == "mixed_bfloat16"
    monkeypatch.setattr(train, "_cpu_has_bfloat16", lambda: False)
    assert train.auto_precision() == "float32"
    assert train.auto_jit_compile() is False  # XLA was slower on CPUs (bench/RESULTS.md)


def test_bfloat16_networks_train_with_float32_losses():
    try:
        assert train.set_precision("mixed_bfloat16") == "mixed_bfloat16"
        gan = tiny_gan()
    finally:
        train.set_precision("float32")
    assert gan.generator.dtype_policy.name == "mixed_bfloat16"
    assert all(w.dtype == "float32" for w in gan.generator.weights)  # variables stay float32
    logs = gan.train_step(tf.zeros((4, 8, 8, 1)))
    assert logs["d_loss"].dtype == tf.float32 and np.isfinite(float(logs["d_loss"]))
    assert keras.mixed_precision.global_policy().name == "float32"


def test_precision_applies_inside_its_block_only_and_outputs_stay_float32():
    with pytest.raises(RuntimeError, match="failed build"):
        with train.precision("mixed_bfloat16"):
            raise RuntimeError("a failed build")
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after an error too
    with train.precision("mixed_bfloat16") as policy:
        gan = tiny_gan()
    assert policy == "mixed_bfloat16" and keras.mixed_precision.global_policy().name == "float32"
    assert gan.generator.get_layer("up1").compute_dtype == "bfloat16"
    # What leaves the networks is float32: images for the metrics, logits for the losses.
    assert gan.generate(gan.fixed_latent(2)).dtype == tf.float32
    assert gan.discriminator(tf.zeros((2, 8, 8, 1))).dtype == tf.float32
    assert keras.layers.Dense(1).dtype_policy.name == "float32"  # what is built afterwards


def test_lab_03s_generator_draws_float32_images_under_mixed_precision():
    with train.precision("mixed_bfloat16"):  # as lab 03 builds its GAN
        generator = dcgan.build_lab_generator(16, (16, 8))
    assert generator.get_layer("to_image").compute_dtype == "bfloat16"
    assert generator(np.zeros((2, 16), np.float32)).dtype == "float32"  # for the metrics and the sliders


def test_several_steps_per_call_run_the_hooks_once_per_call(tmp_path):
    trainer = trainer_for(tmp_path, steps_per_execution=4, sample_every=4, log_every=4)
    assert trainer.gan.steps_per_execution == 4
    history = trainer.fit(tiny_data(), steps=8)
    assert [row["step"] for row in history] == [4, 8]
    frames = sorted(p.name for p in (tmp_path / "samples").glob("*.png"))
    assert frames == ["step_000000.png", "step_000004.png", "step_000008.png"]
    assert trainer_for(tmp_path / "auto").gan.steps_per_execution == 1  # "auto" on a CPU


def test_labelled_batches_keep_each_label_with_its_image(tmp_path):
    images = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    labels = np.arange(10) % 3
    for x, y in train.image_batches(images, 4, labels=labels).take(5):
        assert y.dtype == tf.int32 and (x.numpy().ravel().astype(int) % 3 == y.numpy()).all()
    with pytest.raises(ValueError, match="labels must have shape"):
        train.image_batches(images, 4, labels=labels[:9])
    with pytest.raises(ValueError, match="labels=True"):
        train.image_batches(images, 4, labels=True)


def test_make_gan_passes_adam_betas_to_both_players():
    g, d = models.build_dcgan("mnist", latent_dim=LATENT, **TINY)
    gan = train.make_gan(g, d, beta_1=0.0, beta_2=0.99)
    for optimizer in (gan.d_optimizer, gan.g_optimizer):
        assert (optimizer.beta_1, optimizer.beta_2) == (0.0, 0.99)
