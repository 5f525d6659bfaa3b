"""CLI commands of the running service: ``serve``, ``admin ...`` and ``ledger verify``.

``serve`` validates the settings, builds the embedded default dataset if it is missing, issues the
first-start tokens, then runs uvicorn (``--workers N`` processes from the ``service.app:app_from_env``
factory, so every worker reads the same ``SUNDSTAT_*`` settings) and the Streamlit dashboard.
``admin`` commands call the HTTP API through :class:`service.client.Client` with an administrator token.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["register"]

Handler = Callable[[argparse.Namespace], int]
_DEFAULT_API = "http://127.0.0.1:8000"


# --- serve --------------------------------------------------------------------------------------


def _serve_settings(args: argparse.Namespace) -> Any:
    from .settings import Settings

    overrides = {
        "db": args.db,
        "state_dir": args.state_dir,
        "host": args.host,
        "port": args.port,
        "dashboard_port": args.dashboard_port,
        "workers": args.workers,
        "ledger_url": args.ledger_url,
        "backend": args.backend,
        "spark_master": args.spark_master,
        "parquet_dir": args.parquet_dir,
    }
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _build_default_dataset(db: Path) -> None:
    from datasets.build import build
    from datasets.generate import generate

    from .settings import DEFAULT_DATASET_PERSONS, DEFAULT_DATASET_SEED

    raw = db.parent / f"synthetic-{DEFAULT_DATASET_PERSONS}-{DEFAULT_DATASET_SEED}"
    print(
        f"The default dataset {db} does not exist yet: generating {DEFAULT_DATASET_PERSONS} synthetic persons "
        f"(seed {DEFAULT_DATASET_SEED}) into {raw} and building it. This takes a minute, once.",
        flush=True,
    )
    generate(DEFAULT_DATASET_PERSONS, DEFAULT_DATASET_SEED, raw, progress=True)
    print(build(raw, db).describe(), flush=True)


def _first_start(settings: Any) -> Any:
    """Open the state directory, record default register caps, refuse automatic approval of uncapped
    registers, issue first-start tokens, and close everything again."""
    import datetime as dt

    from datasets.build import open_catalog_from_db

    from .bootstrap import apply_default_caps, bootstrap, cap_warnings, check_auto_approval_caps
    from .state import open_state_store
    from .tokens import TokenStore
    from .worker_services import check_ledger_at_start

    catalog = (
        settings.spark_catalog() if settings.backend == "spark" else open_catalog_from_db(settings.db_path)
    )
    ledger, checked = check_ledger_at_start(settings)
    print(checked.describe(), flush=True)
    store = open_state_store(settings.state_store_url, settings.service_db_path)
    env_admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    try:
        apply_default_caps(ledger, catalog.register_names, settings)
        for warning in cap_warnings(ledger):
            print(f"warning: {warning}", file=sys.stderr, flush=True)
        check_auto_approval_caps(ledger, settings, catalog.register_names)
        return bootstrap(
            store,
            TokenStore(store, env_admin_token=env_admin),
            ledger,
            catalog.register_names,
            demo=settings.demo_project,
            demo_epsilon=settings.demo_epsilon,
            token_ttl=dt.timedelta(days=settings.token_ttl_days),
        )
    finally:
        store.close()
        ledger.close()


def _print_banner(settings: Any, start: Any, dashboard: bool) -> None:
    from .bootstrap import TOKEN_FILE, token_report

    api = settings.api_url
    lines = [
        "",
        "sundstat is starting",
        f"  API:        {api}/v1",
        f"  API docs:   {api}/docs",
    ]
    if dashboard:
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        lines.append(f"  Dashboard:  http://{host}:{settings.dashboard_port}")
    if settings.backend == "spark":
        lines.append(f"  Registers:  Spark ({settings.spark_master}) over {settings.parquet_dir}")
    else:
        lines.append(f"  Database:   {settings.db_path}")
    lines.append(f"  State dir:  {settings.state_dir}")
    lines.append(f"  Ledger:     {settings.ledger_description}")
    lines.append("")
    lines.extend(token_report(start, settings.state_dir / TOKEN_FILE, show_tokens=sys.stdout.isatty()))
    print("\n".join(lines) + "\n", flush=True)


# The dashboard talks to the API only, as any browser user would: it gets no secret of the service
# (administrator token, audit key, pseudonym key, ledger URL with its password) and no proxy settings.
_DASHBOARD_ENV = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV"}
    | {"SSL_CERT_FILE", "SSL_CERT_DIR"}
)
_DASHBOARD_ENV_PREFIXES = ("LC_", "STREAMLIT_", "SUNDSTAT_DASHBOARD_")


def _dashboard_environment(environ: dict[str, str], api_url: str) -> dict[str, str]:
    """The dashboard's environment: the allow-listed variables of ``environ`` and the API's URL."""
    env = {
        name: value
        for name, value in environ.items()
        if name in _DASHBOARD_ENV or name.startswith(_DASHBOARD_ENV_PREFIXES)
    }
    env["SUNDSTAT_API_URL"] = api_url
    return env


# How the dashboard runs: no browser of its own, no usage statistics, and no developer toolbar (no
# "Deploy" button, no main menu: "minimal" keeps only menu items the app sets, and it sets none).
STREAMLIT_OPTIONS = (
    "--server.headless",
    "true",
    "--browser.gatherUsageStats",
    "false",
    "--client.toolbarMode",
    "minimal",
)


def _start_dashboard(settings: Any) -> subprocess.Popen[bytes] | None:
    # The installed dashboard package's entry file (a data file here: the service never imports it).
    app = Path(str(importlib.resources.files("dashboard").joinpath("app.py")))
    if not app.is_file():
        print("(no dashboard/app.py yet: the dashboard is not started)", flush=True)
        return None
    env = _dashboard_environment(dict(os.environ), settings.api_url)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.port",
        str(settings.dashboard_port),
        "--server.address",
        settings.host,
        *STREAMLIT_OPTIONS,
    ]
    return subprocess.Popen(command, env=env)


def _make_state_private(settings: Any) -> None:
    """The state directory 0700 and the service's files in it 0600 (ledger, tokens, audit key, checkpoint).

    New files are private through the umask; this also closes up files an earlier version left
    readable by others. Only the service's own files are touched, in case the state directory is
    shared with something else.
    """
    settings.state_dir.chmod(0o700)
    databases = [settings.ledger_path, settings.service_db_path]
    own = [settings.audit_key_path, settings.state_dir / "ledger.checkpoint", *databases]
    own += [Path(f"{db}{suffix}") for db in databases for suffix in ("-wal", "-shm", ".lock")]
    for path in own:
        if path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o077:
            path.chmod(0o600)


def _cmd_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from .serve_checks import check_serving
    from .settings import SettingsError

    os.umask(0o077)  # state, ledger, tokens and a built database: readable by this user only
    try:
        settings = _serve_settings(args)
    except ValidationError as exc:
        print(f"error: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    try:
        duckdb_backend = settings.backend == "duckdb"
        check_serving(settings, need_db=duckdb_backend and not settings.uses_default_db)
        if duckdb_backend and settings.uses_default_db and not settings.db_path.is_file():
            _build_default_dataset(settings.db_path)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the build reports its own problems; refuse to start on any of them
        print(f"error: could not build the default dataset: {exc}", file=sys.stderr)
        return 2
    # Serving never needs the pseudonym key (only 'sundstat build' does): drop it before anything
    # else starts, so that no worker or dashboard process inherits it.
    settings = settings.model_copy(update={"pseudonym_key": None})
    os.environ.pop("SUNDSTAT_PSEUDONYM_KEY", None)
    try:
        _make_state_private(settings)
    except OSError as exc:
        print(f"error: cannot make the state directory private ({exc}); check its owner.", file=sys.stderr)
        return 2
    from budget_ledger import LedgerError

    try:
        start = _first_start(settings)
    except LedgerError as exc:
        print(f"error: refusing to start: {exc.message}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .bootstrap import save_tokens

    save_tokens(start, settings.state_dir)
    dashboard = None if args.no_dashboard else _start_dashboard(settings)
    _print_banner(settings, start, dashboard is not None)

    import uvicorn

    from .log_config import server_log_config

    os.environ.update(settings.to_env())
    try:
        uvicorn.run(
            "service.app:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=args.log_level,
            access_log=args.access_log,
            log_config=server_log_config(),
        )
    finally:
        if dashboard is not None:
            dashboard.terminate()
            try:
                dashboard.wait(timeout=10)
            except subprocess.TimeoutExpired:
                dashboard.kill()
    return 0


# --- admin --------------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Any:
    from .client import Client

    token = args.token or os.environ.get("SUNDSTAT_ADMIN_TOKEN")
    if not token:
        raise SystemExit("error: pass --token or set SUNDSTAT_ADMIN_TOKEN to an administrator token")
    return Client(args.api, token=token)


def _show(value: Any, *, as_json: bool) -> None:
    from .cli_output import as_json as json_text
    from .cli_output import as_text

    print(json_text(value) if as_json else as_text(value))


def _admin(action: Callable[[Any, argparse.Namespace], Any]) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        from .client import ApiError

        try:
            with _client(args) as api:
                _show(action(api, args), as_json=args.json)
        except ApiError as exc:
            print(f"error ({exc.status} {exc.code}): {exc.error}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"error: cannot reach the API at {args.api}: {exc}", file=sys.stderr)
            return 1
        return 0

    return handler


def _registers(text: str) -> list[str]:
    return [r.strip() for r in text.split(",") if r.strip()]


def _create_project(api: Any, a: argparse.Namespace) -> Any:
    return api.create_project(
        a.id,
        title=a.title,
        purpose=a.purpose,
        registers=_registers(a.registers),
        mode=a.mode,
        epsilon=a.epsilon,
        delta=a.delta,
        expires=a.expires,
        institution=a.institution,
        summary=a.summary,
        permit_id=a.permit_id,
    )


def _create_token(api: Any, a: argparse.Namespace) -> Any:
    if a.admin:
        return api.create_admin_token(a.name, ttl_days=a.ttl_days)
    if not a.project:
        raise SystemExit("error: give a PROJECT for an analyst token, or --admin for an administrator token")
    return api.create_token(a.project, a.name, ttl_days=a.ttl_days)


def _set_cap(api: Any, a: argparse.Namespace) -> Any:
    return api.set_register_cap(a.register, epsilon=a.epsilon, rho=a.rho, delta=a.delta, reason=a.reason)


def _create_institution(api: Any, a: argparse.Namespace) -> Any:
    return api.create_institution(
        a.id, a.name, oidc_issuer=a.oidc_issuer, email_domains=a.email_domain, org_values=a.org
    )


def _action_group(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, *, help_: str, description: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The actions of a command that takes one (``sundstat <name> ACTION``, parsed into ``<name>_command``)."""
    group = commands.add_parser(name, help=help_, description=description)
    actions = group.add_subparsers(dest=f"{name}_command", metavar="ACTION")
    actions.required = True
    return actions


