"""The runtime's model source: only what facefusion.lock names, verified.

The loader reads each model file once (the ONNX file and any external data files),
checks the digests on those very bytes, and hands the same buffers to onnxruntime, so
there is no window between check and load in which a file could be swapped. The
manifest must match the lock's digest and carry a signature from a trusted key;
anything else is refused before a session exists.
"""

import posixpath
from collections.abc import Iterable

from ffstore import __version__
from ffstore.context import Context
from ffstore.errors import FFError, InputError
from ffstore.lockfile import LockedModule
from ffstore.progress import Transfer
from ffstore.resolver import pin
from ffstore.sync import sync_modules, verified_manifest
from ffswap.model_source import LoadedModel


class LockedModels:
    """A `ModelSource` over a project's lock and the local store. A model the
    store lacks is fetched (verified, as `ff sync` does), unless `offline`."""

    def __init__(self, context: Context, *, offline: bool = False,
                 progress: Transfer | None = None) -> None:
        self._context = context
        self._offline = offline
        self._progress = progress

    def _fetch(self, entries: list[LockedModule]) -> None:
        blobs = self._context.store.blobs
        missing = [entry for entry in entries
                   if not all(blobs.has(file.digest, file.size) for file in entry.files)]
        if not missing:
            return
        if self._offline:
            names = ", ".join(f"{e.name} ({e.model} {e.version})" for e in missing)
            raise FFError(f"{names} not in the store and running offline; run `ff sync` first")
        with self._context.store.using():
            sync_modules(self._context, missing, self._progress)

    def fetch(self, names: Iterable[str]) -> None:
        """Fetch what the named entries lack, all at once (one progress display)."""
        lock = self._context.require_lock()
        self._fetch([lock.module(name) for name in names])

    def _entry(self, module: str, version: str | None) -> LockedModule:
        """The locked entry, or for another version of the same model one this
        project has locked before (its history) or its registry holds: a hot switch,
        `ff swap --use`, `ff compare`, without rewriting the lock. The toml's range
        does not bind it (trying a version before widening the range is the point);
        what keeps it safe is the same as for a lock: a trusted signature, checked
        when it is pinned and again on load, `requires.ff`, and the contract."""
        from ffstore.manifest import normalize_version, same_version

        locked = self._context.require_lock().module(module)
        if version is None or same_version(normalize_version(version), locked.version):
            return locked
        version = normalize_version(version)
        for generation in reversed(self._context.history.generations()):
            entry = generation.lock.modules.get(locked.name)
            if entry is not None and entry.model == locked.model and same_version(
                    entry.version, version):
                return entry
        spec = self._context.project.module(locked.name)
        if spec.model != locked.model:
            raise InputError(f"facefusion.lock pins {locked.model} for {locked.name} but "
                             f"facefusion.toml asks for {spec.model}; run `ff lock`")
        return pin(self._context.catalog(spec.registry), spec, version)

    def load(self, module: str, version: str | None = None, *,
             deferred_check: bool = False) -> LoadedModel:
        entry = self._entry(module, version)
        manifest = verified_manifest(self._context, entry)
        manifest.require_ff(__version__)
        main = manifest.main_file
        if main.onnx is None:
            raise FFError(f"{entry.name} ({entry.model} {entry.version}) has no ONNX file")
        blobs = self._context.store.blobs
        self._fetch([entry])  # a version not synced yet (a switch, say): fetched, verified
        # An external data file is named, in the ONNX file, relative to its directory.
        folder = posixpath.dirname(main.path)
        with self._context.store.using():  # no gc between the fetch and the read
            files = {file.path: blobs.read_unchecked(file.digest) for file in manifest.files}
        external = {posixpath.relpath(file.path, folder or "."): files[file.path]
                    for file in manifest.files if file is not main}

        def check() -> None:
            for file in manifest.files:
                blobs.check_bytes(files[file.path], file.digest)

        if not deferred_check:
            check()  # digests checked on exactly the bytes handed on
        return LoadedModel(manifest.module, manifest.model, manifest.version, files[main.path],
                           main.onnx["inputs"], main.onnx["outputs"],
                           check if deferred_check else None, external, main.path)
