"""Every lab's smoke-profile generator, trained as its lab trains it, draws pictures that follow its input.

In the smoke profile (CI, a first try on a laptop) every lab trains for seconds.  Trained too
briefly, a generator draws the same flat grey whatever its input: batch norm's running
statistics still hold their starting values (mean 0, variance 1) while the real activations
are a hundred times smaller, and the last layer has not yet learned any contrast.  The labs'
sliders then move nothing.  Each test builds one lab's generator at the smoke sizes, trains it
as the lab does (the same builders, losses, optimizers, batch and number of steps), and then
moves one input as the lab's explorer does (a latent coordinate, a continuous code, new
noise): a visible share of the pixels must change.  (Which
checkpoint a lab restores as its best, and what its sliders then draw, the browser test
checks: tests/test_browser.py.)
"""
import keras
import numpy as np
import pytest

from gan_course import config, data, dcgan, faces, folders, infogan, models, own_images, train, widgets
from gan_course.checks import SolutionsUnavailable, reference

# A pixel "changes" when it moves by more than this many grey levels (of 255, about a tenth of
# the range); a picture changes visibly when at least this share of its pixels does (the same
# margin as the browser test's).  A flat grey generator moves none of them (0.0-0.3% measured);
# the smoke models move 2-20%, the share varying from run to run with the order of the CPU's
# floating-point sums.
VISIBLE_LEVELS, VISIBLE_SHARE = 24, 0.01
SAMPLES = 8  # one explorer strip


@pytest.fixture(scope="module")
def P():
    # The smoke sizes whatever profile the session runs in.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(config.ENV_PROFILE, "smoke")
        return config.profile()


def visible_share(before, after) -> float:
    """Share of pixels that moved by more than VISIBLE_LEVELS between two batches of images in [-1, 1]."""
    moved = np.abs(widgets.to_uint8(before).astype(np.int16) - widgets.to_uint8(after).astype(np.int16))
    return float((moved > VISIBLE_LEVELS).mean())


def trained(gan, images, steps, tmp_path, labels=None, batch=None):
    """`gan` after `steps` steps of the lab's Trainer on batches of `images` (no samples or checkpoints in between)."""
    keras.utils.set_random_seed(0)
    trainer = train.Trainer(gan, tmp_path, sample_every=10 ** 6, progress=False, quiet=True)
    trainer.fit(train.image_batches(images, batch, labels=labels), steps=steps)
    assert trainer.step == steps
    return gan


def lab_reference(name):
    try:
        return reference(name)
    except SolutionsUnavailable:
        pytest.skip(f"the reference {name} lives in solutions/, which is not here")


def assert_visible(name, share):
    assert share >= VISIBLE_SHARE, (
        f"{name}: only {share:.1%} of the pixels changed by more than {VISIBLE_LEVELS} grey levels "
        f"(at least {VISIBLE_SHARE:.0%} expected): the smoke model draws nearly the same picture whatever its input; "
        f"train it for more smoke steps (gan_course/config.py)")


def latent_moves(generate, latent_dim, dims, limit=3.0, seed=0):
    """(dimension, share): each of `dims` moved to the explorer's far end for a strip of samples."""
    z = np.random.default_rng(seed).standard_normal((SAMPLES, latent_dim)).astype(np.float32)
    base = generate(z)
    for d in dims:
        moved = z.copy()
        moved[:, d] = limit
        yield d, visible_share(base, generate(moved))


# ----------------------------------------------------------------------------- lab 03
def test_lab_03_dcgan_follows_its_latent_sliders(P, tmp_path):
    images = data.load("mnist", limit=P.dcgan_train_limit, quiet=True)
    keras.utils.set_random_seed(0)
    generator = dcgan.build_lab_generator(P.dcgan_latent_dim, P.dcgan_g_filters, block=lab_reference("generator_block"))
    discriminator = models.build_discriminator(images.x.shape[1:], P.dcgan_d_filters)
    gan = train.make_gan(generator, discriminator, label_smoothing=0.1, learning_rate=P.dcgan_learning_rate,
                         ema_decay=P.dcgan_ema_decay)
    trained(gan, images.x, P.dcgan_steps, tmp_path, batch=P.dcgan_batch)
    # The lab's sliders draw from the weight average, as its samples and metrics do.
    for d, share in latent_moves(widgets._as_generate(gan.sampling_generator), P.dcgan_latent_dim, range(4)):
        assert_visible(f"lab 03's DCGAN, z[{d}]", share)


# ----------------------------------------------------------------------------- lab 04
def test_lab_04_faces_dcgan_follows_its_latent_sliders(P, tmp_path):
    crops = faces.load_face_crops(P.faces_images, progress=False)
    keras.utils.set_random_seed(0)
    generator, discriminator = models.build_dcgan(
        "faces", latent_dim=100, image_shape=(P.faces_image_size, P.faces_image_size, 3),
        g_filters=P.faces_g_filters, d_filters=P.faces_d_filters)
    gan = train.make_gan(generator, discriminator, label_smoothing=0.1, learning_rate=2e-4, beta_1=0.5)
    batches = faces.face_training_batches(crops, P.faces_batch, P.faces_image_size, value_range=(-1.0, 1.0),
                                          pipeline=lab_reference("face_dataset"))
    keras.utils.set_random_seed(0)
    train.Trainer(gan, tmp_path, sample_every=10 ** 6, progress=False, quiet=True).fit(batches, steps=P.faces_steps)
    for d, share in latent_moves(widgets._as_generate(generator), 100, range(6)):
        assert_visible(f"lab 04's DCGAN, z[{d}]", share)