def _add_admin_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = _action_group(
        commands,
        "admin",
        help_="administer a running service through its API (projects, budgets, tokens, applications)",
        description="Administrator commands; they call the API with an administrator token.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api",
        default=os.environ.get("SUNDSTAT_API_URL", _DEFAULT_API),
        help=f"API base URL (default: $SUNDSTAT_API_URL or {_DEFAULT_API})",
    )
    common.add_argument("--token", help="administrator token (default: $SUNDSTAT_ADMIN_TOKEN)")
    common.add_argument(
        "--json", action="store_true", help="print the API's JSON answer (for scripts) instead of a table"
    )

    def add(
        name: str, help_: str, action: Callable[[Any, argparse.Namespace], Any]
    ) -> argparse.ArgumentParser:
        parser = sub.add_parser(
            name, help=help_, description=help_[0].upper() + help_[1:] + ".", parents=[common]
        )
        parser.set_defaults(handler=_admin(action))
        return parser

    p = add("create-project", "create a project with its permit and budget", _create_project)
    p.add_argument("id", help="project id, e.g. diabetes-2026")
    p.add_argument("--title", required=True, help="project title")
    p.add_argument("--purpose", required=True, help="EHDS purpose, e.g. research or public_health")
    p.add_argument("--registers", required=True, help="comma-separated registers, e.g. cpr,lpr,lmdb")
    p.add_argument("--mode", choices=["pure", "zcdp"], default="pure", help="accounting mode (fixed)")
    p.add_argument("--epsilon", type=float, required=True, help="budget epsilon")
    p.add_argument("--delta", type=float, default=0.0, help="budget delta (zcdp needs delta > 0)")
    p.add_argument("--expires", help="last day of the permit, YYYY-MM-DD")
    p.add_argument("--institution", default="", help="institution")
    p.add_argument("--summary", default="", help="lay summary")
    p.add_argument("--permit-id", help="the data permit behind the project (default: a generated id)")

    p = add(
        "set-budget",
        "replace a project's budget (never below what is spent)",
        lambda api, a: api.set_budget(a.project, epsilon=a.epsilon, delta=a.delta, reason=a.reason),
    )
    p.add_argument("project", help="project id")
    p.add_argument("--epsilon", type=float, required=True, help="new budget epsilon")
    p.add_argument("--delta", type=float, default=0.0, help="new budget delta")
    p.add_argument("--reason", required=True, help="why (recorded in the audit chain)")

    p = add("create-token", "issue a token (shown once): analyst for a project, or --admin", _create_token)
    p.add_argument("project", nargs="?", help="project id (analyst tokens)")
    p.add_argument("--name", required=True, help="who or what the token is for")
    p.add_argument("--admin", action="store_true", help="issue an administrator token instead")
    p.add_argument("--ttl-days", type=int, help="lifetime in days (default: the service's setting)")

    p = add("revoke-token", "revoke a token by id (tok_...)", lambda api, a: api.revoke_token(a.token_id))
    p.add_argument("token_id", help="token id, as listed by list-tokens")

    add("list-projects", "list every project with its budget", lambda api, a: api.list_projects())

    p = add("list-tokens", "list token records (never the tokens)", lambda api, a: api.list_tokens(a.project))
    p.add_argument("project", nargs="?", help="only this project's tokens")

    p = add("applications", "list applications", lambda api, a: api.list_applications(a.status))
    p.add_argument("--status", choices=["pending", "approved", "rejected"], help="only these")

    p = add(
        "approve",
        "approve a pending application (creates its project)",
        lambda api, a: api.decide(
            a.application_id, "approve", epsilon=a.epsilon, delta=a.delta, expires=a.expires, reason=a.reason
        ),
    )
    p.add_argument("application_id", help="application id (app_...)")
    p.add_argument("--epsilon", type=float, help="granted epsilon (default: as requested)")
    p.add_argument("--delta", type=float, help="granted delta (default: as requested)")
    p.add_argument("--expires", help="last day of the permit, YYYY-MM-DD (default: requested duration)")
    p.add_argument("--reason", help="a note for the applicant")

    p = add(
        "reject",
        "reject a pending application",
        lambda api, a: api.decide(a.application_id, "reject", reason=a.reason),
    )
    p.add_argument("application_id", help="application id (app_...)")
    p.add_argument("--reason", required=True, help="why (shown to the applicant)")

    p = add("set-cap", "set a register's global cap across all projects (replaces the default)", _set_cap)
    p.add_argument("register", help="register name, e.g. lpr")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--epsilon", type=float, help="cap as epsilon (with --delta)")
    group.add_argument("--rho", type=float, help="cap as zCDP rho")
    p.add_argument(
        "--delta",
        type=float,
        default=0.0,
        help="cap delta (0: the cap bounds the sum of pure epsilon and refuses rho queries)",
    )
    p.add_argument("--reason", required=True, help="why (recorded in the audit chain)")

    add("verify", "verify the ledger through the API", lambda api, a: api.ledger_verify())

    p = add("create-institution", "register an institution whose members may apply", _create_institution)
    p.add_argument("id", help="institution id, e.g. ku")
    p.add_argument("--name", required=True, help="e.g. 'University of Copenhagen'")
    p.add_argument("--email-domain", action="append", default=[], help="verified e-mail domain, e.g. ku.dk")
    p.add_argument("--org", action="append", default=[], help="value of the organisation claim, e.g. ku")
    p.add_argument("--oidc-issuer", help="only sign-ins from this issuer (default: the configured one)")

    add("institutions", "list registered institutions", lambda api, a: api.list_institutions())

    p = add(
        "create-applicant",
        "issue an applicant account and token by hand (installations without an identity provider)",
        lambda api, a: api.create_applicant(a.institution, name=a.name, email=a.email, ttl_days=a.ttl_days),
    )
    p.add_argument("--institution", required=True, help="institution id, e.g. ku")
    p.add_argument("--name", required=True, help="the applicant's name")
    p.add_argument("--email", required=True, help="the applicant's e-mail address")
    p.add_argument("--ttl-days", type=int, help="token lifetime in days (default: the service's setting)")


