"""``[quality]``: the level of each data-quality gate, and the fields masked besides tax ids."""

from __future__ import annotations

from enum import StrEnum

from pydantic import field_validator

from sync.settings_base import ALL_FIELDS, Section

__all__ = ["GateLevel", "QualityConfig"]


class GateLevel(StrEnum):
    """What a failing gate does: keep the record from being written, report it, or nothing."""

    REJECT = "reject"
    WARN = "warn"
    OFF = "off"


class QualityConfig(Section):
    """``[quality]``: the data-quality gate levels, and fields masked besides tax ids.

    Each gate is ``reject`` (the record is not written and is reported), ``warn`` (written,
    and reported as a warning) or ``off``. See `sync.quality.gates` for what each gate checks.
    """

    vat: GateLevel = GateLevel.REJECT
    tin: GateLevel = GateLevel.REJECT
    email: GateLevel = GateLevel.REJECT
    phone: GateLevel = GateLevel.WARN
    country: GateLevel = GateLevel.REJECT
    currency: GateLevel = GateLevel.REJECT
    required: GateLevel = GateLevel.REJECT
    sensitive_fields: tuple[str, ...] = ()
    """Canonical fields masked in logs and reports, besides ``tin`` and ``vat_number``."""

    @field_validator("sensitive_fields")
    @classmethod
    def _known_sensitive(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - ALL_FIELDS)
        if unknown:
            raise ValueError(f"unknown canonical field(s): {', '.join(unknown)}")
        return value
