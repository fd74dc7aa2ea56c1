"""Data quality: the gates every record passes before it is written to either side.

`gates` judges records (`Gates`), `checks` holds the checks of single values (tax ids by
country, countries, currencies, e-mail, phone), `settings` is ``[quality]``.
"""

from sync.quality.gates import (
    DEFAULT_LEVELS,
    REQUIRED_FIELDS,
    SCHEMA_SENSITIVE,
    GateName,
    Gates,
    QualityProblem,
    sensitive_fields,
)
from sync.quality.settings import GateLevel, QualityConfig

__all__ = [
    "DEFAULT_LEVELS",
    "REQUIRED_FIELDS",
    "SCHEMA_SENSITIVE",
    "GateLevel",
    "GateName",
    "Gates",
    "QualityConfig",
    "QualityProblem",
    "sensitive_fields",
]
