"""The `ff` command line: a thin layer over the library API. It parses arguments,
builds a Context, calls one function and prints the result. Every expected failure
becomes one `error: ...` line with exit code 2 (bad input) or 1 (failed operation).

Commands from other packages (ffswap's `ff swap`) are found through the
`ff.commands` entry point group and imported only when invoked, so store verbs
start fast and ffstore never imports ffswap."""

import gc as garbage_collector
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ffstore import __version__
from ffstore.context import Context, open_context
from ffstore.errors import FFError, InputError, describe_os_error
from ffstore.progress import format_size

PLUGIN_GROUP = "ff.commands"


class FFGroup(click.Group):
    """Adds plugin commands lazily."""

    def _plugins(self) -> dict[str, Any]:
        from importlib.metadata import entry_points  # slow to import: only when needed

        return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in self._plugins():
            command = self._plugins()[name].load()
        return command


@dataclass
class CliState:
    """What the root command's options say, kept in click's `ctx.obj` for every
    command, plugins (`ff swap`) included: how to open the project's Context and how
    to talk to the user."""

    project: str | None = None
    home: str | None = None
    quiet: bool = False
    verbose: bool = False

    def context(self, need_project: bool = True, **flags: Any) -> Context:
        """The project's Context, with command-line `flags` as the top settings layer."""
        context = open_context(Path(self.project) if self.project else None,
                               {"home": self.home, **flags}, need_project=need_project)
        if sys.stderr.isatty():  # like progress: for someone watching, not for logs
            context.notify = self.note
        return context

    def say(self, message: str) -> None:
        if not self.quiet:
            click.echo(message)

    def note(self, message: str) -> None:
        """Something the user should know that is not an error, on stderr."""
        if not self.quiet:
            click.echo(f"note: {message}", err=True)


pass_state = click.make_pass_decorator(CliState)


@click.group(cls=FFGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ff")
@click.option("--project", type=click.Path(file_okay=False), envvar=None,
              help="Directory with facefusion.toml (default: search upward from here).")
@click.option("--home", type=click.Path(file_okay=False), help="The local store (FF_HOME).")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@click.option("-v", "--verbose", is_flag=True, help="Explain errors in full (every difference).")
@click.pass_context
def cli(ctx: click.Context, project: str | None, home: str | None, quiet: bool,
        verbose: bool) -> None:
    """ff: signed, locked, content-addressed face models."""
    ctx.obj = CliState(project, home, quiet, verbose)


@cli.group()
def key() -> None:
    """Manage signing keys."""


@key.command("generate")
@click.argument("name")
@pass_state
def key_generate(state: CliState, name: str) -> None:
    """Make an Ed25519 key pair and print its public key id."""
    from ffstore.signing import generate_key

    context = state.context(need_project=False)
    made = generate_key(context.store.key_dir, name)
    click.echo(made.key_id)
    click.echo(f"private key: {context.store.key_dir / (name + '.key')} (keep it secret)", err=True)


@key.command("rotate")
@click.argument("old")
@click.argument("new")
@click.option("--registry", required=True, metavar="DIR_OR_OCI",
              help="Registry (a directory, or oci://HOST/REPOSITORY) whose signing key changes.")
@pass_state
def key_rotate(state: CliState, old: str, new: str, registry: str) -> None:
    """Make NEW the registry's signing key, vouched for by OLD (key names or files;
    NEW may also be a key id)."""
    from ffstore.publish import rotate_key
    from ffstore.signing import is_key_id

    context = state.context(need_project=False)
    new_key = new if is_key_id(new) else _load_key(context, new)
    rotation = rotate_key(context.publish_target(registry), _load_key(context, old), new_key,
                          context.setting("index_expiry_days"))
    state.say(f"{rotation.new_key_id} now signs {registry} (vouched for by {old})"
         if rotation.added else "this rotation is already listed")


def _load_key(context: Context, name: str) -> Any:
    from ffstore.signing import load_key

    return load_key(context.store.key_dir, name)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--registry", required=True, metavar="DIR_OR_OCI",
              help="Registry to publish into: a directory (created if missing) or "
                   "oci://HOST[:PORT]/REPOSITORY.")
@click.option("--model", required=True, help="Model name, e.g. inswapper_128.")
@click.option("--version", "version", required=True, help="Version, e.g. 1.2.0 (PEP 440).")
@click.option("--module", required=True, help="Module kind, e.g. face_swapper.")
@click.option("--key", "key_name", required=True, help="Signing key name or .key file.")
@click.option("--requires-ff", default=">=0.1", show_default=True,
              help="Range of ff versions the model works with.")
