"""TLS for ``imagestore serve``: a self-signed certificate authority kept in the store and a
server certificate it signs, for clients that must speak HTTPS (``az``, Terraform, Pulumi).

``ensure_self_signed(store_root, hosts)`` returns the paths of ``ca.pem``, ``server.pem`` and
``server-key.pem`` under ``<store>/tls/``, making what is missing: the CA once (10 years,
``ca-key.pem`` 0600 beside it), a server certificate (1 year) whenever there is none, it
expires within 30 days, or it does not name every host asked for. Both certificates carry the
extensions strict verifiers want (Python's ``VERIFY_X509_STRICT``, Go's crypto/x509): basic
constraints, key usage, subject and authority key ids, and for the server its names as
subjectAltName (DNS and IP) and extendedKeyUsage serverAuth. Keys are EC P-256.

Clients trust the CA by file: ``REQUESTS_CA_BUNDLE=<store>/tls/ca.pem`` (az, the Python SDK),
``SSL_CERT_FILE`` (Go: Terraform, Pulumi), ``curl --cacert``. Each file is written to a temp
file, fsynced and renamed into place.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import InvalidArgument, from_oserror
from ..fsutil import atomic_write

TLS_DIR = "tls"
CA_DAYS = 3650
SERVER_DAYS = 365
RENEW_BEFORE = timedelta(days=30)
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    """Where the certificates are."""

    ca_cert: str
    cert: str
    key: str


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "imagestore"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _san(hosts: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for h in hosts:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(h.strip("[]"))))
        except ValueError:
            if not h or any(c in h for c in " /\\:@"):
                raise InvalidArgument(f"--host: '{h}' is not a host name or IP address",
                                      target="host") from None
            out.append(x509.DNSName(h))
    return out


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _new_ca(now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("imagestore local CA")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _new_server(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, hosts: list[str],
                now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(min(now + timedelta(days=SERVER_DAYS), ca.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(_san(hosts)), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def _covers(cert: x509.Certificate, hosts: list[str], now: datetime) -> bool:
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return False
    try:
        have = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return False
    return all(n in have for n in _san(hosts))


def ensure_self_signed(store_root: str, hosts: list[str] | tuple[str, ...] = ()) -> TlsFiles:
    """The store's CA and a server certificate valid for ``hosts`` (plus localhost,
    127.0.0.1 and ::1), made or renewed as needed."""
    names = list(dict.fromkeys([*hosts, *DEFAULT_HOSTS]))
    d = os.path.join(store_root, TLS_DIR)
    files = TlsFiles(os.path.join(d, "ca.pem"), os.path.join(d, "server.pem"),
                     os.path.join(d, "server-key.pem"))
    ca_key_path = os.path.join(d, "ca-key.pem")
    now = datetime.now(UTC)
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
        if os.path.exists(files.ca_cert) and os.path.exists(ca_key_path):
            with open(files.ca_cert, "rb") as f:
                ca = x509.load_pem_x509_certificate(f.read())
            with open(ca_key_path, "rb") as f:
                ca_key = serialization.load_pem_private_key(f.read(), password=None)
        else:
            ca, ca_key = _new_ca(now)
            atomic_write(ca_key_path, _pem_key(ca_key), mode=0o600)
            atomic_write(files.ca_cert, ca.public_bytes(serialization.Encoding.PEM))
            for p in (files.cert, files.key):  # signed by a CA that is gone
                if os.path.exists(p):
                    os.unlink(p)
        current = None
        if os.path.exists(files.cert) and os.path.exists(files.key):
            with open(files.cert, "rb") as f:
                current = x509.load_pem_x509_certificate(f.read())
            if current.issuer != ca.subject or not _covers(current, names, now):
                current = None
        if current is None:
            cert, key = _new_server(ca, ca_key, names, now)
            atomic_write(files.key, _pem_key(key), mode=0o600)
            atomic_write(files.cert, cert.public_bytes(serialization.Encoding.PEM))
    except OSError as e:
        raise from_oserror(e, d) from None
    return files


def hosts_for(bind_host: str) -> list[str]:
    """The names a certificate for a server bound to ``bind_host`` must carry: the host
    itself, or this machine's name for a wildcard bind (0.0.0.0, ::)."""
    if bind_host in ("0.0.0.0", "::", ""):
        return [socket.gethostname()]
    return [bind_host]


def check_files(cert: str, key: str) -> None:
    """``--tls-cert``/``--tls-key`` must both be given and readable."""
    if not cert or not key:
        flag = "tls-key" if cert else "tls-cert"
        raise InvalidArgument(f"--{flag}: give --tls-cert and --tls-key together", target=flag)
    for flag, path in (("tls-cert", cert), ("tls-key", key)):
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise InvalidArgument(f"--{flag}: {path} is not a readable file", target=flag)
