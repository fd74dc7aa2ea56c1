"""A Starlette app serving `FakeHubSpot` the way HubSpot's CRM API answers.

Routes: account details, properties and property groups, objects (list, search, batch
read/create/update/archive) and associations v4 (batch read/create/archive). Answers
carry HubSpot's shapes (checked against the official SDK's models in the tests), its
``X-HubSpot-RateLimit-*`` headers (none on search) and its 401, 400, 207 and 429 bodies.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes.hubspot.models import ShapeDrift, check
from fakes.hubspot.state import ASSOCIATION_NAMES, OBJECT_TYPES, FakeHubSpot, iso

__all__ = ["hubspot_app"]

SEARCH_CAP = 10_000
LISTING = "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging"
SEARCH = "CollectionResponseWithTotalSimplePublicObjectForwardPaging"
BATCH = "BatchResponseSimplePublicObject"
PARTIAL = "BatchResponseSimplePublicObjectWithErrors"
V4_READ = "BatchResponsePublicAssociationMultiWithLabel"
V4_CREATE = "BatchResponseLabelsBetweenObjectPair"


def _error(status: int, message: str, category: str, **extra: Any) -> JSONResponse:
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }
    return JSONResponse(body, status_code=status)


def _validate(request: Request, response: Response, models: dict[str, str]) -> None:
    kind = request.path_params.get("kind", "companies")
    api = models.get("api", kind)
    status = response.status_code
    if status == 429 or status == 204 or request.url.path.startswith("/account-info"):
        return  # rate-limit bodies and the account endpoint have no model in this SDK
    if status >= 400:
        check(api, "Error", bytes(response.body))
        return
    model = models.get("partial" if status == 207 else "ok")
    if model is None:
        raise ShapeDrift(f"{request.method} {request.url.path} answered {status}: no model")
    check(api, model, bytes(response.body))


def hubspot_app(state: FakeHubSpot) -> Starlette:
    """The app over ``state`` (see the module docstring)."""

    async def guarded(request: Request, handler: Any) -> Response:
        if request.headers.get("authorization") != f"Bearer {state.token}":
            return _error(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 authentication",
                "INVALID_AUTHENTICATION",
            )
        search = request.url.path.endswith("/search")
        refused = state.admit(search)
        if refused is not None:
            return JSONResponse(refused, status_code=429)
        state.requests.append((request.method, request.url.path))
        kind = request.path_params.get("kind")
        if kind is not None and kind not in OBJECT_TYPES:
            return _error(404, f"Unknown object type {kind}", "OBJECT_NOT_FOUND")
        response: Response = await handler(request)
        if not search and state.limits.send_headers:
            response.headers.update(state.limit_headers())
        return response

    def route(path: str, handler: Any, method: str, **models: str) -> Route:
        """``models`` names the SDK model of each status's answer (``ok``: 200/201,
        ``partial``: 207); error answers are checked as the SDK's ``Error``."""

        async def endpoint(request: Request) -> Response:
            response = await guarded(request, handler)
            if state.validate:
                _validate(request, response, models)
            return response

        return Route(path, endpoint, methods=[method])

    async def account(request: Request) -> Response:
        return JSONResponse(
            {
                "portalId": state.portal_id,
                "accountType": "STANDARD",
                "timeZone": "Europe/Warsaw",
                "companyCurrency": "PLN",
                "additionalCurrencies": [],
                "utcOffset": "+01:00",
                "utcOffsetMilliseconds": 3600000,
                "uiDomain": "app-eu1.hubspot.com",
                "dataHostingLocation": "eu1",
            }
        )

    async def list_properties(request: Request) -> Response:
        kind = request.path_params["kind"]
        return JSONResponse({"results": list(state.properties[kind].values())})

    async def create_group(request: Request) -> Response:
        kind = request.path_params["kind"]
        body = await request.json()
        name = body.get("name")
        if name in state.groups[kind]:
            return _error(409, f"A property group named {name} already exists", "CONFLICT")
        state.groups[kind].add(name)
        return JSONResponse(
            {"name": name, "label": body.get("label", name), "displayOrder": -1, "archived": False},
            status_code=201,
        )

    async def create_property(request: Request) -> Response:
        kind = request.path_params["kind"]
        body = await request.json()
        name = body.get("name")
        if name in state.properties[kind]:
            return _error(409, f"Property named '{name}' already exists", "OBJECT_ALREADY_EXISTS")
        if body.get("groupName") not in state.groups[kind]:
            return _error(400, f"group {body.get('groupName')} does not exist", "VALIDATION_ERROR")
        now = iso(state.clock())
        definition = {
            "name": name,
            "label": body.get("label", name),
            "type": body["type"],
            "fieldType": body["fieldType"],
            "groupName": body["groupName"],
            "options": [
                {"hidden": False, "displayOrder": n, **option}
                for n, option in enumerate(body.get("options", []))
            ],
            "description": "",
            "createdAt": now,
            "updatedAt": now,
            "hidden": False,
            "formField": False,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": False,
            "displayOrder": -1,
            "modificationMetadata": {
                "archivable": True,
                "readOnlyDefinition": False,
                "readOnlyValue": False,
            },
        }
        state.properties[kind][name] = definition
        return JSONResponse(definition, status_code=201)

    def payload(kind: str, obj: Any, wanted: list[str] | None, inline: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = obj.payload(wanted)
        if "companies" in inline and kind in ("contacts", "notes"):
            results = [
                {"id": company, "type": ASSOCIATION_NAMES[(kind, type_id)]}
                for company, types in state.companies_of(kind, obj.id).items()
                for type_id in types
                if (kind, type_id) in ASSOCIATION_NAMES
            ]
            if results:
                body["associations"] = {"companies": {"results": results}}
        return body

    async def list_objects(request: Request) -> Response:
        kind = request.path_params["kind"]
        query = request.query_params
        limit = min(int(query.get("limit", "10")), 100)
        wanted = [p for p in query.get("properties", "").split(",") if p] or None
        inline = [a for a in query.get("associations", "").split(",") if a]
        archived = query.get("archived", "false") == "true"
        start = int(query.get("after", "0") or 0)
        ordered = sorted(
            (
                o
                for o in state.objects[kind].values()
                if o.archived == archived and int(o.id) >= start
            ),
            key=lambda o: int(o.id),
        )
        page = ordered[:limit]
        body: dict[str, Any] = {"results": [payload(kind, o, wanted, inline) for o in page]}
        if len(ordered) > limit:
            after = str(int(ordered[limit].id))
            body["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
        return JSONResponse(body)

    def matches(obj: Any, group: dict[str, Any]) -> bool:
        for rule in group.get("filters", []):
            name, operator = rule["propertyName"], rule["operator"]
            raw = obj.properties.get(name)
            if name in ("hs_lastmodifieddate", "lastmodifieddate", "createdate"):
                have = obj.updated * 1000 if raw is not None else None
                target = float(rule.get("value", 0))
                if have is None:
                    return False
                have = float(int(have))
                if operator == "GTE" and not have >= target:
                    return False
                if operator == "GT" and not have > target:
                    return False
                if operator == "LTE" and not have <= target:
                    return False
                if operator == "LT" and not have < target:
                    return False
            elif operator == "EQ" and (raw or "") != rule.get("value"):
                return False
        return True

    async def search(request: Request) -> Response:
        kind = request.path_params["kind"]
        body = await request.json()
        if len(json.dumps(body)) > 3000:
            return _error(400, "The request body is too long", "VALIDATION_ERROR")
        limit = int(body.get("limit", 10))
        after = int(body.get("after", "0") or 0)
        if limit > 200:
            return _error(400, "limit must be at most 200", "VALIDATION_ERROR")
        if after + limit > SEARCH_CAP:
            return _error(
                400,
                "There was a problem with the request: paging past 10000 results",
                "VALIDATION_ERROR",
            )
        indexed_before = state.clock() - state.search_delay
        groups = body.get("filterGroups") or [{}]
        hits = [
            o
            for o in state.objects[kind].values()
            if not o.archived and o.updated <= indexed_before and any(matches(o, g) for g in groups)
        ]
        sorts = body.get("sorts") or [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
        descending = sorts[0].get("direction") == "DESCENDING"
        if sorts[0]["propertyName"] in ("hs_lastmodifieddate", "lastmodifieddate"):
            hits.sort(key=lambda o: (int(o.updated * 1000), int(o.id)), reverse=descending)
        else:
            hits.sort(key=lambda o: int(o.id), reverse=descending)
        wanted = body.get("properties") or None
        page = hits[after : after + limit]
        answer: dict[str, Any] = {
            "total": len(hits),
            "results": [o.payload(wanted) for o in page],
        }
        if after + limit < len(hits):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return JSONResponse(answer)

    def batch_envelope(results: list[Any], errors: list[Any], started: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": iso(state.clock()),
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
        return body

    def not_found(ids: list[str]) -> dict[str, Any]:
        return {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": f"Could not get some objects, they may be deleted or not exist. "
            f"Check that ids are valid: {', '.join(ids)}",
            "context": {"ids": ids},
            "errors": [],
            "links": {},
        }

    async def batch_read(request: Request) -> Response:
        kind = request.path_params["kind"]
        started = iso(state.clock())
        body = await request.json()
        wanted = body.get("properties") or None
        results, missing = [], []
        for item in body.get("inputs", []):
            obj = state.live(kind, str(item["id"]))
            if obj is None:
                missing.append(str(item["id"]))
            else:
                results.append(obj.payload(wanted))
        errors = [not_found(missing)] if missing else []
        return JSONResponse(
            batch_envelope(results, errors, started), status_code=207 if errors else 200
        )

    def refuse_invalid(problems: list[dict[str, Any]]) -> JSONResponse:
        return _error(
            400,
            "Property values were not valid: " + json.dumps([p["message"] for p in problems]),
            "VALIDATION_ERROR",
            errors=problems,
        )

    async def batch_create(request: Request) -> Response:
        kind = request.path_params["kind"]
        started = iso(state.clock())
        inputs = (await request.json()).get("inputs", [])
        if len(inputs) > 100:
            return _error(400, "at most 100 inputs", "VALIDATION_ERROR")
        problems = [p for item in inputs for p in state.invalid(kind, item.get("properties", {}))]
        if kind == "notes" and any(not i.get("properties", {}).get("hs_timestamp") for i in inputs):
            problems.append({"message": "hs_timestamp is required", "code": "REQUIRED_FIELD"})
        if problems:
            return refuse_invalid(problems)
        taken = state.taken_email(kind, inputs)
        if taken is not None:
            return _error(409, f"Contact already exists. Existing ID: {taken}", "CONFLICT")
        results = []
        for item in inputs:
            obj = state.create(kind, item.get("properties", {}))
            for association in item.get("associations", []):
                for spec in association.get("types", []):
                    state.associate(
                        kind, obj.id, str(association["to"]["id"]), spec["associationTypeId"]
                    )
            answer = obj.payload(None)
            if state.echo_trace_ids and item.get("objectWriteTraceId") is not None:
                answer["objectWriteTraceId"] = item["objectWriteTraceId"]
            results.append(answer)
        return JSONResponse(batch_envelope(results, [], started), status_code=201)

    async def batch_update(request: Request) -> Response:
        kind = request.path_params["kind"]
        started = iso(state.clock())
        inputs = (await request.json()).get("inputs", [])
        problems = [p for item in inputs for p in state.invalid(kind, item.get("properties", {}))]
        if problems:
            return refuse_invalid(problems)
        results, missing = [], []
        for item in inputs:
            obj = state.live(kind, str(item["id"]))
            if obj is None:
                missing.append(str(item["id"]))
                continue
            for name, value in item.get("properties", {}).items():
                if value == "":
                    obj.properties.pop(name, None)
                else:
                    obj.properties[name] = value
            state.stamp(kind, obj)
            # HubSpot answers an update with the properties it changed, not the object.
            results.append(obj.payload(list(item.get("properties", {}))))
        errors = [not_found(missing)] if missing else []
        return JSONResponse(
            batch_envelope(results, errors, started), status_code=207 if errors else 200
        )

    async def batch_archive(request: Request) -> Response:
        kind = request.path_params["kind"]
        for item in (await request.json()).get("inputs", []):
            obj = state.live(kind, str(item["id"]))
            if obj is not None:
                obj.archived = True
                obj.archived_at = state.clock()
        return Response(status_code=204)

    async def associations_read(request: Request) -> Response:
        source = request.path_params["kind"]
        started = iso(state.clock())
        results = []
        for item in (await request.json()).get("inputs", []):
            found = state.companies_of(source, str(item["id"]))
            if not found:
                continue
            results.append(
                {
                    "from": {"id": str(item["id"])},
                    "to": [
                        {
                            "toObjectId": company,
                            "associationTypes": [
                                {
                                    "category": "HUBSPOT_DEFINED",
                                    "typeId": type_id,
                                    "label": "Primary" if type_id == 1 else None,
                                }
                                for type_id in types
                            ],
                        }
                        for company, types in found.items()
                    ],
                }
            )
        return JSONResponse(batch_envelope(results, [], started))

    async def associations_create(request: Request) -> Response:
        source = request.path_params["kind"]
        started = iso(state.clock())
        results = []
        for item in (await request.json()).get("inputs", []):
            one, company = str(item["from"]["id"]), str(item["to"]["id"])
            for spec in item.get("types", []):
                state.associate(source, one, company, spec["associationTypeId"])
            results.append(
                {
                    "fromObjectTypeId": "0-1",
                    "fromObjectId": one,
                    "toObjectTypeId": "0-2",
                    "toObjectId": company,
                    "labels": [],
                }
            )
        return JSONResponse(batch_envelope(results, [], started), status_code=201)

    async def associations_archive(request: Request) -> Response:
        source = request.path_params["kind"]
        for item in (await request.json()).get("inputs", []):
            for target in item.get("to", []):
                state.dissociate(source, str(item["from"]["id"]), str(target["id"]))
        return Response(status_code=204)

    objects = "/crm/v3/objects/{kind}"
    v4 = "/crm/v4/associations/{kind}/companies/batch"
    return Starlette(
        routes=[
            route("/account-info/v3/details", account, "GET"),
            route(
                "/crm/v3/properties/{kind}",
                list_properties,
                "GET",
                api="properties",
                ok="CollectionResponsePropertyNoPaging",
            ),
            route(
                "/crm/v3/properties/{kind}",
                create_property,
                "POST",
                api="properties",
                ok="ModelProperty",
            ),
            route(
                "/crm/v3/properties/{kind}/groups",
                create_group,
                "POST",
                api="properties",
                ok="PropertyGroup",
            ),
            route(objects, list_objects, "GET", ok=LISTING),
            route(f"{objects}/search", search, "POST", ok=SEARCH),
            route(f"{objects}/batch/read", batch_read, "POST", ok=BATCH, partial=PARTIAL),
            route(f"{objects}/batch/create", batch_create, "POST", ok=BATCH, partial=PARTIAL),
            route(f"{objects}/batch/update", batch_update, "POST", ok=BATCH, partial=PARTIAL),
            route(f"{objects}/batch/archive", batch_archive, "POST"),
            route(f"{v4}/read", associations_read, "POST", api="associations", ok=V4_READ),
            route(f"{v4}/create", associations_create, "POST", api="associations", ok=V4_CREATE),
            route(f"{v4}/archive", associations_archive, "POST", api="associations"),
        ]
    )
