"""The DCGAN builders follow the paper's guidelines, checked layer by layer."""
import keras
import numpy as np
import pytest
from keras import layers

from gan_course import models

TINY = dict(image_shape=(8, 8, 1), g_filters=(16, 8), d_filters=(8, 16))


def chain(model):
    return [l for l in model.layers if not isinstance(l, layers.InputLayer)]


def after(chain_, layer):
    rest = chain_[chain_.index(layer) + 1:]
    return [l for l in rest if not isinstance(l, layers.Reshape)][0] if rest else None


@pytest.fixture(scope="module", params=list(models.PRESETS))
def preset(request):
    return request.param, *models.build_dcgan(request.param, latent_dim=100)


def test_shapes_match_the_preset(preset):
    name, g, d = preset
    shape = models.PRESETS[name]["image_shape"]
    assert g.output_shape == (None, *shape)
    assert d.input_shape == (None, *shape) and d.output_shape == (None, 1)
    assert isinstance(g, keras.Model) and isinstance(d, keras.Model)


def test_guideline_1_strided_convolutions_no_pooling(preset):
    _, g, d = preset
    kinds = [type(l).__name__ for l in chain(g) + chain(d)]
    assert not any("Pooling" in k or k == "UpSampling2D" for k in kinds)
    ups = [l for l in chain(g) if isinstance(l, layers.Conv2DTranspose)]
    downs = [l for l in chain(d) if isinstance(l, layers.Conv2D)]
    assert ups and downs
    assert all(l.strides == (2, 2) for l in ups[:-1]) and all(l.strides == (2, 2) for l in downs)


def test_guideline_2_batch_norm_except_g_output_and_d_input(preset):
    _, g, d = preset
    g_weighted = [l for l in chain(g) if isinstance(l, (layers.Dense, layers.Conv2DTranspose))]
    for layer in g_weighted[:-1]:
        assert isinstance(after(chain(g), layer), layers.BatchNormalization), layer.name
    assert not isinstance(after(chain(g), g_weighted[-1]), layers.BatchNormalization)
    convs = [l for l in chain(d) if isinstance(l, layers.Conv2D)]
    assert not isinstance(after(chain(d), convs[0]), layers.BatchNormalization)
    for layer in convs[1:]:
        assert isinstance(after(chain(d), layer), layers.BatchNormalization), layer.name


def test_guideline_3_no_hidden_dense(preset):
    _, g, d = preset
    g_dense = [i for i, l in enumerate(chain(g)) if isinstance(l, layers.Dense)]
    d_dense = [i for i, l in enumerate(chain(d)) if isinstance(l, layers.Dense)]
    assert g_dense == [0] and isinstance(chain(g)[1], layers.Reshape)  # projection of z
    assert d_dense == [len(chain(d)) - 1] and chain(d)[-1].units == 1  # the logit


def test_guideline_4_and_5_activations(preset):
    _, g, d = preset
    g_acts = [l for l in chain(g) if isinstance(l, (layers.ReLU, layers.LeakyReLU, layers.Activation))]
    assert all(isinstance(l, layers.ReLU) for l in g_acts[:-1])
    assert isinstance(g_acts[-1], layers.Activation) and g_acts[-1].activation.__name__ == "tanh"
    assert chain(g)[-1] is g_acts[-1]
    d_acts = [l for l in chain(d) if isinstance(l, (layers.ReLU, layers.LeakyReLU, layers.Activation))]
    assert d_acts and all(isinstance(l, layers.LeakyReLU) for l in d_acts)
    assert all(l.negative_slope == pytest.approx(0.2) for l in d_acts)


def test_guideline_checks_agree(preset):
    _, g, d = preset
    assert all(ok for _, ok, _ in models.guideline_checks(g, d))


def test_tutorial_baseline_breaks_two_guidelines():
    g, d = models.build_tutorial_generator(), models.build_tutorial_discriminator()
    assert g.output_shape == (None, 28, 28, 1) and d.output_shape == (None, 1)
    assert [type(l).__name__ for l in chain(g) if isinstance(l, layers.Conv2DTranspose)] == ["Conv2DTranspose"] * 3
    assert [l.filters for l in chain(g) if isinstance(l, layers.Conv2DTranspose)] == [128, 64, 1]
    assert sum(isinstance(l, layers.Dropout) for l in chain(d)) == 2
    verdict = {name[0]: ok for name, ok, _ in models.guideline_checks(g, d)}
    assert verdict == {"1": True, "2": False, "3": True, "4": False, "5": True}


def test_face_variant_has_four_generator_layers():
    g, d = models.build_dcgan("faces")
    weighted = [l for l in chain(g) if isinstance(l, (layers.Dense, layers.Conv2DTranspose))]
    assert len(weighted) == 4 and weighted[-1].strides == (1, 1)
    assert len([l for l in chain(d) if isinstance(l, layers.Conv2D)]) == 3


def test_weights_start_from_the_papers_normal():
    g, _ = models.build_dcgan("mnist")
    kernel = g.get_layer("up1").kernel.numpy()
    assert abs(kernel.std() - 0.02) < 0.002 and abs(kernel.mean()) < 0.002


def test_impossible_sizes_are_refused():
    with pytest.raises(ValueError, match="cannot be reached"):
        models.build_generator(10, image_shape=(30, 30, 1), g_filters=(8, 4))


