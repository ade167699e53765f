"""The `openmemory` command: run the system (any target), manage API keys, and work with the
memories of a running system (add, search, list, get, delete, export, import)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

from openmemory_core import contracts as c
from openmemory_core import keys
from openmemory_core.bus import Bus
from openmemory_core.contracts import ANY_APP
from openmemory_core.errors import ConfigurationError, OpenMemoryError
from openmemory_core.runtime import BUS, Runtime, data_dir_lock, health_port, read_endpoints, run
from openmemory_core.servers import (
    PRIVATE_UMASK,
    embedded_nats,
    make_private,
    start_embedded,
    write_private,
)
from openmemory_core.settings import Settings
from openmemory_core.telemetry import configure_logging

FIRST_KEY_FILE = "first-api-key"


def _settings(args: argparse.Namespace) -> Settings:
    # Flags are spelled as their environment variables, so one precedence rule holds: flag > env.
    flags = {
        "OPENMEMORY_DATA_DIR": getattr(args, "data_dir", None),
        "OPENMEMORY_GATEWAY_HOST": getattr(args, "gateway_host", None),
        "OPENMEMORY_GATEWAY_PORT": getattr(args, "gateway_port", None),
        "OPENMEMORY_ADMIN_HOST": getattr(args, "admin_host", None),
        "OPENMEMORY_ADMIN_PORT": getattr(args, "admin_port", None),
        "OPENMEMORY_OPS_PORT": getattr(args, "ops_port", None),
    }
    for name, value in flags.items():
        if value is not None:
            os.environ[name] = str(value)
    return Settings()


async def _announce(runtime: Runtime) -> None:
    settings = runtime.settings
    lines = ["", "OpenMemory is running."]
    if "gateway" in runtime.names:
        lines.append(f"  MCP URL:    {settings.gateway.mcp_url}")
    if "admin" in runtime.names:
        host = "127.0.0.1" if settings.admin.host in ("0.0.0.0", "::", "") else settings.admin.host
        lines.append(f"  Dashboard:  {settings.admin.public_url or f'http://{host}:{settings.admin.port}'}")
    if BUS in _embedded(runtime) and "gateway" in runtime.names:
        # A token goes only to a person at a terminal: a redirected output ends up in log files.
        lines.extend(await _first_key_lines(runtime, show_token=sys.stdout.isatty()))
    lines.append(f"  Data dir:   {runtime.data_dir}")
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)


def _embedded(runtime: Runtime) -> set[str]:
    return {BUS} if runtime.settings.core.nats_url is None and runtime.nats_url else set()


async def _first_key_lines(runtime: Runtime, show_token: bool) -> list[str]:
    """On the first start, mint a key for the default user and keep it (0600) in the data dir."""
    bus = await runtime.bus()
    kv = await bus.keys_bucket()
    path = runtime.data_dir / FIRST_KEY_FILE
    user = runtime.settings.core.default_user
    if not path.exists():
        token, _ = await keys.create_key(
            kv, user, scopes=("read", "write", "admin", "operator"), label="first key"
        )
        write_private(path, token + "\n")
    token = path.read_text().strip()
    try:
        principal = await keys.verify_key(kv, token)
    except OpenMemoryError as exc:
        return [
            f"  API key:    the first key in {path} is not usable ({exc.message});",
            "              make one with: .venv/bin/openmemory keys create --user USER --app APP",
        ]
    if not show_token:
        return [f"  API key:    in {path} (user {principal.user_id!r}, any app; readable by you only)"]
    return [f"  API key:    {token}", f"              (user {principal.user_id!r}, any app; kept in {path})"]


@contextlib.asynccontextmanager
async def _bus_for_cli(settings: Settings) -> AsyncIterator[Bus]:
    """The running system's bus, or, when nothing runs on the data dir, a short-lived embedded one."""
    url = settings.core.nats_url
    if url is None:
        running = read_endpoints(settings.core.data_dir)
        url = running["nats_url"] if running else None
    if url is not None:
        bus = await Bus.connect(url, "openmemory-cli", settings.core.partitions)
        try:
            yield bus
        finally:
            await bus.close()
        return
    make_private(settings.core.data_dir)
    with data_dir_lock(settings.core.data_dir):
        proc, url = await start_embedded(embedded_nats, settings.core.data_dir)
        try:
            bus = await Bus.connect(url, "openmemory-cli", settings.core.partitions)
            try:
                yield bus
            finally:
                await bus.close()
        finally:
            await proc.stop()


