"""Lab 01, GAN intuition: the optimal critic, Jensen-Shannon, two generator losses, toy games.

The artist (generator G) turns noise z into samples; the critic (discriminator D) scores how
real a sample looks.  They play the minimax game

    V(D, G) = E_x~p_data[log D(x)] + E_z[log(1 - D(G(z)))],   min_G max_D V(D, G).

For a fixed G the best critic is D*(x) = p_data(x) / (p_data(x) + p_g(x)), and at that critic
V(D*, G) = -log 4 + 2 JSD(p_data || p_g): training G against a perfect critic minimises the
Jensen-Shannon divergence.  This module holds the contracts of the lab's exercises (answers in
solutions/01_gan_intuition.ipynb),
the 1-D game (a mixture of two Gaussians) and the 2-D ring of Gaussians with their trainers,
and the figures and the snapshot explorer the notebook draws.

The exercises are NumPy only; TensorFlow, Keras and matplotlib are imported inside the
functions that need them, so that checking or grading an exercise does not load them.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from gan_course.checks import exercise
from gan_course.i18n import N_, _

LOG4 = float(np.log(4.0))


# ============================================================================ exercises
def _density_cases(rng):
    """Pairs of density arrays on a grid; some points where both densities are 0."""
    cases = []
    for shape in [(1,), (7,), (3, 5), (1, 9), (33,)]:
        p_data = rng.gamma(1.0, size=shape).astype(np.float32)
        p_g = rng.gamma(1.0, size=shape).astype(np.float32)
        flat_d, flat_g = p_data.reshape(-1), p_g.reshape(-1)
        # Zero one density, or both, at random points: the tails of a grid look like this.
        flat_d[rng.random(flat_d.size) < 0.3] = 0
        flat_g[rng.random(flat_g.size) < 0.3] = 0
        both = rng.random(flat_d.size) < 0.2
        flat_d[both] = 0
        flat_g[both] = 0
        cases.append({"p_data": p_data, "p_g": p_g})
    cases[0] = {"p_data": np.zeros(1, np.float32), "p_g": np.zeros(1, np.float32)}
    return cases


@exercise(
    "01",
    cases=_density_cases,
    hint=N_("D*(x) = p_data / (p_data + p_g); where both densities are 0 the critic cannot tell, so return 0.5 there "
    "(np.where, and never divide by 0). Keep the input's dtype."),
)
def optimal_discriminator(p_data, p_g):
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)) elementwise, 0.5 where both densities are 0."""


