"""The fused batch norm computes what Keras' computes, and the engine switches to it in place."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_course import models, train
from gan_course.batchnorm import FusedBatchNormalization, fuse_batch_norms


def _pair(shape, **config):
    """A Keras batch norm and a fused one with the same (non-trivial) weights and statistics."""
    rng = np.random.default_rng(0)
    keras_bn, fused = keras.layers.BatchNormalization(**config), FusedBatchNormalization(**config)
    for layer in (keras_bn, fused):
        layer.build(shape)
    for variable_a, variable_b in zip(keras_bn.weights, fused.weights):
        value = rng.uniform(0.5, 1.5, variable_a.shape).astype(np.float32)
        variable_a.assign(value)
        variable_b.assign(value)
    return keras_bn, fused


def _run(layer, x, training):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        weights = np.linspace(-1.0, 1.0, int(np.prod(y.shape)), dtype=np.float32).reshape(y.shape)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)  # a loss that weighs each output differently
    grads = tape.gradient(loss, [x, *layer.trainable_weights])
    return [y.numpy()] + [g.numpy() for g in grads] + [v.numpy() for v in layer.non_trainable_weights]


@pytest.mark.parametrize("shape", [(16, 12), (8, 5, 5, 6)], ids=["dense", "conv"])
@pytest.mark.parametrize("config", [{}, {"momentum": 0.9, "epsilon": 1e-5}, {"center": False, "scale": False}],
                         ids=["keras defaults", "models.py settings", "no gain or shift"])
@pytest.mark.parametrize("training", [True, False])
def test_fused_batch_norm_matches_keras_output_gradients_and_moving_statistics(shape, config, training):
    x = np.random.default_rng(1).normal(2.0, 3.0, shape).astype(np.float32)
    keras_bn, fused = _pair(shape, **config)
    for _ in range(2):  # the second call sees the moving statistics the first one updated
        for a, b in zip(_run(keras_bn, x, training), _run(fused, x, training)):
            np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-4)


def test_fused_batch_norm_in_mixed_bfloat16_stays_within_bfloat16_rounding():
    shape = (32, 4, 4, 8)
    x = np.random.default_rng(2).normal(0.0, 2.0, shape).astype(np.float32)
    with train.precision("mixed_bfloat16"):
        keras_bn, fused = _pair(shape)
    (ya, *rest_a), (yb, *rest_b) = _run(keras_bn, x, True), _run(fused, x, True)
    assert yb.dtype == ya.dtype == tf.bfloat16.as_numpy_dtype
    np.testing.assert_allclose(yb.astype(np.float32), ya.astype(np.float32), rtol=1e-2, atol=1e-2)
    for a, b in zip(rest_a, rest_b):
        np.testing.assert_allclose(b, a, rtol=2e-2, atol=2e-2)


def test_fuse_batch_norms_switches_the_same_layers_in_place_nested_models_included():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4), keras.layers.BatchNormalization()])
    z = keras.Input((4,))
    outer = keras.Model(z, keras.layers.BatchNormalization(name="top_bn")(inner(z)))
    before = {id(layer): [w.numpy() for w in layer.weights] for layer in (inner.layers[1], outer.get_layer("top_bn"))}
    assert fuse_batch_norms(outer) == 2
    for layer in (inner.layers[1], outer.get_layer("top_bn")):
        assert type(layer) is FusedBatchNormalization
        for saved, now in zip(before[id(layer)], layer.weights):
            np.testing.assert_array_equal(saved, now.numpy())
    assert fuse_batch_norms(outer) == 0  # already fused: nothing left to switch
    # A clone (the weight average's copy of G) rebuilds the nested model from its config, by class name.
    clone = keras.models.clone_model(outer)
    assert type(clone.layers[1].layers[1]) is FusedBatchNormalization


def test_gan_fuses_both_networks_unless_told_not_to():
    def kinds(model):
        return {type(layer) for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}

    gan = train.make_gan(*models.build_dcgan("mnist"), ema_decay=0.9)  # the average is a clone of the fused G
    assert kinds(gan.generator) == {FusedBatchNormalization} and kinds(gan.discriminator) == {FusedBatchNormalization}
    assert kinds(gan.sampling_generator) == {FusedBatchNormalization}
    plain = train.make_gan(*models.build_dcgan("mnist"), fused_batch_norm=False)
    assert kinds(plain.generator) == {keras.layers.BatchNormalization}
