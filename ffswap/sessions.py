"""Execution-provider choice and session construction.

onnxruntime-gpu lists CUDA/TensorRT as *available* whenever it was built with them,
even on machines without the CUDA libraries; asking for them then prints a burst of
errors and silently runs on CPU. This module decides what really loads, falls back
to CPU quietly for ``auto``, refuses loudly for an explicit ``cuda``/``tensorrt``, and
reports the provider actually used.
"""

from __future__ import annotations

import functools
import io
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout, suppress
from dataclasses import dataclass
from typing import Literal

import numpy as np
import onnxruntime as ort

from ffstore.blobs import Contents
from ffstore.onnxinfo import DTYPE_NAMES
from ffswap.errors import ModelLoadError, ProviderUnavailableError
from ffswap.model_source import LoadedModel
from ffswap.weights import ITEM_SIZES, InlineWeight, split_weights

Preference = Literal["auto", "cpu", "cuda", "tensorrt"]
PREFERENCES: tuple[Preference, ...] = ("auto", "cpu", "cuda", "tensorrt")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

_QUIET = 3  # errors only: ULFD-style graphs warn once per weight at load otherwise
_SILENT = 4  # during a probe even "library not found" errors are expected noise

ort.set_default_logger_severity(_QUIET)

# The default logger severity is process-wide; the lock keeps a probe's temporary
# silence from overlapping another thread's session creation.
_probe_lock = threading.Lock()
_failed: set[str] = set()
"""GPU providers that were requested and did not load: not retried in this process."""

# The external-data location of weights handed over from memory: no file has this
# name, and onnxruntime never opens it because every such weight is supplied.
_INLINE_WEIGHTS = "ff:inline-weights"

# EXHAUSTIVE cuDNN search benchmarks algorithms per run and may pick a different one
# next time, which breaks bit-identical output; DEFAULT is deterministic.
_PROVIDER_OPTIONS: dict[str, dict[str, str]] = {
    CUDA: {"cudnn_conv_algo_search": "DEFAULT"},
    TENSORRT: {},
    CPU: {},
}


def default_threads() -> int:
    """Intra-op threads for CPU sessions: fixed, not "all cores", so the work split
    (and therefore float summation order) is the same on every run of a machine."""
    return max(1, min(4, os.cpu_count() or 1))


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Session options shared by every session: quiet, deterministic, no spinning.

    Spinning worker threads would steal the cores the video decode/encode threads need.
    """
    options = ort.SessionOptions()
    options.log_severity_level = _QUIET
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.use_deterministic_compute = True
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def candidate_providers(preference: Preference) -> list[str]:
    """Providers to try, best first, for a preference (CPU always last as fallback)."""
    if preference not in PREFERENCES:
        raise ValueError(f"unknown execution provider {preference!r}; use one of {PREFERENCES}")
    available = set(ort.get_available_providers())
    wanted: list[str] = {
        "auto": [TENSORRT, CUDA],
        "cpu": [],
        "cuda": [CUDA],
        "tensorrt": [TENSORRT, CUDA],
    }[preference]
    if preference in ("cuda", "tensorrt"):
        first = wanted[0]
        if first not in available:
            raise ProviderUnavailableError(
                f"{first} is not in this onnxruntime build (available: {sorted(available)});"
                " install onnxruntime-gpu"
            )
        if first in _failed:
            raise ProviderUnavailableError(f"{first} failed to load earlier in this process")
    return [p for p in wanted if p in available and p not in _failed] + [CPU]


@contextmanager
def _silenced() -> Iterator[None]:
    """Silence onnxruntime's logger while probing a GPU provider that may not load."""
    with _probe_lock:
        ort.set_default_logger_severity(_SILENT)
        try:
            yield
        finally:
            ort.set_default_logger_severity(_QUIET)


@functools.cache
def _preload_gpu_libraries() -> None:
    """Load CUDA/cuDNN from pip's nvidia-* wheels where onnxruntime can (once per
    process), because they are not on the loader path and the provider would fail
    to find them."""
    if hasattr(ort, "preload_dlls"):
        # A failed preload only means the probe session decides. preload_dlls print()s a
        # line per missing library (a CPU-only machine lacks them all): keep it quiet.
        with suppress(Exception), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            ort.preload_dlls()


def _external_initializer(model: Contents, weight: InlineWeight) -> ort.OrtValue:
    """A view of one weight inside the verified model (no copy: onnxruntime makes the
    one it keeps)."""
    dtype = DTYPE_NAMES[weight.data_type]
    count = weight.length // ITEM_SIZES[weight.data_type]
    array = np.frombuffer(model, dtype, count, weight.offset).reshape(weight.dims)
    return ort.OrtValue.ortvalue_from_numpy(array)


@dataclass(frozen=True)
class _Model:
    """A verified model ready for onnxruntime: the graph alone, the bytes its moved
    weights lie in, and its external data files. Split once, built on any provider."""

    graph: bytes
    data: Contents
    weights: list[InlineWeight]
    external: Mapping[str, Contents]


def _prepare(model: Contents, external: Mapping[str, Contents]) -> _Model:
    try:
        graph, weights = split_weights(model, _INLINE_WEIGHTS)
    except ValueError as error:
        raise ModelLoadError(f"cannot load the model: {error}") from None
    return _Model(graph, model, weights, external)