# ----------------------------------------------------------------------------- lab 05
def test_lab_05_infogan_follows_its_continuous_codes(P, tmp_path):
    images = data.load("mnist", limit=P.infogan_train_limit, quiet=True)
    keras.utils.set_random_seed(0)
    gan = infogan.make_infogan(P.infogan_g_widths, P.infogan_d_widths, P.infogan_q_width)
    trained(gan, images.x, P.infogan_steps, tmp_path, batch=P.infogan_batch)
    # The explorer's strip: one class and the codes for every sample, noise of its own for each.
    noise = np.random.default_rng(0).standard_normal((SAMPLES, infogan.NOISE_DIM)).astype(np.float32)
    classes, codes = np.zeros(SAMPLES, np.int32), np.zeros((SAMPLES, infogan.NUM_CONTINUOUS), np.float32)
    base = gan.generate_codes(classes, codes, noise)
    # The explorer's sliders.  (The categorical code, its class picker, is still weak after a smoke budget.)
    for k in range(infogan.NUM_CONTINUOUS):
        moved = codes.copy()
        moved[:, k] = 2.0  # the slider's far end
        assert_visible(f"lab 05's InfoGAN, code c{k + 2}", visible_share(base, gan.generate_codes(classes, moved, noise)))


@pytest.mark.parametrize("ablation", list(infogan.ACGAN_ABLATIONS))
def test_lab_05_acgan_follows_its_noise(P, tmp_path, ablation):
    images = data.load("mnist", limit=P.acgan_train_limit, quiet=True)
    keras.utils.set_random_seed(0)
    gan = infogan.make_acgan(ablation, P.acgan_g_widths, P.acgan_d_widths, P.acgan_class_width,
                             ema_decay=P.acgan_ema_decay)
    trained(gan, images, P.acgan_steps, tmp_path, labels=True, batch=P.acgan_batch)
    noise, other = np.random.default_rng(0).standard_normal((2, SAMPLES, infogan.NOISE_DIM)).astype(np.float32)
    no_codes, classes = np.zeros((SAMPLES, 0), np.float32), np.zeros(SAMPLES, np.int32)
    base = gan.generate_codes(classes, no_codes, noise)
    # The explorer's "New noise" button.  (How strongly the class shows after a smoke budget varies from run
    # to run: the class is what the lab's ablations measure, not an input every run must already follow.)
    assert_visible(f"lab 05's AC-GAN ({ablation}), new noise", visible_share(base, gan.generate_codes(classes, no_codes, other)))


# ----------------------------------------------------------------------------- labs 06 and 07
# Their BigGANs (the models behind their truncation sliders) draw varied pictures after the smoke
# budget already; tests/test_browser.py moves those sliders.  Their DCGANs get the same budget (6 and 4
# eager steps: fewer than tracing a compiled step would cost) and still draw flat grey: they need some
# 100 steps (compiled) to leave it, some 20 s more per run of each lab on two shared cores.  Known, and
# marked strict so that the day they pass is seen.
SMOKE_DCGAN_FLAT = pytest.mark.xfail(strict=True, reason="the smoke budget of labs 06 and 07 leaves their DCGAN flat grey")


def latent_moves_conditional(gan, latent_dim, dims=(0, 1), seed=0):
    """(dimension, share) for a conditional GAN drawing class 0: single latent coordinates moved to 3."""
    labels = np.zeros(SAMPLES, np.int32)
    return latent_moves(lambda z: np.asarray(gan.generate(z, labels), np.float32), latent_dim, dims, seed=seed)


@SMOKE_DCGAN_FLAT
def test_lab_06_conditional_dcgan_follows_its_latent(P, tmp_path):
    images = data.load(P.compare_datasets[0], limit=P.compare_train_limit, quiet=True)
    keras.utils.set_random_seed(0)
    generator, discriminator = models.build_conditional_dcgan(
        "mnist", P.compare_latent_dim, 10, image_shape=images.x.shape[1:], g_filters=P.compare_dcgan_g_filters,
        d_filters=P.compare_dcgan_d_filters)
    gan = train.ConditionalGAN(generator, discriminator, P.compare_latent_dim, 10)
    gan.compile(run_eagerly=not P.compare_compile_train_step)
    trained(gan, images, P.compare_steps, tmp_path, labels=True, batch=P.compare_batch)
    for d, share in latent_moves_conditional(gan, P.compare_latent_dim):
        assert_visible(f"lab 06's conditional DCGAN, z[{d}]", share)


@SMOKE_DCGAN_FLAT
def test_lab_07_dcgan_follows_its_latent(P, tmp_path):
    try:
        folder = folders.default_folder(P.folder_default_per_class, quiet=True)
    except data.DataUnavailable as err:
        pytest.skip(f"lab 07's default folder cannot be made here: {err}")
    images = folders.load_folder(folder, P.folder_image_size, limit=P.folder_limit)
    num_classes, _ = folders.conditioning(images)
    train_images, _ = folders.split_holdout(images, P.folder_holdout)
    keras.utils.set_random_seed(0)
    generator, discriminator = models.build_sized_dcgan(
        P.folder_image_size, images.x.shape[-1], P.folder_latent_dim, P.folder_dcgan_g_filters,
        P.folder_dcgan_d_filters, num_classes=num_classes, generator=lab_reference("colour_generator"))
    gan = train.ConditionalGAN(generator, discriminator, P.folder_latent_dim, num_classes, label_smoothing=0.1)
    gan.compile(run_eagerly=not P.folder_compile_train_step)
    trained(gan, train_images.x, P.folder_steps, tmp_path, labels=own_images.labels_of(train_images),
            batch=P.folder_batch)
    for d, share in latent_moves_conditional(gan, P.folder_latent_dim):
        assert_visible(f"lab 07's DCGAN, z[{d}]", share)
