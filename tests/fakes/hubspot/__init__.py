"""An in-process HubSpot: `FakeHubSpot` holds a portal, `hubspot_app` serves it."""

from fakes.hubspot.app import hubspot_app
from fakes.hubspot.state import FakeHubSpot, Limits

__all__ = ["FakeHubSpot", "Limits", "hubspot_app"]
