"""Flash a built firmware onto a board, by the method its board file names.

``flash`` finds the image(s) in a firmware folder (or takes a file), refuses artifacts
whose signature is missing, foreign or tampered (unless allowed), then hands over to the
back end: esptool (``esp``), UF2 drive copy (``uf2``), OpenOCD/pyOCD (``ocd``) or, for
emulated boards, an ELF check and the emulator command (``qemu``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tinyml import signing
from tinyml.errors import CheckFailed, InputError, TinymlError
from tinyml.firmware.boards import Board, list_boards, load_board
from tinyml.flash.methods import METHODS

ProgressFn = Callable[[str, int, int], None]


@dataclass(kw_only=True)
class FlashOptions:
    port: str | None = None          # serial port, "auto" or None (= auto) for esptool
    baud: int | None = None          # esptool transfer baud; default: the board's [flash] baud
    before: str | None = None        # esptool reset before; default from flasher_args.json or default-reset
    after: str | None = None         # esptool reset after
    compress: bool = True
    stub: bool = True
    address: int | None = None       # offset for a single .bin (esptool: 0x0, others: board flash_origin)
    drive: Path | None = None        # UF2 drive mount point; default: typical mount roots
    drive_wait: float = 30.0         # seconds to wait for the UF2 drive to appear / disappear
    probe: str | None = None         # pyOCD probe unique id
    tcp_port: int = 5555             # emulated boards: serial on 127.0.0.1:PORT
    connect_attempts: int = 7
    pubkeys: list[Path] = field(default_factory=list)
    allow_unsigned: bool = False


@dataclass
class FlashReport:
    """What happened, for the CLI to print."""

    method: str
    images: list[Path]
    lines: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)


def find_image(target: Path, suffixes: tuple[str, ...]) -> Path:
    """The one firmware image in ``target`` (a file, or a folder's build/ or itself)."""
    if target.is_file():
        if target.suffix not in suffixes:
            raise InputError(f"{target.name} is not a {'/'.join(suffixes)} image",
                             hint="give the firmware folder or a matching image file")
        return target
    if not target.is_dir():
        raise InputError(f"{target} does not exist", hint="give the firmware folder or an image file")
    for folder in (target / "build", target):
        for suffix in suffixes:
            found = sorted(folder.glob(f"*{suffix}"))
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InputError(f"several {suffix} files in {folder}: " + ", ".join(p.name for p in found),
                                 hint="pass the image file itself")
    raise InputError(f"no firmware image ({', '.join(suffixes)}) in {target}/build or {target}",
                     hint=f"build it first: tinyml build {target}")


def find_flasher_args(target: Path) -> Path | None:
    for candidate in (target / "build" / "flasher_args.json", target / "flasher_args.json"):
        if candidate.is_file():
            return candidate
    return None


def signature_gate(target: Path, images: list[Path], board: Board, options: FlashOptions,
                   warn: Callable[[str], None]) -> None:
    """Refuse unsigned, foreign-signed or tampered artifacts unless --allow-unsigned. ``images`` are
    every file that decides what is written where (images and flasher_args.json): each must be signed.
    A folder with signable files added after signing is refused: only named files skip them."""
    try:
        folder = signing.find_signed_folder(target)
        if folder is None:
            raise CheckFailed(f"{target} is not signed (no {signing.MANIFEST} beside it)",
                              hint="sign it with `tinyml sign DIR --key KEY`, or pass --allow-unsigned")
        keys = options.pubkeys or signing.user_trusted_keys()
        verified = signing.verify_folder(folder, keys)
        if target.is_dir() and verified.added:
            raise CheckFailed(f"{folder} holds file(s) added after signing: {', '.join(verified.added)}",
                              hint="remove them or re-sign, or name the signed image to flash")
        for image in images:
            if not verified.covers(image):
                raise CheckFailed(f"{image.name} is not covered by the signature of {folder}",
                                  hint="re-sign the folder after building")
        signed_board = verified.manifest.get("board")
        if signed_board and signed_board != board.name:
            raise CheckFailed(f"the artifact is signed for board {signed_board}, not {board.name}",
                              hint=f"flash it with --board {signed_board}")
    except TinymlError as exc:
        if not options.allow_unsigned:
            if "--allow-unsigned" not in (exc.hint or ""):
                exc.hint = f"{exc.hint}; or pass --allow-unsigned to flash it anyway" if exc.hint \
                    else "pass --allow-unsigned to flash it anyway"
            raise
        warn(f"warning: {exc.message}; flashing anyway (--allow-unsigned)")


def check_built_for(target: Path, board: Board) -> None:
    """Refuse a firmware project rendered for another board (its ``tinyml.json`` says which)."""
    start = target if target.is_dir() else target.parent
    for project in (start, start.parent):
        built_for = signing.project_board(project)
        if built_for and built_for != board.name:
            raise InputError(f"{project} was built for board {built_for}, not {board.name}",
                             hint=f"flash it with --board {built_for}, or render and build it for {board.name}")


def board_usb_ids() -> dict[str, tuple[str, ...]]:
    """Every known board's serial and flash-mode USB ids, for port guessing."""
    ids = {}
    for name in list_boards():
        board = load_board(name)
        extra = board.flash.get("usb_vid_pid", [])
        ids[name] = tuple(board.usb_vid_pid) + tuple(extra if isinstance(extra, list) else [])
    return ids


def resolve_port(port: str | None, board: Board) -> str:
    """An explicit port (checked for permission and other users), or the only one that fits."""
    from tinyml.flash import ports

    if port in (None, "auto"):
        port = ports.pick_port(ports.guess_ports(ports.list_serial_ports(), board_usb_ids()), board.name)
    ports.check_port_usable(port)
    return port


def flash(target: Path, board: Board, options: FlashOptions, progress: ProgressFn | None = None,
          echo: Callable[[str], None] = print) -> FlashReport:
    """Flash ``target`` (firmware folder or image) onto ``board``; raises TinymlError on failure."""
    method = board.flash_method
    check_built_for(target, board)
    if method == "esptool":
        return _flash_esp(target, board, options, progress, echo)
    image = find_image(target, METHODS[method].images)
    signature_gate(target, [image], board, options, echo)
    address = options.address if options.address is not None else board.flash_origin
    if method == "uf2":
        return _flash_uf2(image, board, options, address, progress, echo)
    if method == "qemu":
        from tinyml.flash.qemu import emulator_command

        return FlashReport(method, [image], command=emulator_command(image, board, options.tcp_port))
    from tinyml.flash import ocd

    if method == "openocd":
        command = ocd.flash_openocd(image, board.flash, address, echo=echo)
    else:
        command = ocd.flash_pyocd(image, board.flash, address, options.probe, echo=echo)
    return FlashReport(method, [image], command=command)


def _flash_esp(target: Path, board: Board, options: FlashOptions, progress: ProgressFn | None,
               echo: Callable[[str], None]) -> FlashReport:
    from tinyml.flash import esp

    args = target if target.name == "flasher_args.json" else find_flasher_args(target) if target.is_dir() else None
    if args is not None:
        image = esp.read_flasher_args(args)
    elif target.is_file() and target.suffix == ".bin":
        image = esp.single_image(target, options.address or 0)
    else:
        raise InputError(f"no ESP-IDF build (build/flasher_args.json) or .bin image at {target}",
                         hint=f"build it first (tinyml build {target}), or give a merged .bin")
    chip = str(board.flash.get("chip", board.idf_target or "esp32"))
    if image.chip and image.chip != chip:
        raise InputError(f"the build is for {image.chip} but board {board.name} is {chip}",
                         hint="pick the matching --board or rebuild")
    if image.end() > board.flash_bytes:
        raise InputError(f"the image ends at {image.end():#x}, beyond {board.name}'s "
                         f"{board.flash_bytes // 1024} KiB flash", hint="shrink the app or use a bigger board")
    paths = [r.path for r in image.regions]
    signature_gate(target, paths + ([args] if args is not None else []), board, options, echo)
    opts = esp.EspOptions(
        port=resolve_port(options.port, board), chip=chip,
        baud=options.baud or _board_baud(board),
        before=options.before or image.before or "default-reset",
        after=options.after or image.after or "hard-reset",
        compress=options.compress, stub=options.stub and image.stub is not False,
        connect_attempts=options.connect_attempts)
    lines = esp.flash_esp(image, opts, progress)
    return FlashReport("esptool", paths, lines=lines)


def _board_baud(board: Board) -> int:
    baud = board.flash.get("baud", 115200)
    if not isinstance(baud, int) or isinstance(baud, bool) or baud < 300:
        raise InputError(f"board {board.name}: flash.baud must be a baud rate, got {baud!r}",
                         hint="write e.g. baud = 460800, or pass --baud")
    return baud


def _flash_uf2(image: Path, board: Board, options: FlashOptions, address: int | None,
               progress: ProgressFn | None, echo: Callable[[str], None]) -> FlashReport:
    from tinyml.flash import uf2

    family = board.flash.get("uf2_family")
    if family is not None and (not isinstance(family, int) or isinstance(family, bool)):
        raise InputError(f"board {board.name}: flash.uf2_family must be a number, got {family!r}",
                         hint="write it like uf2_family = 0xe48bff56")
    if image.suffix == ".uf2":
        data = image.read_bytes()
        blocks = uf2.parse_uf2(data)
        if family is not None and any(b.flags & uf2.FLAG_FAMILY_ID and b.family_id != family for b in blocks):
            raise InputError(f"{image.name} is for UF2 family {blocks[0].family_id:#x}, "
                             f"not {board.name}'s {family:#x}", hint="rebuild for this board")
    elif image.suffix == ".elf":
        data = uf2.elf_to_uf2(image.read_bytes(), family)
    else:
        if address is None:
            raise InputError(f"board {board.name} has no memory.flash_origin to place {image.name} at",
                             hint="add flash_origin to the board file or pass --address")
        data = uf2.bin_to_uf2(image.read_bytes(), address, family)
    search = [options.drive] if options.drive else uf2.candidate_mount_roots()
    drive = uf2.wait_for_drive(search, options.drive_wait)
    echo(f"UF2 drive {drive} (board id {uf2.board_id(drive) or 'unknown'})")
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(f"{image.stem}.uf2 -> {drive}", done, len(data))

    uf2.copy_to_drive(data, drive, f"{image.stem}.uf2", advance, options.drive_wait)
    return FlashReport("uf2", [image], lines=[f"copied {len(data) // uf2.BLOCK_SIZE} UF2 blocks to {drive}"])
