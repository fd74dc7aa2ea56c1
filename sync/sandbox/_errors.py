"""RFC 7807 problem documents the way API Platform 4 writes them (JSON-LD flavour)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from starlette.responses import Response

from sync.sandbox._json import JsonObject, JsonValue, encode

__all__ = [
    "EMAIL_CODE",
    "NOT_BLANK_CODE",
    "NOT_NULL_CODE",
    "Problem",
    "Violation",
    "problem_response",
]

NOT_BLANK_CODE = "c1051bb4-d103-4f74-8988-acbcafc7fdc3"
NOT_NULL_CODE = "ad32d13f-c3d4-423b-909a-857b961eb720"
EMAIL_CODE = "bd79c0ab-ddba-46cc-a703-a7a4b08de310"

PROBLEM_TYPE = "application/problem+json; charset=utf-8"
_ERROR_LINK = '<http://www.w3.org/ns/hydra/error>; rel="http://www.w3.org/ns/json-ld#error"'
_TITLE = "An error occurred"


@dataclass(frozen=True, slots=True)
class Violation:
    """One constraint violation: the property path, the validator message and code."""

    path: str
    message: str
    code: str


@dataclass(eq=False)
class Problem(Exception):
    """An error answer: raised anywhere in a handler, rendered by the app."""

    status: int
    detail: str
    headers: Mapping[str, str] = field(default_factory=dict)
    violations: Sequence[Violation] = ()

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}"


def _generic_body(prefix: str, status: int, detail: str) -> JsonObject:
    return {
        "@context": f"{prefix}/contexts/Error",
        "@id": f"{prefix}/errors/{status}",
        "@type": "Error",
        "title": _TITLE,
        "detail": detail,
        "status": status,
        "type": f"{prefix}/errors/{status}",
        "description": detail,
    }


def _validation_body(prefix: str, violations: Sequence[Violation]) -> JsonObject:
    if len(violations) == 1:
        ident = violations[0].code
    else:
        ident = ";".join(f"{i}={v.code}" for i, v in enumerate(violations))
    detail = "\n".join(f"{v.path}: {v.message}" if v.path else v.message for v in violations)
    items: list[JsonValue] = [
        {"propertyPath": v.path, "message": v.message, "code": v.code} for v in violations
    ]
    return {
        "@context": f"{prefix}/contexts/ConstraintViolation",
        "@id": f"{prefix}/validation_errors/{ident}",
        "@type": "ConstraintViolation",
        "status": 422,
        "violations": items,
        "detail": detail,
        "description": detail,
        "type": f"{prefix}/validation_errors/{ident}",
        "title": _TITLE,
    }


def problem_response(problem: Problem, base_path: str = "") -> Response:
    """Render ``problem`` as API Platform does: problem+json body, error ``Link`` header."""
    if problem.violations:
        body = _validation_body(base_path, problem.violations)
    else:
        body = _generic_body(base_path, problem.status, problem.detail)
    headers = {"Link": _ERROR_LINK, "X-Content-Type-Options": "nosniff", **problem.headers}
    return Response(encode(body), problem.status, headers=headers, media_type=PROBLEM_TYPE)
