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

    trainer = Trainer(lambda: make_gan(...), output_dir / "dcgan", sample_every=200)
    trainer.fit(images.batches(128), steps=3000)
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from gan_course import losses as gan_losses

METRICS = ("d_loss", "g_loss", "D(x)", "D(G(z))")
# TensorBoard names may not contain parentheses.
SUMMARY_NAMES = {"d_loss": "loss/discriminator", "g_loss": "loss/generator",
                 "D(x)": "D/real", "D(G(z))": "D/fake"}


def _per_replica_scale(loss):
    # Gradients are summed over replicas: each replica's mean loss counts 1/n of the
    # global batch's mean.  Without a strategy n = 1.
    n = tf.distribute.get_replica_context().num_replicas_in_sync if tf.distribute.has_strategy() else 1
    return loss / tf.cast(n, loss.dtype)


class GAN(keras.Model):
    """A generator and a discriminator trained against each other (see the module doc)."""

    def __init__(self, generator: keras.Model, discriminator: keras.Model, latent_dim: int | None = None,
                 loss="non_saturating", label_smoothing: float = 0.0, **kwargs):
        """`loss` is a name from `gan_course.losses.LOSSES` or a pair (d_loss_fn, g_loss_fn)."""
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim or generator.input_shape[-1])
        self.label_smoothing = label_smoothing
        if isinstance(loss, str):
            self.d_loss_fn, self.g_loss_fn = gan_losses.get_losses(loss, label_smoothing)
        else:
            self.d_loss_fn, self.g_loss_fn = loss
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

    def call(self, z, training=False):
        return self.generator(z, training=training)

    def sample_latent(self, batch_size):
        return tf.random.normal((batch_size, self.latent_dim))

    def train_step(self, data):
        real_images = data[0] if isinstance(data, (tuple, list)) else data
        batch_size = tf.shape(real_images)[0]

        # D step: real and generated images in separate batches, so batch norm never
        # mixes their statistics (as in the paper's code).
        z = self.sample_latent(batch_size)
        with tf.GradientTape() as tape:
            fake_images = self.generator(z, training=True)
            real_logits = self.discriminator(real_images, training=True)
            fake_logits = self.discriminator(fake_images, training=True)
            d_loss = self.d_loss_fn(real_logits, fake_logits)
            scaled_loss = _per_replica_scale(d_loss)
        grads = tape.gradient(scaled_loss, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))

        # G step on fresh noise against the updated D.
        z = self.sample_latent(batch_size)
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(z, training=True), training=True)
            g_loss = self.g_loss_fn(fake_logits)
            scaled_loss = _per_replica_scale(g_loss)
        grads = tape.gradient(scaled_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))

        return {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "D(x)": tf.reduce_mean(tf.sigmoid(tf.cast(real_logits, tf.float32))),
            "D(G(z))": tf.reduce_mean(tf.sigmoid(tf.cast(fake_logits, tf.float32))),
        }


