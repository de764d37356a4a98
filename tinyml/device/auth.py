"""Device authentication (docs/protocol.md, "Device authentication"): the MAC of AUTH_HELLO and
AUTH_RESULT frames, HMAC-SHA256 with the device's 32-byte key truncated to 8 bytes.

The MAC covers the message type and the whole payload before the MAC: for AUTH_HELLO the device
id, the boot id and the host's challenge nonce (so a recorded AUTH_HELLO is worthless on any
other session), for AUTH_RESULT the boot id, seq and the result itself (so a result cannot be
moved to another boot or changed). The C side is firmware_templates/common/tinyml_auth.c.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets

from tinyml.device import protocol as p

KEY_BYTES = 32

Signed = p.AuthHello | p.AuthResult


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def new_nonce() -> bytes:
    return secrets.token_bytes(p.NONCE_BYTES)


def mac(key: bytes, msg: Signed) -> bytes:
    """The 8-byte MAC ``msg`` must carry: HMAC-SHA256(key, type | payload without the MAC)[:8]."""
    body = bytes([msg.TYPE]) + msg.unsigned_payload()
    return hmac.new(key, body, hashlib.sha256).digest()[:p.MAC_BYTES]


def sign(key: bytes, msg: Signed) -> Signed:
    """``msg`` with its MAC filled in (whatever it carried before); InputError when a field does not fit."""
    unsigned = dataclasses.replace(msg, mac=bytes(p.MAC_BYTES))
    unsigned.payload()  # the field checks, before anything is signed
    return dataclasses.replace(msg, mac=mac(key, unsigned))


def verify(key: bytes, msg: Signed) -> bool:
    """True when ``msg`` carries the MAC of ``key`` (constant-time comparison)."""
    return hmac.compare_digest(mac(key, msg), msg.mac)


def authenticated_hello(key: bytes, hello: p.Hello, nonce: bytes) -> p.AuthHello:
    """The device's answer to AUTH_CHALLENGE ``nonce``: its HELLO, the nonce and the MAC."""
    fields = {f.name: getattr(hello, f.name) for f in dataclasses.fields(p.Hello)}
    return sign(key, p.AuthHello(**fields, nonce=nonce, mac=bytes(p.MAC_BYTES)))


def authenticated_result(key: bytes, result: p.Result) -> p.AuthResult:
    """A run-mode RESULT as AUTH_RESULT (output cut to what the frame holds, as RESULT cuts to its head)."""
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(p.Result)}
    fields["output"] = tuple(fields["output"][:p.MAX_AUTH_OUTPUT])
    return sign(key, p.AuthResult(**fields, mac=bytes(p.MAC_BYTES)))