@click.option("--expires-days", type=int, default=None,
              help="Validity of the re-signed index (default: setting index_expiry_days).")
@pass_state
def publish(state: CliState, files: tuple[str, ...], registry: str, model: str, version: str,
            module: str, key_name: str, requires_ff: str, expires_days: int | None) -> None:
    """Publish FILES as one signed model version."""
    from ffstore.publish import publish as do_publish

    context = state.context(need_project=False, index_expiry_days=expires_days)
    result = do_publish(context.publish_target(registry), [Path(f) for f in files], model,
                        version, module, _load_key(context, key_name), requires_ff,
                        context.setting("index_expiry_days"))
    outcome = "published" if result.new_version else (
        "signed again" if result.new_signature else "already published, nothing new")
    state.say(f"{model} {result.manifest.version} ({module}): {outcome}; manifest "
              f"{result.manifest.digest}, {format_size(result.bytes_added)} added")


@cli.command("import")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option("--registry", required=True, metavar="DIR_OR_OCI",
              help="Registry to publish into: a directory (created if missing) or "
                   "oci://HOST[:PORT]/REPOSITORY.")
@click.option("--key", "key_name", required=True, help="Signing key name or .key file.")
@click.option("--version", "version", default="1.0.0", show_default=True,
              help="Version given to every imported model.")
@click.option("--module", "modules", multiple=True, metavar="STEM=MODULE",
              help="The module of a file ff does not know (e.g. my_swapper=face_swapper).")
@click.option("--init", is_flag=True,
              help="Also write a facefusion.toml here (if there is none) pinning FaceFusion's "
                   "default models among those imported.")
@pass_state
def import_(state: CliState, source: str, registry: str, key_name: str, version: str,
            modules: tuple[str, ...], init: bool) -> None:
    """Import a FaceFusion models folder (.assets/models) as signed versions."""
    from ffstore.facefusion import default_modules
    from ffstore.project import TOML_NAME, starter_toml
    from ffstore.publish import import_facefusion

    named = {}
    for item in modules:
        stem, equals, kind = item.partition("=")
        if not equals or not stem or not kind:
            raise InputError(f"--module {item!r}: write STEM=MODULE, e.g. my_swapper=face_swapper")
        named[stem] = kind
    context = state.context(need_project=False)
    root = Path(state.project or ".").resolve()
    toml = root / TOML_NAME
    if init and toml.exists():
        raise InputError(f"{toml} exists already; edit it, or drop --init")
    key = _load_key(context, key_name)
    results, notes = import_facefusion(Path(source), context.publish_target(registry), key,
                                       version, context.setting("index_expiry_days"), named)
    for result in results:
        already = "" if result.new_version else " (already there)"
        state.say(f"{result.manifest.model} {result.manifest.version} "
                  f"({result.manifest.module}): {result.manifest.digest}{already}")
    for note in notes:
        state.note(note)
    if init:
        from ffstore import fsutil
        from ffstore.registry import is_url

        location = registry if is_url(registry) else os.path.relpath(Path(registry).resolve(),
                                                                      root)
        chosen = default_modules([result.manifest.model for result in results])
        fsutil.atomic_write(toml, starter_toml(location, key.key_id, chosen, version))
        state.say(f"wrote {toml} ({len(chosen)} modules); next: ff lock")


@cli.command()
@click.option("--upgrade", is_flag=True, help="Move every module to its newest allowed version.")
@click.option("--upgrade-module", "upgrade_modules", multiple=True, metavar="MODULE",
              help="Move MODULE forward (lifting its hold). Repeatable.")
@click.option("--registry", "registry", default=None, metavar="DIR_OR_URL",
              help="Use this location for the default registry (setting registry).")
@pass_state
def lock(state: CliState, upgrade: bool, upgrade_modules: tuple[str, ...],
         registry: str | None) -> None:
    """Resolve facefusion.toml into facefusion.lock."""
    from ffstore.lock_changes import lock as do_lock

    context = state.context(registry=registry)
    result = do_lock(context, upgrade, frozenset(upgrade_modules))
    for name, entry in sorted(result.lock.modules.items()):
        before = result.previous.modules.get(name) if result.previous else None
        change = "" if before is None or before.version == entry.version else (
            f" (was {before.version})")
        held = " [held]" if name in result.lock.holds else ""
        state.say(f"{name}: {entry.model} {entry.version}{change}{held}")
    for note in result.notes:
        state.note(note)
    state.say("facefusion.lock updated" if result.changed else "facefusion.lock unchanged")


