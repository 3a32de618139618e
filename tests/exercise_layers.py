"""What the lab tests ask of an exercise's checks: an answer passes, or fails at the named layer."""
from __future__ import annotations

from gan_course import checks


def assert_checked_at(name: str, answer, layer: str | None) -> None:
    """Run exercise `name`'s notebook cases on `answer`: it passes when `layer` is None, else it
    fails, and at `layer` (signature, shape, dtype, finite, values, mutation)."""
    exercise = checks.get_exercise(name)
    result = checks.run_checks(exercise, answer, checks.notebook_cases(exercise))
    if layer is None:
        assert result.passed, result.line()
    else:
        assert not result.passed and result.layer == layer, result.line()