def _create(model: _Model, providers: list[str], threads: int | None) -> ort.InferenceSession:
    options = session_options(threads)
    if model.weights:
        # onnxruntime copies each weight once, from views of these very (verified)
        # bytes, instead of three times from a model handed over whole.
        options.add_external_initializers(
            [weight.name for weight in model.weights],
            [_external_initializer(model.data, weight) for weight in model.weights])
    if model.external:
        # The same for external data files: taken from memory, not opened by name.
        names = list(model.external)
        options.add_external_initializers_from_files_in_memory(
            names, [model.external[name] for name in names],
            [len(model.external[name]) for name in names])
    # enable_fallback=0: onnxruntime's own fallback *prints* an "EP Error" banner to
    # stdout (not through its logger); we fall back ourselves, quietly.
    try:
        session = ort.InferenceSession(
            model.graph,
            sess_options=options,
            providers=[(name, _PROVIDER_OPTIONS[name]) for name in providers],
            enable_fallback=0,
        )
    except Exception as error:  # onnxruntime raises its own, unrelated exception types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelLoadError(f"onnxruntime cannot load the model: {reason}") from error
    # onnxruntime keeps the model bytes and the options for the session's lifetime, only
    # to rebuild it on set_providers() or its own fallback, neither of which we use;
    # holding them would keep every verified model (or the weights the options still
    # point into) resident twice. None is the state onnxruntime itself uses for
    # sessions that cannot be rebuilt.
    if getattr(session, "_model_bytes", None) is model.graph:
        session._model_bytes = None
        session._sess_options_initial = None
    return session


def make_session(
    model: Contents, preference: Preference = "auto", *, threads: int | None = None,
    external: Mapping[str, Contents] | None = None,
) -> tuple[ort.InferenceSession, str]:
    """Build an inference session from verified model *bytes* (and ``external`` data
    files, by the names the model uses for them); return it and the provider that
    actually runs it.

    Bytes, not a path: the store verified exactly these bytes, and re-reading a file
    would reopen the window for it to change underneath us.

    A GPU provider that raises is tried without (TensorRT, then CUDA, then CPU for
    ``auto``) and skipped for the rest of the process, unless the model fails on CPU
    too: then the model is at fault, not the provider, and its error is raised.
    """
    prepared = _prepare(model, external or {})
    providers = candidate_providers(preference)
    gpus = providers[:-1]
    if not gpus:
        session = _create(prepared, providers, threads)
        return session, session.get_providers()[0]
    _preload_gpu_libraries()
    failure: ModelLoadError | None = None
    for start in range(len(gpus) if preference == "auto" else 1):
        try:
            with _silenced():
                session = _create(prepared, [*gpus[start:], CPU], threads)
        except ModelLoadError as error:  # the provider did not initialise, or the model is bad
            failure = failure or error
            continue
        used = session.get_providers()[0]
        # Listed but not loaded (missing CUDA/cuDNN/TensorRT libraries): onnxruntime
        # quietly dropped it. Remember, so later sessions skip the attempt.
        _failed.update(gpus[:start])
        _failed.update(p for p in gpus[start:] if p not in session.get_providers())
        if used != gpus[start] and preference != "auto":
            raise ProviderUnavailableError(
                f"{gpus[start]} is installed but did not load (missing CUDA libraries?)")
        return session, used
    session = _create(prepared, [CPU], threads)  # raises if the model itself is bad
    _failed.update(gpus)
    if preference != "auto":
        raise ProviderUnavailableError(f"{gpus[0]} did not initialise: {failure}") from failure
    return session, CPU


def make_checked_session(
    loaded: LoadedModel, preference: Preference = "auto", threads: int | None = None
) -> tuple[ort.InferenceSession, str]:
    """`make_session`, with the model's deferred digest check run alongside.

    SHA-256 of a large model takes about as long as building its session; run one
    after the other they add up. Here the hash runs in a thread (hashlib releases the
    GIL) while onnxruntime builds from the *same* bytes object, and the session is handed
    out only after the check passed, so nothing ever runs on unverified bytes. When
    both fail, the check's error wins: "corrupt" explains a parse error, not the other
    way round. The blob was verified when it entered the store; this check catches
    what changed it since.
    """
    if loaded.check is None:
        return make_session(loaded.data, preference, threads=threads, external=loaded.external)
    started = threading.Event()
    outcome: list[BaseException | None] = []

    def check() -> None:
        started.set()
        try:
            loaded.check()  # type: ignore[misc]
            outcome.append(None)
        except BaseException as error:  # re-raised on the caller's thread
            outcome.append(error)

    worker = threading.Thread(target=check, daemon=True)
    worker.start()
    # onnxruntime may hold the GIL while it builds the session: let the hash begin first.
    started.wait()
    try:
        built = make_session(loaded.data, preference, threads=threads, external=loaded.external)
    except BaseException:
        worker.join()
        if outcome[0] is not None:
            raise outcome[0] from None
        raise
    worker.join()
    if outcome[0] is not None:
        raise outcome[0]
    return built
