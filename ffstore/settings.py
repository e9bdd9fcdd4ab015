"""Every tunable setting, resolved in one place with one precedence:
command-line flag > FF_* environment variable > [settings] in facefusion.toml >
built-in default. `ff config` prints the result with where each value came from."""

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ffstore.errors import InputError


def _default_home() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "ff")


def _whole(value: Any, most: int) -> int:
    """A whole number from 1 to `most`: from TOML an integer (not 2.5, inf or true),
    from the command line or the environment its digits."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a whole number")
    number = int(str(value).strip())
    if not 1 <= number <= most:
        raise ValueError(f"must be from 1 to {most}")
    return number


def _upto(most: int) -> Callable[[Any], int]:
    return lambda value: _whole(value, most)


def _provider(value: Any) -> str:
    text = str(value).lower()
    if text not in ("auto", "cpu", "cuda", "tensorrt"):
        raise ValueError("must be auto, cpu, cuda or tensorrt")
    return text


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds")
    number = float(value)
    if not 0 < number <= 86400:  # also refuses nan and inf, which would wait forever
        raise ValueError("must be a number of seconds above 0, at most 86400")
    return number


def _module_versions(value: Any) -> dict[str, str]:
    """`MODULE=VERSION` pairs, comma-separated (repeated flags arrive joined)."""
    pairs = {}
    for item in filter(None, (part.strip() for part in str(value).split(","))):
        module, equals, version = item.partition("=")
        if not equals or not module.strip() or not version.strip():
            raise ValueError(f"{item!r} is not MODULE=VERSION (e.g. face_swapper=1.0.0)")
        pairs[module.strip()] = version.strip()
    return pairs


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    parse: Callable[[Any], Any]
    default: Callable[[], Any]
    in_toml: bool
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("home", "FF_HOME", lambda v: str(Path(str(v)).expanduser()), _default_home, False,
            "the local store (blobs, manifests, keys, generations)"),
    Setting("registry", "FF_REGISTRY", str, lambda: None, False,
            "location (directory or URL) of the `default` registry, over facefusion.toml's"),
    Setting("jobs", "FF_JOBS", _upto(256), lambda: 4, True, "parallel blob transfers"),
    Setting("gc_keep", "FF_GC_KEEP", _upto(10000), lambda: 3, True,
            "generations per module that `ff gc` keeps"),
    Setting("execution_provider", "FF_EXECUTION_PROVIDER", _provider, lambda: "auto", True,
            "onnxruntime execution provider for `ff swap`"),
    Setting("execution_threads", "FF_EXECUTION_THREADS", _upto(256), lambda: 3, True,
            "video frames `ff swap` processes at once"),
    Setting("http_timeout", "FF_HTTP_TIMEOUT", _seconds, lambda: 30.0, True,
            "seconds without progress before an HTTP transfer is retried"),
    Setting("http_retries", "FF_HTTP_RETRIES", _upto(100), lambda: 4, True,
            "attempts per HTTP request before giving up"),
    Setting("offline", "FF_OFFLINE", _boolean, lambda: False, True,
            "`ff swap` uses only what is in the store (missing models: run ff sync)"),
    Setting("use", "FF_USE", _module_versions, dict, False,
            "per-run versions for `ff swap` (MODULE=VERSION,...); facefusion.lock is not touched"),
    Setting("guard", "FF_GUARD", _boolean, lambda: False, True,
            "`ff swap` checks each swapped face and rolls back a swapper version that fails"),
    Setting("index_expiry_days", "FF_INDEX_EXPIRY_DAYS", _upto(36500), lambda: 365, True,
            "how long an index signed by `ff publish` stays valid"),
)
BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Resolved:
    value: Any
    source: str


def resolve(flags: Mapping[str, Any], environ: Mapping[str, str],
            toml_settings: Mapping[str, Any]) -> dict[str, Resolved]:
    unknown = sorted(set(toml_settings) - {s.name for s in SETTINGS if s.in_toml})
    if unknown:
        raise InputError(f"facefusion.toml: unknown setting(s) {', '.join(unknown)} in [settings]; "
                         f"known: {', '.join(s.name for s in SETTINGS if s.in_toml)}")
    result = {}
    for setting in SETTINGS:
        if flags.get(setting.name) is not None:
            raw, source = flags[setting.name], "flag"
        elif environ.get(setting.env):
            raw, source = environ[setting.env], f"env {setting.env}"
        elif setting.in_toml and setting.name in toml_settings:
            raw, source = toml_settings[setting.name], "facefusion.toml"
        else:
            result[setting.name] = Resolved(setting.default(), "default")
            continue
        try:
            result[setting.name] = Resolved(setting.parse(raw), source)
        except (TypeError, ValueError) as exc:
            raise InputError(f"setting {setting.name} from {source}: {raw!r} is invalid ({exc})"
                             ) from None
    return result
