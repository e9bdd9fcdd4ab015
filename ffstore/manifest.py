"""Manifests: one per model version, canonical JSON, identified by the digest of its
bytes, signed separately (so adding a signature does not change its identity).

A manifest is the unit of trust: it binds a model name and version to exact file
digests and sizes and to the ONNX input/output contract the runtime checks before
loading. Everything read from outside is validated here before use.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from ffstore import signing
from ffstore.canonical import canonical_bytes, parse_json_object
from ffstore.digests import check_digest, digest_bytes
from ffstore.errors import InputError, VerificationError
from ffstore.modules import check_module_kind

MANIFEST_TYPE = "ff-manifest"
SPEC = 1
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_model_name(name: object) -> str:
    if not isinstance(name, str) or not MODEL_NAME_RE.match(name):
        raise InputError(f"invalid model name {name!r}: use letters, digits, '.', '_' or '-'")
    return name


def normalize_version(version: object, where: str = "version") -> str:
    """PEP 440 normal form (`v1.0` becomes `1.0`); `same_version` says whether two
    normal forms name one release (`1.2` and `1.2.0` do)."""
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(str(version)))
    except InvalidVersion:
        raise InputError(f"{where}: {version!r} is not a valid version (PEP 440, e.g. 1.2.0)") from None


def same_version(a: str, b: str) -> bool:
    """PEP 440 equality: 1.2 and 1.2.0 are one release."""
    from packaging.version import Version

    return Version(a) == Version(b)


def find_version(versions: Iterable[str], version: str) -> str | None:
    """The key among `versions` that names the same release as `version`."""
    return next((v for v in versions if same_version(v, version)), None)


def check_relative_path(path: object, where: str) -> str:
    """Refuse any path that could land outside the model's directory when the files
    are laid out on disk: absolute, `..`, backslashes, empty or `.` components."""
    if not isinstance(path, str) or not path:
        raise VerificationError(f"{where}: file path {path!r} is empty or not a string")
    pure = PurePosixPath(path)
    parts = path.split("/")
    if (pure.is_absolute() or "\\" in path or path.startswith("~") or "\x00" in path
            or any(part in ("", ".", "..") for part in parts) or re.match(r"^[A-Za-z]:", path)):
        raise VerificationError(f"{where}: file path {path!r} escapes the model directory")
    return path


@dataclass(frozen=True)
class FileEntry:
    path: str
    digest: str
    size: int
    onnx: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"path": self.path, "digest": self.digest, "size": self.size}
        if self.onnx is not None:
            entry["onnx"] = self.onnx
        return entry


@dataclass(frozen=True)
class Manifest:
    model: str
    version: str
    module: str
    files: tuple[FileEntry, ...]
    requires_ff: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "type": MANIFEST_TYPE,
            "spec": SPEC,
            "model": self.model,
            "version": self.version,
            "module": self.module,
            "requires": {"ff": self.requires_ff},
            "files": [entry.to_json() for entry in self.files],
        }

    def canonical(self) -> bytes:
        return canonical_bytes(self.to_json())

    @property
    def digest(self) -> str:
        return digest_bytes(self.canonical())

    @property
    def main_file(self) -> FileEntry:
        """The file a runtime loads: the first ONNX file (others are external data)."""
        return next((entry for entry in self.files if entry.onnx is not None), self.files[0])

    def admits_ff(self, ff_version: str) -> bool:
        from packaging.specifiers import SpecifierSet

        return SpecifierSet(self.requires_ff).contains(ff_version, prereleases=True)

    def require_ff(self, ff_version: str) -> None:
        """Refuse a release that says it does not work with this ff (`requires.ff`):
        not only `ff lock` skips it, a rollback or a run refuses it too."""
        if not self.admits_ff(ff_version):
            raise InputError(f"{self.model} {self.version} ({self.module}) needs ff "
                             f"{self.requires_ff}, this is ff {ff_version}; upgrade ff or choose "
                             "another version")


def _io_list(value: object, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise VerificationError(f"{where} must be a list")
    for item in value:
        if not (isinstance(item, dict) and isinstance(item.get("name"), str)
                and isinstance(item.get("shape"), list) and isinstance(item.get("dtype"), str)):
            raise VerificationError(f"{where} entries need name, shape and dtype")
    return value


def parse_manifest(data: bytes, expected_digest: str | None = None) -> Manifest:
    """Parse and validate manifest bytes. With `expected_digest` the bytes must hash to
    it, which is how a manifest fetched from an untrusted place is pinned."""
    actual = digest_bytes(data)
    if expected_digest is not None and actual != expected_digest:
        raise VerificationError(f"manifest {expected_digest} was tampered with: its bytes hash "
                                f"to {actual}")
    where = f"manifest {actual}"
    try:
        doc = parse_json_object(data, where)
    except ValueError as exc:
        raise VerificationError(str(exc)) from None
    if doc.get("type") != MANIFEST_TYPE or doc.get("spec") != SPEC:
        raise VerificationError(f"{where} is not an ff manifest of spec {SPEC}")
    try:
        requires = doc.get("requires") or {}
        requires_ff = requires.get("ff", "") if isinstance(requires, dict) else None
        check_version_range(requires_ff, f"{where}: requires.ff")
        files_doc = doc.get("files")
        if not isinstance(files_doc, list) or not files_doc:
            raise VerificationError(f"{where} lists no files")
        files = []
        seen: set[str] = set()
        for item in files_doc:
            if not isinstance(item, dict):
                raise VerificationError(f"{where} has a malformed file entry")
            path = check_relative_path(item.get("path"), where)
            if path in seen:
                raise VerificationError(f"{where} lists {path!r} twice")
            seen.add(path)
            size = item.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise VerificationError(f"{where}: {path} has an invalid size")
            onnx = item.get("onnx")
            if onnx is not None:
                if not isinstance(onnx, dict):
                    raise VerificationError(f"{where}: {path} has a malformed onnx contract")
                _io_list(onnx.get("inputs"), f"{where}: {path} inputs")
                _io_list(onnx.get("outputs"), f"{where}: {path} outputs")
            files.append(FileEntry(path, check_digest(item.get("digest"), f"{where}: {path}"),
                                   size, onnx))
        manifest = Manifest(
            model=check_model_name(doc.get("model")),
            version=normalize_version(doc.get("version"), where),
            module=check_module_kind(doc.get("module"), where),
            files=tuple(files),
            requires_ff=str(requires_ff),
        )
        directories = {"/".join(p.split("/")[:i]) for p in seen for i in range(1, p.count("/") + 1)}
        if directories & seen:
            raise VerificationError(f"{where} uses {sorted(directories & seen)[0]!r} both as a "
                                    "file and as a directory")
        canonical = manifest.canonical() == data
    except InputError as exc:
        raise VerificationError(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"{where} is malformed: {exc}") from None
    if not canonical:
        raise VerificationError(f"{where} is not in canonical form")
    return manifest


def check_version_range(spec: object, where: str) -> str:
    """A PEP 440 specifier set such as ">=1.1,<2" (empty: any version)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if not isinstance(spec, str):
        raise InputError(f"{where} must be a string such as \">=1.1,<2\"")
    try:
        SpecifierSet(spec)
    except InvalidSpecifier:
        raise InputError(f"{where}: {spec!r} is not a version range (PEP 440, e.g. \">=1.1,<2\")"
                         ) from None
    return spec


# --- signatures -----------------------------------------------------------------


def signature_document(signatures: dict[str, str]) -> bytes:
    return canonical_bytes({"signatures": [{"keyid": key, "sig": sig}
                                           for key, sig in sorted(signatures.items())]})


def parse_signatures(data: bytes | None, what: str) -> dict[str, str]:
    """Signature documents are unauthenticated; malformed ones count as no signatures
    rather than an error, because each signature is checked on its own anyway."""
    if not data:
        return {}
    try:
        doc = parse_json_object(data, what)
    except ValueError:
        return {}
    result: dict[str, str] = {}
    items = doc.get("signatures")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("keyid"), str) and isinstance(
                item.get("sig"), str):
            result[item["keyid"]] = item["sig"]
    return result


def sign_manifest(key: signing.SigningKey, digest: str) -> str:
    return key.sign(signing.MANIFEST_CONTEXT, digest.encode())