@cli.command()
@click.option("--locked", is_flag=True, help="Fail if facefusion.lock is stale (for CI).")
@click.option("--jobs", type=int, default=None, help="Parallel transfers (setting jobs).")
@click.option("--registry", "registry", default=None, metavar="DIR_OR_URL",
              help="Use this location for the default registry (setting registry).")
@pass_state
def sync(state: CliState, locked: bool, jobs: int | None, registry: str | None) -> None:
    """Fetch and verify every locked model into the local store."""
    from ffstore.progress import for_terminal
    from ffstore.sync import sync as do_sync

    context = state.context(jobs=jobs, registry=registry)
    with for_terminal(state.quiet, format_size) as progress:
        report = do_sync(context, locked, progress)
    if report.stale:
        click.echo("warning: facefusion.lock is stale (facefusion.toml changed); run `ff lock`",
                   err=True)
    state.say(f"synced {report.modules} modules: fetched {report.files_fetched} files "
              f"({format_size(report.bytes_fetched)}), {format_size(report.bytes_total)} in total")


@cli.command()
@click.argument("module", required=False)
@click.option("--to", "to_version", default=None, help="Roll MODULE back to this version.")
@click.option("--registry", "registry", default=None, metavar="DIR_OR_URL",
              help="Use this location for the default registry (setting registry).")
@pass_state
def rollback(state: CliState, module: str | None, to_version: str | None,
             registry: str | None) -> None:
    """Return MODULE (or the whole lock) to its previous version, and hold it."""
    from ffstore.lock_changes import rollback as do_rollback

    result = do_rollback(state.context(registry=registry), module, to_version)
    for change in result.changes:
        state.say(f"{change.module}: {change.model} {change.from_version or '(none)'} -> "
                  f"{change.to_version} (held)")


@cli.command()
@click.argument("module", required=False)
@pass_state
def history(state: CliState, module: str | None) -> None:
    """List lock generations recorded on this machine."""
    context = state.context()
    if module is not None:
        module = context.project.module(module).name
    for generation in context.history.generations():
        modules = generation.lock.modules
        if module is not None:
            entry = modules.get(module)
            summary = f"{entry.model} {entry.version}" if entry else "(not locked)"
        else:
            summary = ", ".join(f"{n}={e.version}" for n, e in sorted(modules.items()))
        click.echo(f"{generation.number:>4}  {generation.time}  {generation.reason:<40}  {summary}")


@cli.command()
@click.option("--keep", type=int, default=None, help="Generations per module to keep (gc_keep).")
@click.option("--dry-run", is_flag=True, help="Report what would be removed, remove nothing.")
@pass_state
def gc(state: CliState, keep: int | None, dry_run: bool) -> None:
    """Remove blobs no registered project needs."""
    from ffstore.gc import gc as do_gc

    context = state.context(need_project=False, gc_keep=keep)
    report = do_gc(context.store, context.setting("gc_keep"), dry_run)
    for removal in report.removals:
        what = (f"{removal.model} {removal.version} ({removal.path})" if removal.model
                else f"blob {removal.digest}")
        state.say(f"{'would remove' if dry_run else 'removed'} {what}, {format_size(removal.size)}")
    verb = "would free" if dry_run else "freed"
    state.say(f"{verb} {format_size(report.bytes_freed)} ({report.bytes_freed} bytes): "
              f"{report.blobs_removed} blobs, {report.manifests_removed} manifests; "
              f"{report.projects} projects kept")


@cli.command()
@click.argument("module")
@pass_state
def path(state: CliState, module: str) -> None:
    """Print the verified file path of a locked module."""
    from ffstore.status import model_path

    click.echo(model_path(state.context(), module))


@cli.command()
@pass_state
def status(state: CliState) -> None:
    """Show what is locked, synced and held, and the disk it takes."""
    from ffstore.status import status as do_status

    context = state.context()
    report = do_status(context)
    for row in report.modules:
        why = f"; {row.hold.reason}" if row.hold and row.hold.reason else ""
        held = f"  held (rolled back from {row.hold.rolled_back_from}{why})" if row.hold else ""
        synced = "synced" if row.synced else "NOT SYNCED"
        click.echo(f"{row.module:<18} {row.model:<24} {row.version:<12} {synced:<10} "
                   f"{format_size(row.size):>10}{held}")
    click.echo(f"lock: {'up to date' if report.fresh else 'STALE (run ff lock)'}; store: "
               f"{format_size(report.store_bytes)} at {context.store.root}")


@cli.command()
@click.option("--repair", is_flag=True,
              help="Fetch good copies of what was corrupt (needs the project's registries).")
