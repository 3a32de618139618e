"""The baseline: the TensorFlow DCGAN tutorial's training loop, as the tutorial writes it.

tensorflow.org/tutorials/generative/dcgan: the data set is
`from_tensor_slices(images).shuffle(60000).batch(256)`; one `@tf.function` `train_step`
generates a batch, runs D on real and generated images under two GradientTapes, and
applies Adam(1e-4) to both networks with BinaryCrossentropy(from_logits=True); Python
calls it once per batch.  Only the networks come from the course
(`models.build_tutorial_generator` / `build_tutorial_discriminator`, the tutorial's own).
"""
from __future__ import annotations

import time

import keras
import tensorflow as tf

from gan_course import models

BUFFER_SIZE = 60000
BATCH_SIZE = 256
NOISE_DIM = 100


class TutorialDCGAN:
    """The tutorial's networks, optimizers, data pipeline and train_step."""

    def __init__(self, images, batch_size: int = BATCH_SIZE, seed: int = 0, networks=None):
        """`networks`: a function returning (generator, discriminator) to train in the
        tutorial's loop instead of the tutorial's own (for the time to quality on lab 03's)."""
        keras.utils.set_random_seed(seed)
        self.batch_size = batch_size
        if networks is None:
            self.generator = models.build_tutorial_generator(NOISE_DIM)
            self.discriminator = models.build_tutorial_discriminator()
        else:
            self.generator, self.discriminator = networks()
        self.noise_dim = int(self.generator.input_shape[-1])
        self.cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
        self.generator_optimizer = keras.optimizers.Adam(1e-4)
        self.discriminator_optimizer = keras.optimizers.Adam(1e-4)
        self.dataset = tf.data.Dataset.from_tensor_slices(images).shuffle(BUFFER_SIZE).batch(batch_size)
        self._batches = self._forever()
        self.train_step = tf.function(self._train_step)
        self.steps = 0

    def _forever(self):
        while True:  # the tutorial's `for epoch in range(epochs): for image_batch in dataset`
            for image_batch in self.dataset:
                if image_batch.shape[0] == self.batch_size:
                    yield image_batch

    def discriminator_loss(self, real_output, fake_output):
        real_loss = self.cross_entropy(tf.ones_like(real_output), real_output)
        fake_loss = self.cross_entropy(tf.zeros_like(fake_output), fake_output)
        return real_loss + fake_loss

    def generator_loss(self, fake_output):
        return self.cross_entropy(tf.ones_like(fake_output), fake_output)

    def _train_step(self, images):
        noise = tf.random.normal([self.batch_size, self.noise_dim])
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            generated_images = self.generator(noise, training=True)
            real_output = self.discriminator(images, training=True)
            fake_output = self.discriminator(generated_images, training=True)
            gen_loss = self.generator_loss(fake_output)
            disc_loss = self.discriminator_loss(real_output, fake_output)
        gradients_of_generator = gen_tape.gradient(gen_loss, self.generator.trainable_variables)
        gradients_of_discriminator = disc_tape.gradient(disc_loss, self.discriminator.trainable_variables)
        self.generator_optimizer.apply_gradients(zip(gradients_of_generator, self.generator.trainable_variables))
        self.discriminator_optimizer.apply_gradients(
            zip(gradients_of_discriminator, self.discriminator.trainable_variables))

    def advance(self, steps: int) -> list[tuple[int, float]]:
        """Run `steps` train steps; return (steps done, clock) after each."""
        marks = []
        for _ in range(steps):
            self.train_step(next(self._batches))
            self.steps += 1
            marks.append((self.steps, time.perf_counter()))
        return marks
