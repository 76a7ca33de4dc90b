"""Command line: `python -m pipeline <command>`; every DVC stage is one command, built from pipeline.registry."""

from __future__ import annotations

import importlib
import inspect
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from pipeline.core.atomic import ENVIRONMENT_ERRNOS
from pipeline.core.errors import PipelineError
from pipeline.registry import STAGES, Stage

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
    local_ml_backends: bool = typer.Option(
        False, "--local-ml-backends", help="Let the server call ML backends on 127.0.0.1 (ml-backend --connect)."
    ),
    database: str = typer.Option(
        None, help="postgresql://USER@HOST:PORT/NAME instead of SQLite (password: PGPASSWORD in the environment)."
    ),
) -> None:
    """Start a local Label Studio (SQLite or PostgreSQL, offline) in the background, or stop it."""
    from pipeline.labelstudio import server

    if stop:
        stopped = server.stop(data_dir)
        console.print("Label Studio stopped." if stopped else f"No Label Studio was running from {data_dir}.")
        return
    if not env:
        console.print(f"Starting Label Studio from {data_dir} (the first start migrates its database, about 20 s)...")
    running = server.start(
        data_dir=data_dir,
        port=port,
        document_root=document_root,
        local_ml_backends=local_ml_backends,
        database=database,
    )
    if env:
        for name, value in running.env().items():
            print(f"export {name}={shlex.quote(value)}")
        return
    console.print(
        f"Label Studio is up at [bold]{running.url}[/bold] (pid {running.pid})\n"
        f"  login     {running.credentials.email} / {running.credentials.password}\n"
        f"  database  {server.redact(database) if database else 'SQLite in ' + str(data_dir)}\n"
        f"  files     {running.document_root} (local-files storage root)\n"
        f'  pipeline  eval "$(python -m pipeline serve --env --data-dir {data_dir})"\n'
        f"  stop      python -m pipeline serve --stop --data-dir {data_dir}"
    )


PARAMS = typer.Option(Path("params.yaml"), "--params", help="The params file.")


def stage_command(stage: Stage) -> Callable[..., None]:
    """A typer command for a registered stage: read its params sections, call its run, show the result."""

    def command(**values: Any) -> None:
        from pipeline.core.params import load_sections, with_overrides

        sections = load_sections(stage.sections, values.pop("params"))
        if stage.classes_from:  # classes validate took from the label config, for the stages after it
            from pipeline.labelstudio.config import with_dataset_classes

            sections["base"] = with_dataset_classes(sections["base"], values[stage.classes_from])
        if stage.overrides:
            overrides = values.pop("overrides")
            sections[stage.overrides] = with_overrides(stage.overrides, sections[stage.overrides], overrides)
        run = importlib.import_module(stage.module).run
        positional = [values[o.name] for o in stage.options if o.keyword is None]
        keywords = {o.keyword: values[o.name] for o in stage.options if o.keyword is not None}
        result = run(*positional, *sections.values(), **keywords)
        stage.show(console, stage.command, result, values)

    parameters = [
        inspect.Parameter(
            o.name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=o.type,
            default=typer.Option(
                o.default, *([o.flag] if o.flag else []), help=o.help, envvar=o.envvar, show_envvar=o.envvar is not None
            ),
        )
        for o in stage.options
    ]
    if stage.overrides:
        help_text = f"Override a {stage.overrides} param for this run, e.g. --set architecture=FCN8s."
        parameters.append(
            inspect.Parameter(
                "overrides",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=list[str],
                default=typer.Option([], "--set", help=help_text),
            )
        )
    parameters.append(inspect.Parameter("params", inspect.Parameter.KEYWORD_ONLY, annotation=Path, default=PARAMS))
    command.__signature__ = inspect.Signature(parameters)
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__doc__ = stage.help
    command.__name__ = stage.command.replace("-", "_")
    return command


for registered in STAGES:
    app.command(registered.command)(stage_command(registered))


