"""The service's settings: one validated object, read from ``SUNDSTAT_*`` environment variables.

Every setting has a safe default for a laptop on loopback. :func:`service.serve_checks.check_serving`
refuses settings that would be unsafe to serve with and says what to set instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from budget_ledger.errors import LedgerError
from budget_ledger.store import is_postgres_url
from query_engine.catalog import Catalog

from .response_time import parse_ladder

__all__ = [
    "DEFAULT_DATASET_PERSONS",
    "DEFAULT_DATASET_SEED",
    "EHDS_PURPOSES",
    "MIN_ADMIN_TOKEN_LENGTH",
    "Settings",
    "SettingsError",
    "default_db_path",
]

DEFAULT_DATASET_PERSONS = 100_000
DEFAULT_DATASET_SEED = 20261128
MIN_ADMIN_TOKEN_LENGTH = 32

# Secondary-use purposes of the European Health Data Space regulation (Art. 53) that this service
# answers with aggregate statistics.
EHDS_PURPOSES = (
    "public_health",
    "policy",
    "official_statistics",
    "education",
    "research",
    "care_improvement",
)
ALL_REGISTERS = ("cpr", "lpr", "lmdb", "dar", "ind", "udda")


class SettingsError(ValueError):
    """The settings are missing or unsafe; the message says which variable to set."""


def default_db_path() -> Path:
    """The embedded default dataset that ``make run`` builds (relative to the working directory)."""
    return Path("data") / f"sundstat-{DEFAULT_DATASET_PERSONS}-{DEFAULT_DATASET_SEED}.duckdb"


def _split_list(value: Any) -> Any:
    """Accept ``a,b,c`` as well as a JSON list in environment variables."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