def _distribution_cases(rng):
    """Rows of discrete distributions (each sums to 1) with zeros, one disjoint pair, one equal pair."""
    cases = []
    for batch, n in [(1, 1), (1, 7), (3, 5), (5, 33), (2, 64)]:
        p = rng.gamma(1.0, size=(batch, n))
        q = rng.gamma(1.0, size=(batch, n))
        p[rng.random((batch, n)) < 0.25] = 0
        q[rng.random((batch, n)) < 0.25] = 0
        p[:, 0] += 1e-3  # every row keeps some mass
        q[:, -1] += 1e-3
        if batch > 1:
            q[0] = p[0]  # equal: JSD 0
        if batch > 2 and n > 1:
            p[1] = 0
            q[1] = 0
            p[1, : n // 2] = 1  # disjoint supports: JSD ln 2
            q[1, n // 2:] = 1
        p /= p.sum(-1, keepdims=True)
        q /= q.sum(-1, keepdims=True)
        cases.append({"p": p.astype(np.float32), "q": q.astype(np.float32)})
    return cases


@exercise(
    "01",
    cases=_distribution_cases,
    rtol=1e-4,
    atol=1e-5,
    hint=N_("m = (p + q) / 2; KL(p||m) = sum over the last axis of p log(p/m), counting only terms where p > 0 "
    "(0 log 0 = 0); JSD = KL(p||m)/2 + KL(q||m)/2, natural log, result cast to float32."),
)
def js_divergence(p, q):
    """Jensen-Shannon divergence (natural log) between distributions along the last axis."""


def _d_fake_cases(rng):
    """Critic outputs D(G(z)) in (0, 1): flat batches, one (n, 1) column, confident critics."""
    cases = []
    for shape in [(1,), (7,), (33, 1), (64,), (5,)]:
        logits = rng.normal(0.0, 3.0, size=shape)
        cases.append({"d_fake": (1 / (1 + np.exp(-logits))).clip(1e-4, 1 - 1e-4).astype(np.float32)})
    # A critic that wins: it scores every fake close to 0.
    cases[-1] = {"d_fake": rng.uniform(1e-4, 1e-2, size=(5,)).astype(np.float32)}
    return cases


@exercise(
    "01",
    cases=_d_fake_cases,
    hint=N_("the generator minimises the critic's value on fakes: the mean over the batch of log(1 - d_fake) "
    "(no minus sign). Return a float32 scalar."),
)
def minimax_generator_loss(d_fake):
    """Minimax loss for G (to minimise): mean of log(1 - D(G(z))) over the batch."""


@exercise(
    "01",
    cases=_d_fake_cases,
    hint=N_("the non-saturating generator maximises log D(G(z)) instead, so it minimises -mean(log(d_fake)). "
    "Return a float32 scalar."),
)
def nonsaturating_generator_loss(d_fake):
    """Non-saturating loss for G (to minimise): -mean of log D(G(z)) over the batch."""


# ============================================================================ densities
@dataclass(frozen=True)
class Mixture1D:
    """A 1-D mixture of Gaussians: the data distribution of the 1-D game."""

    means: tuple = (-2.0, 2.0)
    stds: tuple = (0.5, 0.5)
    weights: tuple = (0.5, 0.5)

    def density(self, x):
        x = np.asarray(x, np.float64)[..., None]
        means, stds, weights = (np.asarray(v, np.float64) for v in (self.means, self.stds, self.weights))
        return np.sum(weights * np.exp(-0.5 * ((x - means) / stds) ** 2) / (stds * np.sqrt(2 * np.pi)), axis=-1)

    def sample(self, n, rng):
        component = rng.choice(len(self.weights), size=n, p=np.asarray(self.weights) / np.sum(self.weights))
        return (np.asarray(self.means)[component] + np.asarray(self.stds)[component] * rng.normal(size=n)).astype(np.float32)


TARGET_1D = Mixture1D()


def gaussian_density(x, mean=0.0, std=1.0):
    x = np.asarray(x, np.float64)
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))


def density_grid(lo=-5.0, hi=5.0, n=161):
    """Bin centres and bin edges of a uniform grid: densities are drawn at centres, histograms use edges."""
    edges = np.linspace(lo, hi, n + 1)
    return 0.5 * (edges[:-1] + edges[1:]), edges


def histogram_density(samples, edges):
    """Density of samples on a grid (a normalised histogram; samples outside the grid are dropped)."""
    counts, _ = np.histogram(np.asarray(samples).reshape(-1), bins=edges)
    width = np.diff(edges)
    total = max(counts.sum(), 1)
    return counts / (total * width)


def to_mass(density, edges):
    """Density on bin centres -> discrete distribution over the bins (sums to 1)."""
    mass = np.asarray(density, np.float64) * np.diff(edges)
    return mass / np.maximum(mass.sum(-1, keepdims=True), 1e-300)


def value_at_optimum(p_data, p_g, edges):
    """V(D*, G) for the two densities as distributions over the grid's bins.

    log D* = log p_data - log(p_data + p_g) is taken in logs, term by term, so that far
    tails (where D* underflows to 0 but p_data is not exactly 0) stay finite.
    """
    pd, pg = to_mass(p_data, edges), to_mass(p_g, edges)
    total = pd + pg
    with np.errstate(divide="ignore", invalid="ignore"):
        real = np.where(pd > 0, pd * (np.log(pd) - np.log(total)), 0.0).sum()
        fake = np.where(pg > 0, pg * (np.log(pg) - np.log(total)), 0.0).sum()
    return float(real + fake)


# ============================================================================ models
def build_mlp(in_dim, hidden, out_dim, name, activation="relu"):
    """A small fully connected network; the last layer is linear (D outputs logits)."""
    import keras

    layers = [keras.Input((in_dim,))]
    layers += [keras.layers.Dense(units, activation=activation) for units in hidden]
    layers += [keras.layers.Dense(out_dim)]
    return keras.Sequential(layers, name=name)


# The two generator losses this lab compares; both are written on D's logits in gan_course.losses.
GENERATOR_LOSSES = ("minimax", "non_saturating")


