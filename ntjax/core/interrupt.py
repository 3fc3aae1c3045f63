"""Saving on Ctrl-C within a bounded time: the save runs in a helper thread the main thread waits on, so a
hung file system (or a second Ctrl-C) cannot keep a user from getting their terminal back."""
from __future__ import annotations

import threading
from collections.abc import Callable

INTERRUPT_SAVE_S = 60.0  # long enough for any checkpoint this tool writes on a local disk


def save_within(save: Callable[[], object], seconds: float = INTERRUPT_SAVE_S) -> bool:
    """Run `save()`; True if it finished within `seconds`, False if it failed, timed out or was
    interrupted again (the half-written checkpoint is a temp folder the next start cleans up)."""
    failed: list[BaseException] = []

    def target() -> None:
        try:
            save()
        except BaseException as e:  # reported as "not saved", never raised into the interrupt path
            failed.append(e)

    worker = threading.Thread(target=target, name="ntjax-interrupt-save", daemon=True)
    worker.start()
    try:
        worker.join(seconds)
    except KeyboardInterrupt:
        return False
    return not worker.is_alive() and not failed
