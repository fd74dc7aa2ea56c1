"""``[crm]`` settings of the HubSpot connector (see docs/connectors/hubspot.md)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from connectors.base import ConnectorSettings
from connectors.http import HttpLimits

__all__ = ["HubSpotSettings"]


class HubSpotSettings(ConnectorSettings):
    """``[crm]`` keys of the HubSpot connector."""

    base_url: str = "https://api.hubapi.com"
    token: SecretStr
    """A private app access token (``pat-...``); prefer FLOWTLY_SYNC_CRM__TOKEN."""
    rate_limit: int = Field(100, ge=1)
    """Requests per rolling 10 s window until HubSpot's headers state the account's own."""
    search_rate: int = Field(5, ge=1)
    """Search requests per second (HubSpot allows 5 per account)."""
    search_overlap: float = Field(120.0, ge=0)
    """Seconds an incremental read reaches back before its cursor: HubSpot's search
    index trails writes by a few moments."""
    concurrency: int = Field(4, ge=1)
    timeout: float = Field(30.0, gt=0)
    """Seconds for each connect and read."""
    request_timeout: float = Field(45.0, gt=0)
    """Seconds one attempt may take as a whole."""
    request_deadline: float = Field(90.0, gt=0)
    """Seconds a request may take with its retries and backoff (waits HubSpot asks for
    are not counted)."""
    max_retry_after: float = Field(300.0, gt=0)
    """A 429 asking for a longer wait stops the run."""

    def http_limits(self) -> HttpLimits:
        return HttpLimits(
            concurrency=self.concurrency,
            rate_limit=0,  # `connectors.hubspot._pacing` paces every request instead
            timeout=self.timeout,
            request_timeout=self.request_timeout,
            request_deadline=self.request_deadline,
            max_retry_after=self.max_retry_after,
        )
