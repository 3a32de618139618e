"""Training GANs: the `GAN` model and the `Trainer` that every lab trains with.

`GAN` is a `keras.Model` whose `train_step` plays one round of the game (a D step on
real and generated images, then a G step) and returns its metrics: `d_loss`, `g_loss`,
`D(x)` and `D(G(z))` (mean probabilities on this batch).  `Trainer` runs it with
`fit` and adds what a lab on a shared machine needs:

- progress (tqdm) with the metrics, and the images/s it reached;
- a sample grid from a FIXED z every `sample_every` steps, saved as PNG frames and
  one animated GIF, and written to TensorBoard with the scalars (`directory/logs`);
- checkpoints (models, optimizers and with them the step counter) through
  `tf.train.CheckpointManager`, with the loss history saved beside them as JSON:
  running the training cell again, even after a kernel restart, resumes where the
  last checkpoint left off and trains up to the same total number of steps;
- the stop button (KeyboardInterrupt) ends training cleanly: the model, its history
  and a fresh checkpoint are kept and the rest of the notebook can use them;
- the best checkpoint by a caller's metric (lower is better unless `best_mode="max"`)
  in its own folder, since a GAN can get worse late in training;
- `strategy=` (for example `tf.distribute.MirroredStrategy()`): the networks and
  optimizers are then built inside its scope and `fit` splits each batch.

Speed (each measured by `bench/run.py`, see `bench/RESULTS.md`):

- `fit` takes the images as an array too: they are then held as one tensor and each
  batch is gathered in the graph from a shuffled index (`image_batches`), instead of
  slicing and shuffling 60,000 single images through a tf.data buffer;
- `steps_per_execution`: several train steps per compiled call ("auto": 1 on a CPU,
  where a step takes long enough that the call overhead does not show, and the largest
  divisor of the hook intervals up to 32 on a GPU); the hooks run once per call;
- `jit_compile` (XLA): "auto" turns it on for GPUs only (slower on CPUs, measured);
- `with precision():` around building the networks (or `set_precision("auto")` before):
  mixed_float16 on GPUs with tensor cores, mixed_bfloat16 on CPUs with bfloat16
  instructions (AVX512_BF16/AMX), float32 elsewhere; losses stay float32 and float16 gets
  loss scaling;
- `GAN(reuse_generated=True)`: the G step reuses the D step's generated batch and its
  recorded G forward pass (one G forward per step instead of two);
- `GAN(fused_batch_norm=True)`: batch norm in one TensorFlow op per layer and call in
  training (`gan_course.batchnorm`; Keras 3 computes it in several);
- `GAN(fuse_discriminator="auto")`: one discriminator call on real and generated images
  together when D has no batch norm (identical results, larger and fewer kernels);
- `GAN(update="simultaneous")`: both networks' gradients from one forward pass (two D
  forward passes per step instead of the alternating step's three), as the TensorFlow
  tutorial does; when D treats each image on its own (no batch norm), from one backward
  pass through D as well (`_simultaneous_step`).

Quality: `GAN(ema_decay=...)` keeps an average of G's weights, updated inside the compiled
step; samples, the grid and `best_metric` use it (`sampling_generator`).

    trainer = Trainer(lambda: make_gan(...), output_dir / "dcgan", sample_every=200)
    trainer.fit(images.batches(128), steps=3000)
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from gan_course import config
from gan_course import losses as gan_losses
from gan_course.batchnorm import fuse_batch_norms
from gan_course.i18n import N_, _
from gan_course.models import flat_layers

METRICS = ("d_loss", "g_loss", "D(x)", "D(G(z))")
UPDATES = ("alternating", "simultaneous")
# TensorBoard names may not contain parentheses.
SUMMARY_NAMES = {"d_loss": "loss/discriminator", "g_loss": "loss/generator",
                 "D(x)": "D/real", "D(G(z))": "D/fake"}


def _gpus() -> list:
    return tf.config.list_physical_devices("GPU")


def _cpu_has_bfloat16() -> bool:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def auto_precision() -> str:
    """The Keras dtype policy "auto" means here: `GAN_COURSE_PRECISION` if set, else the fastest
    safe one for this machine (see `set_precision`)."""
    setting = config.precision_setting()
    if setting != "auto":
        return setting
    gpus = _gpus()
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        return "mixed_float16" if tuple(capability) >= (7, 0) else "float32"
    return "mixed_bfloat16" if _cpu_has_bfloat16() else "float32"


def set_precision(policy: str = "auto") -> str:
    """Set Keras' global dtype policy for the networks built AFTER this call; returns it.

    "auto": mixed_float16 on GPUs with tensor cores (compute capability 7.0+),
    mixed_bfloat16 on CPUs with bfloat16 instructions (AVX512_BF16 or AMX: about 1.7x
    faster convolutions through oneDNN on such a CPU), float32 otherwise; or what
    `GAN_COURSE_PRECISION` names.  Variables stay float32 either way, and the losses are
    computed in float32.
    """
    policy = auto_precision() if policy == "auto" else policy
    keras.mixed_precision.set_global_policy(policy)
    return policy


@contextlib.contextmanager
def precision(policy: str = "auto"):
    """Build networks under a dtype policy (`set_precision`'s), then restore the one before.

        with train.precision():
            gan = make_gan()

    A network keeps the policy it was built with; whatever is built after the block (a
    metrics classifier, say) computes in the previous policy again, float32 by default.
    Yields the policy's name.
    """
    previous = keras.mixed_precision.global_policy()
    try:
        yield set_precision(policy)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def auto_jit_compile() -> bool:
    """XLA on GPUs only: on CPUs it made the DCGAN step slower (bench/RESULTS.md)."""
    return bool(_gpus())


def _has_batch_norm(model) -> bool:
    return any(isinstance(layer, keras.layers.BatchNormalization) for layer in flat_layers(model))


def per_replica_scale(loss):
    # Gradients are summed over replicas: each replica's mean loss counts 1/n of the
    # global batch's mean.  Without a strategy n = 1.
    n = tf.distribute.get_replica_context().num_replicas_in_sync if tf.distribute.has_strategy() else 1
    return loss / tf.cast(n, loss.dtype)


class GeneratorEMA:
    """An exponential moving average of a generator's weights, kept in a copy for sampling.

        ema = GeneratorEMA(generator, decay=0.999)
        ...after each G step: ema.update(step)
        images = ema.model(z, training=False)

    Every weight is averaged, batch-norm statistics included (as BigGAN's code does).
    With `num_updates` given, the decay is min(decay, (1 + n) / (10 + n)) as in
    `tf.train.ExponentialMovingAverage`: early on the copy follows the live weights
    closely instead of remembering the random start.
    """

    def __init__(self, generator: keras.Model, decay: float = 0.999):
        self.decay = decay
        self.generator = generator
        self.model = keras.models.clone_model(generator)
        self.model.set_weights(generator.get_weights())
        self.model.trainable = False

    def update(self, num_updates=None):
        decay = tf.constant(self.decay, tf.float32)
        if num_updates is not None:
            n = tf.cast(num_updates, tf.float32)
            decay = tf.minimum(decay, (1.0 + n) / (10.0 + n))
        for shadow, live in zip(self.model.weights, self.generator.weights):
            if "float" in str(shadow.dtype):
                shadow.assign(decay * shadow + (1.0 - decay) * live)
            else:
                shadow.assign(live)

    @contextlib.contextmanager
    def swapped_in(self):
        """Inside the block the live generator holds the averaged weights, for code that
        samples from it (a sample grid, a metric); its own weights come back after."""
        live = self.generator.get_weights()
        self.generator.set_weights(self.model.get_weights())
        try:
            yield self.generator
        finally:
            self.generator.set_weights(live)

    def copy_to(self, model: keras.Model) -> None:
        """Put the averaged weights into `model` (for example the live generator, at the end)."""
        model.set_weights(self.model.get_weights())


class GAN(keras.Model):
    """A generator and a discriminator trained against each other (see the module doc)."""

    def __init__(self, generator: keras.Model, discriminator: keras.Model, latent_dim: int | None = None,
                 loss="non_saturating", label_smoothing: float = 0.0, fuse_discriminator="auto",
                 reuse_generated: bool = True, update: str = "alternating", ema_decay: float | None = None,
                 fused_batch_norm: bool = True, **kwargs):
        """`loss` is a name from `gan_course.losses.LOSSES` or a pair (d_loss_fn, g_loss_fn).

        `fuse_discriminator`: in the D step, call D once on real and generated images
        concatenated.  "auto" fuses only when D has no batch norm, whose statistics would
        otherwise mix the two batches (the paper keeps them apart), and only in the
        alternating update: in the simultaneous one the fused call measured slower
        (bench/RESULTS.md).
        `reuse_generated`: the G step judges the images the D step generated (one G
        forward pass per step) instead of generating a fresh batch (two).
        `update`: "alternating" (D steps, then G plays against the updated D: three D
        forward passes per step) or "simultaneous" (both networks' gradients from one
        forward pass, as in the TensorFlow DCGAN tutorial: two D forward passes, about a
        quarter less arithmetic per step).
        `ema_decay`: keep an exponential moving average of G's weights (`GeneratorEMA`),
        updated after every G step in the compiled step; samples, the sample grid and the
        Trainer's `best_metric` then use it (`sampling_generator`).  Averaging smooths out
        the oscillation of the game and gives better samples sooner at no training cost
        (Yazıcı et al. 2019, "The unusual effectiveness of averaging in GAN training").

        `fused_batch_norm`: switch both networks' batch-norm layers to one fused op per call
        in training (`gan_course.batchnorm`: the same layers and the same function, less time).
        """
        super().__init__(**kwargs)
        if fused_batch_norm:
            fuse_batch_norms(generator)
            fuse_batch_norms(discriminator)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim or generator.input_shape[-1])
        self.label_smoothing = label_smoothing
        if isinstance(loss, str):
            self.d_loss_fn, self.g_loss_fn = gan_losses.get_losses(loss, label_smoothing)
        else:
            self.d_loss_fn, self.g_loss_fn = loss
        if update not in UPDATES:
            raise ValueError(_("update must be one of {choices}, not {value!r}").format(
                choices=", ".join(UPDATES), value=update))
        self.update = update
        # Without batch norm D judges each image on its own: the fused call, and the simultaneous
        # update's single backward pass through D, rely on that.
        self.per_image_discriminator = not _has_batch_norm(discriminator)
        self.fuse_discriminator = (update == "alternating" and self.per_image_discriminator
                                   if fuse_discriminator == "auto" else bool(fuse_discriminator))
        self.reuse_generated = bool(reuse_generated)
        self.ema = GeneratorEMA(generator, ema_decay) if ema_decay else None
        if self.ema is not None:
            self.ema_generator = self.ema.model  # tracked, so it is saved with the model
        # Both networks are built already; without this, fit would call the GAN on an
        # image batch to build it, and feed images where z belongs.
        self.built = True

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        """Adam(2e-4, beta_1=0.5) for both networks unless given (the DCGAN paper's choice)."""
        # No optimizer of the model's own: each network has one (fit would otherwise build
        # a default RMSprop over every weight).
        super().compile(optimizer=None, **kwargs)
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        if self.generator.dtype_policy.name == "mixed_float16":
            # float16 gradients underflow without loss scaling (bfloat16 has float32's range).
            wrap = lambda opt: opt if isinstance(opt, keras.optimizers.LossScaleOptimizer) \
                else keras.optimizers.LossScaleOptimizer(opt)
            self.d_optimizer, self.g_optimizer = wrap(self.d_optimizer), wrap(self.g_optimizer)

    def call(self, z, training=False):
        return self.generator(z, training=training)

    def sample_latent(self, batch_size):
        return tf.random.normal((batch_size, self.latent_dim))

    # What the Trainer asks of a GAN; subclasses with other inputs (class labels, codes)
    # or other networks (an EMA generator, a Q head) override these three.
    def fixed_latent(self, count: int, seed: int = 0):
        """The generator input of the Trainer's sample grid: the same for the same seed."""
        return np.random.default_rng(seed).normal(size=(count, self.latent_dim)).astype(np.float32)

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator to sample from: the weight average when the GAN keeps one, else G itself."""
        return self.generator if self.ema is None else self.ema.model

    def generate(self, latent, training=False, ema: bool = True):
        """Images from a generator input such as `fixed_latent`'s (`ema=False`: the live G)."""
        return (self.sampling_generator if ema else self.generator)(latent, training=training)

    def checkpoint_objects(self) -> dict:
        """Networks and optimizers a checkpoint holds (networks: the keys not ending in `_optimizer`)."""
        objects = {"generator": self.generator, "discriminator": self.discriminator,
                   "d_optimizer": self.d_optimizer, "g_optimizer": self.g_optimizer}
        if self.ema is not None:
            objects["ema_generator"] = self.ema.model
        return objects

    def after_generator_step(self) -> None:
        """Work after each G step (in the compiled step): the weight average's update."""
        if self.ema is not None:
            self.ema.update(self.g_optimizer.iterations)

    def _d_logits(self, real_images, fake_images):
        """D on real and generated images: in separate calls, so batch norm never mixes their
        statistics (as in the paper's code); in one call when D has none."""
        if self.fuse_discriminator:
            both = tf.concat([tf.cast(real_images, fake_images.dtype), fake_images], axis=0)
            real_logits, fake_logits = tf.split(self.discriminator(both, training=True), 2, axis=0)
            return real_logits, fake_logits
        return self.discriminator(real_images, training=True), self.discriminator(fake_images, training=True)

    def _step_metrics(self, d_loss, g_loss, real_logits, fake_logits) -> dict:
        return {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "D(x)": tf.reduce_mean(tf.sigmoid(tf.cast(real_logits, tf.float32))),
            "D(G(z))": tf.reduce_mean(tf.sigmoid(tf.cast(fake_logits, tf.float32))),
        }

    def _simultaneous_step(self, real_images):
        # One G and one D forward pass; each network's gradient of its own loss (the
        # tutorial's update, with the engine's precision and data path).
        z = self.sample_latent(tf.shape(real_images)[0])
        with tf.GradientTape() as g_tape:
            fake_images = self.generator(z, training=True)
        with tf.GradientTape(persistent=True) as d_tape:
            d_tape.watch(fake_images)
            real_logits, fake_logits = self._d_logits(real_images, fake_images)
            d_loss = self.d_loss_fn(real_logits, fake_logits)
            g_loss = self.g_loss_fn(fake_logits)
            d_scaled = self.d_optimizer.scale_loss(per_replica_scale(d_loss))
            g_scaled = self.g_optimizer.scale_loss(per_replica_scale(g_loss))
        *d_grads, d_image_grads = d_tape.gradient(d_scaled, self.discriminator.trainable_variables + [fake_images])

        def g_image_grads_through_d():  # a second backward pass through D's call on the fakes
            return d_tape.gradient(g_scaled, fake_images)

        if self.per_image_discriminator:
            image_grads = tf.cond(*self._rescaled_image_grads(real_logits, fake_logits, d_image_grads),
                                  g_image_grads_through_d)
        else:  # batch norm mixes the images' gradients: no shortcut
            image_grads = g_image_grads_through_d()
        g_grads = g_tape.gradient(fake_images, self.generator.trainable_variables, output_gradients=image_grads)
        self.d_optimizer.apply_gradients(zip(d_grads, self.discriminator.trainable_variables))
        self.g_optimizer.apply_gradients(zip(g_grads, self.generator.trainable_variables))
        self.after_generator_step()
        return self._step_metrics(d_loss, g_loss, real_logits, fake_logits)

    def _rescaled_image_grads(self, real_logits, fake_logits, d_image_grads):
        """G's loss gradient at the fakes, from D's: (usable?, a function returning it).

        When D judges each image on its own, the gradient of any loss at fake image i is
        D's input-Jacobian of logit i times that loss's slope at logit i.  So G's
        gradient is D's gradient at image i scaled by g_slope_i / d_slope_i: the backward
        pass D's update makes already gives it, and a second one through D is saved
        (about one D forward pass per image).  The slopes come from the losses at the
        logits alone, in float32; where D's slope is (nearly) zero, as the hinge loss's
        is past its margin, the ratio is unusable and the step takes the second pass.
        No library does this for a two-player step; it is the chain rule, checked
        against the two-pass step in tests/test_train.py.
        """
        logits = tf.cast(fake_logits, tf.float32)
        with tf.GradientTape(persistent=True) as slopes:
            slopes.watch(logits)
            d_part = self.d_optimizer.scale_loss(per_replica_scale(
                self.d_loss_fn(tf.stop_gradient(tf.cast(real_logits, tf.float32)), logits)))
            g_part = self.g_optimizer.scale_loss(per_replica_scale(self.g_loss_fn(logits)))
        d_slope, g_slope = slopes.gradient(d_part, logits), slopes.gradient(g_part, logits)
        del slopes
        usable = tf.reduce_all(tf.abs(d_slope) > 1e-20)

        def rescaled():
            ratio = tf.reshape(g_slope / tf.where(usable, d_slope, 1.0), [-1] + [1] * (len(d_image_grads.shape) - 1))
            return tf.cast(tf.cast(d_image_grads, tf.float32) * ratio, d_image_grads.dtype)

        return usable, rescaled

    def train_step(self, data):
        real_images = data[0] if isinstance(data, (tuple, list)) else data
        if self.update == "simultaneous":
            return self._simultaneous_step(real_images)
        batch_size = tf.shape(real_images)[0]

        # D step: real and generated images in separate D calls, so batch norm never
        # mixes their statistics (as in the paper's code); one call when D has none.
        # G's forward pass is recorded on its own tape, for the G step to reuse.
        z = self.sample_latent(batch_size)
        with tf.GradientTape() as generator_tape:
            fake_images = self.generator(z, training=True)
        with tf.GradientTape() as tape:
            real_logits, fake_logits = self._d_logits(real_images, fake_images)
            d_loss = self.d_loss_fn(real_logits, fake_logits)
            scaled_loss = self.d_optimizer.scale_loss(per_replica_scale(d_loss))
        grads = tape.gradient(scaled_loss, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))

        # G step against the updated D.
        if self.reuse_generated:
            # The D step's images, judged again by the updated D (as PyTorch's DCGAN
            # example does): the gradient reaching them is carried back through the G
            # forward pass already recorded, which saves a second G forward pass.
            with tf.GradientTape() as tape:
                tape.watch(fake_images)
                fake_logits = self.discriminator(fake_images, training=True)
                g_loss = self.g_loss_fn(fake_logits)
                scaled_loss = self.g_optimizer.scale_loss(per_replica_scale(g_loss))
            image_grads = tape.gradient(scaled_loss, fake_images)
            grads = generator_tape.gradient(fake_images, self.generator.trainable_variables,
                                            output_gradients=image_grads)
        else:  # fresh noise: a new G forward pass
            z = self.sample_latent(batch_size)
            with tf.GradientTape() as tape:
                fake_logits = self.discriminator(self.generator(z, training=True), training=True)
                g_loss = self.g_loss_fn(fake_logits)
                scaled_loss = self.g_optimizer.scale_loss(per_replica_scale(g_loss))
            grads = tape.gradient(scaled_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        self.after_generator_step()
        return self._step_metrics(d_loss, g_loss, real_logits, fake_logits)


def make_gan(generator: keras.Model, discriminator: keras.Model, loss="non_saturating",
             label_smoothing: float = 0.0, learning_rate: float = 2e-4, beta_1: float = 0.5,
             fuse_discriminator="auto", reuse_generated: bool = True, update: str = "alternating",
             ema_decay: float | None = None, fused_batch_norm: bool = True, beta_2: float = 0.999) -> GAN:
    """A compiled GAN with one Adam optimizer per network (`beta_2`: Adam's default unless given)."""
    gan = GAN(generator, discriminator, loss=loss, label_smoothing=label_smoothing,
              fuse_discriminator=fuse_discriminator, reuse_generated=reuse_generated, update=update,
              ema_decay=ema_decay, fused_batch_norm=fused_batch_norm)
    gan.compile(d_optimizer=keras.optimizers.Adam(learning_rate, beta_1=beta_1, beta_2=beta_2),
                g_optimizer=keras.optimizers.Adam(learning_rate, beta_1=beta_1, beta_2=beta_2))
    return gan


def image_batches(images, batch_size: int, seed: int = 0, labels=None) -> tf.data.Dataset:
    """Endless shuffled batches gathered in the graph from images held as one tensor.

    Every epoch is a fresh permutation of the indices (like `shuffle(len(images))`), drawn
    by one shuffle op per epoch and cut into batches: no image, and no single index, passes
    through a tf.data shuffle buffer (that buffer cost 2-5% of a step, bench/RESULTS.md), and
    each batch is one `tf.gather` from the tensor.
    `labels`: an int array, or True for the `y` of an `ImageData`: the batches are then
    (images, int32 labels) pairs, for class-conditional GANs.
    """
    if labels is True:
        labels = getattr(images, "y", None)
        if labels is None:
            raise ValueError(_("labels=True needs images with labels (an ImageData with y)"))
    images = tf.convert_to_tensor(np.asarray(getattr(images, "x", images), np.float32))
    count = int(images.shape[0])
    if count < batch_size:
        raise ValueError(_("{count} images cannot fill a batch of {batch_size}").format(count=count, batch_size=batch_size))
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (count,):
            raise ValueError(_("labels must have shape ({count},) for {count} images, not {shape}").format(
                count=count, shape=labels.shape))
        labels = tf.convert_to_tensor(labels.astype(np.int32))
        gather = lambda i: (tf.gather(images, i), tf.gather(labels, i))
    else:
        gather = lambda i: tf.gather(images, i)
    per_epoch = count // batch_size

    def epoch(number):  # one shuffle op per epoch: a whole permutation, cut into batches
        order = tf.random.experimental.stateless_shuffle(tf.range(count), seed=tf.stack([tf.constant(seed, tf.int64),
                                                                                          number]))
        return tf.data.Dataset.from_tensor_slices(tf.reshape(order[:per_epoch * batch_size], (per_epoch, batch_size)))

    return (tf.data.Dataset.counter().flat_map(epoch)
            .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


# ----------------------------------------------------------------------------- files
def _write_json(path: Path, value) -> None:
    # Write then rename: a kill in the middle never leaves half a file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)


def _labelled_frame(grid: np.ndarray, text: str, scale: int = 2) -> np.ndarray:
    """An RGB frame: the grid enlarged `scale` times under a strip with `text`."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(grid).convert("RGB")
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    frame = Image.new("RGB", (image.width, image.height + 16), "white")
    frame.paste(image, (0, 16))
    ImageDraw.Draw(frame).text((4, 2), text, fill="black")
    return np.asarray(frame)


def make_gif(frames_dir: Path, path: Path, frame_ms: int = 200, last_ms: int = 1500) -> Path | None:
    """Combine the PNG frames of a folder (in name order) into one looping GIF."""
    import imageio.v3 as iio

    files = sorted(Path(frames_dir).glob("step_*.png"))
    if not files:
        return None
    frames = [iio.imread(f) for f in files]
    durations = [frame_ms] * (len(frames) - 1) + [last_ms]
    iio.imwrite(path, np.stack(frames), duration=durations, loop=0)
    return path


def _as_batches(data, batch_size, seed) -> tuple[tf.data.Dataset, int]:
    """(dataset of batches, its batch size) from what `fit` takes: a dataset, or images with a batch size."""
    if not isinstance(data, tf.data.Dataset):
        if not batch_size:
            raise ValueError(_("give batch_size when fit gets images rather than a tf.data.Dataset"))
        data = image_batches(data, batch_size, seed=seed)
    return data, tf.nest.flatten(data.element_spec)[0].shape[0]  # the images of (images, labels) pairs


def _progress_bar(steps: int, start: int, show: bool, desc: str | None = None):
    from tqdm.auto import tqdm

    return tqdm(total=steps, initial=start, desc=desc or _("training"), unit=_("step"), disable=not show)


# ----------------------------------------------------------------------------- trainer
class _Hooks(keras.callbacks.Callback):
    """Calls the trainer after every step (fit's callbacks see the step's metrics)."""

    def __init__(self, trainer: "Trainer"):
        super().__init__()
        self.trainer = trainer

    def on_train_batch_end(self, batch, logs=None):
        self.trainer._after_step(logs or {})


class Trainer:
    """Trains a GAN with progress, samples, TensorBoard, checkpoints, resume and best-by-metric.

    Arguments:
        gan: a compiled `GAN`, or a function returning one (needed with `strategy`, as the
            networks must be built inside the strategy's scope).
        directory: where everything goes: `checkpoints/`, `best/`, `samples/` (PNG frames),
            `samples.gif`, `history.json`, `logs/` (TensorBoard).
        sample_every: steps between sample grids (from the same fixed z every time).
        checkpoint_every: steps between checkpoints (default: `sample_every`).
        best_metric: optional `fn(generator) -> float`, evaluated every `best_every` steps
            (default: `checkpoint_every`) and at the end; the best checkpoint is kept in `best/`.
        best_mode: "min" (default, for distances) or "max" (for scores).
        num_samples: images in the sample grid.
        log_every: steps between TensorBoard scalars.
        strategy: a `tf.distribute.Strategy`, or None for the default.
        steps_per_execution: train steps per compiled call, or "auto" (1 on a CPU; on a
            GPU the largest divisor of the sample/checkpoint/log/best intervals up to 32).
            With N > 1 the hooks (history row, progress, scalars, samples, checkpoints,
            best metric) run once per call, on its last step's metrics, and an interval
            fires when a call crosses one of its multiples.
        jit_compile: XLA for the train step: True, False or "auto" (GPUs only).
    """

    def __init__(self, gan: GAN | Callable[[], GAN], directory, *, sample_every: int = 100,
                 checkpoint_every: int | None = None, best_metric: Callable | None = None,
                 best_every: int | None = None, best_mode: str = "min", num_samples: int = 64,
                 log_every: int = 10, max_to_keep: int = 3, seed: int = 0, value_range=(-1.0, 1.0),
                 strategy: tf.distribute.Strategy | None = None, progress: bool = True, quiet: bool = False,
                 steps_per_execution="auto", jit_compile="auto"):
        if best_mode not in ("min", "max"):
            raise ValueError(_("best_mode is 'min' or 'max'"))
        self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope():
            gan = gan if isinstance(gan, keras.Model) else gan()
            if strategy is not None and not all(self.strategy.extended.variable_created_in_scope(v.value)
                                                for v in gan.generator.weights[:1] + gan.discriminator.weights[:1]):
                raise ValueError(_("this GAN was built outside the strategy's scope: pass a function "
                                   "that builds it (Trainer(lambda: make_gan(...), ..., strategy=...))."))
            # Optimizer slots exist before a restore, so a checkpoint fills them directly.
            gan.d_optimizer.build(gan.discriminator.trainable_variables)
            gan.g_optimizer.build(gan.generator.trainable_variables)
        self.gan = gan
        self.directory = Path(directory)
        self.steps_per_execution = steps_per_execution
        self.jit_compile = jit_compile
        self.samples_dir = self.directory / "samples"
        self.gif_path = self.directory / "samples.gif"
        self.history_path = self.directory / "history.json"
        self.best_path = self.directory / "best.json"
        for folder in (self.directory, self.samples_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.sample_every = int(sample_every)
        self.checkpoint_every = int(checkpoint_every or sample_every)
        self.best_metric = best_metric
        self.best_every = int(best_every or self.checkpoint_every)
        self.best_mode = best_mode
        self.log_every = int(log_every)
        self.value_range = value_range
        self.progress = progress
        self.quiet = quiet
        # The same z for every grid, from the seed: identical after a restart.
        self.fixed_z = gan.fixed_latent(num_samples, seed)

        self.checkpoint = tf.train.Checkpoint(**gan.checkpoint_objects())
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory / "checkpoints",
                                                  max_to_keep=max_to_keep, checkpoint_name="ckpt")
        self.best_manager = tf.train.CheckpointManager(self.checkpoint, self.directory / "best",
                                                       max_to_keep=1, checkpoint_name="best")
        self.writer = tf.summary.create_file_writer(str(self.directory / "logs"))
        self.history: list[dict] = []
        self.evaluations: list[dict] = []
        self.best: dict | None = None
        self.images_per_second: float | None = None
        self.interrupted = False
        self._bar = None
        self._first_step = None
        self._saved_step = -1
        self._hooked_step = 0
        self._configure_compiled_calls()
        self.restore()

    def _configure_compiled_calls(self) -> None:
        spe = self.steps_per_execution
        if spe == "auto":
            spe = 1
            if _gpus():
                intervals = [self.sample_every, self.checkpoint_every, self.log_every]
                intervals += [self.best_every] if self.best_metric is not None else []
                spe = max(n for n in range(1, 33) if all(every % n == 0 for every in intervals))
        jit = auto_jit_compile() if self.jit_compile == "auto" else bool(self.jit_compile)
        # Keras builds its train function from these on the next fit.
        self.gan.steps_per_execution = int(spe)
        self.gan.jit_compile = jit
        self.gan.train_function = None

    # ------------------------------------------------------------------ state
    @property
    def step(self) -> int:
        """Training steps done so far (G's optimizer counter, so it is checkpointed; D may
        take several steps per G step)."""
        return int(self.gan.g_optimizer.iterations.numpy())

    def restore(self) -> int:
        """Load the latest checkpoint and its history, if any; return the step."""
        path = self.manager.latest_checkpoint
        if path is None:
            return 0
        self.checkpoint.restore(path).assert_existing_objects_matched()
        step = self.step
        if self.history_path.exists():
            saved = json.loads(self.history_path.read_text())
            # The history is written before its checkpoint: drop what came after it.
            self.history = [row for row in saved["rows"] if row["step"] <= step]
            self.evaluations = [row for row in saved.get("evaluations", []) if row["step"] <= step]
        if self.best_path.exists():
            self.best = json.loads(self.best_path.read_text())
        for frame in self.samples_dir.glob("step_*.png"):
            if int(frame.stem.split("_")[1]) > step:
                frame.unlink()  # drawn by a run whose later steps were lost
        self._saved_step = self._hooked_step = step
        if not self.quiet:
            print(_("Resumed from {name}: step {step}, {n} steps of history.").format(
                name=Path(path).name, step=step, n=len(self.history)))
        return step

    def restore_best(self) -> dict | None:
        """Load the best checkpoint (by `best_metric`) into the networks; returns its record."""
        path = self.best_manager.latest_checkpoint
        if path is None:
            return None
        # Only the networks: the optimizers keep their state for further training.
        networks = {k: v for k, v in self.gan.checkpoint_objects().items() if not k.endswith("_optimizer")}
        tf.train.Checkpoint(**networks).restore(path).expect_partial()
        return self.best

    def save(self) -> str:
        """Write the history, then a checkpoint at the current step."""
        step = self.step
        _write_json(self.history_path, {"rows": self.history, "evaluations": self.evaluations})
        path = self.manager.save(checkpoint_number=step)
        self._saved_step = step
        return path

    # ------------------------------------------------------------------ pieces
    def generate(self, z=None) -> np.ndarray:
        z = self.fixed_z if z is None else z
        return np.asarray(tf.cast(self.gan.generate(z, training=False), tf.float32))

    def sample_grid(self) -> Path:
        """Draw the fixed-z grid at the current step: PNG frame + TensorBoard image."""
        from gan_course.plotting import image_grid
        import imageio.v3 as iio

        step = self.step
        images = self.generate()
        grid = image_grid(images, value_range=self.value_range)
        path = self.samples_dir / f"step_{step:06d}.png"
        # English whatever the language: PIL's built-in font has no Chinese glyphs.
        iio.imwrite(path, _labelled_frame(grid, f"step {step}"))
        with self.writer.as_default():
            image = grid[None, ..., None] if grid.ndim == 2 else grid[None]
            tf.summary.image("samples", image, step=step)
        return path

    def evaluate(self) -> float | None:
        """Run `best_metric` now; keep a best checkpoint if it is the best so far."""
        if self.best_metric is None:
            return None
        step = self.step
        value = float(self.best_metric(self.gan.sampling_generator))
        self.evaluations.append({"step": step, "value": value})
        with self.writer.as_default():
            tf.summary.scalar("eval/best_metric", value, step=step)
        better = self.best is None or (value < self.best["value"] if self.best_mode == "min"
                                       else value > self.best["value"])
        if better:
            self.best_manager.save(checkpoint_number=step)
            self.best = {"step": step, "value": value}
            _write_json(self.best_path, self.best)
        return value

    def make_gif(self) -> Path | None:
        return make_gif(self.samples_dir, self.gif_path)

    def _after_step(self, logs: dict) -> None:
        step, last = self.step, self._hooked_step
        self._hooked_step = step

        def due(every):  # a multiple of `every` in (last, step]: each step, or each call
            return step // every > last // every

        # Every scalar the train step returned (subclasses add their own, e.g. `mi_loss`).
        row = {"step": step, **{k: float(v) for k, v in logs.items() if np.ndim(v) == 0}}
        if self._first_step is None:
            self._first_step = (step, time.perf_counter())  # the rate leaves out tracing
        self.history.append(row)
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k != "step"}, refresh=False)
            self._bar.update(step - self._bar.n)
        if due(self.log_every):
            with self.writer.as_default():
                for key, value in row.items():
                    if key != "step":
                        tf.summary.scalar(SUMMARY_NAMES.get(key, key), value, step=step)
        if due(self.sample_every):
            self.sample_grid()
        if self.best_metric is not None and due(self.best_every):
            self.evaluate()
        if due(self.checkpoint_every):
            self.save()

    # ------------------------------------------------------------------ training
    def fit(self, data, steps: int, callbacks=(), *, batch_size: int | None = None, seed: int = 0) -> list[dict]:
        """Train until the step counter reaches `steps` (a total, so a rerun resumes).

        `data` is a `tf.data.Dataset` of image batches (repeated as needed), or the images
        themselves (an array or `ImageData`) with `batch_size`: they are then held as one
        tensor and batched in the graph (`image_batches`).  The stop button ends training
        cleanly: the state at that step is checkpointed and kept.
        """
        data, batch_size = _as_batches(data, batch_size, seed)
        start = self._begin(steps)
        if start is None:
            return self.history
        self._bar = _progress_bar(steps, start, self.progress)
        began = time.perf_counter()
        try:
            # take(): the last compiled call stops at `steps` even with several steps per call.
            self.gan.fit(data.repeat().take(steps - start), steps_per_epoch=steps - start, epochs=1, verbose=0,
                         shuffle=False, callbacks=[_Hooks(self), *callbacks])
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            self._bar.close()
            self._bar = None
        self._end(start, began, batch_size)
        return self.history

    def _begin(self, steps: int) -> int | None:
        """Before training to `steps`: the step it starts from, or None (and a word) if it is there."""
        start = self.step
        self._hooked_step = start
        if start >= steps:
            if not self.quiet:
                print(_("Already trained for {start} steps (asked for {steps}); nothing to do.").format(start=start, steps=steps))
            return None
        if not any(self.samples_dir.glob("step_*.png")):
            self.sample_grid()  # the untrained generator: the first frame of the GIF
        self.interrupted = False
        self._first_step = None
        return start

    def _end(self, start: int, began: float, batch_size) -> None:
        """After training: the rate, the last grid, evaluation and checkpoint, the GIF, and a word."""
        ended = time.perf_counter()
        seconds, done = ended - began, self.step - start
        if batch_size and self._first_step is not None and self.step > self._first_step[0]:
            first, at = self._first_step
            self.images_per_second = (self.step - first) * int(batch_size) / (ended - at)
        self._finish()
        if not self.quiet:
            rate = _(", {rate:.0f} images/s").format(rate=self.images_per_second) if self.images_per_second else ""
            message = (N_("Stopped at step {step} ({done} steps in {seconds:.0f} s{rate}). Checkpoint and history are in {folder}.")
                       if self.interrupted else
                       N_("Trained at step {step} ({done} steps in {seconds:.0f} s{rate}). Checkpoint and history are in {folder}."))
            print(_(message).format(step=self.step, done=done, seconds=seconds, rate=rate, folder=self.directory))

    def _finish(self) -> None:
        step = self.step
        if not (self.samples_dir / f"step_{step:06d}.png").exists():
            self.sample_grid()
        if self.best_metric is not None and not any(e["step"] == step for e in self.evaluations):
            self.evaluate()
        if self._saved_step != step:
            self.save()
        self.make_gif()
        self.writer.flush()


class _Together(keras.Model):
    """Several GANs as one Keras model: its step runs each GAN's train step on the same batch."""

    def __init__(self, gans):
        super().__init__()
        self.members = list(gans)

    def call(self, inputs, training=False):
        return [gan(inputs, training=training) for gan in self.members]

    def train_step(self, data):
        return {f"{i}/{key}": value for i, gan in enumerate(self.members) for key, value in gan.train_step(data).items()}


class _TogetherHooks(keras.callbacks.Callback):
    """Hands each trainer its own GAN's metrics after every compiled call, and moves the bar."""

    def __init__(self, trainers, bar):
        super().__init__()
        self.trainers, self.bar = trainers, bar

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        for i, trainer in enumerate(self.trainers):
            prefix = f"{i}/"
            trainer._after_step({key[len(prefix):]: value for key, value in logs.items() if key.startswith(prefix)})
        self.bar.update(self.trainers[0].step - self.bar.n)


def fit_together(trainers, data, steps: int, *, batch_size: int | None = None, seed: int = 0) -> None:
    """Train several GANs to `steps` on the same batches, one compiled call stepping them all.

    Shared work for runs that differ only in their models or losses (lab 05's three
    AC-GANs): one tracing instead of one per run, and on a CPU the runs' small kernels
    overlap on the cores that one run leaves idle (bench/RESULTS.md).  Each trainer keeps
    its own samples, checkpoints, history and best checkpoint exactly as `Trainer.fit`
    would (each trainer's `history`), and a rerun resumes; a trainer left behind the others
    (a run stopped between their checkpoints) first catches up alone.  Returns nothing, so
    that a notebook cell ending with the call shows no list of histories.
    """
    trainers = list(trainers)
    if any(t.strategy is not tf.distribute.get_strategy() for t in trainers):
        raise ValueError(_("fit_together trains with the default strategy only: fit each trainer on its own"))
    data, batch_size = _as_batches(data, batch_size, seed)
    ahead = min(max(t.step for t in trainers), steps)
    for trainer in trainers:
        if trainer.step < ahead:
            trainer.fit(data, ahead)
    start = [trainer._begin(steps) for trainer in trainers][0]  # every trainer is at `ahead` now
    if start is None:
        return
    first = trainers[0].gan
    group = _Together([trainer.gan for trainer in trainers])
    group.compile(optimizer=None, steps_per_execution=first.steps_per_execution, jit_compile=first.jit_compile)
    bar = _progress_bar(steps, start, any(trainer.progress for trainer in trainers),
                        _("training {n} GANs together").format(n=len(trainers)))
    began = time.perf_counter()
    try:
        group.fit(data.repeat().take(steps - start), steps_per_epoch=steps - start, epochs=1, verbose=0,
                  shuffle=False, callbacks=[_TogetherHooks(trainers, bar)])
    except KeyboardInterrupt:
        for trainer in trainers:
            trainer.interrupted = True
    finally:
        bar.close()
    for trainer in trainers:
        trainer._end(start, began, batch_size)


class ConditionalGAN(GAN):
    """A class-conditional GAN: G([z, y]) and D([image, y]); `fit` on (images, labels) batches.

    Per `train_step`: one D step on real images with their labels and generated images
    with random labels (separate D calls when D has batch norm), then one G step in which
    the updated D judges those same fakes again (`reuse_generated=False`: a fresh batch,
    a second G forward pass).  The default loss is the non-saturating one (the DCGAN
    paper's, and Adam(2e-4, beta_1=0.5)): this is the lab's conditional DCGAN.  The Trainer's grid
    (`fixed_latent`) has one row per class.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, latent_dim: int, num_classes: int,
                 loss="non_saturating", **kwargs):
        super().__init__(generator, discriminator, latent_dim=latent_dim, loss=loss, **kwargs)
        self.num_classes = int(num_classes)

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def sample_labels(self, batch_size):
        return tf.random.uniform((batch_size,), 0, self.num_classes, dtype=tf.int32)

    def fixed_latent(self, count: int, seed: int = 0):
        """(z, labels) for the sample grid: `count` z from the seed, labels 0, 0, ..., 1, 1, ...
        so that each row of the (square) grid is one class."""
        ncols = int(np.ceil(np.sqrt(count)))
        z = np.random.default_rng(seed).normal(size=(count, self.latent_dim)).astype(np.float32)
        return z, (np.arange(count) // ncols % self.num_classes).astype(np.int32)

    def _split_latent(self, latent, labels):
        if isinstance(latent, (tuple, list)):
            latent, labels = latent
        z = tf.convert_to_tensor(latent, tf.float32)
        labels = tf.range(tf.shape(z)[0]) % self.num_classes if labels is None else labels
        return z, tf.cast(labels, tf.int32)

    def generate(self, latent, labels=None, training=False, ema: bool = True):
        """Images from z (or a `(z, labels)` pair); labels default to classes 0, 1, 2, ... in turn;
        by the weight average when the GAN keeps one (`ema=False`: the live G)."""
        z, labels = self._split_latent(latent, labels)
        return (self.sampling_generator if ema else self.generator)([z, labels], training=training)

    # Hooks for BigGAN: D steps per G step and a penalty added to G's loss.
    d_steps = 1

    def generator_penalty(self) -> dict:
        """Extra terms of G's loss by metric name (none here)."""
        return {}

    def _discriminator_step(self, real_images, real_labels):
        """One D step on a fresh batch of fakes; returns what the G step may reuse: the fakes,
        their labels and the tape that recorded G's forward pass."""
        batch_size = tf.shape(real_images)[0]
        z, labels = self.sample_latent(batch_size), self.sample_labels(batch_size)
        with tf.GradientTape() as generator_tape:
            fake_images = tf.cast(self.generator([z, labels], training=True), real_images.dtype)
        with tf.GradientTape() as tape:
            if self.fuse_discriminator:  # one D call when D has no batch norm
                logits = self.discriminator([tf.concat([real_images, fake_images], 0),
                                             tf.concat([real_labels, labels], 0)], training=True)
                real_logits, fake_logits = logits[:batch_size], logits[batch_size:]
            else:
                real_logits = self.discriminator([real_images, real_labels], training=True)
                fake_logits = self.discriminator([fake_images, labels], training=True)
            d_loss = self.d_loss_fn(real_logits, fake_logits)
            scaled_loss = self.d_optimizer.scale_loss(per_replica_scale(d_loss))
        grads = tape.gradient(scaled_loss, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))
        return d_loss, real_logits, (fake_images, labels, generator_tape)

    def _generator_loss(self, fake_images, labels):
        fake_logits = self.discriminator([fake_images, labels], training=True)
        g_loss = self.g_loss_fn(fake_logits)
        penalties = self.generator_penalty()
        total = g_loss + sum(tf.cast(term, g_loss.dtype) for term in penalties.values())
        return fake_logits, g_loss, penalties, self.g_optimizer.scale_loss(per_replica_scale(total))

    def train_step(self, data):
        real_images, real_labels = data[0], tf.cast(data[1], tf.int32)
        batch_size = tf.shape(real_images)[0]
        for _repeat in range(self.d_steps):  # each D step on its own batch of fakes
            d_loss, real_logits, generated = self._discriminator_step(real_images, real_labels)

        variables = self.generator.trainable_variables
        if self.reuse_generated:
            # The last D step's fakes, judged by the updated D; their gradient is carried back
            # through G's recorded forward pass (one G forward pass per step, as in `GAN`).  A
            # penalty on G's weights (BigGAN's) reaches them directly, so both parts are summed.
            fake_images, labels, generator_tape = generated
            with tf.GradientTape() as tape:
                tape.watch(fake_images)
                fake_logits, g_loss, penalties, scaled_loss = self._generator_loss(fake_images, labels)
            image_grads, *direct = tape.gradient(scaled_loss, [fake_images] + variables)
            through = generator_tape.gradient(fake_images, variables, output_gradients=image_grads)
            grads = [a if b is None else b if a is None else a + b for a, b in zip(through, direct)]
        else:  # a fresh batch: a second G forward pass
            z, labels = self.sample_latent(batch_size), self.sample_labels(batch_size)
            with tf.GradientTape() as tape:
                fake_logits, g_loss, penalties, scaled_loss = self._generator_loss(
                    self.generator([z, labels], training=True), labels)
            grads = tape.gradient(scaled_loss, variables)
        self.g_optimizer.apply_gradients(zip(grads, variables))
        self.after_generator_step()
        return {**self._step_metrics(d_loss, g_loss, real_logits, fake_logits), **penalties}
