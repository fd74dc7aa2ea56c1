"""The fake's answers checked against the official SDK's models (``hubspot-api-client``,
pinned in the ``test`` extra), so the fake cannot drift from HubSpot's shapes.

The SDK's generated models know each schema's attributes (``openapi_types``, JSON names in
``attribute_map``) and refuse a missing required one when built with client-side
validation. `check` deserializes an answer with validation on and also refuses keys no
model declares (a renamed envelope or a misspelled field would pass the SDK silently).
"""

from __future__ import annotations

import importlib
import json
from datetime import datetime
from functools import cache
from typing import Any

__all__ = ["ShapeDrift", "check"]

_MODULES = {
    "companies": "hubspot.crm.companies",
    "contacts": "hubspot.crm.contacts",
    "notes": "hubspot.crm.objects.notes",
    "properties": "hubspot.crm.properties",
    "associations": "hubspot.crm.associations.v4",
}
_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "datetime": (str,),
    "date": (str,),
    "object": (object,),
}


_UNDECLARED: dict[str, frozenset[str]] = {"Error": frozenset({"status"})}
"""Keys HubSpot sends that its published schema leaves out (every error says
``"status": "error"``)."""


class ShapeDrift(AssertionError):
    """An answer of the fake that HubSpot's published models would not accept."""


@cache
def _module(api: str) -> Any:
    return importlib.import_module(_MODULES[api])


@cache
def _client(api: str) -> Any:
    module = _module(api)
    configuration = module.Configuration()
    configuration.client_side_validation = True
    return module.ApiClient(configuration)


class _Raw:
    def __init__(self, data: str) -> None:
        self.data = data


def _strict(api: str, value: Any, type_name: str, where: str) -> None:
    """Every key declared and every primitive of its declared type, recursively."""
    if value is None:
        return
    if type_name.startswith("list["):
        if not isinstance(value, list):
            raise ShapeDrift(f"{where}: expected a list, got {type(value).__name__}")
        for n, item in enumerate(value):
            _strict(api, item, type_name[5:-1], f"{where}[{n}]")
        return
    if type_name.startswith(("dict(", "dict[")):
        if not isinstance(value, dict):
            raise ShapeDrift(f"{where}: expected an object, got {type(value).__name__}")
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            _strict(api, item, inner, f"{where}.{key}")
        return
    if type_name in _PRIMITIVES:
        if not isinstance(value, _PRIMITIVES[type_name]):
            raise ShapeDrift(f"{where}: expected {type_name}, got {value!r}")
        if type_name == "datetime":
            datetime.fromisoformat(str(value))
        return
    model = getattr(_module(api).models, type_name)
    if not isinstance(value, dict):
        raise ShapeDrift(f"{where}: expected a {type_name} object, got {value!r}")
    known = {json_name: attr for attr, json_name in model.attribute_map.items()}
    for key, item in value.items():
        if key in _UNDECLARED.get(type_name, frozenset()):
            continue
        if key not in known:
            raise ShapeDrift(f"{where}: {type_name} has no key {key!r}")
        _strict(api, item, model.openapi_types[known[key]], f"{where}.{key}")


def check(api: str, model: str, body: bytes) -> None:
    """Raise `ShapeDrift` unless ``body`` is a valid ``model`` of the SDK module ``api``."""
    text = body.decode()
    try:
        _client(api).deserialize(_Raw(text), model)
    except (ValueError, TypeError) as refused:
        raise ShapeDrift(f"{model}: {refused}") from refused
    _strict(api, json.loads(text), model, model)
