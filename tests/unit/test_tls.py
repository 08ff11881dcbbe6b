"""Certificates: the local CA, what it issues, the operator's pair, and whom clients trust."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from pretix_cluster import shop_tls, tls
from pretix_cluster.errors import UserError
from pretix_cluster.spec import parse_spec


@pytest.fixture
def ca(tmp_path) -> tls.LocalCA:
    return tls.LocalCA.ensure(tmp_path / "tls")


def write_pair(directory: Path, pair: tls.KeyPair) -> tuple[Path, Path]:
    cert, key = directory / "shop.pem", directory / "shop.key"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    return cert, key


def expired_pair() -> tls.KeyPair:
    """A self-signed certificate whose not_valid_after has passed."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tickets.example.org")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return tls.KeyPair(cert.public_bytes(serialization.Encoding.PEM), key_pem)


# --- the local CA and what it issues --------------------------------------------------------


def test_an_issued_certificate_verifies_against_the_ca_for_its_hosts(ca):
    pair = ca.issue(["tickets.example.org", "127.0.0.1"])
    leaf, *chain = x509.load_pem_x509_certificates(pair.cert_pem)
    verifier = PolicyBuilder().store(Store([ca.pair.certificate])).build_server_verifier
    for host in (
        x509.DNSName("tickets.example.org"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ):
        verifier(host).verify(leaf, chain)
    with pytest.raises(x509.verification.VerificationError):
        verifier(x509.DNSName("other.example.org")).verify(leaf, chain)


def test_the_ca_is_made_once_and_its_key_kept_private(tmp_path):
    first = tls.LocalCA.ensure(tmp_path / "tls")
    assert tls.LocalCA.ensure(tmp_path / "tls").pair == first.pair
    assert (tmp_path / "tls" / tls.CA_KEY_FILE).stat().st_mode & 0o777 == 0o600


def test_an_operator_pair_that_matches_and_is_valid_is_accepted(ca, tmp_path):
    pair = ca.issue(["tickets.example.org"])
    assert tls.load_operator_pair(*write_pair(tmp_path, pair)) == pair


def test_a_certificate_that_does_not_match_its_key_is_one_sentence(ca, tmp_path):
    cert, _ = write_pair(tmp_path, ca.issue(["tickets.example.org"]))
    other_key = tmp_path / "other.key"
    other_key.write_bytes(ca.issue(["tickets.example.org"]).key_pem)
    with pytest.raises(UserError, match="does not belong to the certificate"):
        tls.load_operator_pair(cert, other_key)


def test_an_expired_certificate_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match="expired on"):
        tls.load_operator_pair(*write_pair(tmp_path, expired_pair()))


def test_missing_files_are_one_sentence(ca, tmp_path):
    cert, key = write_pair(tmp_path, ca.issue(["tickets.example.org"]))
    with pytest.raises(UserError, match=r"certificate file .* does not exist"):
        tls.load_operator_pair(tmp_path / "nope.pem", key)
    with pytest.raises(UserError, match=r"key file .* does not exist"):
        tls.load_operator_pair(cert, tmp_path / "nope.key")
    with pytest.raises(UserError, match=r"CA file .* does not exist"):
        tls.check_ca_file(tmp_path / "ca-nope.pem")


# --- the edge's certificate -----------------------------------------------------------------


def test_the_local_certificate_covers_the_url_host_and_loopback_and_is_reused(tmp_path):
    spec = parse_spec({"cluster": {"url": "https://tickets.example.org", "state_dir": "s"}})
    pair = shop_tls.edge_pair(spec, tmp_path)
    names = pair.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert {str(n.value) for n in names.value} == {"tickets.example.org", "127.0.0.1", "localhost"}
    assert shop_tls.edge_pair(spec, tmp_path) == pair  # unchanged secret: nginx not restarted
    moved = parse_spec({"cluster": {"url": "https://shop.example.org", "state_dir": "s"}})
    assert shop_tls.edge_pair(moved, tmp_path) != pair  # a new host: a new certificate
    key = tmp_path / "s" / shop_tls.TLS_DIR / shop_tls.EDGE_KEY_FILE
    assert key.stat().st_mode & 0o777 == 0o600