@app.command("ml-backend")
def ml_backend(
    model: Path = typer.Option(
        Path("models/best.pt"), help="Checkpoint to serve; a replaced file is picked up without a restart."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(9090, help="Port to listen on."),
    url: str = typer.Option(None, help="The backend's address as Label Studio reaches it (default http://HOST:PORT)."),
    connect: bool = typer.Option(False, "--connect", help="Register with labelstudio.project once listening."),
    train_command: str = typer.Option("dvc repro train", help="What the 'Start training' button runs."),
    train_log: Path = typer.Option(Path(".segpipe/ml-backend/train.log"), help="Log file of training runs."),
    cache: Path = typer.Option(Path(".segpipe/ml-backend/images"), help="Folder for fetched task images (by hash)."),
    params: Path = PARAMS,
) -> None:
    """Serve the model over Label Studio's ML backend protocol (/health, /setup, /predict, /webhook)."""
    import os

    from pipeline.core.params import load_section, read_params
    from pipeline.labelstudio.client import LabelStudioClient
    from pipeline.mlbackend import serve as backend_serve

    values = read_params(params)
    sections = [load_section(s, params, values) for s in ("base", "labelstudio", "pull", "preannotate")]
    options = backend_serve.ServeOptions(model, host, port, url, train_command, train_log, cache, Path.cwd())
    client = LabelStudioClient.from_env() if connect or os.environ.get("LABEL_STUDIO_URL") else None
    backend = backend_serve.build_backend(options, *sections, client)
    console.print(f"ml-backend: serving {model} ({backend.model.current().version}) on {options.public_url}")
    backend_serve.serve(backend, options, client, sections[1].project if connect else None)


@app.command()
def promote(
    model: Path = typer.Option(Path("models/best.pt"), help="The checkpoint a person chose."),
    raw: Path = typer.Option(Path("data/raw"), help="Snapshot folder written by pull (tasks)."),
    images: Path = typer.Option(Path("data/images"), help="Image folder written by pull."),
    agreement: Path = typer.Option(
        Path("data/reports/agreement.json"), help="agreement.json (for tasks: low_agreement)."
    ),
    report: Path = typer.Option(Path("reports/promote.json"), help="Report of what was pushed."),
    uncertainty: Path = typer.Option(Path("reports/promote_uncertainty.csv"), help="CSV of the pushed tasks."),
    live: Path = typer.Option(
        Path("models/live.pt"), help="Copy of the promoted checkpoint, for `ml-backend --model`."
    ),
    params: Path = PARAMS,
) -> None:
    """Push a chosen model's predictions and make its version the one annotators see."""
    from pipeline.core.params import load_section, read_params
    from pipeline.stages import promote as stage

    values = read_params(params)
    summary = stage.run(
        model,
        live,
        raw,
        images,
        agreement,
        report,
        uncertainty,
        *(load_section(s, params, values) for s in ("base", "labelstudio", "preannotate")),
    )
    console.print("promote: " + ", ".join(f"{k}={v}" for k, v in summary.items()))


@app.command()
def seed(
    images: Path = typer.Option(..., help="Folder of images."),
    classes: Path = typer.Option(
        ..., help="JSON: a list of class names, or {'classes': [{id, name, color}], 'ignore_index'}."
    ),
    masks: Path = typer.Option(None, help="Folder of label-map PNGs named like the images (class ids)."),
    crowd: str = typer.Option("", help="Simulate annotators from the masks, e.g. good,sloppy,misser,confuser,spammer."),
    masks_as: str = typer.Option(
        "annotations", help="Without --crowd: import masks as 'annotations' or 'predictions'."
    ),
    title: str = typer.Option("Seeded project", help="Project title."),
    document_root: Path = typer.Option(Path(".labelstudio/files"), help="The server's local-files document root."),
    unlabeled_every: int = typer.Option(0, help="Leave every N-th image without annotations (0 = none)."),
    seed_value: int = typer.Option(0, "--seed", help="Seed of the simulated crowd."),
) -> None:
    """Create a Label Studio project from images, with legacy masks and/or a simulated crowd."""
    from pipeline.demo import seeding
    from pipeline.labelstudio.client import LabelStudioClient

    if masks_as not in ("annotations", "predictions"):
        raise typer.BadParameter("--masks-as must be 'annotations' or 'predictions'")
    class_list = seeding.read_classes(classes)
    plan = seeding.plan_seed(
        title,
        images,
        masks,
        document_root,
        crowd=[p for p in crowd.split(",") if p],
        masks_as=masks_as,
        unlabeled_every=unlabeled_every,
        seed=seed_value,
    )
    with LabelStudioClient.from_env() as client:
        project_id = seeding.seed(client, plan, class_list)
    console.print(f"project {project_id} ({title!r}) seeded with {len(plan.images)} images")


@app.command()
def demo(
    port: int = typer.Option(8080, help="Port of the local Label Studio on 127.0.0.1."),
    data_dir: Path = typer.Option(Path(".labelstudio"), help="The local Label Studio's folder."),
    images: int = typer.Option(150, help="Synthetic scenes in a newly seeded project."),
) -> None:
    """Start a local Label Studio, seed a simulated-crowd project, run the pipeline and close the loop."""
    from pipeline.demo import run as runner

    runner.main(port, data_dir, console, images)


def main() -> None:
    """Run the CLI, turning the project's own errors into one readable line and exit code 1."""
    try:
        app()
    except PipelineError as error:
        console.print(f"[bold red]error:[/bold red] {escape(str(error))}", highlight=False)
        raise SystemExit(1) from None
    except OSError as error:
        if error.errno not in ENVIRONMENT_ERRNOS:
            raise
        # A full disk or a refused folder outside the outputs' own writers: still one line, with the path.
        where = error.filename or "unknown path"
        console.print(f"[bold red]error:[/bold red] {escape(f'{error.strerror}: {where}')}", highlight=False)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
