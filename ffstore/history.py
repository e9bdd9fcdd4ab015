"""Per-project lock history on this machine. Every change of a project's lock is
recorded as a numbered generation so `ff rollback` and `ff history` can work, and so
`ff gc` knows which older blobs are still worth keeping.

Each generation records, per module, the generation its entry came from (its
origin). Rolling back copies the origin along, so a second rollback steps further
back instead of bouncing between the last two versions.
"""

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ffstore import fsutil
from ffstore.canonical import load_json
from ffstore.errors import FFError
from ffstore.lockfile import Lock, parse_lock


@dataclass(frozen=True)
class Generation:
    number: int
    time: str
    reason: str
    origin: int
    module_origins: dict[str, int]
    lock_text: bytes

    @property
    def lock(self) -> Lock:
        return parse_lock(self.lock_text, f"generation {self.number}")

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "time": self.time, "reason": self.reason,
                "origin": self.origin, "module_origins": self.module_origins,
                "lock": self.lock_text.decode()}


class History:
    def __init__(self, projects_dir: Path, project_root: Path) -> None:
        key = hashlib.sha256(str(project_root).encode()).hexdigest()[:16]
        self.directory = projects_dir / key
        self.project_root = project_root
        self._generations = self.directory / "generations"

    def register(self) -> None:
        """Remember the project so `ff gc` keeps what its lock references."""
        marker = self.directory / "project.json"
        if not marker.is_file():
            fsutil.atomic_write(marker, json.dumps({"root": str(self.project_root)}).encode())

    def generations(self) -> list[Generation]:
        if not self._generations.is_dir():
            return []
        result = []
        for path in sorted(self._generations.glob("[0-9]*.json")):
            try:
                doc = load_json(path.read_bytes(), str(path))
                result.append(Generation(int(doc["number"]), str(doc["time"]), str(doc["reason"]),
                                         int(doc["origin"]),
                                         {k: int(v) for k, v in doc["module_origins"].items()},
                                         str(doc["lock"]).encode()))
            except (ValueError, KeyError, TypeError, AttributeError):
                raise FFError(f"history file {path} is damaged; move it out of the way and run "
                              "the command again (rollback then skips that generation)") from None
        return result

    def latest(self) -> Generation | None:
        generations = self.generations()
        return generations[-1] if generations else None

    def record(self, lock: Lock, reason: str, origin: int | None = None,
               module_origins: dict[str, int] | None = None,
               only_if_changed: bool = False) -> Generation:
        """Append a generation. By default a module keeps its previous origin when its
        entry did not change, and takes this generation's number when it did. With
        `only_if_changed`, a lock equal to the latest generation is not recorded again
        (checked under the history lock, so concurrent syncs record it once)."""
        with fsutil.file_lock(self.directory / "history.lock"):
            previous = self.latest()
            if only_if_changed and previous is not None and previous.lock_text == lock.render():
                return previous
            number = previous.number + 1 if previous else 1
            origins: dict[str, int] = {}
            old_modules = previous.lock.modules if previous else {}
            for name, entry in lock.modules.items():
                if module_origins and name in module_origins:
                    origins[name] = module_origins[name]
                elif previous and name in old_modules and old_modules[name] == entry:
                    origins[name] = previous.module_origins.get(name, previous.number)
                else:
                    origins[name] = number
            generation = Generation(number, dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                    reason, number if origin is None else origin, origins,
                                    lock.render())
            self.register()
            fsutil.atomic_write(self._generations / f"{number:06d}.json",
                                json.dumps(generation.to_json(), indent=1).encode())
        return generation


def registered_projects(projects_dir: Path) -> list[History]:
    if not projects_dir.is_dir():
        return []
    result = []
    for marker in sorted(projects_dir.glob("*/project.json")):
        try:
            root = Path(load_json(marker.read_bytes(), str(marker))["root"])
        except (ValueError, KeyError, TypeError):
            raise FFError(f"{marker} is damaged; remove its directory (that project's history "
                          "is then forgotten) and run `ff sync` in the project again") from None
        result.append(History(projects_dir, root))
    return result
