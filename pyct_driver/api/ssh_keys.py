"""Key material for os-keypairs: generate, validate, fingerprint.

Done the way Nova does it, so fingerprints match what users compare
against: an SSH key's fingerprint is the MD5 of its decoded key blob in
colon hex (``ssh-keygen -l -E md5``), an x509 certificate's the SHA-1 of
its DER form. Generated SSH keys are RSA 2048 in traditional PEM, as Nova
returns them, because that is the format every client and tool (paramiko,
Tempest, old OpenSSH) reads.

An imported SSH key must be one ``authorized_key`` line (one key, known
type, no options, no newline) that cryptography parses; an x509 key pair
must be one PEM certificate and nothing else. Either way a refusal is Nova's
400 "Keypair data is invalid: ...", never a 500.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib

from cryptography import exceptions as crypto_exc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from pyct_driver import authorized_key, exception

SSH = "ssh"
X509 = "x509"


def _colon_hex(digest: bytes) -> str:
    raw = binascii.hexlify(digest).decode("ascii")
    return ":".join(a + b for a, b in zip(raw[::2], raw[1::2]))


_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
_PEM_END = "-----END CERTIFICATE-----"


def _x509_invalid(reason: str) -> exception.InvalidKeypair:
    return exception.InvalidKeypair(
        reason=f"failed to generate X509 fingerprint. Error message: "
               f"{reason}")


def _x509_fingerprint(pem: str) -> str:
    text = pem.strip()
    # cryptography ignores text around the PEM block; a guest gets none
    # (exactly one BEGIN and one END line, each with two "-----")
    if not (text.startswith(_PEM_BEGIN) and text.endswith(_PEM_END)
            and text.count("-----") == 4):
        raise _x509_invalid("the data must be one PEM certificate and "
                            "nothing else")
    try:
        cert = x509.load_pem_x509_certificate(text.encode())
    except (ValueError, TypeError) as err:
        raise _x509_invalid(str(err)) from err
    return _colon_hex(cert.fingerprint(hashes.SHA1()))


def fingerprint(public_key: str, key_type: str = SSH) -> str:
    """Nova's fingerprint of ``public_key``; InvalidKeypair if unusable."""
    if key_type == X509:
        return _x509_fingerprint(public_key)
    key = authorized_key.parse(public_key)
    try:
        # checks too that the blob's own type is the line's
        serialization.load_ssh_public_key(key.without_comment().encode())
        blob = base64.b64decode(key.blob, validate=True)
    except (ValueError, TypeError, binascii.Error,
            crypto_exc.UnsupportedAlgorithm) as err:
        raise exception.InvalidKeypair(
            reason=authorized_key.UNPARSEABLE) from err
    return _colon_hex(hashlib.md5(blob, usedforsecurity=False).digest())


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def generate(key_type: str, user_id: str) -> tuple[str, str, str]:
    """A new key: (private key PEM, public key or certificate, fingerprint)."""
    key = _rsa()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()).decode()
    if key_type == X509:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name)
                .issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=3650))
                .sign(key, hashes.SHA256()))
        public = cert.public_bytes(serialization.Encoding.PEM).decode()
    else:
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH,
            serialization.PublicFormat.OpenSSH).decode() + \
            " Generated-by-pyct"
    return private, public, fingerprint(public, key_type)
