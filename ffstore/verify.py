"""`ff verify`: re-hash every blob and re-check every stored manifest. A corrupt
blob is moved to quarantine (with the model views that link to it) so the next
`ff sync` fetches a good copy instead of trusting the bad one."""

import os
from dataclasses import dataclass, field

from ffstore import fsutil, layout
from ffstore.digests import hex_part
from ffstore.errors import FFError
from ffstore.store import Store
from ffstore.trust import manifest_signers


@dataclass
class VerifyReport:
    blobs_checked: int = 0
    manifests_checked: int = 0
    problems: list[str] = field(default_factory=list)


def verify(store: Store) -> VerifyReport:
    """Integrity, not trust: whether a signer is trusted depends on a project (and on
    its registries' key rotations) and is checked by lock, sync and the runtime."""
    report = VerifyReport()
    with store.using(exclusive=True):
        corrupt = set()
        for digest in store.blobs.digests():
            report.blobs_checked += 1
            actual = store.blobs.rehash(digest)
            if actual != digest:
                corrupt.add(digest)
                links = store.blobs.path(digest).stat().st_nlink
                quarantine = store.root / layout.QUARANTINE
                quarantine.mkdir(exist_ok=True)
                os.replace(store.blobs.path(digest), quarantine / hex_part(digest))
                fsutil.fsync_dir(quarantine)
                shared = ("; the file is hard-linked elsewhere too (a local registry ff linked it "
                          "from shares the damage: re-publish the model there)") if links > 1 else ""
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

