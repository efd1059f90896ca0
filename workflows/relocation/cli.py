"""``statewright keys`` and ``statewright relocation``: export, start, follow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from statewright.cli.common import (
    JsonFlag,
    RunId,
    engine_from_env,
    out,
    print_json,
    print_run,
    wait_with_progress,
    waited_exit_code,
)
from statewright.errors import StatewrightError

keys_app = typer.Typer(
    help="Key pairs for encrypted relocation exports: the target installation generates "
    "one and sends its public key to whoever exports.",
    no_args_is_help=True,
)
relocation_app = typer.Typer(
    help="Move organizations between installations: export from the source, start in the "
    "target, follow the run with `statewright runs wait`.",
    no_args_is_help=True,
)


@keys_app.command("generate")
def keys_generate(
    directory: Annotated[Path, typer.Option("--out", "-o", help="Where to write the pair.")] = Path(
        "keys"
    ),
    bits: Annotated[int, typer.Option(min=2048, max=8192, help="RSA key size.")] = 3072,
) -> None:
    """Generate this installation's key pair (private.pem stays here; send public.pem).

    Example: statewright keys generate --out /etc/statewright/keys
    """
    from statewright.workflows.relocation.crypto import (
        fingerprint,
        generate_keypair,
        load_public_key,
    )

    if (directory / "private.pem").exists():
        raise StatewrightError(f"{directory / 'private.pem'} exists; refusing to overwrite a key")
    private, public = generate_keypair(directory, bits=bits)
    key = load_public_key(public.read_bytes())
    out.print(f"private key: {private}\npublic key:  {public}\nfingerprint: {fingerprint(key)}")


@relocation_app.command("export")
def relocation_export(
    org: Annotated[list[str], typer.Option("--org", help="Organization slug (repeatable).")],
    source: Annotated[str, typer.Option("--from", help="Source database URL.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    encrypt_to: Annotated[
        Path | None, typer.Option("--encrypt-to", help="The target's public.pem.")
    ] = None,
    gzip: Annotated[bool, typer.Option(help="Compress the document.")] = True,
) -> None:
    """Export organizations from a source database to a relocation file.

    The source is checked first; nothing is left behind unless the whole export succeeds.

    Example: statewright relocation export --org acme --from postgresql://old/app -o acme.swr
             --encrypt-to target-public.pem
    """
    from statewright.workflows.relocation.crypto import load_public_key
    from statewright.workflows.relocation.exporter import check_source, export_organizations

    public_key = None
    if encrypt_to is not None:
        try:
            public_key = load_public_key(encrypt_to.read_bytes())
        except (OSError, ValueError) as error:
            raise StatewrightError(f"--encrypt-to {str(encrypt_to)!r}: {error}") from None
    check_source(source)
    partial = output.with_suffix(output.suffix + ".partial")
    try:
        with partial.open("wb") as handle:
            counts = export_organizations(source, org, handle, compress=gzip, public_key=public_key)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(output)
    summary = ", ".join(f"{count} {section}" for section, count in counts.items())
    out.print(f"wrote {output} ({output.stat().st_size:,} bytes): {summary}")


@relocation_app.command("start")
def relocation_start(
    file: Annotated[Path, typer.Argument(help="The export file (from `relocation export`).")],
    owner: Annotated[str, typer.Option(help="Email of the user who will own the orgs.")],
    creator: Annotated[
        str | None, typer.Option(help="Email of the user starting it (default: the owner).")
    ] = None,
    org: Annotated[list[str] | None, typer.Option("--org", help="Only this slug.")] = None,
    pause_at: Annotated[str | None, typer.Option(help="Pause when this state is reached.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the run, state by state.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Start relocating an export file into this installation.

    The file, the owner and this installation's private key
    (STATEWRIGHT_RELOCATION_PRIVATE_KEY, for an encrypted export) are checked before the
    run starts.

    Example: statewright relocation start acme.swr --owner kim@example.com --wait
    """
    from statewright.workflows.relocation.start import start_relocation

    if not file.is_file():
        raise typer.BadParameter(f"{file} is not a file", param_hint="FILE")
    with engine_from_env() as engine:
        info = start_relocation(
            engine, file, owner=owner, creator=creator, orgs=org, pause_at=pause_at
        )
        if wait:
            info = wait_with_progress(engine, info)
        print_run(info, as_json)
        raise typer.Exit(waited_exit_code(info))


@relocation_app.command("retry")
def relocation_retry(
    run_id: RunId,
    creator: Annotated[
        str | None, typer.Option(help="Email of the user retrying it (default: as before).")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Follow the new run, state by state.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Retry a failed relocation as a new run, from the export it stored.

    Example: statewright relocation retry 0193a4f2 --wait
    """
    from statewright.workflows.relocation.retry import retry_relocation

    with engine_from_env() as engine:
        info = retry_relocation(engine, engine.resolve_run_id(run_id), creator=creator)
        if wait:
            info = wait_with_progress(engine, info)
        print_run(info, as_json)
        raise typer.Exit(waited_exit_code(info))


@relocation_app.command("show")
def relocation_show(run_id: RunId, as_json: JsonFlag = False) -> None:
    """Show a relocation: its run, files, validation attempts and emails.

    Example: statewright relocation show 0193a4f2 --json
    """
    from statewright.workflows.relocation.details import relocation_info
    from statewright.workflows.relocation.show import print_relocation

    with engine_from_env() as engine:
        info = relocation_info(engine, engine.resolve_run_id(run_id))
    if as_json:
        print_json(info.to_json())
        return
    print_relocation(out, info)
