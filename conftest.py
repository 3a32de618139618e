"""pytest settings shared by the unit tests and `pytest --nbval`.

Notebooks run in the `smoke` profile unless the environment chooses another,
TensorFlow's C++ start-up lines (stderr) are never compared, and a notebook's kernel that
dies before its first reply is started once more (`start_again_if_it_died`).
"""
import functools
import os
import warnings

os.environ.setdefault("GAN_COURSE_PROFILE", "smoke")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def start_again_if_it_died(start):
    """Wrap nbval's `start_new_kernel`: a kernel that died before replying is started once more.

    jupyter_client picks free ports, closes them and hands them to the new kernel in its
    connection file; `make notebooks` runs two `pytest --nbval` beside each other, and the
    other run's kernel can take a port in between.  The kernel then exits on "address already
    in use" before its first reply, and nbval fails the whole notebook.  A second start, with
    new ports, is what a person would do; a kernel that cannot start fails the second time too.
    Written here because nbval has no retry of its own; other start-up errors (a kernel that
    does not answer in time) are not retried.
    """
    @functools.wraps(start)
    def start_new_kernel(*args, **kwargs):
        try:
            return start(*args, **kwargs)
        except RuntimeError as err:
            if "Kernel died before replying" not in str(err):
                raise
            warnings.warn(f"a notebook's kernel died while starting ({err}); starting it once more", stacklevel=2)
            return start(*args, **kwargs)
    return start_new_kernel


try:
    import nbval.kernel
except ImportError:  # the unit tests run without nbval too
    pass
else:
    nbval.kernel.start_new_kernel = start_again_if_it_died(nbval.kernel.start_new_kernel)


def pytest_collectstart(collector):
    if getattr(collector, "path", None) is not None and collector.path.suffix == ".ipynb":
        collector.skip_compare += ("stderr",)