def test_describe_model_tells_structures_apart():
    g, _ = models.build_dcgan("mnist", latent_dim=8, **TINY)
    h, _ = models.build_dcgan("mnist", latent_dim=8, **{**TINY, "g_filters": (16, 4)})
    case = {"input_shape": (8,)}
    a, b, again = models.describe_model(g, case), models.describe_model(h, case), models.describe_model(g, case)
    assert a["output_shape"] == [-1, 8, 8, 1] and a["layers"][0] == "Dense"
    assert a["params"] != b["params"]
    np.testing.assert_array_equal(a["forward"], again["forward"])  # fixed weights, fixed input


# ----------------------------------------------------------------------------- conditional DCGAN
def test_conditional_dcgan_takes_the_class_in_both_networks():
    keras.utils.set_random_seed(0)
    g, d = models.build_conditional_dcgan("mnist", latent_dim=12, num_classes=10, g_filters=(16, 8), d_filters=(8, 16))
    assert [tuple(t.shape) for t in g.inputs] == [(None, 12), (None,)]
    assert g.output_shape == (None, 28, 28, 1) and d.output_shape == (None, 1)
    z = np.repeat(np.random.default_rng(0).normal(size=(1, 12)).astype(np.float32), 2, axis=0)
    images = np.asarray(g([z, np.array([2, 7])], training=False))
    assert np.abs(images[0] - images[1]).max() > 1e-4  # same z, another class, another image
    logits = np.asarray(d([np.repeat(images[:1], 2, axis=0), np.array([2, 7])], training=False))
    assert abs(logits[0, 0] - logits[1, 0]) > 1e-6  # same image, another class, another verdict
    # The class is one-hot: G's body sees z and 10 more inputs, D's first convolution 1 + 10 channels.
    assert g.get_layer("dcgan_generator").input_shape == (None, 22)
    assert d.get_layer("dcgan_discriminator").input_shape == (None, 28, 28, 11)
    # The DCGAN guidelines still hold in the bodies.
    assert all(holds for _, holds, _ in models.guideline_checks(g.get_layer("dcgan_generator"),
                                                                  d.get_layer("dcgan_discriminator")))


def test_conditional_dcgan_rejects_bad_settings():
    with pytest.raises(KeyError, match="unknown preset"):
        models.build_conditional_dcgan("cifar")
    with pytest.raises(ValueError, match="at least 2 classes"):
        models.build_conditional_dcgan("mnist", num_classes=1)


# ----------------------------------------------------------------------------- any size (lab 07)
@pytest.mark.parametrize("size, g_filters, d_filters", [(32, (16, 8, 8), (8, 16, 16)),
                                                        (64, (16, 8, 8, 4), (4, 8, 8, 16))])
def test_sized_dcgan_in_colour_follows_the_guidelines(size, g_filters, d_filters):
    generator, discriminator = models.build_sized_dcgan(size, 3, 10, g_filters, d_filters)
    assert generator.output_shape == (None, size, size, 3)
    assert discriminator.output_shape == (None, 1)
    assert generator.get_layer("reshape").output.shape[1] == 4  # the paper's 4x4 first map
    assert all(holds for _, holds, _ in models.guideline_checks(generator, discriminator))


def test_sized_dcgan_conditional_and_one_class():
    for classes in (1, 10):
        generator, discriminator = models.build_sized_dcgan(32, 3, 6, (8, 8, 4), (4, 8, 8), num_classes=classes)
        z, labels = np.zeros((2, 6), np.float32), np.zeros(2, np.int32)
        assert generator([z, labels]).shape == (2, 32, 32, 3)
        assert discriminator([np.zeros((2, 32, 32, 3), np.float32), labels]).shape == (2, 1)


def test_sized_dcgan_rejects_sizes_that_do_not_halve():
    with pytest.raises(ValueError, match="cannot be reached"):
        models.build_sized_dcgan(36, 3, 8, (8, 8, 8, 8), (8, 8))


def test_sized_dcgan_takes_a_student_generator_and_gives_it_the_paper_init():
    from gan_course.own_images import colour_generator

    generator, _ = models.build_sized_dcgan(32, 3, 8, (16, 8, 4), (4, 8, 8), generator=colour_generator)
    kernels = [l.kernel.numpy() for l in generator.layers if isinstance(l, (layers.Dense, layers.Conv2DTranspose))]
    assert all(abs(k.std() - 0.02) < 0.005 for k in kernels)
    gammas = np.concatenate([l.gamma.numpy() for l in generator.layers if isinstance(l, layers.BatchNormalization)])
    assert abs(gammas.mean() - 1.0) < 0.01 and gammas.std() < 0.05
    assert generator.output_shape == (None, 32, 32, 3)


@pytest.mark.parametrize("size", [32, 64])
def test_biggan_builders_at_32_and_64_in_colour(size):
    from gan_course import biggan

    generator = biggan.build_biggan_generator(8, 3, (size, size, 3), ch=8, embed_dim=4)
    discriminator = biggan.build_biggan_discriminator(3, (size, size, 3), ch=8)
    images = np.asarray(generator([np.zeros((2, 8), np.float32), np.array([0, 2], np.int32)]))
    assert images.shape == (2, size, size, 3)
    assert discriminator([images, np.array([0, 2], np.int32)]).shape == (2, 1)
    # one up-block per doubling from 4x4, self-attention at half the image side
    assert sum(isinstance(l, biggan.GeneratorBlock) for l in generator.layers) == int(np.log2(size // 4))
    assert generator.get_layer(f"attention{size // 2}") is not None
