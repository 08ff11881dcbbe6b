"""Certificates: the tool's local CA, the server certificates it issues, the operator's own.

When the operator gives no certificate, the cluster still serves TLS: the tool
keeps a small CA in the state folder (`tls/ca.pem`, key 0600 beside it) and
issues server certificates from it; the operator trusts `ca.pem` once. The same
CA serves every TLS endpoint the tool runs (the shop's edge, a managed
registry), so one file is all a client needs.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import UserError

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity browsers accept for a server certificate
CA_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"


@dataclass(frozen=True)
class KeyPair:
    """A certificate (PEM, leaf first, chain after) and its private key (PEM)."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def expires(self) -> datetime.datetime:
        return self.certificate.not_valid_after_utc


@dataclass(frozen=True)
class LocalCA:
    """The tool's CA: made once in `directory`, reused ever after."""

    directory: Path
    pair: KeyPair

    @property
    def cert_path(self) -> Path:
        return self.directory / CA_FILE

    @classmethod
    def ensure(cls, directory: Path, name: str = "pretix-cluster") -> LocalCA:
        cert_path, key_path = directory / CA_FILE, directory / CA_KEY_FILE
        if cert_path.exists() and key_path.exists():
            return cls(directory, KeyPair(cert_path.read_bytes(), key_path.read_bytes()))
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        pair = _self_signed_ca(f"{name} local CA")
        _write_private(key_path, pair.key_pem)
        cert_path.write_bytes(pair.cert_pem)
        return cls(directory, pair)

    def issue(self, hosts: list[str], days: int = SERVER_DAYS) -> KeyPair:
        """A server certificate for `hosts` (DNS names or IP addresses), signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = self.pair.certificate
        ca_key = serialization.load_pem_private_key(self.pair.key_pem, password=None)
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(_alt_names(hosts)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        return KeyPair(
            cert.public_bytes(serialization.Encoding.PEM) + self.pair.cert_pem, _key_pem(key)
        )


def load_operator_pair(cert_file: Path, key_file: Path) -> KeyPair:
    """The operator's certificate and key, checked: readable, matching, not expired."""
    for what, path in (("certificate", cert_file), ("key", key_file)):
        if not path.is_file():
            raise UserError(f"The TLS {what} file {path} does not exist; fix the path in [tls].")
    pair = KeyPair(cert_file.read_bytes(), key_file.read_bytes())
    try:
        cert = pair.certificate
    except ValueError as exc:
        raise UserError(f"{cert_file} is not a PEM certificate; give one in [tls].") from exc
    try:
        key = serialization.load_pem_private_key(pair.key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise UserError(
            f"{key_file} is not an unencrypted PEM private key; give one in [tls]."
        ) from exc
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise UserError(f"The TLS key {key_file} does not belong to the certificate {cert_file}.")
    if cert.not_valid_after_utc <= _now():
        raise UserError(
            f"The TLS certificate {cert_file} expired on {cert.not_valid_after_utc:%Y-%m-%d}; "
            "give a valid one in [tls]."
        )
    return pair


def check_ca_file(path: Path) -> bytes:
    """A CA bundle the operator names for clients to trust: it must exist and parse."""
    if not path.is_file():
        raise UserError(f"The CA file {path} does not exist; fix [tls] ca_file.")
    data = path.read_bytes()
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise UserError(f"{path} holds no PEM certificate; fix [tls] ca_file.") from exc
    return data


def _self_signed_ca(common_name: str) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _alt_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
