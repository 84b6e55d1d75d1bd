"""Settings: read once at the edge (environment with prefix SIGNOFF_, or flags) and passed down."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from signoff.executors.gpus import parse_gpus

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Where signoff keeps its state and how it runs tasks.

    By default everything lives in ``.signoff/`` under the current folder: the SQLite
    database ``signoff.db``, run folders and endpoint logs.
    """

    model_config = SettingsConfigDict(env_prefix="SIGNOFF_", extra="ignore")

    home: Path = Field(default=Path(".signoff"), description="folder for state and run files")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite in the home folder"
    )
    slots: int | None = Field(default=None, description="parallel task slots; default: cores")
    gpus: str | None = Field(
        default=None,
        description="GPUs handed to task runs: a count (2) or a comma list of ids (0,2); "
        "default: what `nvidia-smi -L` lists, none without it",
    )
    executor: Literal["local", "ray"] = Field(
        default="local",
        description="where task runs run: local processes, or a Ray cluster (signoff[ray]); "
        "a flow's or a task's `executor:` overrides it",
    )
    ray_address: str | None = Field(
        default=None,
        description="the Ray cluster to use (`auto`, `ray://host:10001` or the GCS address "
        "host:6379); default: a local Ray started for this process",
    )
    ray_placement_timeout: float = Field(
        default=600.0,
        gt=0,
        description="a Ray task no node can place for this many seconds fails with Ray's "
        "pending demand as its reason",
    )
    artifacts_url: str | None = Field(
        default=None,
        description="where task outputs, code snapshots and models are kept: an fsspec URL "
        "(s3://bucket/prefix, signoff[s3]) or a folder; default: <home>/artifacts",
    )
    user: str | None = Field(default=None, description="who this CLI acts as on a laptop")
    lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="a driving process renews its run's lease this often (x1/3); a process "
        "silent for this long is taken for dead and its runs are taken over",
    )

    base_url: str = Field(
        default="http://127.0.0.1:8765",
        description="public URL of `signoff server`; e-mailed links are built from it only",
    )
    secret_key: SecretStr | None = Field(
        default=None, description="signs links and cookies; default: <home>/secret.key"
    )
    audit_key: SecretStr | None = Field(
        default=None,
        description="keys the audit chain and its checkpoints (HMAC); default: "
        "<home>/audit.key, created 0600 on first start. Every process writing to one "
        "database must use the same key",
    )
    audit_anchor_url: str | None = Field(
        default=None,
        description="also POST every signed audit checkpoint (JSON) to this URL, outside "
        "the reach of whoever can edit the database and the home folder",
    )
    smtp_host: str | None = Field(default=None, description="no SMTP host: mail goes to outbox")
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    mail_from: str = "signoff@localhost"
    webhook_url: str | None = Field(
        default=None, description="also post gate notices (Slack-compatible JSON) here"
    )
    server_url: str | None = Field(
        default=None,
        description="with it, `runs`, `show`, `logs`, `gates`, `approve` and `reject` ask this "
        "signoff server (its REST API) instead of the local store",
    )
    token: SecretStr | None = Field(
        default=None,
        description="an API token (signoff users token): sent to `server_url`, or, on a "
        "local store with users, who the command line acts as",
    )
    credentials_file: Path | None = Field(
        default=None,
        description="where `signoff login` keeps its tokens (0600); default: "
        "$XDG_CONFIG_HOME/signoff/credentials.json or ~/.config/signoff/credentials.json",
    )

    failpoints: str = Field(
        default="",
        description="crash tests only: comma-separated pause points (signoff.failpoints)",
    )

    @field_validator("gpus")
    @classmethod
    def _check_gpus(cls, value: str | None) -> str | None:
        if value is not None:
            parse_gpus(value)  # a bad value is refused here, once, at the edge
        return value

    @property
    def resolved_artifacts_url(self) -> str:
        return self.artifacts_url or str(self.resolved_home / "artifacts")

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_credentials_file(self) -> Path:
        if self.credentials_file is not None:
            return self.credentials_file.expanduser().resolve()
        config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(config) / "signoff" / "credentials.json"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_home / 'signoff.db'}"
