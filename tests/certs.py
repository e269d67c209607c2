"""Self-signed TLS material for tests, made with the ``openssl`` command: a CA, and a
certificate it signed for 127.0.0.1 (server or client)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest


class Certs(NamedTuple):
    ca: Path  # the CA's certificate: what a client trusts
    cert: Path  # signed by the CA, for IP 127.0.0.1 and localhost
    key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def make_certs(directory: Path, name: str = "test") -> Certs:
    """A fresh CA named ``name`` and a certificate it signed, written under ``directory``."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / f"{name}-ca.pem", directory / f"{name}-ca.key"
    cert, key, csr = (
        directory / f"{name}.pem",
        directory / f"{name}.key",
        directory / f"{name}.csr",
    )
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name} CA",
        "-keyout",
        ca_key,
        "-out",
        ca,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        key,
        "-out",
        csr,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        ext,
        "-out",
        cert,
    )
    return Certs(ca, cert, key)