async def _keys(args: argparse.Namespace) -> int:
    settings = _settings(args)
    async with _bus_for_cli(settings) as bus:
        kv = await bus.keys_bucket()
        if args.keys_command == "create":
            scopes = tuple(s.strip() for s in args.scopes.split(",") if s.strip())
            expires = c.now() + timedelta(days=args.expires_in_days) if args.expires_in_days else None
            token, _ = await keys.create_key(kv, args.user, args.app, scopes, args.label, expires)
            print(token)
        elif args.keys_command == "list":
            for record in await keys.list_keys(kv, args.user):
                state = "revoked" if record.revoked else "active"
                if not record.revoked and record.expires_at is not None and record.expires_at <= c.now():
                    state = "expired"
                print(
                    f"om_{record.prefix}\t{record.user_id}\t{record.app}\t{','.join(record.scopes)}\t"
                    f"{state}\t{record.created_at:%Y-%m-%d %H:%M}\t{record.label}"
                )
        elif args.keys_command == "revoke":
            record = await keys.revoke_key(kv, args.prefix.removeprefix("om_").split("_")[0])
            print(f"revoked om_{record.prefix} of user {record.user_id}", file=sys.stderr)
    return 0


def _healthcheck(settings: Settings, target: str) -> int:
    """Exit 0 when the process of this target answers /healthz (the container's health check)."""
    import httpx

    port = health_port(target, settings.gateway.port, settings.admin.port, settings.ops.port)
    try:
        ok = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3).status_code == 200
    except httpx.HTTPError:
        ok = False
    return 0 if ok else 1


