"""The ``[crm]`` keys of the Salesforce connector."""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.base import ConnectorSettings

__all__ = ["SalesforceSettings"]

_VERSION = re.compile(r"\d{2,3}\.0")


class SalesforceSettings(ConnectorSettings):
    """Where the org is, how to sign in, and how hard to press its API.

    Either ``client_id`` + ``client_secret`` (the OAuth 2.0 client credentials flow
    against ``{instance_url}/services/oauth2/token``, refreshed when a session expires)
    or a ready ``access_token`` (not refreshed).
    """

    instance_url: str
    """``https://ACME.my.salesforce.com``."""
    client_id: str | None = None
    client_secret: SecretStr | None = None
    access_token: SecretStr | None = None
    api_version: str = "62.0"
    notes: Literal["ContentNote", "Note"] = "ContentNote"
    """Which object holds a company's notes: enhanced notes or classic ``Note``."""
    budget_reserve: float = Field(0.05, ge=0, lt=1)
    """The share of the daily API request allowance left untouched: a run stops before
    ``Sforce-Limit-Info`` reports more than ``1 - budget_reserve`` of it used, so other
    integrations of the org keep working."""
    overlap_seconds: int = Field(300, ge=0)
    """How far before its cursor an incremental read starts (``SystemModstamp`` is set
    when a transaction starts; one committing late would otherwise be skipped)."""
    query_batch_size: int = Field(2000, ge=200, le=2000)
    """Records per query page asked for (``Sforce-Query-Options: batchSize``)."""
    concurrency: int = Field(4, ge=1, le=25)
    rate_limit: float = Field(20.0, ge=0)
    timeout: float = Field(30.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20)

    @field_validator("instance_url")
    @classmethod
    def _origin(cls, value: str) -> str:
        text = value.strip().rstrip("/")
        if not re.fullmatch(r"https?://[^/?#\s]+", text):
            raise ValueError("the org's origin, e.g. https://ACME.my.salesforce.com (no path)")
        return text

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        text = value.strip().removeprefix("v")
        if not _VERSION.fullmatch(text):
            raise ValueError('an API version such as "62.0"')
        return text

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        pair = self.client_id is not None and self.client_secret is not None
        if not pair and self.access_token is None:
            raise ValueError("set client_id and client_secret, or access_token")
        if (self.client_id is None) != (self.client_secret is None):
            raise ValueError("client_id and client_secret go together")
        return self

    def secrets(self) -> list[str]:
        """The secret values, to keep out of every message."""
        return [
            secret.get_secret_value()
            for secret in (self.client_secret, self.access_token)
            if secret is not None
        ]
