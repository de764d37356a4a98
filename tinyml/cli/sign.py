"""`tinyml keygen`, `tinyml sign`, `tinyml verify`: Ed25519-signed artifact folders."""

from __future__ import annotations

from pathlib import Path

import click

from tinyml import signing
from tinyml.errors import CheckFailed

PUBKEY_HELP = "Trusted public key (repeatable); default: *.pub in $XDG_CONFIG_HOME/tinyml/trusted_keys/."


def trusted_keys(pubkeys: tuple[Path, ...]) -> list[Path]:
    """The keys given on the command line, else the user's (never the current folder's)."""
    return list(pubkeys) if pubkeys else signing.user_trusted_keys()


@click.command()
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Private key file to create (KEY); the public key goes to KEY.pub.")
def keygen(out: Path) -> None:
    """Create an Ed25519 key pair; the private key file is owner-only and never printed."""
    pub, kid = signing.keygen(out)
    click.echo(f"wrote private key {out} (mode 600) and public key {pub} (key id {kid})")


@click.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--key", "key", required=True, type=click.Path(path_type=Path), help="Private key from keygen.")
@click.option("--board", default=None, help="Board the firmware in FOLDER is built for (recorded).")
def sign(folder: Path, key: Path, board: str | None) -> None:
    """Sign FOLDER: hash its model and firmware images into a manifest and sign it."""
    manifest = signing.sign_folder(folder, key, board)
    count = len(signing.collect_files(folder))
    click.echo(f"signed {count} file(s): {manifest} and {folder / signing.SIGNATURE}")


@click.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--pubkey", "pubkeys", multiple=True, type=click.Path(path_type=Path), help=PUBKEY_HELP)
def verify(folder: Path, pubkeys: tuple[Path, ...]) -> None:
    """Verify FOLDER's signature and that no signed file changed."""
    result = signing.verify_folder(folder, trusted_keys(pubkeys))
    if result.added:
        raise CheckFailed(f"{len(result.added)} file(s) in {folder} were added after signing and are not "
                          f"covered: {', '.join(result.added)}",
                          hint="remove them or re-sign; `tinyml flash FILE` flashes only the signed files you name")
    click.echo(f"ok: {len(result.manifest['files'])} files match, signed by {result.key} "
               f"(key id {result.manifest['key_id']})")
