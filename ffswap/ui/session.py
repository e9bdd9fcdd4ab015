"""What the pages act on: the project, reopened for every request so a lock changed
by git or the CLI meanwhile is what the page shows, and one Runtime kept loaded
across requests so a switch is a hot switch, not a restart."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ffswap.ui.memory import Memory, measure

if TYPE_CHECKING:
    from ffstore.context import Context
    from ffswap.runtime import ActiveModel, Runtime


@dataclass(frozen=True)
class Switched:
    """A live switch: the entry's model before and after, and the memory around it."""

    before: ActiveModel
    after: ActiveModel
    memory_before: Memory
    memory_after: Memory


class UiSession:
    def __init__(self, open_context: Callable[[], Context], execution_provider: str = "auto"
                 ) -> None:
        self._open_context = open_context
        self._execution_provider = execution_provider
        self._runtime: Runtime | None = None
        self._busy = threading.RLock()  # an action may switch, which takes it too
        self._scratch: Path | None = None
        self._scratch_made = threading.Lock()  # not _busy: a long action must not hold it up

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

    def switch(self, module: str, version: str | None) -> Switched:
        """Switch `module` to `version` (None: the locked one) in the running
        Runtime, measuring memory around it; the lock is not touched. On any error
        the current model stays (Runtime.switch)."""
        with self._busy:
            runtime = self.runtime()
            name = self.context().require_lock().module(module).name
            before = runtime.active[name]
            on_cuda = "CUDA" in runtime.provider
            memory_before = measure(on_cuda)
            after = runtime.switch(name, version)
            return Switched(before, after, memory_before, measure(on_cuda))

    def scratch(self) -> Path:
        """This session's own temp folder (uploads, run outputs): never the project's,
        and gone when the session closes, so a browser's uploads outlive no `ff ui`."""
        with self._scratch_made:
            if self._scratch is None:
                self._scratch = Path(tempfile.mkdtemp(prefix="ff-ui-"))
            return self._scratch

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
