"""What the pages act on: the project, reopened for every request so a lock changed
by git or the CLI meanwhile is what the page shows, and one Runtime kept loaded
across requests so a switch is a hot switch, not a restart."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ffstore.errors import InputError
from ffswap.ui.memory import Memory, measure

if TYPE_CHECKING:
    from ffstore.context import Context
    from ffstore.lockfile import Lock, LockedModule
    from ffswap.model_source import LoadedModel
    from ffswap.runtime import ActiveModel, Runtime


@dataclass(frozen=True)
class Switched:
    """A live switch: the entry's model before (described, its session released) and
    after, and the memory around it."""

    before: ActiveModel
    after: ActiveModel
    memory_before: Memory
    memory_after: Memory


class _Current:
    """The Runtime's model source: the project opened afresh for every load, as for
    every page, so a switch sees the lock, the toml and the registry's index as they
    are now (a version published since ff ui started, say), not as at the first load."""

    def __init__(self, open_context: Callable[[], Context], offline: bool) -> None:
        self._open_context = open_context
        self._offline = offline

    def load(self, module: str, version: str | None, *,
             deferred_check: bool = False) -> LoadedModel:
        from ffswap.locked import LockedModels

        return LockedModels(self._open_context(), offline=self._offline).load(
            module, version, deferred_check=deferred_check)


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
            offline = context.setting("offline")
            LockedModels(context, offline=offline).fetch(used)
            self._runtime = Runtime(_Current(self._open_context, offline), dict.fromkeys(used),
                                    execution_provider=self._execution_provider)
        return self._runtime

    def switch(self, module: str, version: str | None) -> Switched:
        """Switch `module` to `version` (None: the locked one) in the running
        Runtime, measuring memory around it; the lock is not touched. On any error
        the current model stays (Runtime.switch)."""
        with self._busy:
            runtime = self.runtime()
            name = self.context().require_lock().module(module).name
            before = runtime.active.get(name)
            if before is None:
                raise InputError(f"{name} is not one of the models ff swap runs; ff ui switches "
                                 f"those: {', '.join(sorted(runtime.active))}")
            # Only the description: holding its adapter would keep the old session
            # alive through the switch, and the memory after would count it.
            before = replace(before, adapter=None)
            on_cuda = "CUDA" in runtime.provider
            memory_before = measure(on_cuda)
            after = runtime.switch(name, version)
            return Switched(before, after, memory_before, measure(on_cuda))

    def loaded(self) -> dict[str, ActiveModel]:
        """What runs now, per entry; empty until something needed the Runtime (a
        page that only shows the lock does not load models for it)."""
        return {} if self._runtime is None else self._runtime.active

    def _behind(self, lock: Lock) -> list[LockedModule]:
        """The entries of `lock` that the loaded models run at another version."""
        loaded = self.loaded()
        return [entry for name, entry in sorted(lock.modules.items()) if name in loaded
                and (entry.model, entry.version) != (loaded[name].model, loaded[name].version)]

    def prepare(self, context: Context, lock: Lock) -> dict[str, ActiveModel]:
        """Before an action writes `lock`: load, without switching to them, the
        versions it names for loaded entries that run others, so a model that does
        not load refuses the action instead of leaving facefusion.lock and what runs
        apart. The lock's own check goes first, for its words on what it refuses."""
        from ffstore.lock_changes import check_runnable

        with self._busy:
            behind = self._behind(lock)
            if not behind:
                return {}
            check_runnable(context, behind, complete=False)
            runtime = self.runtime()
            return {entry.name: runtime.prepare(entry.name, entry.version) for entry in behind}

    def follow(self, lock: Lock, prepared: dict[str, ActiveModel]) -> list[ActiveModel]:
        """After the action wrote `lock`: make what `prepare` loaded for it current,
        so what the page shows is what runs. An entry it names otherwise (the lock
        moved meanwhile, by the CLI say) is switched to what it names."""
        with self._busy:
            runtime = self.runtime()
            now = []
            for entry in self._behind(lock):
                ready = prepared.get(entry.name)
                if ready is None or (ready.model, ready.version) != (entry.model, entry.version):
                    ready = runtime.prepare(entry.name, None)
                now.append(runtime.install(entry.name, ready))
            return now

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
