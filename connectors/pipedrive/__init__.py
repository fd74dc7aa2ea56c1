"""The Pipedrive connector (``[crm] type = "pipedrive"``): see docs/connectors/pipedrive.md."""

from connectors.pipedrive._budget import TokenMeter
from connectors.pipedrive._connector import PipedriveConnector
from connectors.pipedrive._settings import PipedriveSettings

__all__ = ["PipedriveConnector", "PipedriveSettings", "TokenMeter"]
