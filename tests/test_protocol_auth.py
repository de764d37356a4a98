"""Device authentication in both codecs: the C SHA-256 and HMAC-SHA256 against hashlib and hmac
on random inputs, the golden MACs of tests/vectors/protocol/auth.json, and the C signer
(firmware_templates/common/tinyml_auth.c) producing the frames the Python signer produces."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cbuild import STRICT, host_compile
from tests.test_protocol_c import CROSS
from tinyml.device import auth
from tinyml.device import protocol as p
from tinyml.errors import InputError
from tinyml.paths import template_dir

VECTORS = Path(__file__).parent / "vectors" / "protocol"
COMMON = template_dir("common")
AUTH = json.loads((VECTORS / "auth.json").read_text())
KEY = bytes.fromhex(AUTH["key"])
MESSAGES = {v["name"]: v for v in json.loads((VECTORS / "messages.json").read_text())}


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("auth") / "auth_harness"
    host_compile([VECTORS / "auth_harness.c", COMMON / "tinyml_auth.c", COMMON / "tinyml_proto.c"], exe,
                 includes=[COMMON], extra=["-O1", "-g"], sanitize=True)
    return exe


def ask(exe: Path, requests: list[str]) -> list[str]:
    proc = subprocess.run([str(exe)], input="".join(r + "\n" for r in requests), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "runtime error" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == len(requests)
    return lines


def test_golden_macs_verify_and_any_change_breaks_them() -> None:
    for name in AUTH["signed"]:
        msg = p.message_from_dict(MESSAGES[name]["message"])
        assert auth.verify(KEY, msg), name
        assert not auth.verify(bytes(32), msg)
        assert not auth.verify(KEY, dataclasses.replace(msg, boot_id=msg.boot_id ^ 1))
        field = "nonce" if isinstance(msg, p.AuthHello) else "seq"
        value = bytes(8) if field == "nonce" else msg.seq + 1
        assert not auth.verify(KEY, dataclasses.replace(msg, **{field: value}))


def test_sign_fills_the_mac_and_frames_refuse_wrong_sizes() -> None:
    result = p.Result(3, 9, 100, 7, p.LATENCY_US, 1, 0.5, tuple(range(-4, 4)))
    signed = auth.authenticated_result(KEY, result)
    assert auth.verify(KEY, signed) and auth.sign(KEY, signed) == signed
    assert auth.authenticated_result(KEY, dataclasses.replace(result, output=(1,) * p.MAX_OUTPUT)).output == \
        (1,) * p.MAX_AUTH_OUTPUT
    with pytest.raises(InputError, match="mac must be 8 bytes"):
        p.encode(dataclasses.replace(signed, mac=b"short"))
    with pytest.raises(InputError, match="nonce must be 8 bytes"):
        p.encode(p.AuthChallenge(b"\x01" * 9))


def test_c_sha256_and_hmac_match_hashlib_on_random_inputs(harness: Path) -> None:
    rnd = random.Random(16)
    sizes = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000] + [rnd.randrange(0, 2000) for _ in range(60)]
    data = [rnd.randbytes(n) for n in sizes]
    keys = [rnd.randbytes(rnd.choice([0, 1, 16, 32, 63, 64, 65, 100, 200])) for _ in data]
    requests = [f"D {d.hex() or '-'}" for d in data] + [f"H {k.hex() or '-'} {d.hex() or '-'}"
                                                        for k, d in zip(keys, data, strict=True)]
    want = [hashlib.sha256(d).hexdigest() for d in data] + [hmac.new(k, d, hashlib.sha256).hexdigest()
                                                           for k, d in zip(keys, data, strict=True)]
    assert ask(harness, requests) == want


def test_c_signs_exactly_as_python(harness: Path) -> None:
    """The golden frames with their MAC zeroed, and random results and hellos, signed by C and by Python."""
    rnd = random.Random(7)
    unsigned = [dataclasses.replace(p.message_from_dict(MESSAGES[n]["message"]), mac=bytes(8)) for n in AUTH["signed"]]
    keys = [KEY] * len(unsigned)
    for _ in range(40):
        key = rnd.randbytes(32)
        n = rnd.randrange(0, p.MAX_AUTH_OUTPUT + 1)
        unsigned.append(p.AuthResult(rnd.getrandbits(32), rnd.getrandbits(32), rnd.getrandbits(32), rnd.getrandbits(32),
                                     rnd.randrange(4), rnd.randrange(256), rnd.uniform(-1e3, 1e3),
                                     tuple(rnd.randrange(-128, 128) for _ in range(n)), bytes(8)))
        unsigned.append(p.AuthHello(1, "b" * rnd.randrange(40), "fw", f"dev-{rnd.randrange(10**6)}", rnd.randbytes(8),
                                    rnd.getrandbits(32), 1, 2, rnd.getrandbits(32), 2, rnd.randbytes(8), bytes(8)))
        keys += [key, key]
    got = ask(harness, [f"S {k.hex()} {p.encode(m).hex()}" for k, m in zip(keys, unsigned, strict=True)])
    want = [p.encode(auth.sign(k, m)).hex() for k, m in zip(keys, unsigned, strict=True)]
    assert got == want
    assert got[:len(AUTH["signed"])] == [MESSAGES[n]["hex"] for n in AUTH["signed"]]
    # messages without a MAC are refused, not signed
    assert ask(harness, [f"S {KEY.hex()} {p.encode(p.Result(1, 2, 3, 4, 2, 0, 0.0, ())).hex()}",
                         f"S {KEY.hex()} {p.encode(p.AuthChallenge(bytes(8))).hex()}"]) == ["REFUSED", "REFUSED"]


@pytest.mark.parametrize("compiler", sorted(CROSS))
@pytest.mark.cross_compiler
def test_c_auth_compiles_warning_free_for_targets(compiler: str, tmp_path: Path) -> None:
    assert shutil.which(compiler), f"{compiler} is part of the toolchain CI installs"
    proc = subprocess.run([compiler, *STRICT, *CROSS[compiler], "-I", str(COMMON), "-c", str(COMMON / "tinyml_auth.c"),
                           "-o", str(tmp_path / "auth.o")], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
