"""Settings of one endpoint process, read once from its environment (prefix ``SIGNOFF_``).

The runner that starts the process passes them through the environment: the admin token
(``SIGNOFF_ENDPOINT_TOKEN``, never on the command line, never logged), where the store is
(``SIGNOFF_HOME`` / ``SIGNOFF_DATABASE_URL``, as for every signoff process), and the
prediction log settings.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServingSettings"]


class ServingSettings(BaseSettings):
    """What an endpoint process reads from its environment besides its arguments.

    ``home`` and ``database_url`` mean what they mean for the CLI (same variables), so an
    endpoint logs predictions into the store of the signoff that started it. The class
    stands alone rather than reusing the CLI's settings so that an endpoint process does not
    import the engine, the executors and the review report at start.
    """

    model_config = SettingsConfigDict(env_prefix="SIGNOFF_", extra="ignore")

    home: Path = Field(default=Path(".signoff"), description="folder for state and run files")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite in the home folder"
    )
    endpoint_token: SecretStr | None = Field(
        default=None,
        description="bearer token of the /admin API; without one the admin API is off",
    )
    prediction_log_sample: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="share of prediction requests logged (inputs, outputs, version, latency); "
        "0 turns logging off",
    )
    prediction_log_parquet: Path | None = Field(
        default=None,
        description="log predictions to Parquet files in this folder instead of the store "
        "(needs pyarrow)",
    )

    @property
    def resolved_database_url(self) -> str:
        """The store's URL: the given one, or SQLite in the home folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home.expanduser().resolve() / 'signoff.db'}"
