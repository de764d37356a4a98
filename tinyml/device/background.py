"""The lifecycle every serial-endpoint server shares: one background thread, stopped on exit.

Emulated devices and the emulated ESP ROM loader both serve a TCP port or a pty from a
thread; this base gives them the same start/stop/wait and context-manager behaviour.
"""

from __future__ import annotations

import threading


class BackgroundService:
    """Runs ``self._run`` in a daemon thread until ``stop``; subclasses release in ``_close``."""

    def __init__(self, name: str):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:  # pragma: no cover - always overridden
        raise NotImplementedError

    def _close(self) -> None:
        """Release endpoints and persist state; called once the thread has ended."""

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the thread ends (in short joins, so Ctrl-C still works); False on timeout."""
        step = 0.5 if timeout is None else min(0.5, timeout)
        remaining = timeout
        while self._thread.is_alive() and (remaining is None or remaining > 0):
            self._thread.join(step)
            if remaining is not None:
                remaining -= step
        return not self._thread.is_alive()