class AdversarialPair:
    """G, D, their Adam optimisers and one compiled training step (k critic steps, one artist step)."""

    def __init__(self, generator, discriminator, sample_real, noise_dim, loss="non_saturating",
                 lr_g=1e-3, lr_d=1e-3, pack=1, d_steps=1):
        import keras
        import tensorflow as tf

        from gan_course.losses import get_losses

        if loss not in GENERATOR_LOSSES:
            raise ValueError(_("loss must be one of {known}, not {loss!r}").format(known=GENERATOR_LOSSES, loss=loss))
        self.discriminator_loss, self.generator_loss = get_losses(loss)
        self.generator, self.discriminator = generator, discriminator
        self.noise_dim, self.loss, self.pack, self.d_steps = noise_dim, loss, pack, d_steps
        self.g_optimizer = keras.optimizers.Adam(lr_g, beta_1=0.5)
        self.d_optimizer = keras.optimizers.Adam(lr_d, beta_1=0.5)
        self._sample_real = sample_real
        self.train_step = tf.function(self._train_step)
        self.critic_step = tf.function(self._critic_step)

    def critic_logits(self, x, training=True):
        """D's logits; with packing (PacGAN) D judges `pack` samples at once, concatenated."""
        import tensorflow as tf

        if self.pack > 1:
            x = tf.reshape(x, (-1, self.pack * x.shape[-1]))
        return self.discriminator(x, training=training)

    def _critic_step(self, batch_size):
        import tensorflow as tf

        real = self._sample_real(batch_size)
        z = tf.random.normal((batch_size, self.noise_dim))
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            d_loss = self.discriminator_loss(self.critic_logits(real), self.critic_logits(fake))
        grads = tape.gradient(d_loss, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))
        return d_loss

    def _train_step(self, batch_size):
        import tensorflow as tf

        for _repeat in range(self.d_steps):
            d_loss = self._critic_step(batch_size)
        z = tf.random.normal((batch_size, self.noise_dim))
        with tf.GradientTape() as tape:
            fake_logits = self.critic_logits(self.generator(z, training=True))
            g_loss = self.generator_loss(fake_logits)
        grads = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        # How much signal reaches the artist: the size of its gradient (tiny = saturated).
        return d_loss, g_loss, tf.linalg.global_norm(grads)

    def generate(self, n, seed=0):
        import tensorflow as tf

        z = tf.random.stateless_normal((n, self.noise_dim), seed=(seed, 1))
        return self.generator(z, training=False).numpy()


def snapshot_steps(steps, snapshots):
    """Which steps to record: step 0 (before training) and `snapshots - 1` more up to the last."""
    return np.unique(np.linspace(0, steps, max(snapshots, 2)).round().astype(int))


def _train(pair, steps, batch_size, record, progress_label, critic_head_start=0):
    """Run the steps, call `record(step)` at the snapshot steps; return per-step D loss, G loss, |grad G|.

    `critic_head_start` critic-only steps come first (not counted in `steps`): they let D
    win before the game starts, the situation where the two generator losses differ.
    """
    import tensorflow as tf
    from tqdm.auto import tqdm

    marks = set(record.steps.tolist())
    history = np.zeros((3, steps), np.float32)
    batch = tf.constant(batch_size)
    for _repeat in range(critic_head_start):
        pair.critic_step(batch)
    if 0 in marks:
        record(0)
    for step in tqdm(range(1, steps + 1), desc=progress_label, leave=False, mininterval=1.0):
        history[:, step - 1] = [float(v) for v in pair.train_step(batch)]
        if step in marks:
            record(step)
    return history


# ============================================================================ the 1-D game
@dataclass
class GameRun:
    """A trained 1-D game and what it looked like at each snapshot."""

    loss: str
    x: np.ndarray  # grid (bin centres), shape (G,)
    edges: np.ndarray  # bin edges, shape (G + 1,)
    p_data: np.ndarray  # data density on the grid, shape (G,)
    steps: np.ndarray  # snapshot steps, shape (S,)
    d_on_grid: np.ndarray  # D(x) on the grid at each snapshot, shape (S, G)
    p_g: np.ndarray  # density of generated samples on the grid, shape (S, G)
    d_loss: np.ndarray  # per training step, shape (steps,)
    g_loss: np.ndarray  # per training step, shape (steps,)
    g_grad_norm: np.ndarray  # size of G's gradient per training step, shape (steps,)
    models: dict = field(default_factory=dict, repr=False)


