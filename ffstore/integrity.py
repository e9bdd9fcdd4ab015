"""The store's integrity check behind `ff verify`: re-hash every blob and re-check
every stored manifest. A corrupt blob is moved to quarantine (with the model views
that link to it) so the next `ff sync` fetches a good copy instead of trusting the
bad one. (Checking one signature is ffstore/signing.py; deciding trust is
ffstore/trust.py.)"""

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ffstore import fsutil, layout
from ffstore.digests import hex_part
from ffstore.errors import FFError
from ffstore.store import Store
from ffstore.trust import manifest_signers


@dataclass
class IntegrityReport:
    blobs_checked: int = 0
    manifests_checked: int = 0
    problems: list[str] = field(default_factory=list)


def _sharing(blob: Path, registries: Sequence[Path], digest: str) -> str:
    """Where else a hard-linked blob's damage shows: the registry copies that are the
    same file (a local registry the store linked it from), else that some file is."""
    same = [where for where in (root / layout.blob(digest) for root in registries)
            if where.exists() and where.samefile(blob)]
    where = (f": {', '.join(map(str, same))} (the local registry it was linked from) shares "
             "the damage" if same else " (a local registry ff linked it from shares the damage)")
    return f"; the file is hard-linked elsewhere too{where}: publish the model there again"


def check_store(store: Store, registries: Sequence[Path] = ()) -> IntegrityReport:
    """Integrity, not trust: whether a signer is trusted depends on a project (and on
    its registries' key rotations) and is checked by lock, sync and the runtime.
    `registries`: local registry directories whose blobs the store may share, so a
    report names both places of a damaged file."""
    report = IntegrityReport()
    with store.using(exclusive=True):
        corrupt = set()
        for digest in store.blobs.digests():
            report.blobs_checked += 1
            actual = store.blobs.rehash(digest)
            if actual != digest:
                corrupt.add(digest)
                blob = store.blobs.path(digest)
                shared = _sharing(blob, registries, digest) if blob.stat().st_nlink > 1 else ""
                quarantine = store.root / layout.QUARANTINE
                quarantine.mkdir(exist_ok=True)
                os.replace(blob, quarantine / hex_part(digest))
                fsutil.fsync_dir(quarantine)
                report.problems.append(f"blob {digest} was corrupt (hashes to {actual}); "
                                       f"moved to {quarantine}{shared}")
        for digest in store.manifest_digests():
            report.manifests_checked += 1
            try:
                manifest, signatures = store.load_manifest(digest)
            except FFError as exc:
                store.remove_manifest(digest)
                report.problems.append(f"{exc}; removed it")
                continue
            if any(f.digest in corrupt for f in manifest.files):
                store.remove_manifest(digest)  # its view links point at corrupt bytes
            signers = manifest_signers(digest, signatures)
            if not signers:
                report.problems.append(f"manifest {digest} ({manifest.model} {manifest.version}) "
                                       "has no valid signature")
    return report

