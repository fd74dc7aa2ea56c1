"""The HubSpot CRM connector (private modules ``_*.py`` inside)."""

from connectors.hubspot.connector import HubSpotConnector, HubSpotSettings

__all__ = ["HubSpotConnector", "HubSpotSettings"]
