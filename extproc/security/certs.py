"""`llm-router certs`: a local CA and the certificates a development setup needs, written as PEM files.

- `ca.crt` (+ `ca.key`): trusted by everyone; `server.crt`/`.key`: the router's listener (edge TLS);
- `client.crt`/`.key`: a client of the router (when the listener requires client certificates);
- `cluster-server.crt`/`.key`: the cluster-side Envoy; `cluster-client.crt`/`.key`: what the router's Envoy
  presents to clusters (mTLS). Server certificates name localhost and 127.0.0.1, plus any extra names given.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
DEFAULT_NAMES = ("localhost", "127.0.0.1")
# name -> (is a server certificate, common name)
LEAVES = {
    "server": (True, "llm-router"),
    "client": (False, "llm-router-client"),
    "cluster-server": (True, "llm-cluster-gateway"),
    "cluster-client": (False, "llm-router-to-clusters"),
}
Key = ec.EllipticCurvePrivateKey


def write_dev_certs(out: Path, extra_names: Iterable[str] = (), *, force: bool = False) -> list[Path]:
    """Write the CA and every leaf into `out`; refuses to overwrite existing files unless `force`."""
    names = list(dict.fromkeys([*DEFAULT_NAMES, *extra_names]))
    paths = [out / f"{stem}.{ext}" for stem in ("ca", *LEAVES) for ext in ("crt", "key")]
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(map(str, existing))} already exist (use --force to replace them)")
    out.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key)
    _write(out, "ca", ca_cert, ca_key)
    for stem, (server, common_name) in LEAVES.items():
        key = ec.generate_private_key(ec.SECP256R1())
        _write(out, stem, _leaf(common_name, key, ca_cert, ca_key, names if server else None), key)
    return paths


def _ca_certificate(key: Key) -> x509.Certificate:
    name = _name("llm-router development CA")
    return (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def _leaf(
    common_name: str, key: Key, ca_cert: x509.Certificate, ca_key: Key, server_names: list[str] | None
) -> x509.Certificate:
    """A server certificate (names as SANs) when `server_names` is given, else a client certificate."""
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names is not None else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(_name(common_name), ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server_names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([_san(n) for n in server_names]), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write(out: Path, stem: str, cert: x509.Certificate, key: Key) -> None:
    (out / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = out / f"{stem}.key"
    key_path.unlink(missing_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
