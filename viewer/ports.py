"""Choosing the port a viewer listens on."""

from __future__ import annotations

import socket

from ..errors import FieldsError


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str, port: int, attempts: int = 100) -> int:
    """`port` if nothing listens on it, else the next free one; an error when `attempts` ports are taken."""
    if not 0 < port < 65536:
        raise FieldsError(f"--port {port}: must be between 1 and 65535")
    for candidate in range(port, min(port + attempts, 65536)):
        if port_is_free(host, candidate):
            return candidate
    raise FieldsError(f"--port {port}: this port and the {attempts - 1} after it are in use on {host}")
