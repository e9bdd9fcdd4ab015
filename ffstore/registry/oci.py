"""A registry that is an OCI registry (Distribution, Harbor, GHCR, ECR, Zot...),
read through the distribution API (docs/FORMATS.md, "OCI registries").

Everything the HTTP registry guarantees holds here, by the same code: documents are
capped before they are parsed, blobs are pulled by digest, in parallel, resumed with
Range requests, capped at the manifest's size and hashed on receipt; mirrors (other
oci:// locations holding the same repositories) are asked for blobs first. What
differs is only where things are: the index and signature documents are layers of
tagged artifacts, found through their tag's manifest, and a model's manifest and
files are blobs of its repository.

Registries answer blob requests with redirects to their storage (S3, a CDN), so
redirects to other hosts are followed: the bytes are verified whoever sends them,
and httpx does not forward credentials to another host. Plain HTTP is used only for
this machine or an entry that says `insecure = true`, and never reached by a
redirect otherwise."""

import functools

import httpx

from ffstore import layout
from ffstore.digests import digest_bytes
from ffstore.registry.base import Document, SourceFailed, TransferOptions
from ffstore.registry.http import BlobSource, DownloadingRegistry, get_document, new_client
from ffstore.registry.oci_auth import registry_auth
from ffstore.registry.oci_format import FF_INDEX, FF_SIGNATURES, IMAGE_MANIFEST, artifact_layer
from ffstore.registry.oci_names import (
    INDEX_TAG,
    OciLocation,
    is_loopback,
    parse_oci,
    signatures_tag,
)

ACCEPT = {"Accept": IMAGE_MANIFEST}


def oci_client(where: OciLocation, options: TransferOptions, insecure: bool) -> httpx.Client:
    """A client for one registry host, authenticating as container tools do."""

    def check_request(request: httpx.Request) -> None:
        if request.url.scheme != "https" and not insecure and not is_loopback(request.url.host):
            raise SourceFailed(f"{request.url.host} was to be reached over plain HTTP, which "
                               "ff refuses but for this machine; if the registry has no TLS, "
                               "set insecure = true in its entry")

    return new_client(options, check_request, registry_auth(where.host))


def _blob_url(base: str, where: OciLocation, digest: str, model: str) -> str:
    return f"{base}{where.model_repository(model)}/blobs/{digest}"


class OciRegistry(DownloadingRegistry):
    advice = ("check the oci:// location in facefusion.toml, that the registry is up, and "
              "your credentials for it (docker login, or FF_REGISTRY_AUTH)")

    def __init__(self, location: str, mirrors: tuple[str, ...], options: TransferOptions,
                 insecure: bool = False) -> None:
        super().__init__(location, options)
        self.where = parse_oci(location, "registry")
        self.base = self.where.base_url(insecure)
        self.client = oci_client(self.where, options, insecure)
        sources = []
        for mirror in mirrors:  # nearer or cheaper: asked first
            where = parse_oci(mirror, f"mirror of {location}")
            base = where.base_url(insecure)
            sources.append(BlobSource(mirror, oci_client(where, options, insecure),
                                      functools.partial(_blob_url, base, where)))
        sources.append(BlobSource(location, self.client,
                                  functools.partial(_blob_url, self.base, self.where)))
        self.blob_sources = tuple(sources)

    def _repository(self, document: Document) -> str:
        if document.kind == "index":
            return self.where.repository
        return self.where.model_repository(document.model)

    def _tag(self, document: Document) -> str:
        return INDEX_TAG if document.kind == "index" else signatures_tag(document.digest)

    def address(self, document: Document) -> str:
        repository = f"{self.where.host}/{self._repository(document)}"
        if document.kind == "manifest":
            return f"{repository}@{document.digest}"
        return f"{repository}:{self._tag(document)}"

    def _get(self, url: str, limit: int, headers: dict[str, str] | None = None) -> bytes | None:
        return get_document(self.client, url, limit, self.options.timeout, headers)

    def _read(self, document: Document, limit: int) -> bytes | None:
        repository = self.base + self._repository(document)
        if document.kind == "manifest":  # ff's manifest is a blob, addressed by its digest
            return self._get(f"{repository}/blobs/{document.digest}", limit)
        media_type = FF_INDEX if document.kind == "index" else FF_SIGNATURES
        data = self._get(f"{repository}/manifests/{self._tag(document)}", layout.MAX_MANIFEST,
                         ACCEPT)
        if data is None:
            return None
        try:
            layer = artifact_layer(data, media_type)
        except ValueError as exc:
            raise SourceFailed(str(exc)) from None
        if layer.size > limit:
            raise SourceFailed(f"its layer has {layer.size} bytes, more than the "
                               f"{limit >> 10} KiB any such ff document has")
        body = self._get(f"{repository}/blobs/{layer.digest}", limit)
        if body is None:
            raise SourceFailed(f"its layer {layer.digest} is missing from the registry")
        if len(body) != layer.size or digest_bytes(body) != layer.digest:
            raise SourceFailed(f"the registry sent other bytes than its layer {layer.digest}")
        return body