StrList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Every setting of the service; each field is read from ``SUNDSTAT_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="SUNDSTAT_", extra="ignore", frozen=True)

    # --- where things are ---------------------------------------------------------------------
    db: Path | None = Field(
        default=None, description="DuckDB file with the registers; unset: the embedded default dataset."
    )
    ledger_url: SecretStr | None = Field(
        default=None,
        description="postgresql://... to keep the ledger in PostgreSQL (several API hosts); unset: SQLite in the state dir.",
    )
    state_dir: Path = Field(
        default=Path("state"), description="Directory for the ledger, token database and audit key."
    )
    backend: Literal["duckdb", "spark"] = Field(
        default="duckdb",
        description="Query backend: duckdb (the database file) or spark (Parquet files, the scale-out engine).",
    )
    spark_master: str = Field(default="local[*]", description="Spark master URL for the spark backend.")
    parquet_dir: str | None = Field(
        default=None,
        description="Directory or URI with <register>.parquet and catalog.json, for the spark backend.",
    )

    # --- secrets ------------------------------------------------------------------------------
    admin_token: SecretStr | None = Field(
        default=None,
        description="When set, this is the administrator's token (at least 32 characters).",
    )
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="Pseudonymisation key for raw CPR numbers (32 random bytes as hex or base64), used by "
        "'sundstat build'; serve checks it and drops it at start.",
    )
    audit_key: SecretStr | None = Field(
        default=None,
        description="Audit-chain HMAC key as hex (32 bytes); unset: a 0600 key file in the state dir.",
    )

    # --- network ------------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the API binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port of the API.")
    dashboard_port: int = Field(default=8501, ge=0, le=65535, description="Port of the Streamlit dashboard.")
    workers: int = Field(default=1, ge=1, le=64, description="Number of uvicorn worker processes.")
    allow_public_bind: bool = Field(
        default=False, description="Set to 1 to allow binding to a non-loopback address."
    )
    public_url: str | None = Field(
        default=None, description="URL under which the API is reached (for printed links and the dashboard)."
    )

    # --- limits -------------------------------------------------------------------------------
    rate_limit_per_second: float = Field(
        default=20.0,
        gt=0,
        description="Sustained requests per second per token (one limit across workers and hosts).",
    )
    rate_limit_burst: int = Field(default=60, ge=1, description="Burst size of the per-token rate limit.")
    public_rate_limit_per_second: float = Field(
        default=5.0, gt=0, description="Sustained requests per second per client address without a token."
    )
    public_rate_limit_burst: int = Field(
        default=30, ge=1, description="Burst size of the per-address rate limit for requests without a token."
    )
    trust_loopback_anonymous: bool = Field(
        default=False,
        description="Set to 1 to exempt requests without a token from a loopback address (a dashboard on "
        "this host serving many visitors) from the per-address limit; failed authentications stay limited.",
    )
    max_concurrent_queries: int = Field(
        default=4, ge=1, description="Queries executing at once per worker; more wait in line."
    )
    queue_timeout_seconds: float = Field(
        default=10.0, ge=0, description="How long a query waits for a free slot before a 503 `busy`."
    )
    min_response_seconds: float = Field(
        default=0.3,
        ge=0,
        le=30,
        description="Responses of POST /v1/queries and /v1/sql are padded to at least this time (those "
        "that wait for their response_ladder rung take longer anyway).",
    )
    token_ttl_days: int = Field(default=365, ge=1, description="Default lifetime of a new token in days.")
    audit_reads: bool = Field(
        default=True,
        description="Chain access records (reads, previews, refusals, cached serves) in batches per worker.",
    )

    # Response timing and release limits --------------------------------------------------------
    response_ladder: str = Field(
        default="0.5,1,2,4,8,16,30",
        description="Seconds a fresh query may take, ascending; each query answers at the rung its public "
        "cost model picks, whatever happens ('off': answer when done, padded to min_response_seconds).",
    )
    declared_persons: int = Field(
        default=DEFAULT_DATASET_PERSONS,
        ge=1,
        description="Public population size the response-time model assumes (times each register's "
        "declared_rows_per_person); never read from the data.",
    )
    response_rows_per_second: float = Field(
        default=10_000_000,
        gt=0,
        description="Row operations per second the response-time model assumes for this installation.",
    )
    max_releases_per_day: int = Field(
        default=500,
        ge=0,
        description="Fresh (not cached or replayed) releases a project may make per UTC day; 0: no limit.",
    )

    @field_validator("response_ladder")
    @classmethod
    def _ladder(cls, value: str) -> str:
        parse_ladder(value)
        return value

    @property
    def response_ladder_steps(self) -> tuple[float, ...] | None:
        """The ladder's rungs in seconds, or None when fixed response times are off."""
        return parse_ladder(self.response_ladder)

    # Shared service state -----------------------------------------------------------------------
    state_url: SecretStr | None = Field(
        default=None,
        description="postgresql://... for the service state (tokens, applications, permits, rate limits); "
        "unset: the PostgreSQL ledger URL when there is one, else service.sqlite in the state dir.",
    )
    auth_failure_rate_per_second: float = Field(
        default=0.05,
        gt=0,
        description="Sustained failed authentications per second per client address (then 429).",
    )
    auth_failure_burst: int = Field(
        default=10, ge=1, description="Failed authentications a client address may make at once."
    )
    denied_audit_window_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Denied requests (401, 403, another project's 404) are chained as one record per "
        "actor, route and project per this many seconds, with a count.",
    )
    permit_default_days: int = Field(
        default=365, ge=1, description="Expiry of a project created without one, in days from its creation."
    )

    # --- engine -------------------------------------------------------------------------------
    small_cell_threshold: int = Field(
        default=5, ge=0, description="Noisy counts below this are shown as '<N' (suppressed)."
    )
    engine_memory_limit: str = Field(default="1GB", description="DuckDB memory limit per worker.")
    engine_threads: int = Field(default=2, ge=1, description="DuckDB threads per worker.")
    engine_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Execution time limit of one query."
    )
    engine_max_cells: int = Field(
        default=20_000, ge=1, description="Largest number of output cells of a query."
    )
    engine_max_group_columns: int = Field(default=3, ge=1, description="Most group-by columns in one query.")
    engine_max_epsilon: float = Field(default=10.0, gt=0, description="Largest epsilon one query may spend.")
    engine_max_rho: float = Field(default=5.0, gt=0, description="Largest rho one query may spend.")

    # Scale-out ------------------------------------------------------------------------------------
    engine_temp_dir: Path | None = Field(
        default=None,
        description="Where DuckDB spills what does not fit in engine_memory_limit (large joins, sorts and "
        "windows), a private directory per worker, removed at exit; unset: duckdb-tmp in the state dir.",
    )

    @property
    def engine_spill_dir(self) -> Path:
        """The directory under which each worker's DuckDB spills: the setting, else the state dir's."""
        return self.engine_temp_dir if self.engine_temp_dir is not None else self.state_dir / "duckdb-tmp"

    def missing_extras(self) -> list[str]:
        """The optional packages these settings need and the installation lacks, each with its pip line."""
        problems = []
        if self.backend == "spark":
            try:
                import pyspark  # noqa: F401
            except ImportError:
                from query_engine.backends.spark_backend import SPARK_EXTRA_MISSING

                problems.append(SPARK_EXTRA_MISSING)
        if self.ledger_url is not None and is_postgres_url(self.ledger_url.get_secret_value()):
            try:
                import budget_ledger.postgres_store  # noqa: F401
            except LedgerError as exc:  # raised when psycopg is not installed
                problems.append(exc.message)
        return problems

    # Minimum loss per query
    min_epsilon: float = Field(
        default=0.01,
        gt=0,
        description="Smallest epsilon a query is charged, however its loss is stated (below: loss_too_small).",
    )
    min_rho: float = Field(
        default=0.01**2 / 2,
        gt=0,
        description="Smallest rho a zCDP query is charged (default 0.01^2/2 = 5e-5).",
    )

    # --- approval policy ----------------------------------------------------------------------
    policy_max_epsilon: float = Field(
        default=1.0, ge=0, description="Applications up to this epsilon are approved automatically."
    )
    policy_max_delta: float = Field(
        default=1e-6, ge=0, lt=1, description="Applications up to this delta are approved automatically."
    )
    policy_max_duration_days: int = Field(
        default=365, ge=1, description="Applications up to this many days are approved automatically."
    )
    policy_allowed_registers: StrList = Field(
        default=list(ALL_REGISTERS),
        description="Registers an application may name and be approved automatically.",
    )
    policy_allowed_purposes: StrList = Field(
        default=["public_health", "official_statistics", "research", "education"],
        description="EHDS purposes approved automatically (others wait for an administrator).",
    )

    # Population budget per register
    default_register_cap_epsilon: float = Field(
        default=20.0,
        ge=0,
        allow_inf_nan=False,
        description="Epsilon of the cap every register gets at start-up unless it has one: the total over all "
        "projects for the life of the database. 0 or 'none' turns default caps off.",
    )
    default_register_cap_delta: float = Field(
        default=1e-7, ge=0, lt=1, allow_inf_nan=False, description="Delta of the default register cap."
    )

    @field_validator("default_register_cap_epsilon", mode="before")
    @classmethod
    def _none_is_off(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("none", "off", ""):
            return 0.0
        return value

    @property
    def default_register_cap(self) -> tuple[float, float] | None:
        """The default population budget (epsilon, delta) per register, or None when turned off."""
        if self.default_register_cap_epsilon == 0:
            return None
        return self.default_register_cap_epsilon, self.default_register_cap_delta

    # Identity and automatic approval ---------------------------------------------------------------
    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Connect issuer URL of the institutions' identity provider; unset: no sign-in "
        "(administrators issue applicant accounts with 'sundstat admin create-applicant').",
    )
    oidc_client_id: str | None = Field(default=None, description="Client id registered at the provider.")
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="Client secret registered at the provider."
    )
    oidc_redirect_url: str | None = Field(
        default=None,
        description="Callback URL registered at the provider; unset: <public URL>/v1/auth/callback.",
    )
    oidc_scopes: str = Field(
        default="openid email profile", description="Scopes asked for at sign-in (space-separated)."
    )
    oidc_org_claim: str = Field(
        default="org", description="ID-token claim that names the member's organisation."
    )
    applicant_token_ttl_days: int = Field(
        default=30, ge=1, description="Lifetime of an applicant token in days."
    )
    quota_window_days: int = Field(
        default=365, ge=1, description="Quotas and the pool count automatic approvals in this many days."
    )
    quota_applicant_projects: int = Field(
        default=3, ge=0, description="Automatically approved projects per applicant in the quota window."
    )
    quota_applicant_epsilon: float = Field(
        default=3.0,
        ge=0,
        description="Total automatically approved epsilon per applicant in the quota window.",
    )
    quota_institution_projects: int = Field(
        default=20, ge=0, description="Automatically approved projects per institution in the quota window."
    )
    quota_institution_epsilon: float = Field(
        default=20.0,
        ge=0,
        description="Total automatically approved epsilon per institution in the quota window.",
    )
    auto_approval_pool_epsilon: float = Field(
        default=50.0,
        ge=0,
        description="Total epsilon of all automatically approved projects together in the quota window.",
    )
    application_rate_limit_per_minute: int = Field(
        default=10,
        ge=1,
        description="Applications per minute from one client address, loopback included (shared by every "
        "worker and host, like the other rate limits).",
    )

    # --- first start --------------------------------------------------------------------------
    demo_project: bool = Field(
        default=True, description="Create the 'demo' project and token on first start."
    )
    demo_epsilon: float = Field(default=2.0, gt=0, description="Pure-DP budget of the demo project.")

    @field_validator("ledger_url", "state_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("policy_allowed_registers", "policy_allowed_purposes", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("policy_allowed_purposes")
    @classmethod
    def _known_purposes(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(EHDS_PURPOSES))
        if unknown:
            raise ValueError(f"unknown purposes {unknown}; choose from {list(EHDS_PURPOSES)}")
        return value

    @property
    def oidc_enabled(self) -> bool:
        """True when an OpenID Connect provider is configured for applicant sign-in."""
        return self.oidc_issuer is not None

    def oidc_problems(self) -> list[str]:
        """What is missing for sign-in through the configured OpenID Connect provider."""
        if self.oidc_issuer is None:
            return []
        missing = [
            name
            for name, value in (
                ("SUNDSTAT_OIDC_CLIENT_ID", self.oidc_client_id),
                ("SUNDSTAT_OIDC_CLIENT_SECRET", self.oidc_client_secret),
            )
            if not value
        ]
        if not missing:
            return []
        return [
            f"SUNDSTAT_OIDC_ISSUER is set but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            "not: register sundstat as a client at the identity provider and set both (or unset "
            "SUNDSTAT_OIDC_ISSUER to run without sign-in)."
        ]

    @property
    def oidc_callback_url(self) -> str:
        """Where the provider sends the browser back: the setting, else the API's own callback route."""
        return self.oidc_redirect_url or f"{self.api_url}/v1/auth/callback"

    @property
    def db_path(self) -> Path:
        """The database to serve: ``db`` or the embedded default."""
        return self.db if self.db is not None else default_db_path()

    def spark_catalog(self) -> Catalog:
        """The catalog the spark backend serves: ``catalog.json`` next to the Parquet files."""
        assert self.parquet_dir is not None
        if "://" in self.parquet_dir:  # object storage: only Spark can read it
            from query_engine.backends.spark_backend import open_spark_engine

            with open_spark_engine(self.parquet_dir, self.spark_master) as engine:
                return engine.catalog
        return Catalog.loads((Path(self.parquet_dir) / "catalog.json").read_text(encoding="utf-8"))

    @property
    def uses_default_db(self) -> bool:
        """True when no database was given and the embedded default is served."""
        return self.db is None

    @property
    def ledger_path(self) -> Path:
        """The SQLite file of the budget ledger and audit chain."""
        return self.state_dir / "ledger.sqlite"

    @property
    def ledger_description(self) -> str:
        """Where the ledger is, safe to print: the SQLite file, or PostgreSQL without the password."""
        if self.ledger_url is None:
            return str(self.ledger_path)
        text = self.ledger_url.get_secret_value()
        if not is_postgres_url(text):
            return "(not a postgresql:// URL)"
        from budget_ledger.postgres_store import describe_url

        try:
            return f"{describe_url(text)} (PostgreSQL)"
        except LedgerError:  # the URL does not parse; opening the ledger says so
            return "(a PostgreSQL URL that does not parse)"

    @property
    def service_db_path(self) -> Path:
        """The SQLite file holding tokens, applications and service metadata."""
        return self.state_dir / "service.sqlite"

    @property
    def state_store_url(self) -> str | None:
        """The PostgreSQL URL of the service state, or None for service.sqlite in the state dir."""
        from .state import state_url

        explicit = self.state_url.get_secret_value() if self.state_url else None
        return state_url(explicit, self.ledger_url.get_secret_value() if self.ledger_url else None)

    @property
    def audit_key_path(self) -> Path:
        """The 0600 audit key file used when ``SUNDSTAT_AUDIT_KEY`` is unset."""
        return self.state_dir / "audit.key"

    @property
    def api_url(self) -> str:
        """The URL clients use to reach the API."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def to_env(self) -> dict[str, str]:
        """These settings as ``SUNDSTAT_*`` variables, so worker processes rebuild the same object."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                text = value.get_secret_value()
            elif isinstance(value, list):
                text = ",".join(value)
            elif isinstance(value, bool):
                text = "1" if value else "0"
            else:
                text = str(value)
            env[f"SUNDSTAT_{name.upper()}"] = text
        return env
