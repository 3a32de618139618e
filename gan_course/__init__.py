"""GAN Lab support library.

Notebooks import it once, under one short alias, before anything else::

    import gan_course as gc
    P = gc.setup()          # profile, seeds, quiet logs, GPU memory growth

Importing this package first keeps TensorFlow's C++ start-up logs quiet: the
variable must be set before TensorFlow is imported for the first time, and `setup()`
imports it through `gan_course.tflog`, which filters the notices TensorFlow 2.21 prints
before it reads the variable.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from gan_course.config import Profile, profile, setup  # noqa: E402
from gan_course.checks import check, reference  # noqa: E402
from gan_course import plotting  # noqa: E402,F401

__version__ = "0.1.0"
__all__ = ["Profile", "profile", "setup", "check", "reference", "__version__"]
