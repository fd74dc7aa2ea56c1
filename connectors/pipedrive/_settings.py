"""``[crm] type = "pipedrive"``: where the company's Pipedrive is and how hard to use it."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from connectors.base import ConnectorSettings

__all__ = ["PipedriveSettings"]


class PipedriveSettings(ConnectorSettings):
    """The settings of the Pipedrive connector (``[crm]`` minus ``type``)."""

    base_url: str
    """The company domain, ``https://ACME.pipedrive.com`` (``/api/v1`` and ``/api/v2``
    are added per call)."""
    token: SecretStr
    """The API token, sent as the ``x-api-token`` header (FLOWTLY_SYNC_CRM__TOKEN)."""
    concurrency: int = Field(4, ge=1, le=16)
    """Requests in flight at once."""
    rate_limit: float = Field(10.0, ge=0)
    """Requests per second at most: 20 per 2-second window, the smallest plan's burst
    limit. The ``x-ratelimit-*`` headers pace further when the window says so."""
    token_reserve: int = Field(0, ge=0)
    """Daily API tokens left untouched for other integrations of the company: the run
    stops before the remaining budget would drop below it."""
    timeout: float = Field(30.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    page_size: int = Field(500, ge=1, le=500)
    """Members per page of a listing (Pipedrive allows 500 at most)."""

    @field_validator("base_url")
    @classmethod
    def _origin_only(cls, value: str) -> str:
        text = value.strip().rstrip("/")
        for suffix in ("/api/v1", "/api/v2", "/v1"):
            if text.endswith(suffix):
                text = text[: -len(suffix)]
        if not text.startswith(("https://", "http://")):
            raise ValueError("the company domain as a URL, like https://ACME.pipedrive.com")
        return text
