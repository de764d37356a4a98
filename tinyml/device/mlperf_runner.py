"""Run the MLPerf Tiny runner (mlcommons/tiny, benchmark/runner) against a firmware on an emulated board.

The runner finds its device under test only by USB VID/PID in ``serial.tools.list_ports``, so an
emulator's serial line is invisible to it. This wrapper boots a firmware built with
``make EEMBC=...`` in the board's emulator, bridges the emulated UART to a pseudo-terminal, lists
that pty with the VID/PID of the runner's reference DUT (so its own devices_*.yaml files work
unchanged) and runs the runner's ``main.py``, unmodified, in this process. Performance and
accuracy modes work; energy mode needs a power board and is out of scope (docs/protocol.md).

    python -m tinyml.device.mlperf_runner --elf fw/build/firmware.elf --runner ~/tiny/benchmark/runner \\
        -- --mode a --device_list devices_ad.yaml --test_script tests_accuracy.yaml --dataset_path ~/datasets
"""

from __future__ import annotations

import argparse
import os
import runpy
import select
import sys
import threading
import types
from collections.abc import Sequence
from pathlib import Path

from tinyml.device.endpoints import open_pty
from tinyml.device.link import SocketTransport, parse_tcp
from tinyml.device.qemu import CONNECT_TIMEOUT_S, EmulatedBoard
from tinyml.errors import DeviceError, InputError
from tinyml.firmware.boards import load_board

REFERENCE_DUT = (0x0483, 0x374B)  # the runner's devices_*.yaml: the NUCLEO-L4R5ZI's ST-LINK
BOOT_READY = b"m-ready\r\n"


def wait_for_boot(transport: SocketTransport, *, timeout: float = 30.0) -> bytes:
    """Read the firmware's boot banner up to its first "m-ready": a real board has long booted
    when the runner opens its port, so the runner must not read the banner as an answer."""
    seen = b""
    while BOOT_READY not in seen:
        chunk = transport.read(timeout)
        if not chunk:
            raise DeviceError(f"no m-ready from the firmware within {timeout:.0f} s (got {seen[-80:]!r})",
                              hint="build it with `make EEMBC=1` (MLPerf Tiny mode)")
        seen += chunk
    return seen


def bridge(transport: SocketTransport, stop: threading.Event) -> str:
    """A raw pty whose other end is the emulated UART; returns the path the runner opens."""
    master, _slave, path = open_pty()  # raw: no echo, no line discipline; the slave fd stays open,
    # so the runner may open and close the path

    def device_to_pty() -> None:
        while not stop.is_set():
            try:
                data = transport.read(0.2)
            except DeviceError:
                return
            if data:
                os.write(master, data)

    def pty_to_device() -> None:
        while not stop.is_set():
            if select.select([master], [], [], 0.2)[0]:
                try:
                    transport.write(os.read(master, 4096))
                except (OSError, DeviceError):
                    return

    for target in (device_to_pty, pty_to_device):
        threading.Thread(target=target, daemon=True).start()
    return path


def list_as_usb(path: str, vid: int, pid: int) -> None:
    """Make ``serial.tools.list_ports.comports()`` list only ``path``, as a USB port with vid/pid;
    and ``usb.core.find`` find no USB-only power monitor (there is none in emulation)."""
    from serial.tools import list_ports, list_ports_common

    port = list_ports_common.ListPortInfo(path, skip_link_detection=True)
    port.vid, port.pid = vid, pid
    port.description = port.product = "tinyml emulated DUT"
    list_ports.comports = lambda include_links=False: [port]  # type: ignore[assignment]
    try:
        import usb.core  # the runner imports pyusb for the JS220 power monitor
    except ImportError:
        usb = types.ModuleType("usb")
        usb.core = types.ModuleType("usb.core")  # type: ignore[attr-defined]
        sys.modules.update({"usb": usb, "usb.core": usb.core})  # type: ignore[attr-defined]
    sys.modules["usb.core"].find = lambda *args, **kwargs: iter(())  # type: ignore[attr-defined]


def runner_main(runner_dir: Path) -> Path:
    """The runner's main.py in ``runner_dir``, or an InputError."""
    main = runner_dir / "main.py"
    if not main.is_file():
        raise InputError(f"no main.py in {runner_dir}", "pass the benchmark/runner directory of mlcommons/tiny")
    return main


def run_runner(runner_dir: Path, args: Sequence[str]) -> int:
    """Run the runner's main.py with ``args`` from its own directory; its exit code."""
    main = runner_main(runner_dir)
    os.chdir(runner_dir)
    sys.path.insert(0, str(runner_dir))
    sys.argv = [str(main), *args]
    try:
        runpy.run_path(str(main), run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--elf", required=True, type=Path, help="firmware built with make EEMBC=...")
    parser.add_argument("--board", default="qemu-mps2-an386", help="emulated board (default %(default)s)")
    parser.add_argument("--runner", required=True, type=Path, help="mlcommons/tiny's benchmark/runner directory")
    parser.add_argument("--vid", type=lambda s: int(s, 0), default=REFERENCE_DUT[0])
    parser.add_argument("--pid", type=lambda s: int(s, 0), default=REFERENCE_DUT[1])
    parser.add_argument("runner_args", nargs="*", help="after --: the runner's own options")
    opts = parser.parse_args(argv)
    runner_dir = opts.runner.expanduser().resolve()
    runner_main(runner_dir)  # before booting anything
    stop = threading.Event()
    with EmulatedBoard(load_board(opts.board), opts.elf) as emu:
        host, port = parse_tcp(emu.url) or ("", 0)
        transport = SocketTransport(host, port, CONNECT_TIMEOUT_S)
        wait_for_boot(transport)
        path = bridge(transport, stop)
        list_as_usb(path, opts.vid, opts.pid)
        print(f"tinyml: {opts.board} running {opts.elf} on {path} (USB {opts.vid:04x}:{opts.pid:04x})",
              file=sys.stderr)
        try:
            return run_runner(runner_dir, opts.runner_args)
        finally:
            stop.set()
            transport.close()


if __name__ == "__main__":
    from tinyml.errors import TinymlError

    try:
        sys.exit(main())
    except TinymlError as err:
        print(f"error: {err.one_line()}", file=sys.stderr)
        sys.exit(err.exit_code)
