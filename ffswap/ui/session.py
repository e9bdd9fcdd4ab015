"""What the pages act on: the project, reopened for every request so a lock changed
by git or the CLI meanwhile is what the page shows, and one Runtime kept loaded
across requests so a switch is a hot switch, not a restart."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ffstore.context import Context
    from ffswap.runtime import Runtime


class UiSession:
    def __init__(self, open_context: Callable[[], Context], execution_provider: str = "auto"
                 ) -> None:
        self._open_context = open_context
        self._execution_provider = execution_provider
        self._runtime: Runtime | None = None
        self._busy = threading.Lock()

    def context(self) -> Context:
        return self._open_context()

    @contextmanager
    def acting(self) -> Iterator[Context]:
        """One action at a time, as one CLI command at a time: two clicks racing
        must not interleave a lock rewrite and a switch."""
        with self._busy:
            yield self.context()

    def runtime(self) -> Runtime:
        """The loaded models, built at first use from the lock as it is then."""
        if self._runtime is None:
            from ffswap.cli import runtime_entries
            from ffswap.locked import LockedModels
            from ffswap.runtime import Runtime

            context = self.context()
            used, _ = runtime_entries(context.require_lock(), no_enhance=False)
            models = LockedModels(context, offline=context.setting("offline"))
            models.fetch(used)
            self._runtime = Runtime(models, dict.fromkeys(used),
                                    execution_provider=self._execution_provider)
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None
