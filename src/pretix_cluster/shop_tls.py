"""The shop's TLS: the certificate nginx serves, and what this machine's clients trust.

With an https URL nginx serves the operator's certificate ([tls] certificate
and key, checked before anything is deployed) or, when none is given, one
issued by the tool's local CA (:mod:`pretix_cluster.tls`) for the URL's host,
127.0.0.1 and localhost, kept in the state folder and reused until it nears
its end. Every client of the tool (status, loadtest, chaos, bench, the tests)
verifies the shop against :class:`ShopTrust`, never with verification off.
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass
from pathlib import Path

from pretix_cluster import tls
from pretix_cluster.errors import UserError
from pretix_cluster.spec import ClusterSpec

TLS_DIR = "tls"
EDGE_NAME = "edge"  # the kept certificate's files in the CA's folder: edge.pem, edge.key
EDGE_CERT_FILE, EDGE_KEY_FILE = f"{EDGE_NAME}.pem", f"{EDGE_NAME}.key"
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def edge_hosts(spec: ClusterSpec) -> list[str]:
    """The names a local certificate covers: the shop's host and this machine's loopback."""
    return list(dict.fromkeys([spec.shop_host, *LOOPBACK_NAMES]))


def _spec_path(spec_dir: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else spec_dir / path


def edge_pair(spec: ClusterSpec, spec_dir: Path) -> tls.KeyPair | None:
    """The certificate and key nginx serves; None with an http URL (no TLS at the edge).

    Raises UserError (one sentence) for an operator's pair or CA file that cannot serve.
    """
    if not spec.tls_enabled:
        return None
    if spec.tls.certificate:
        if spec.tls.ca_file:
            tls.check_ca_file(_spec_path(spec_dir, spec.tls.ca_file))
        return tls.load_operator_pair(
            _spec_path(spec_dir, spec.tls.certificate), _spec_path(spec_dir, spec.tls.key)
        )
    directory = spec.state_path(spec_dir) / TLS_DIR
    return local_pair(tls.LocalCA.ensure(directory), edge_hosts(spec))


def local_pair(ca: tls.LocalCA, hosts: list[str]) -> tls.KeyPair:
    """The local CA's certificate for `hosts`, reused while it fits (a new one would
    restart nginx on every `up`)."""
    return ca.kept_pair(EDGE_NAME, hosts)


@dataclass(frozen=True)
class ShopTrust:
    """How this machine's clients verify the shop: which CA, and which name to expect.

    ``ca_file`` None: the system's CAs (an operator's publicly trusted
    certificate). The tool reaches nginx on 127.0.0.1 with the shop's Host
    header, so the certificate is checked for ``server_name`` (the URL's host),
    not for the address connected to.
    """

    ca_file: str | None
    server_name: str

    @classmethod
    def of(cls, spec: ClusterSpec, spec_dir: Path) -> ShopTrust:
        if not spec.tls_enabled:
            return cls(None, spec.shop_host)  # plain HTTP: nothing to verify
        if spec.tls.ca_file:
            ca_file: Path | None = _spec_path(spec_dir, spec.tls.ca_file)
        elif spec.tls.certificate:
            ca_file = None
        else:
            ca_file = spec.state_path(spec_dir) / TLS_DIR / tls.CA_FILE
        return cls(str(ca_file) if ca_file else None, spec.shop_host)

    def verify(self) -> ssl.SSLContext:
        """httpx's ``verify=``: one context per trust, shared by every client."""
        if self.ca_file and not Path(self.ca_file).is_file():
            raise UserError(
                f"The CA file {self.ca_file} does not exist: the shop has no certificate "
                "yet; run `up` first."
            )
        return _context(self)


@functools.cache
def _context(trust: ShopTrust) -> ssl.SSLContext:
    context = _ServerNameContext(ssl.PROTOCOL_TLS_CLIENT)
    context.expected_name = trust.server_name
    if trust.ca_file:
        context.load_verify_locations(cafile=trust.ca_file)
    else:
        context.load_default_certs()
    return context


class _ServerNameContext(ssl.SSLContext):
    """Sends and checks the shop's name (SNI, hostname check) whatever address is dialled."""

    expected_name: str = ""

    def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):
        return super().wrap_socket(sock, *args, server_hostname=self.expected_name, **kwargs)

    def wrap_bio(self, incoming, outgoing, *args, server_hostname=None, **kwargs):
        return super().wrap_bio(
            incoming, outgoing, *args, server_hostname=self.expected_name, **kwargs
        )