def _tf_mixture_sampler(target: Mixture1D):
    import tensorflow as tf

    means = tf.constant(target.means, tf.float32)
    stds = tf.constant(target.stds, tf.float32)
    logits = tf.math.log(tf.constant(target.weights, tf.float32))[None, :]

    def sample(n):
        component = tf.random.categorical(logits, n)[0]
        return (tf.gather(means, component) + tf.gather(stds, component) * tf.random.normal((n,)))[:, None]

    return sample


def train_1d_game(steps, batch_size, snapshots, loss="non_saturating", target=TARGET_1D, seed=0,
                  noise_dim=4, hidden=(32, 32), lr=1e-3, samples=20_000, grid=None, critic_head_start=0):
    """Train a tiny G and D on a 1-D mixture; record D(x) and p_g on a grid at `snapshots` steps."""
    import keras

    keras.utils.set_random_seed(seed)
    generator = build_mlp(noise_dim, hidden, 1, "generator")
    discriminator = build_mlp(1, hidden, 1, "discriminator")
    pair = AdversarialPair(generator, discriminator, _tf_mixture_sampler(target), noise_dim, loss, lr, lr)
    x, edges = grid if grid is not None else density_grid()
    marks = snapshot_steps(steps, snapshots)
    d_rows, pg_rows = [], []
    x_column = x.astype(np.float32)[:, None]

    def record(step):
        logits = discriminator(x_column, training=False).numpy()[:, 0]
        d_rows.append(1 / (1 + np.exp(-logits)))
        pg_rows.append(histogram_density(pair.generate(samples, seed=seed), edges))

    record.steps = marks
    d_losses, g_losses, g_grads = _train(pair, steps, batch_size, record, _("1-D game ({loss})").format(loss=loss),
                                         critic_head_start)
    return GameRun(loss, x, edges, target.density(x), marks, np.array(d_rows), np.array(pg_rows),
                   d_losses, g_losses, g_grads, {"generator": generator, "discriminator": discriminator})


# ============================================================================ the ring
RING_MODES, RING_RADIUS, RING_STD = 8, 2.0, 0.02


def ring_centres(modes=RING_MODES, radius=RING_RADIUS):
    angles = 2 * np.pi * np.arange(modes) / modes
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)


def sample_ring(n, rng, modes=RING_MODES, radius=RING_RADIUS, std=RING_STD):
    """n points from 8 Gaussians on a circle (the standard mode-collapse test)."""
    centres = ring_centres(modes, radius)
    return (centres[rng.integers(modes, size=n)] + std * rng.normal(size=(n, 2))).astype(np.float32)


def _tf_ring_sampler(modes=RING_MODES, radius=RING_RADIUS, std=RING_STD):
    import tensorflow as tf

    centres = tf.constant(ring_centres(modes, radius), tf.float32)

    def sample(n):
        index = tf.random.uniform((n,), 0, modes, dtype=tf.int32)
        return tf.gather(centres, index) + std * tf.random.normal((n, 2))

    return sample


def mode_counts(samples, modes=RING_MODES, radius=RING_RADIUS, std=RING_STD):
    """Good samples per mode: a sample is good within 3 std of its nearest centre."""
    samples = np.asarray(samples, np.float64)
    dist = np.linalg.norm(samples[:, None, :] - ring_centres(modes, radius)[None], axis=-1)
    good = dist.min(-1) < 3 * std
    return np.bincount(dist.argmin(-1)[good], minlength=modes)


def mode_coverage(samples, modes=RING_MODES, radius=RING_RADIUS, std=RING_STD, min_share=0.01):
    """(modes covered, share of good samples); a mode is covered when at least `min_share`
    of all samples are good samples of it."""
    counts = mode_counts(samples, modes, radius, std)
    n = len(samples)
    return int((counts >= min_share * n).sum()), float(counts.sum() / max(n, 1))


@dataclass
class RingRun:
    label: str
    steps: np.ndarray  # (S,)
    samples: np.ndarray  # (S, N, 2) generated points at each snapshot
    modes_covered: np.ndarray  # (S,)
    good_share: np.ndarray  # (S,)
    d_loss: np.ndarray
    g_loss: np.ndarray


