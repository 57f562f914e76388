"""Signal handlers for the length of a block, the one way actstudy swaps them (import-light: the sweep's
parent process uses it without importing Lightning)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def signals_handled(handler: Callable[[int, Any], None], *signums: int) -> Iterator[None]:
    """Within the block `handler` handles `signums`; the previous handlers come back after it. Off the
    main thread, where Python cannot set handlers, the block runs with the handlers as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)
