"""The self-signed CA and server certificate: a real TLS handshake verified against the CA
with Python's strict verification, names checked, reuse and renewal."""

from __future__ import annotations

import os
import socket
import ssl
import threading

import pytest
from cryptography import x509

from imagestore.api.tls import check_files, ensure_self_signed

pytestmark = pytest.mark.one_pass  # no native/pure backend code involved


def _handshake(files, server_name: str) -> None:
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(files.cert, files.key)
    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]
    errors: list[BaseException] = []

    def serve() -> None:
        conn, _ = lsock.accept()
        try:
            with sctx.wrap_socket(conn, server_side=True) as s:
                s.sendall(b"ok")
        except (ssl.SSLError, OSError) as e:
            errors.append(e)

    t = threading.Thread(target=serve)
    t.start()
    try:
        cctx = ssl.create_default_context(cafile=files.ca_cert)
        cctx.verify_flags |= ssl.VERIFY_X509_STRICT
        with socket.create_connection(("127.0.0.1", port)) as raw, \
                cctx.wrap_socket(raw, server_hostname=server_name) as s:
            assert s.recv(2) == b"ok"
    finally:
        t.join(5)
        lsock.close()


def test_handshake_verifies_against_the_ca(tmp_path):
    files = ensure_self_signed(str(tmp_path), ["imagestore.test"])
    assert os.stat(files.key).st_mode & 0o777 == 0o600
    assert os.stat(os.path.join(tmp_path, "tls", "ca-key.pem")).st_mode & 0o777 == 0o600
    _handshake(files, "127.0.0.1")
    _handshake(files, "localhost")
    _handshake(files, "imagestore.test")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(files, "other.test")


def test_reused_then_renewed_for_a_new_host(tmp_path):
    a = ensure_self_signed(str(tmp_path))
    ca1, cert1 = open(a.ca_cert, "rb").read(), open(a.cert, "rb").read()
    b = ensure_self_signed(str(tmp_path))
    assert open(b.cert, "rb").read() == cert1  # nothing to renew
    c = ensure_self_signed(str(tmp_path), ["10.9.8.7"])
    assert open(c.ca_cert, "rb").read() == ca1  # the CA stays: clients keep trusting it
    cert = x509.load_pem_x509_certificate(open(c.cert, "rb").read())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.9.8.7" in {str(i) for i in san.get_values_for_type(x509.IPAddress)}


def test_another_store_ca_is_not_trusted(tmp_path):
    a = ensure_self_signed(str(tmp_path / "a"))
    b = ensure_self_signed(str(tmp_path / "b"))
    mixed = type(a)(b.ca_cert, a.cert, a.key)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(mixed, "127.0.0.1")


def test_bad_inputs(tmp_path):
    with pytest.raises(Exception, match="not a host name"):
        ensure_self_signed(str(tmp_path), ["bad host"])
    with pytest.raises(Exception, match="together"):
        check_files(str(tmp_path / "c.pem"), "")
    with pytest.raises(Exception, match="not a readable file"):
        check_files(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))
