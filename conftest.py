"""pytest settings shared by the unit tests and `pytest --nbval`.

Notebooks run in the `smoke` profile unless the environment chooses another, and
TensorFlow's C++ start-up lines (stderr) are never compared.
"""
import os

os.environ.setdefault("GAN_COURSE_PROFILE", "smoke")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pytest_collectstart(collector):
    if getattr(collector, "path", None) is not None and collector.path.suffix == ".ipynb":
        collector.skip_compare += ("stderr",)