def train_ring(steps, batch_size, snapshots, label=N_("non-saturating GAN"), loss="non_saturating", pack=1,
               d_steps=1, seed=0, noise_dim=16, hidden=(128, 128), lr_g=1e-3, lr_d=1e-3, samples=2_000):
    """Train an MLP GAN on the ring of 8 Gaussians; record samples and mode coverage at snapshots.

    `pack > 1` lets the critic judge `pack` samples at once (PacGAN): a generator that puts
    every sample on one mode is then easy to spot, because real packs mix modes.
    """
    import keras

    if batch_size % pack:
        raise ValueError(_("batch_size {batch_size} must be a multiple of pack {pack}").format(batch_size=batch_size, pack=pack))
    keras.utils.set_random_seed(seed)
    generator = build_mlp(noise_dim, hidden, 2, "generator")
    discriminator = build_mlp(2 * pack, hidden, 1, "discriminator")
    pair = AdversarialPair(generator, discriminator, _tf_ring_sampler(), noise_dim, loss, lr_g, lr_d,
                           pack=pack, d_steps=d_steps)
    rows, covered, good = [], [], []

    def record(step):
        points = pair.generate(samples, seed=seed)
        rows.append(points)
        n_modes, share = mode_coverage(points)
        covered.append(n_modes)
        good.append(share)

    record.steps = snapshot_steps(steps, snapshots)
    label = _(label)  # the default's translation; a label the caller gives is used as it is
    d_losses, g_losses, _grads = _train(pair, steps, batch_size, record, _("ring ({label})").format(label=label))
    return RingRun(label, record.steps, np.array(rows), np.array(covered), np.array(good), d_losses, g_losses)


# ============================================================================ figures
def plot_generator_losses(minimax_loss, nonsaturating_loss):
    """Both generator losses against D(G(z)), and their gradients with respect to D's logit.

    The losses are the functions given (the student's, once checked); the gradients are
    central differences of them, so the figure shows what those functions do.
    """
    import matplotlib.pyplot as plt

    logits = np.linspace(-9, 9, 181)
    d = 1 / (1 + np.exp(-logits))
    step = 0.05

    def per_point(loss, values):
        return np.array([float(loss(np.array([v], np.float32))) for v in values])

    def gradient(loss):
        up = per_point(loss, 1 / (1 + np.exp(-(logits + step))))
        down = per_point(loss, 1 / (1 + np.exp(-(logits - step))))
        return (up - down) / (2 * step)

    curves = {_("minimax: log(1 - D(G(z)))"): (minimax_loss, "tab:red"),
              _("non-saturating: -log D(G(z))"): (nonsaturating_loss, "tab:blue")}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for label, (loss, colour) in curves.items():
        left.plot(d, per_point(loss, d), color=colour, label=label)
        right.plot(d, np.abs(gradient(loss)), color=colour, label=label)
    ticks = [1e-4, 1e-3, 1e-2, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999]
    for ax, place in ((left, "upper center"), (right, "lower center")):
        ax.axvspan(d[0], 0.1, color="0.9", zorder=0)
        ax.set_xscale("logit")
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks], fontsize=8)
        ax.minorticks_off()
        ax.set_xlabel(_("D(G(z)): the critic's score of a fake"))
        ax.legend(loc=place, fontsize=9)
    left.text(0.012, left.get_ylim()[0] * 0.9 + left.get_ylim()[1] * 0.1, _("critic wins"), fontsize=9)
    left.set_ylabel(_("generator loss (to minimise)"))
    left.set_title(_("Two losses for the artist"))
    right.set_yscale("log")
    right.set_ylabel(_("|d loss / d logit|"))
    right.set_title(_("Gradient reaching G through D's logit"))
    fig.tight_layout()
    return fig


def plot_optimal_discriminator(x, p_data, p_g, d_star, title=None):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.fill_between(x, p_data, color="tab:green", alpha=0.3, label="p_data")
    ax.fill_between(x, p_g, color="tab:orange", alpha=0.3, label="p_g")
    ax.set_xlabel("x")
    ax.set_ylabel(_("density"))
    twin = ax.twinx()
    twin.plot(x, d_star, color="black", lw=2, label="D*(x)")
    twin.axhline(0.5, color="0.5", ls=":", lw=1)
    twin.set_ylim(-0.02, 1.02)
    twin.set_ylabel(_("D*(x) = p_data / (p_data + p_g)"))
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=9)
    ax.set_title(title or _("The optimal critic for a fixed artist"))
    fig.tight_layout()
    return fig