def make_gan(generator: keras.Model, discriminator: keras.Model, loss="non_saturating",
             label_smoothing: float = 0.0, learning_rate: float = 2e-4, beta_1: float = 0.5) -> GAN:
    """A compiled GAN with one Adam optimizer per network."""
    gan = GAN(generator, discriminator, loss=loss, label_smoothing=label_smoothing)
    gan.compile(d_optimizer=keras.optimizers.Adam(learning_rate, beta_1=beta_1),
                g_optimizer=keras.optimizers.Adam(learning_rate, beta_1=beta_1))
    return gan


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
    """

    def __init__(self, gan: GAN | Callable[[], GAN], directory, *, sample_every: int = 100,
                 checkpoint_every: int | None = None, best_metric: Callable | None = None,
                 best_every: int | None = None, best_mode: str = "min", num_samples: int = 64,
                 log_every: int = 10, max_to_keep: int = 3, seed: int = 0, value_range=(-1.0, 1.0),
                 strategy: tf.distribute.Strategy | None = None, progress: bool = True, quiet: bool = False):
        if best_mode not in ("min", "max"):
            raise ValueError("best_mode is 'min' or 'max'")
        self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope():
            gan = gan if isinstance(gan, keras.Model) else gan()
            if strategy is not None and not all(self.strategy.extended.variable_created_in_scope(v.value)
                                                for v in gan.generator.weights[:1] + gan.discriminator.weights[:1]):
                raise ValueError("this GAN was built outside the strategy's scope: pass a function "
                                 "that builds it (Trainer(lambda: make_gan(...), ..., strategy=...)).")
            # Optimizer slots exist before a restore, so a checkpoint fills them directly.
            gan.d_optimizer.build(gan.discriminator.trainable_variables)
            gan.g_optimizer.build(gan.generator.trainable_variables)
        self.gan = gan
        self.directory = Path(directory)
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
        self.fixed_z = np.random.default_rng(seed).normal(size=(num_samples, gan.latent_dim)).astype(np.float32)

        self.checkpoint = tf.train.Checkpoint(generator=gan.generator, discriminator=gan.discriminator,
                                              d_optimizer=gan.d_optimizer, g_optimizer=gan.g_optimizer)
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
        self.restore()

    # ------------------------------------------------------------------ state
    @property
    def step(self) -> int:
        """Training steps done so far (the optimizers' counter, so it is checkpointed)."""
        return int(self.gan.d_optimizer.iterations.numpy())

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
        self._saved_step = step
        if not self.quiet:
            print(f"Resumed from {Path(path).name}: step {step}, {len(self.history)} steps of history.")
        return step

    def restore_best(self) -> dict | None:
        """Load the best checkpoint (by `best_metric`) into the networks; returns its record."""
        path = self.best_manager.latest_checkpoint
        if path is None:
            return None
        # Only the networks: the optimizers keep their state for further training.
        tf.train.Checkpoint(generator=self.gan.generator, discriminator=self.gan.discriminator) \
            .restore(path).expect_partial()
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
        return np.asarray(self.gan.generator(z, training=False))

    def sample_grid(self) -> Path:
        """Draw the fixed-z grid at the current step: PNG frame + TensorBoard image."""
        from gan_course.plotting import image_grid
        import imageio.v3 as iio

        step = self.step
        images = self.generate()
        grid = image_grid(images, value_range=self.value_range)
        path = self.samples_dir / f"step_{step:06d}.png"
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
        value = float(self.best_metric(self.gan.generator))
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
        step = self.step
        row = {"step": step, **{k: float(logs[k]) for k in METRICS if k in logs}}
        if self._first_step is None:
            self._first_step = (step, time.perf_counter())  # the rate leaves out tracing
        self.history.append(row)
        if self._bar is not None:
            self._bar.set_postfix({k: f"{row[k]:.3f}" for k in METRICS if k in row}, refresh=False)
            self._bar.update(step - self._bar.n)
        if step % self.log_every == 0:
            with self.writer.as_default():
                for key in METRICS:
                    if key in row:
                        tf.summary.scalar(SUMMARY_NAMES[key], row[key], step=step)
        if step % self.sample_every == 0:
            self.sample_grid()
        if self.best_metric is not None and step % self.best_every == 0:
            self.evaluate()
        if step % self.checkpoint_every == 0:
            self.save()

    # ------------------------------------------------------------------ training
    def fit(self, data: tf.data.Dataset, steps: int, callbacks=()) -> list[dict]:
        """Train until the step counter reaches `steps` (a total, so a rerun resumes).

        `data` is a `tf.data.Dataset` of image batches (repeated as needed).  The stop
        button ends training cleanly: the state at that step is checkpointed and kept.
        """
        from tqdm.auto import tqdm

        start = self.step
        if start >= steps:
            if not self.quiet:
                print(f"Already trained for {start} steps (asked for {steps}); nothing to do.")
            return self.history
        if not any(self.samples_dir.glob("step_*.png")):
            self.sample_grid()  # the untrained generator: the first frame of the GIF
        batch_size = data.element_spec.shape[0] if hasattr(data, "element_spec") else None
        self.interrupted = False
        self._bar = tqdm(total=steps, initial=start, desc="training", unit="step", disable=not self.progress)
        began = time.perf_counter()
        self._first_step = None
        try:
            self.gan.fit(data.repeat(), steps_per_epoch=steps - start, epochs=1, verbose=0, shuffle=False,
                         callbacks=[_Hooks(self), *callbacks])
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            self._bar.close()
            self._bar = None
        ended = time.perf_counter()
        seconds, done = ended - began, self.step - start
        if batch_size and self._first_step is not None and self.step > self._first_step[0]:
            first, at = self._first_step
            self.images_per_second = (self.step - first) * int(batch_size) / (ended - at)
        self._finish()
        if not self.quiet:
            rate = f", {self.images_per_second:.0f} images/s" if self.images_per_second else ""
            print(f"{'Stopped' if self.interrupted else 'Trained'} at step {self.step} "
                  f"({done} steps in {seconds:.0f} s{rate}). Checkpoint and history are in {self.directory}.")
        return self.history

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


def train(gan, data: tf.data.Dataset, steps: int, directory, **options) -> Trainer:
    """`Trainer(gan, directory, **options).fit(data, steps)`; returns the trainer."""
    trainer = Trainer(gan, directory, **options)
    trainer.fit(data, steps)
    return trainer
