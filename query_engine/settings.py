"""Engine settings: limits and resources, one validated object passed to ``Engine.open``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["EngineSettings"]


class EngineSettings(BaseModel):
    """Limits on what one query may ask for, and the resources the backend may use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_cells: int = Field(default=20_000, ge=1, description="Most output cells (product of key-set sizes).")
    max_group_columns: int = Field(default=3, ge=1, description="Most group-by columns in one query.")
    max_epsilon: float = Field(default=10.0, gt=0, description="Largest epsilon one query may spend.")
    max_rho: float = Field(default=5.0, gt=0, description="Largest rho one query may spend.")
    min_epsilon: float = Field(
        default=0.01, gt=0, description="Smallest epsilon one query is charged (however its loss is stated)."
    )
    min_rho: float = Field(
        default=0.01**2 / 2, gt=0, description="Smallest rho one query is charged (zCDP): 0.01^2 / 2."
    )
    partition_delta: float = Field(
        default=1e-7, gt=0, lt=1, description="Delta spent by DP partition selection over open-domain keys."
    )
    small_cell_threshold: int = Field(
        default=5, ge=0, description="Noisy counts below this are shown as '<N'."
    )
    query_timeout_s: float = Field(
        default=30.0, gt=0, description="Wall-clock limit of one query's execution."
    )
    memory_limit: str = Field(default="2GB", pattern=r"^\d+(\.\d+)?\s*[KMGT]i?B$")
    threads: int = Field(default=2, ge=1, le=256)
    temp_dir: str | None = Field(
        default=None,
        description="DuckDB spills what exceeds memory_limit under this directory (a private one per "
        "process); None: DuckDB's default, <database>.tmp next to the file.",
    )
    max_quantile_candidates: int = Field(
        default=2000,
        ge=2,
        le=10_000,
        description="Most candidates in a quantile's grid (the declared bounds at their resolution).",
    )

    @model_validator(mode="after")
    def _minimum_below_maximum(self) -> EngineSettings:
        for name in ("epsilon", "rho"):
            low, high = getattr(self, f"min_{name}"), getattr(self, f"max_{name}")
            if low > high:
                raise ValueError(f"The minimum min_{name} ({low}) must not exceed max_{name} ({high})")
        return self