# --- ledger -------------------------------------------------------------------------------------


def _cmd_ledger_verify(args: argparse.Namespace) -> int:
    from budget_ledger import verify_command

    state_dir = Path(args.state_dir or os.environ.get("SUNDSTAT_STATE_DIR", "state"))
    # The same choice as serve's: the PostgreSQL URL if one is given, else SQLite in the state dir.
    target = (
        args.ledger_url or os.environ.get("SUNDSTAT_LEDGER_URL", "").strip() or state_dir / "ledger.sqlite"
    )
    key: str | Path = os.environ.get("SUNDSTAT_AUDIT_KEY") or state_dir / "audit.key"
    if isinstance(key, Path) and not key.is_file():
        print(
            f"No audit key at {key} and SUNDSTAT_AUDIT_KEY is unset; pass the state directory the service "
            "uses (--state-dir) or set SUNDSTAT_AUDIT_KEY.",
            file=sys.stderr,
        )
        return 2
    return verify_command(target, key, expected_head=args.expected_head, expected_count=args.expected_count)


def _add_ledger_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = _action_group(
        commands,
        "ledger",
        help_="offline checks of the budget ledger",
        description="Offline commands on the ledger: the file in the state directory, or PostgreSQL.",
    )
    verify = sub.add_parser(
        "verify",
        help="recompute the audit chain and check every ledger table against it",
        description=(
            "Recompute the hash chain of the ledger (with its audit key) and name the first bad entry. "
            "The ledger is --ledger-url, else $SUNDSTAT_LEDGER_URL, else ledger.sqlite in the state "
            "directory; the key is $SUNDSTAT_AUDIT_KEY, else audit.key in the state directory. Nothing is "
            "written. Exit 0 if intact, 1 if broken, 2 on usage errors."
        ),
    )
    verify.add_argument(
        "--state-dir", help="the service's state directory (default: $SUNDSTAT_STATE_DIR or state)"
    )
    verify.add_argument(
        "--ledger-url",
        help="a postgresql:// ledger to verify instead of the state directory's SQLite file "
        "(default: $SUNDSTAT_LEDGER_URL)",
    )
    verify.add_argument("--expected-head", help="a published head hash that must be in the chain")
    verify.add_argument("--expected-count", type=int, help="the entry count published with that head hash")
    verify.set_defaults(handler=_cmd_ledger_verify)


