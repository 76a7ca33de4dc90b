"""Command line: `python -m pipeline <command>`; every DVC stage is one command."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.console import Console

from pipeline.errors import PipelineError

app = typer.Typer(
    help="Crowdsourced segmentation masks from Label Studio to a versioned dataset, a model, and back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


@app.command()
def serve(
    port: int = typer.Option(8080, help="Port on 127.0.0.1; a busy port is refused, never replaced."),
    data_dir: Path = typer.Option(Path(".labelstudio"), help="Folder for the database, media, log and login."),
    document_root: Path = typer.Option(None, help="Root for local-files storage (default: DATA_DIR/files)."),
    stop: bool = typer.Option(False, "--stop", help="Stop the server started from DATA_DIR."),
    env: bool = typer.Option(False, "--env", help="Start if needed, then print `export` lines for eval."),
) -> None:
    """Start a local Label Studio (SQLite, offline) in the background, or stop it."""
    from pipeline.labelstudio import server

    if stop:
        stopped = server.stop(data_dir)
        console.print("Label Studio stopped." if stopped else f"No Label Studio was running from {data_dir}.")
        return
    if not env:
        console.print(f"Starting Label Studio from {data_dir} (the first start migrates its database, about 20 s)...")
    running = server.start(data_dir=data_dir, port=port, document_root=document_root)
    if env:
        for name, value in running.env().items():
            print(f"export {name}={shlex.quote(value)}")
        return
    console.print(
        f"Label Studio is up at [bold]{running.url}[/bold] (pid {running.pid})\n"
        f"  login     {running.credentials.email} / {running.credentials.password}\n"
        f"  files     {running.document_root} (local-files storage root)\n"
        f"  pipeline  eval \"$(python -m pipeline serve --env --data-dir {data_dir})\"\n"
        f"  stop      python -m pipeline serve --stop --data-dir {data_dir}"
    )


def main() -> None:
    """Run the CLI, turning the project's own errors into one readable line and exit code 1."""
    try:
        app()
    except PipelineError as error:
        console.print(f"[bold red]error:[/bold red] {error}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