async def _reembed(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.command == "reembed":
        command: c.AnyCommand = c.ReembedCommand(from_model_tag=args.from_model)
    else:
        command = c.RebuildCommand()
    async with _bus_for_cli(settings) as bus, bus.result_waiter(command.request_id) as result:
        await bus.publish_command(command)
        return await _outcome(command.request_id, result, args.wait)


async def _outcome(request_id: str, result: asyncio.Future[c.CommandResult], wait: float) -> int:
    try:
        done = await asyncio.wait_for(result, wait)
    except TimeoutError:
        print(f"accepted as {request_id}; ingest applies it when it runs", file=sys.stderr)
        return 0
    if not done.ok:
        print(f"openmemory: {done.error}", file=sys.stderr)
        return 1
    print(done.note)
    return 0


async def _backup(args: argparse.Namespace) -> int:
    from openmemory_core import backup

    settings = _settings(args)
    async with _bus_for_cli(settings) as bus:
        if args.command == "backup":
            manifest = await backup.backup(bus, args.out)
            print(f"backed up {backup.describe(manifest)} to {args.out}")
            return 0
        command = c.RebuildCommand()
        async with bus.result_waiter(command.request_id) as result:
            manifest = await backup.restore(bus, args.source, command)
            print(
                f"restored {backup.describe(manifest)}; rebuilding the vectors and the graph", file=sys.stderr
            )
            return await _outcome(command.request_id, result, args.wait)


async def _consolidate(args: argparse.Namespace) -> int:
    """Ask the running ingest to consolidate a user's memories (or only to plan it: --dry-run)."""
    import json

    from pydantic import ValidationError

    from openmemory_core.errors import InvalidInput

    settings = _settings(args)
    try:
        request = c.ConsolidateRequest(user_id=args.user, dry_run=args.dry_run, wait=args.wait)
    except ValidationError as exc:
        where = ", ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"bad arguments: {where}") from exc
    async with _bus_for_cli(settings) as bus:
        report = await bus.consolidate(request, args.wait + 60)
    if args.json:
        print(json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return 0
    what = "plan only (dry run): nothing changed" if report.dry_run else "applied"
    more = f" (the newest {report.memories}: there are more)" if report.truncated else ""
    print(f"user {report.user_id}: {report.memories} active memories read{more}; {what}")
    for merge in report.merges:
        print(f"merge  keep {merge.keep}  {merge.keep_text!r}")
        for memory_id, text in zip(merge.merged, merge.merged_texts, strict=True):
            print(f"         <- {memory_id}  {text!r}  (cosine >= {merge.similarity:.2f})")
    for expiry in report.expiries:
        print(f"expire {expiry.memory_id}  {expiry.text!r}  (expired {expiry.expired_at:%Y-%m-%d %H:%M})")
    for plan in report.past_plans:
        print(f"past plan {plan.memory_id}  {plan.text!r}  ({plan.period}: noted in search results)")
    merged = sum(len(m.merged) for m in report.merges)
    summary = (
        f"{len(report.merges)} merges ({merged} memories folded), {len(report.expiries)} expired, "
        f"{report.past_plan_count} past plans"
    )
    if report.pending:
        summary += f"; accepted as {report.request_id}, ingest applies it when it can"
    elif not report.dry_run:
        summary += f"; {len(report.applied)} memories changed (UPDATE events)"
    print(f"{summary}; {report.seconds:.1f}s")
    return 0


def _command(name: str) -> Callable[[list[str]], int]:
    """A subcommand another workspace member provides (entry point group `openmemory.commands`)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="openmemory.commands", name=name):
        command: Callable[[list[str]], int] = ep.load()
        return command
    raise ConfigurationError(f"the '{name}' command is not installed (package openmemory-{name})")


MEMORY_COMMANDS = ("add", "search", "list", "get", "delete")
REMOTE_COMMANDS = (*MEMORY_COMMANDS, "export", "import")


def _remote(args: argparse.Namespace) -> int:
    """A command against a running system, with an API key: its exit code says how it went."""
    from openmemory_core import remote

    for chatty in ("httpx", "httpx2", "mcp"):  # a line per HTTP request is noise in a shell
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        where = remote.target(args, _settings(args).core.data_dir)
        if args.command == "export":
            return remote.export(args, where)
        if args.command == "import":
            return remote.import_conversations(args, where)
        return asyncio.run(remote.run_memory_command(args, where))
    except remote.Failed as exc:
        print(f"openmemory: {exc.message}", file=sys.stderr)
        return exc.code


def _between(low: int, high: int) -> Callable[[str], int]:
    def number(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"{n} is not between {low} and {high}")
        return n

    return number


def _remote_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from openmemory_core.remote import DEFAULT_ADMIN, DEFAULT_GATEWAY, ENV_KEY, EXIT_CODES

    def remote(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=help_text, description=help_text, epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        p.add_argument("--key", help=f"the API key (default: env {ENV_KEY})")
        p.add_argument(
            "--url",
            help="the gateway (MCP) URL; default: the system running on the data dir, "
            f"else {DEFAULT_GATEWAY}",
        )
        p.add_argument(
            "--admin-url",
            help="the admin API URL (export, import); default: the system running on the data dir, "
            f"else {DEFAULT_ADMIN}",
        )
        p.add_argument("--json", action="store_true", help="print JSON for scripts instead of a table")
        p.add_argument("--data-dir", type=Path, help="where the local system's data lives (to find its URLs)")
        return p

    add = remote("add", "remember a text (split into facts unless --verbatim)")
    add.add_argument("text")
    add.add_argument("--verbatim", action="store_true", help="store the text as it is (infer=False)")
    search = remote("search", "search the memories, best matches first")
    search.add_argument("query")
    search.add_argument("--limit", type=_between(1, 100), default=10, metavar="N", help="1-100 (default 10)")
    listing = remote("list", "list the memories, newest first")
    listing.add_argument(
        "--limit", type=_between(1, 1000), default=100, metavar="N", help="1-1000 (default 100)"
    )
    get = remote("get", "show one memory and its history")
    get.add_argument("id")
    delete = remote("delete", "delete memories (all of them, or none if any id is unknown)")
    delete.add_argument("ids", nargs="+", metavar="ID")
    export = remote(
        "export", "write all of the key's memories, their history and graph to FILE (admin scope)"
    )
    export.add_argument("file", type=Path, metavar="FILE")
    imports = remote(
        "import",
        "import the conversations.json of a ChatGPT or Claude data export: the user's messages become "
        "memories (through the extractor), with their conversation's title and time; importing again "
        "adds nothing twice, so an interrupted import goes on where it stopped (admin and write scopes)",
    )
    imports.add_argument("source", choices=("chatgpt", "claude"))
    imports.add_argument("file", type=Path, metavar="FILE")
    imports.add_argument(
        "--include-assistant", action="store_true", help="import the assistant's messages too"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openmemory", description="A private memory layer for AI tools.")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, help="where all data lives (env OPENMEMORY_DATA_DIR)")

    run_p = sub.add_parser("run", help="start the system, or some of its components")
    run_p.add_argument(
        "--target",
        default=os.environ.get("OPENMEMORY_TARGET", "all"),
        help="all (default), or a comma list of gateway, ingest, search, admin (env OPENMEMORY_TARGET)",
    )
    data_dir(run_p)
    run_p.add_argument("--gateway-host")
    run_p.add_argument("--gateway-port", type=int)
    run_p.add_argument("--admin-host")
    run_p.add_argument("--admin-port", type=int)
    run_p.add_argument("--ops-port", type=int, help="health port of a process without gateway or admin")

    health = sub.add_parser("healthcheck", help="exit 0 if this container's process answers /healthz")
    health.add_argument("--target", default=os.environ.get("OPENMEMORY_TARGET", "all"))

    reembed = sub.add_parser(
        "reembed", help="after changing the embedding model: move the memories of the old one into it"
    )
    reembed.add_argument("--from", dest="from_model", required=True, help="the old model's tag")
    reembed.add_argument("--wait", type=float, default=600.0, help="seconds to wait for the result")
    data_dir(reembed)

    rebuild = sub.add_parser(
        "rebuild", help="recreate the vectors and the graph from the events stream (the running system's)"
    )
    rebuild.add_argument("--wait", type=float, default=600.0, help="seconds to wait for the result")
    data_dir(rebuild)
    backup_p = sub.add_parser("backup", help="write every event, API key, app setting and setting to a zip")
    backup_p.add_argument("--out", type=Path, required=True)
    data_dir(backup_p)
    restore_p = sub.add_parser("restore", help="load a backup into an empty system, then rebuild its stores")
    restore_p.add_argument("--from", dest="source", type=Path, required=True)
    restore_p.add_argument("--wait", type=float, default=600.0, help="seconds to wait for the rebuild")
    data_dir(restore_p)

    consolidate = sub.add_parser(
        "consolidate",
        help="merge a user's near-duplicate memories and archive expired temporary ones (the running "
        "system's; every change is an event); --dry-run shows the plan and changes nothing",
    )
    consolidate.add_argument("--user", required=True, help="whose memories")
    consolidate.add_argument("--dry-run", action="store_true", help="show what it would do, change nothing")
    consolidate.add_argument("--json", action="store_true", help="print the report as JSON")
    consolidate.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the changes")
    data_dir(consolidate)

    bench = sub.add_parser("bench", help="benchmarks (openmemory bench locomo --data FILE)", add_help=False)
    bench.add_argument("rest", nargs=argparse.REMAINDER)

    keys_p = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys_p.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="mint a key; prints the key and nothing else")
    create.add_argument("--user", required=True)
    create.add_argument("--app", default=ANY_APP, help="the app (MCP client) the key is for; default: any")
    create.add_argument("--scopes", default="read,write", help="comma list of read, write, admin, operator")
    create.add_argument("--label", default="")
    create.add_argument("--expires-in-days", type=int, help="the key stops working after this many days")
    data_dir(create)
    listing = keys_sub.add_parser("list", help="list keys (prefix, user, app, scopes, state)")
    listing.add_argument("--user")
    data_dir(listing)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its prefix (om_xxxxxxxx)")
    revoke.add_argument("prefix")
    data_dir(revoke)
    _remote_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Whatever the command writes (data, backups, the servers it starts) is the user's alone.
    os.umask(PRIVATE_UMASK)
    configure_logging(
        os.environ.get("OPENMEMORY_LOG_LEVEL", "INFO"), os.environ.get("OPENMEMORY_LOG_FORMAT", "auto")
    )
    try:
        if args.command in REMOTE_COMMANDS:
            return _remote(args)
        if args.command == "bench":
            return _command("bench")(args.rest)
        if args.command in ("reembed", "rebuild"):
            return asyncio.run(_reembed(args))
        if args.command == "consolidate":
            return asyncio.run(_consolidate(args))
        if args.command in ("backup", "restore"):
            return asyncio.run(_backup(args))
        if args.command == "healthcheck":
            return _healthcheck(Settings(), args.target)
        if args.command == "run":
            settings = _settings(args)
            asyncio.run(run(settings, args.target, on_ready=_announce))
            return 0
        return asyncio.run(_keys(args))
    except OpenMemoryError as exc:
        print(f"openmemory: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `openmemory list | head`: the reader has what it wanted; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
