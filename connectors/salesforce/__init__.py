"""The Salesforce connector (see `connectors.salesforce.connector`)."""

from connectors.salesforce._settings import SalesforceSettings
from connectors.salesforce.connector import SalesforceConnector

__all__ = ["SalesforceConnector", "SalesforceSettings"]
