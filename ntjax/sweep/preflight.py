"""Checks a sweep runs once, before its first trial: a broken --spec, a bad preset setting (or, through
`add_check`, a user command that fails at once) stops the sweep with one line instead of failing every
trial and spending the budget on nothing."""
from __future__ import annotations

from collections.abc import Callable

from ntjax.errors import NtjaxError

Check = Callable[[], None]  # raises NtjaxError (or anything) when the sweep cannot run
_checks: list[Check] = []


def add_check(check: Check) -> None:
    """Register a check for the next `validate_before_first_trial` (e.g. a --command's dry start)."""
    _checks.append(check)


def spec_check(recipe) -> Check:
    """The recipe's base config resolves, and its spec (if any) imports and builds a model and data."""
    def check() -> None:
        from ntjax.core import config as config_lib

        cfg = config_lib.resolve(recipe.base_config())
        if cfg.spec:
            from ntjax.core.state import build_state

            build_state(cfg)
    return check


def validate_before_first_trial(recipe, extra: list[Check] | tuple[Check, ...] = ()) -> None:
    """Run every check; the first failure becomes one NtjaxError line saying no trial was started."""
    checks, _checks[:] = [spec_check(recipe), *_checks, *extra], []
    for check in checks:
        try:
            check()
        except NtjaxError as e:
            raise NtjaxError(f"{e} (checked before the first trial: none was started, no budget used)") from None
        except Exception as e:  # the user's code failed: one line, not a trial-by-trial traceback
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
            raise NtjaxError(f"the sweep cannot start: {type(e).__name__}: {first} (checked before the first "
                             "trial: none was started, no budget used)") from None