def test_a_local_certificate_near_its_end_is_reissued(ca):
    hosts = ["127.0.0.1", "localhost"]
    ending = ca.issue(hosts, days=10)
    tls.save_pair(
        ending, ca.directory / shop_tls.EDGE_CERT_FILE, ca.directory / shop_tls.EDGE_KEY_FILE
    )
    assert shop_tls.local_pair(ca, hosts) != ending


def test_an_http_url_has_no_certificate(tmp_path):
    assert shop_tls.edge_pair(parse_spec({"cluster": {"url": "http://x.org"}}), tmp_path) is None


def test_the_operators_pair_and_ca_file_are_checked_before_use(ca, tmp_path):
    cert, key = write_pair(tmp_path, ca.issue(["tickets.example.org"]))
    tls_section = {"certificate": cert.name, "key": key.name, "ca_file": "missing-ca.pem"}
    spec = parse_spec({"cluster": {"url": "https://tickets.example.org"}, "tls": tls_section})
    with pytest.raises(UserError, match=r"CA file .*missing-ca\.pem does not exist"):
        shop_tls.edge_pair(spec, tmp_path)
    tls_section["ca_file"] = str(ca.cert_path)
    spec = parse_spec({"cluster": {"url": "https://tickets.example.org"}, "tls": tls_section})
    assert shop_tls.edge_pair(spec, tmp_path).cert_pem == cert.read_bytes()


# --- whom clients trust ---------------------------------------------------------------------


def test_clients_trust_the_local_ca_the_operators_ca_file_or_the_system(tmp_path):
    local = parse_spec({"cluster": {"url": "https://tickets.example.org", "state_dir": "s"}})
    assert shop_tls.ShopTrust.of(local, tmp_path) == shop_tls.ShopTrust(
        str(tmp_path / "s" / "tls" / tls.CA_FILE), "tickets.example.org"
    )
    operator = {"certificate": "a.pem", "key": "a.key"}
    spec = parse_spec({"tls": operator | {"ca_file": "/etc/ca.pem"}})
    assert shop_tls.ShopTrust.of(spec, tmp_path).ca_file == "/etc/ca.pem"
    assert shop_tls.ShopTrust.of(parse_spec({"tls": operator}), tmp_path).ca_file is None


def test_trusting_a_ca_that_was_never_made_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match="run `up` first"):
        shop_tls.ShopTrust(str(tmp_path / "ca.pem"), "127.0.0.1").verify()


def test_the_shops_name_is_verified_though_loopback_is_dialled(ca, tmp_path):
    """A certificate for the shop's host only: a client dialling 127.0.0.1 checks that host."""
    port = _serve_tls_once(ca.issue(["tickets.example.org"]), tmp_path, answers=2)
    url = f"https://127.0.0.1:{port}/"
    shop = shop_tls.ShopTrust(str(ca.cert_path), "tickets.example.org")
    assert httpx.get(url, verify=shop.verify(), timeout=10).status_code == 200
    wrong_name = shop_tls.ShopTrust(str(ca.cert_path), "other.example.org")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(url, verify=wrong_name.verify(), timeout=10)


def _serve_tls_once(pair: tls.KeyPair, directory: Path, answers: int) -> int:
    """A TLS server on loopback answering `answers` connections with HTTP 200."""
    cert, key = write_pair(directory, pair)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            for _ in range(answers):
                conn, _ = listener.accept()
                try:
                    with context.wrap_socket(conn, server_side=True) as tls_conn:
                        tls_conn.recv(4096)
                        tls_conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                except ssl.SSLError:
                    pass  # the client refused the certificate

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]