def plot_jsd_curve(shifts, jsd, value, title=None):
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.plot(shifts, jsd, color="tab:purple")
    left.axhline(np.log(2), color="0.4", ls="--", lw=1, label=_("ln 2 (disjoint supports)"))
    left.set_xlabel(_("mean of p_g"))
    left.set_ylabel(_("JSD(p_data || p_g) [nats]"))
    left.set_title(title or _("JSD between p_data and a shifted Gaussian p_g"), fontsize=10)
    left.legend(fontsize=9)
    right.plot(shifts, value, color="black", lw=3, alpha=0.4, label=_("V(D*, G) summed on the grid"))
    right.plot(shifts, -LOG4 + 2 * np.asarray(jsd), color="tab:purple", ls="--", label=_("-log 4 + 2 JSD"))
    right.set_xlabel(_("mean of p_g"))
    right.set_ylabel(_("value of the game"))
    right.set_title(_("At the optimal critic, V = -log 4 + 2 JSD"), fontsize=10)
    right.legend(fontsize=9)
    fig.tight_layout()
    return fig


def _draw_game_panel(ax, run: GameRun, index, d_star=None):
    ax.fill_between(run.x, run.p_data, color="tab:green", alpha=0.3, label="p_data")
    ax.plot(run.x, run.p_g[index], color="tab:orange", lw=1.5, label=_("p_g (generated)"))
    ax.set_ylim(0, max(1.2 * run.p_data.max(), 1e-3))
    ax.set_xlabel("x")
    ax.set_ylabel(_("density"))
    twin = ax.twinx()
    twin.plot(run.x, run.d_on_grid[index], color="black", lw=1.8, label="D(x)")
    if d_star is not None:
        twin.plot(run.x, d_star, color="tab:blue", lw=1, ls="--", label=_("D*(x) for this p_g"))
    twin.axhline(0.5, color="0.6", ls=":", lw=1)
    twin.set_ylim(-0.02, 1.02)
    twin.set_ylabel("D(x)")
    ax.set_title(_("{loss}, step {step}").format(loss=run.loss.replace("_", "-"), step=int(run.steps[index])), fontsize=10)
    return ax, twin


