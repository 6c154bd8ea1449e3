"""A private CA for the TLS tests (trustme): importable by the client tests' bare name."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import trustme


@dataclass(frozen=True)
class PrivateCA:
    """A CA of our own: a server context it signed, a client context trusting it."""

    server: ssl.SSLContext
    client: ssl.SSLContext
    authority: trustme.CA


def private_ca(*hostnames: str) -> PrivateCA:
    """A fresh CA and a server certificate for ``hostnames`` (default ``127.0.0.1``)."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(hostnames or ("127.0.0.1",))).configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return PrivateCA(server, client, ca)