# --- registration -------------------------------------------------------------------------------


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the service's commands to the ``sundstat`` parser."""
    serve = commands.add_parser(
        "serve",
        help="run the API (and the dashboard)",
        description=(
            "Start the HTTP API with uvicorn and, unless --no-dashboard, the Streamlit dashboard. With no "
            "--db the embedded default dataset is served (built on first use). Every flag can also be set "
            "as a SUNDSTAT_* environment variable; see docs/operations.md."
        ),
    )
    serve.add_argument(
        "--db", type=Path, help="DuckDB file to serve (default: $SUNDSTAT_DB or the embedded dataset)"
    )
    serve.add_argument(
        "--state-dir", type=Path, help="ledger, tokens and audit key (default: $SUNDSTAT_STATE_DIR or state)"
    )
    serve.add_argument(
        "--host", help="bind address (default 127.0.0.1; others need SUNDSTAT_ALLOW_PUBLIC_BIND=1)"
    )
    serve.add_argument("--port", type=int, help="API port (default 8000)")
    serve.add_argument("--dashboard-port", type=int, help="dashboard port (default 8501)")
    serve.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    serve.add_argument("--workers", type=int, help="uvicorn worker processes (default 1)")
    serve.add_argument(
        "--ledger-url",
        help="keep the ledger in PostgreSQL, postgresql://user:password@host/db, shared by several API "
        "hosts (default: $SUNDSTAT_LEDGER_URL, else SQLite in the state directory)",
    )
    serve.add_argument(
        "--backend",
        choices=["duckdb", "spark"],
        help="query backend (default duckdb; spark runs the same compiled plans on Spark over Parquet)",
    )
    serve.add_argument(
        "--spark-master",
        help="Spark master URL for --backend spark (default local[*], e.g. spark://host:7077)",
    )
    serve.add_argument(
        "--parquet-dir",
        help="directory or URI with <register>.parquet and catalog.json for --backend spark "
        "(as written by 'sundstat generate' or exported from a built database)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level",
    )
    serve.add_argument(
        "--no-access-log", dest="access_log", action="store_false", help="no per-request log lines"
    )
    serve.set_defaults(handler=_cmd_serve)
    _add_admin_commands(commands)
    _add_ledger_commands(commands)