def plot_game_snapshots(run: GameRun, indices=None, optimal=optimal_discriminator):
    """A row of panels: p_data, p_g and D(x) (with D* for that p_g) at several snapshots."""
    import matplotlib.pyplot as plt

    if indices is None:
        indices = np.unique(np.linspace(0, len(run.steps) - 1, min(4, len(run.steps))).round().astype(int))
    fig, axes = plt.subplots(1, len(indices), figsize=(4.2 * len(indices), 3.4), squeeze=False)
    for ax, index in zip(axes[0], indices):
        d_star = optimal(run.p_data.astype(np.float32), run.p_g[index].astype(np.float32))
        ax, twin = _draw_game_panel(ax, run, index, d_star)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    fig.legend(handles, [h.get_label() for h in handles], loc="lower center", ncol=4, fontsize=9,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(_("1-D game with the {loss} generator loss").format(loss=run.loss.replace("_", "-")))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def plot_game_progress(runs, jsd_by_run):
    """Losses per step and JSD(p_data || p_g) at each snapshot, for each run."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    colours = {"minimax": "tab:red", "non_saturating": "tab:blue"}
    for name, run in runs.items():
        colour = colours.get(name)
        window = max(1, len(run.d_loss) // 50)
        smooth = np.convolve(run.d_loss, np.ones(window) / window, mode="valid")
        left.plot(np.arange(len(smooth)) + window, smooth, color=colour, label=_("D loss ({loss})").format(loss=name.replace("_", "-")))
        right.plot(run.steps, jsd_by_run[name], "o-", color=colour, label=name.replace("_", "-"))
    left.axhline(LOG4, color="0.4", ls="--", lw=1, label=_("log 4 (D can't tell)"))
    left.set_xlabel(_("training step"))
    left.set_ylabel(_("critic loss -V(D, G), smoothed"))
    left.set_title(_("Critic loss"))
    left.legend(fontsize=8)
    right.axhline(np.log(2), color="0.4", ls="--", lw=1, label=_("ln 2 (disjoint)"))
    right.set_xlabel(_("training step"))
    right.set_ylabel(_("JSD(p_data || p_g) [nats]"))
    right.set_title(_("How far p_g is from p_data"))
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_ring_runs(runs, real):
    """One row per run: generated points at each snapshot over the real ring, coverage in the title."""
    import matplotlib.pyplot as plt

    n_cols = max(len(run.steps) for run in runs)
    fig, axes = plt.subplots(len(runs), n_cols, figsize=(2.4 * n_cols, 2.6 * len(runs) + 0.3), squeeze=False)
    for row, run in zip(axes, runs):
        for ax, step, points, covered in zip(row, run.steps, run.samples, run.modes_covered):
            ax.scatter(real[:, 0], real[:, 1], s=2, color="tab:green", alpha=0.25)
            ax.scatter(points[:, 0], points[:, 1], s=2, color="tab:orange", alpha=0.4)
            ax.set_xlim(-3, 3)
            ax.set_ylim(-3, 3)
            ax.set_aspect("equal")
            ax.set_title(_("step {step}: {covered}/8 modes").format(step=int(step), covered=covered), fontsize=9)
            ax.tick_params(labelsize=7)
        for ax in row[len(run.steps):]:
            ax.axis("off")
        row[0].set_ylabel(f"{run.label}\ny", fontsize=9)
        for ax in row:
            ax.set_xlabel("x", fontsize=8)
    fig.suptitle(_("Ring of 8 Gaussians: real points (green), generated points (orange)"))
    fig.tight_layout()
    return fig


def plot_ring_coverage(runs):
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    for run in runs:
        left.plot(run.steps, run.modes_covered, "o-", label=run.label)
        right.plot(run.steps, run.good_share, "o-", label=run.label)
    left.set_ylim(-0.3, 8.3)
    left.set_xlabel(_("training step"))
    left.set_ylabel(_("modes covered (of 8)"))
    left.set_title(_("Mode coverage"))
    right.set_ylim(-0.02, 1.02)
    right.set_xlabel(_("training step"))
    right.set_ylabel(_("share within 3 std of a mode"))
    right.set_title(_("Sample quality"))
    for ax in (left, right):
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ============================================================================ the explorer
def figure_png(fig) -> bytes:
    """Render a figure to PNG bytes and close it (widgets show images, not live figures)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def draw_game_frame(runs, loss, index, optimal=optimal_discriminator):
    """One frame of the explorer: the chosen run at the chosen snapshot."""
    import matplotlib.pyplot as plt

    run = runs[loss]
    index = int(np.clip(index, 0, len(run.steps) - 1))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    d_star = optimal(run.p_data.astype(np.float32), run.p_g[index].astype(np.float32))
    ax, twin = _draw_game_panel(ax, run, index, d_star)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper center", bbox_to_anchor=(0.5, -0.17),
              ncol=4, fontsize=8)
    fig.tight_layout()
    return fig


def game_explorer(runs: dict, optimal=optimal_discriminator):
    """A slider over the saved snapshots and a switch between the precomputed runs.

    Returns the widget box; `box.update` is the callback (a plain function, also called
    on every change), `box.output` the Output widget it redraws in place.
    """
    import ipywidgets as widgets
    from IPython.display import Image

    names = list(runs)
    n_snapshots = len(runs[names[0]].steps)
    snapshot = widgets.IntSlider(value=0, min=0, max=n_snapshots - 1, step=1, description=_("snapshot"),
                                 continuous_update=False)
    loss = widgets.ToggleButtons(options=[(name.replace("_", "-"), name) for name in names], value=names[0],
                                 description=_("G loss"))
    step_label = widgets.Label()
    output = widgets.Output()

    def update(change=None):
        run = runs[loss.value]
        index = min(snapshot.value, len(run.steps) - 1)
        step_label.value = _("training step {step} of {steps}").format(step=int(run.steps[index]),
                                                                        steps=int(run.steps[-1]))
        png = figure_png(draw_game_frame(runs, loss.value, index, optimal))
        output.outputs = ()
        output.append_display_data(Image(data=png, format="png"))

    snapshot.observe(update, names="value")
    loss.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([loss]), widgets.HBox([snapshot, step_label]), output])
    box.update, box.output, box.snapshot, box.loss = update, output, snapshot, loss
    return box
