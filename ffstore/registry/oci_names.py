"""How an ff registry maps onto OCI names (docs/FORMATS.md, "OCI registries"):
`oci://HOST[:PORT]/REPOSITORY` holds the signed index in REPOSITORY itself and each
model in the repository `REPOSITORY/<model>`, one tag per version. Kept apart from
the HTTP code so facefusion.toml can be checked without importing an HTTP client."""

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ffstore.digests import hex_part
from ffstore.errors import InputError

SCHEME = "oci://"
INDEX_TAG = "ff-index"
# The OCI distribution spec's grammar: a repository is path components of lower-case
# letters and digits joined by single separators; a tag is at most 128 characters.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
COMPONENT_RE = re.compile(rf"^{_COMPONENT}$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


def is_oci(location: str) -> bool:
    return location[:6].lower() == SCHEME


def is_loopback(host: str) -> bool:
    """Whether `host` (no port) is this machine: the one place plain HTTP is safe
    without the user saying so, as Docker and containerd also hold."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class OciLocation:
    host: str  # HOST[:PORT], lower-case, as registries and credential files name it
    hostname: str
    repository: str

    @property
    def loopback(self) -> bool:
        return is_loopback(self.hostname)

    def base_url(self, insecure: bool) -> str:
        """The registry's API root. TLS unless the registry is this machine or its
        entry says `insecure = true`."""
        scheme = "http" if insecure or self.loopback else "https"
        return f"{scheme}://{self.host}/v2/"

    def model_repository(self, model: str) -> str:
        return f"{self.repository}/{model_component(model)}"

    @property
    def canonical_host(self) -> str:
        """The host in one spelling: this machine is `localhost` however it is named."""
        if not self.loopback:
            return self.host
        port = self.host.rpartition(":")[2] if not self.host.endswith("]") and ":" in self.host \
            else ""
        return "localhost" + (f":{port}" if port else "")

    @property
    def canonical(self) -> str:
        return f"{SCHEME}{self.canonical_host}/{self.repository}"


def parse_oci(location: str, where: str) -> OciLocation:
    """`oci://HOST[:PORT]/REPOSITORY`, checked against the distribution spec so a
    mistake is named here rather than as an HTTP 400 from the registry."""
    rest = location[len(SCHEME):]
    try:
        parts = urlsplit("//" + rest)
        parts.port  # noqa: B018  (raises for a port that is not a number in range)
    except ValueError as exc:
        raise InputError(f"{where}: {location!r} is not a valid OCI location ({exc})") from None
    repository = parts.path.strip("/")
    if not parts.hostname or parts.query or parts.fragment or parts.username:
        raise InputError(f"{where}: {location!r}: write oci://HOST[:PORT]/REPOSITORY")
    if not REPOSITORY_RE.match(repository):
        raise InputError(f"{where}: {location!r}: the repository {repository!r} is not a valid "
                         "OCI name (lower-case letters and digits, separated by '.', '_', '-' "
                         "or '/')")
    return OciLocation(parts.netloc.lower(), parts.hostname.lower(), repository)


def model_component(model: str) -> str:
    """The model's repository name under the registry's. OCI names are lower-case,
    so a model name they cannot spell is refused, never folded (two models could
    collide)."""
    if not COMPONENT_RE.match(model):
        raise InputError(f"model {model!r} cannot be an OCI repository name (lower-case "
                         "letters and digits, single '.', '_' or '-' between them); publish it "
                         "under such a name to use an OCI registry")
    return model


def version_tag(version: str) -> str:
    """The tag of a normalized PEP 440 version. `+` (a local version) becomes `_`,
    as Helm does, since tags cannot hold `+`; an epoch (`1!2.0`) has no spelling."""
    tag = version.replace("+", "_")
    if not TAG_RE.match(tag):
        raise InputError(f"version {version} cannot be an OCI tag; publish it without an "
                         "epoch ('!')")
    return tag


def signatures_tag(digest: str) -> str:
    """The tag of a manifest's signature document: mutable, since signatures are
    added over time (the naming cosign uses for its signatures)."""
    return f"sha256-{hex_part(digest)}.sig"