@pass_state
def verify(state: CliState, repair: bool) -> None:
    """Re-hash the whole store and re-check manifest signatures."""
    from ffstore.integrity import check_store
    from ffstore.sync import sync as do_sync

    context = state.context(need_project=False)
    report = check_store(context.store, context.local_registry_dirs())
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    if repair and context.project_root is not None:
        # What verify moved away (now or before) is missing: fetched again, verified.
        fetched = do_sync(context)
        if fetched.files_fetched or report.problems:
            state.say(f"repaired: fetched {fetched.files_fetched} files again from the registry")
            return
    if report.problems:
        raise FFError(f"{len(report.problems)} problem(s) in the store; run `ff verify --repair` "
                      "(in the project) or `ff sync` to fetch good copies")
    state.say(f"ok: {report.blobs_checked} blobs and {report.manifests_checked} manifests verified")


@cli.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 shares the registry with the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port (0: any free one).")
@pass_state
def serve(state: CliState, directory: str, host: str, port: int) -> None:
    """Serve registry DIRECTORY over HTTP, read-only, until interrupted."""
    from ffstore.serve import make_server

    quiet = state.quiet
    server = make_server(Path(directory), host, port, quiet)
    click.echo(f"serving {server.root} at {server.url} (read-only; Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        state.say("stopped")
    finally:
        server.server_close()


@cli.command()
@pass_state
def config(state: CliState) -> None:
    """Show every effective setting and where it came from."""
    from ffstore.settings import BY_NAME

    context = state.context(need_project=False)
    click.echo(f"{'project':<20} {context.project_root or '(none)'}")
    for name, resolved in context.settings.items():
        click.echo(f"{name:<20} {resolved.value!s:<40} ({resolved.source}; {BY_NAME[name].help})")


@cli.group()
def export() -> None:
    """Lay the locked models out for other programs."""


@export.command("facefusion")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Replace files in the folder that are not ff's.")
@click.option("--rehash", is_flag=True, help="Re-read every blob, even those stamped as checked.")
@pass_state
def export_facefusion(state: CliState, directory: str, force: bool, rehash: bool) -> None:
    """Lay the locked models out as DIRECTORY/.assets/models (read-only hard links to
    verified blobs, each with FaceFusion's .hash), so FaceFusion runs them as locked."""
    from ffstore.export import describe
    from ffstore.export import export_facefusion as do_export
    from ffstore.progress import for_terminal

    context = state.context()
    with for_terminal(state.quiet, format_size) as progress:
        report = do_export(context, Path(directory), force, rehash, progress)
    for entry in report.entries:
        state.say(f"{entry.name}: {entry.model} {entry.version} -> {describe(entry.files)}")
    for path in report.overwritten:
        state.note(f"replaced {path}, which was not ff's (--force)")
    for path in report.left:
        state.note(f"left {report.folder / path}: the lock no longer names it, but it changed "
                   "since ff exported it")
    counts = ", ".join(f"{report.count(state)} {state}"
                       for state in ("linked", "copied", "unchanged", "adopted"))
    state.say(f"exported {len(report.files)} files to {report.folder} ({counts}; "
              f"{report.hashed} hashed), removed {len(report.removed)}")


GLOBAL_FLAGS = ("-q", "--quiet", "-v", "--verbose")


def _hoist_global_flags(argv: list[str]) -> list[str]:
    """`ff lock -v` means `ff -v lock`, as in uv and cargo: the flags that only
    change what is printed are taken from anywhere before a `--`."""
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [arg for arg in argv[:end] if arg in GLOBAL_FLAGS]
    return flags + [arg for arg in argv[:end] if arg not in GLOBAL_FLAGS] + argv[end:]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of raising."""
    args = _hoist_global_flags(list(sys.argv[1:] if argv is None else argv))
    verbose = any(arg in ("-v", "--verbose") for arg in args)
    try:
        cli.main(args=args, prog_name="ff", standalone_mode=False)
    except FFError as exc:
        click.echo(f"error: {exc}", err=True)
        if exc.details and verbose:
            for line in exc.details:
                click.echo(f"  {line}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        return 2
    except (click.Abort, KeyboardInterrupt):  # click turns a Ctrl-C into Abort
        click.echo("error: interrupted (a download stopped here resumes with the next command)",
                   err=True)
        return 130
    except OSError as exc:
        click.echo(f"error: {describe_os_error(exc)}", err=True)
        return 1
    return 0


def entry() -> None:
    """The `ff` executable. What is imported by now lives until the process ends;
    freezing it keeps the collector from scanning it again and again as commands
    import more (httpx, onnxruntime) and once more at exit, a cost every command
    would pay (bench/RESULTS.md, "CLI start-up")."""
    garbage_collector.freeze()
    sys.exit(main())

