"""GAN losses as pure functions of the discriminator's logits, chosen by name.

    d_loss_fn, g_loss_fn = get_losses("non_saturating", label_smoothing=0.1)
    d_loss = d_loss_fn(real_logits, fake_logits)
    g_loss = g_loss_fn(fake_logits)

Logits, not probabilities: log(sigmoid(l)) = -softplus(-l) stays finite where a
saturated D(x) = 1.0 would give log(0).

- `minimax`: Goodfellow et al.'s value function; G minimises log(1 - D(G(z))), whose
  gradient vanishes exactly when D confidently rejects the fakes (early training).
- `non_saturating`: same D; G maximises log D(G(z)) instead (the paper's practical
  choice and the DCGAN default).
- `hinge`: D minimises relu(1 - D(x)) + relu(1 + D(G(z))), G minimises -D(G(z))
  (SAGAN, BigGAN).

One-sided label smoothing (Salimans et al. 2016, and the face hand-out): the real
images' target becomes 1 - label_smoothing (0.9 for 0.1); the fakes' target stays 0,
because smoothing it would reward D for leaving probability on G's mistakes.
"""
from __future__ import annotations

import tensorflow as tf

from gan_course.i18n import _


def _logits(x):
    # Losses in float32 even when the networks compute in float16 (mixed precision).
    return tf.cast(x, tf.float32)


def bce_with_logits(logits, target: float):
    """Mean binary cross-entropy of sigmoid(logits) against a constant target."""
    logits = _logits(logits)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), target),
                                                                  logits=logits))


def d_loss_cross_entropy(real_logits, fake_logits, label_smoothing: float = 0.0):
    """D's loss of the minimax and non-saturating games: -log D(x) - log(1 - D(G(z)))."""
    return bce_with_logits(real_logits, 1.0 - label_smoothing) + bce_with_logits(fake_logits, 0.0)


def g_loss_minimax(fake_logits):
    """G minimises E[log(1 - D(G(z)))] = E[-softplus(l)]."""
    return -tf.reduce_mean(tf.nn.softplus(_logits(fake_logits)))


def g_loss_non_saturating(fake_logits):
    """G minimises E[-log D(G(z))] = E[softplus(-l)]."""
    return tf.reduce_mean(tf.nn.softplus(-_logits(fake_logits)))


def d_loss_hinge(real_logits, fake_logits):
    return tf.reduce_mean(tf.nn.relu(1.0 - _logits(real_logits))) + tf.reduce_mean(tf.nn.relu(1.0 + _logits(fake_logits)))


def g_loss_hinge(fake_logits):
    return -tf.reduce_mean(_logits(fake_logits))


# name: (D loss, G loss, whether label smoothing applies)
LOSSES = {
    "minimax": (d_loss_cross_entropy, g_loss_minimax, True),
    "non_saturating": (d_loss_cross_entropy, g_loss_non_saturating, True),
    "hinge": (d_loss_hinge, g_loss_hinge, False),
}


def get_losses(name: str = "non_saturating", label_smoothing: float = 0.0):
    """(d_loss_fn(real_logits, fake_logits), g_loss_fn(fake_logits)) of a named loss.

    `label_smoothing` s sets the real images' target to 1 - s (one-sided: fakes stay 0).
    """
    if name not in LOSSES:
        raise KeyError(_("unknown loss {name!r}; use one of {known}").format(name=name, known=", ".join(LOSSES)))
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(_("label_smoothing must be in [0, 1), not {value}").format(value=label_smoothing))
    d_loss, g_loss, smoothable = LOSSES[name]
    if label_smoothing and not smoothable:
        raise ValueError(_("label smoothing applies to cross-entropy losses, not to {name!r}").format(name=name))
    if smoothable:

        def d_loss_fn(real_logits, fake_logits):
            return d_loss(real_logits, fake_logits, label_smoothing)

        d_loss_fn.__name__ = f"d_loss_{name}"
        d_loss_fn.__doc__ = d_loss.__doc__
        return d_loss_fn, g_loss
    return d_loss, g_loss
