"""Country names in the languages of European CRMs (``Deutschland``, ``Pologne``) -> ISO codes.

pycountry resolves codes and English names; its gettext catalogues hold the translated
names, from which this builds one index. A name that means different countries in two
languages is left out rather than guessed.
"""

from __future__ import annotations

import gettext
from functools import lru_cache

import pycountry

__all__ = ["country_from_name"]

_LANGUAGES = (
    "bg", "cs", "da", "de", "el", "es", "et", "fi", "fr", "ga", "hr", "hu", "it", "lt",
    "lv", "mt", "nb_NO", "nl", "pl", "pt", "ro", "sk", "sl", "sv",
)  # fmt: skip


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


@lru_cache(maxsize=1)
def _index() -> dict[str, str]:
    found: dict[str, set[str]] = {}
    catalogues = [
        gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language], fallback=True)
        for language in _LANGUAGES
    ]
    for country in pycountry.countries:
        english = [
            getattr(country, attribute, None)
            for attribute in ("name", "official_name", "common_name")
        ]
        for name in filter(None, english):
            found.setdefault(_fold(name), set()).add(country.alpha_2)
            for catalogue in catalogues:
                found.setdefault(_fold(catalogue.gettext(name)), set()).add(country.alpha_2)
    return {name: next(iter(codes)) for name, codes in found.items() if len(codes) == 1}


def country_from_name(text: str) -> str | None:
    """The ISO 3166 alpha-2 code of a country named in one of the EU languages, or None."""
    return _index().get(_fold(text))
