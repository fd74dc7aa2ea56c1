"""The HubSpot CRM connector (private modules ``_*.py`` inside)."""

from connectors.hubspot._settings import HubSpotSettings
from connectors.hubspot.connector import HubSpotConnector

__all__ = ["HubSpotConnector", "HubSpotSettings"]
