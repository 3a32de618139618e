"""`make notebooks`' two nbval runs: a kernel that dies while starting is started once more (conftest.py)."""
import socket
import warnings
from pathlib import Path

import pytest

ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"
DIED = RuntimeError("Kernel died before replying to kernel_info")


@pytest.fixture
def start_again_if_it_died(request):
    """The wrapper from the course's own conftest.py, as pytest loaded it (a module named
    `conftest` on sys.path may be another one: fixtures carry their own)."""
    plugin = next(p for p in request.config.pluginmanager.get_plugins()
                  if Path(getattr(p, "__file__", "") or "").resolve() == ROOT_CONFTEST)
    return plugin.start_again_if_it_died


def starts(*outcomes):
    """A stand-in for nbval's start_new_kernel: each call gives (or raises) the next outcome."""
    calls = []

    def start(*args, **kwargs):
        calls.append((args, kwargs))
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    return start, calls


def test_a_kernel_that_died_while_starting_is_started_once_more_and_said_so(start_again_if_it_died):
    start, calls = starts(DIED, "kernel")
    with pytest.warns(UserWarning, match="died while starting"):
        assert start_again_if_it_died(start)(startup_timeout=5, kernel_name="python3") == "kernel"
    assert calls == [((), {"startup_timeout": 5, "kernel_name": "python3"})] * 2


def test_a_kernel_that_dies_twice_fails_the_notebook(start_again_if_it_died):
    start, calls = starts(DIED, DIED)
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="died before replying"):
        start_again_if_it_died(start)()
    assert len(calls) == 2


def test_a_kernel_that_does_not_answer_in_time_is_not_started_again(start_again_if_it_died):
    start, calls = starts(RuntimeError("Kernel didn't respond in 60 seconds"), "kernel")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="didn't respond"):
            start_again_if_it_died(start)()
    assert len(calls) == 1


def test_nbval_starts_a_real_kernel_again_when_its_port_was_taken(monkeypatch, tmp_path):
    kernel = pytest.importorskip("nbval.kernel")
    real_manager = kernel.KernelManager
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    made = []

    def manager(**kwargs):
        # The first kernel is handed a port that another process holds, as in the race; the
        # second gets free ports as usual.
        if not made:
            kwargs.update(shell_port=taken.getsockname()[1], cache_ports=False)
        made.append(real_manager(**kwargs))
        return made[-1]

    monkeypatch.setattr(kernel, "KernelManager", manager)
    try:
        with pytest.warns(UserWarning, match="died while starting"), open(tmp_path / "stderr", "w") as stderr:
            km, kc = kernel.start_new_kernel(startup_timeout=60, kernel_name="python3", stderr=stderr)
        try:
            assert len(made) == 2 and km is made[1] and km.is_alive()
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    finally:
        taken.close()
