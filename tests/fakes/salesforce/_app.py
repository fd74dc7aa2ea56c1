"""The fake org's REST API as a Starlette app (see `tests.fakes.salesforce`)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes.salesforce._org import Org, SaveError
from fakes.salesforce._soql import SoqlError, parse_query

__all__ = ["create_app"]

_MAX_BATCH = 2000
_COLLECTION = 200


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _errors(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse([{"message": message, "errorCode": code, "fields": []}], status, headers)


def _replication_date(text: str | None) -> datetime:
    if not text:
        raise ValueError("missing")
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).replace(second=0)


def create_app(org: Org, *, version: str = "62.0") -> Starlette:
    """The app answering ``/services/oauth2/token`` and ``/services/data/v{version}/...``."""
    base = f"/services/data/v{version}"
    cursors: dict[str, list[dict[str, Any]]] = {}

    def usage() -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={org.api_used}/{org.api_limit}"}

    def answer(body: Any, status: int = 200) -> Response:
        return JSONResponse(body, status, usage())

    async def guarded(request: Request, handler: Any) -> Response:
        body: Any = None
        raw = await request.body()
        if raw:
            body = json.loads(raw)
        org.requests.append((request.method, str(request.url.path) + "?" + request.url.query, body))
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Bearer ") or authorization[7:] not in org.tokens:
            return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if org.api_used >= org.api_limit:
            return _errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", usage())
        org.api_used += 1
        if org.fail_next > 0:
            org.fail_next -= 1
            return _errors(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable", usage())
        try:
            response: Response = await handler(request, body)
        except SoqlError as error:
            return _errors(400, error.code, str(error), usage())
        except KeyError as error:
            return _errors(
                404, "NOT_FOUND", f"The requested resource does not exist: {error}", usage()
            )
        return response

    def shaped(sobject: str, row: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {"type": sobject, "url": f"{base}/sobjects/{sobject}/{row['Id']}"}
        }
        for name in fields:
            known = org.field_name(sobject, name)
            if known is None:
                raise SoqlError("INVALID_FIELD", f"No such column '{name}' on entity '{sobject}'")
            value = row.get(known)
            if known == "Content" and sobject == "ContentNote":
                value = f"{base}/sobjects/ContentNote/{row['Id']}/Content"
            elif isinstance(value, datetime):
                value = _stamp(value)
            elif known == "BillingCountryCode":
                value = row.get("BillingCountryCode")
            out[known] = value
        return out

    def run_query(text: str, *, deleted: bool, batch: int) -> dict[str, Any]:
        query = parse_query(text)
        sobject = query.sobject
        if sobject not in org.records:
            raise SoqlError("INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
        if sobject == "ContentDocumentLink" and not (
            query.filtered & {"contentdocumentid", "linkedentityid"}
        ):
            raise SoqlError(
                "MALFORMED_QUERY",
                "Implementation restriction: ContentDocumentLink requires a filter by a single "
                "Id on ContentDocumentId or LinkedEntityId using the equals operator or "
                "multiple Id's using the IN operator.",
            )
        for name in [*query.filtered, *(field for field, _ in query.order)]:
            if org.field_name(sobject, name) is None:
                raise SoqlError("INVALID_FIELD", f"No such column '{name}' on entity '{sobject}'")
        rows = [
            row for row in org.rows(sobject, deleted=deleted) if not query.where or query.where(row)
        ]
        for field, descending in reversed(query.order):
            known = org.field_name(sobject, field) or field
            rows.sort(
                key=lambda row: (row.get(known) is None, row.get(known) or 0), reverse=descending
            )
        if query.limit is not None:
            rows = rows[: query.limit]
        shaped_rows = [shaped(sobject, row, list(query.fields)) for row in rows]
        return page(shaped_rows, 0, batch)

    def page(rows: list[dict[str, Any]], start: int, batch: int) -> dict[str, Any]:
        chunk = rows[start : start + batch]
        done = start + batch >= len(rows)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done, "records": chunk}
        if not done:
            locator = f"01g{uuid.uuid4().hex[:15]}"
            cursors[locator] = rows
            body["nextRecordsUrl"] = f"{base}/query/{locator}-{start + batch}"
        return body

    def batch_size(request: Request) -> int:
        options = request.headers.get("Sforce-Query-Options", "")
        for part in options.split(","):
            key, _, value = part.strip().partition("=")
            if key == "batchSize" and value.isdigit():
                return max(200, min(_MAX_BATCH, int(value)))
        return _MAX_BATCH

    async def token(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        org.token_requests += 1
        if form.get("grant_type") != "client_credentials":
            return JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
                400,
            )
        if form.get("client_id") != org.client_id or form.get("client_secret") != org.client_secret:
            return JSONResponse(
                {"error": "invalid_client", "error_description": "invalid client credentials"}, 400
            )
        issued = org.issue_token()
        return JSONResponse(
            {
                "access_token": issued,
                "instance_url": str(request.base_url).rstrip("/"),
                "id": "https://login.salesforce.com/id/00Dfake/005fake",
                "token_type": "Bearer",
                "issued_at": str(int(org.now().timestamp() * 1000)),
            }
        )

    async def query(request: Request, body: Any) -> Response:
        deleted = request.url.path.endswith("queryAll")
        return answer(
            run_query(request.query_params.get("q", ""), deleted=deleted, batch=batch_size(request))
        )

    async def query_more(request: Request, body: Any) -> Response:
        locator, _, start = request.path_params["locator"].rpartition("-")
        if locator not in cursors or not start.isdigit():
            return _errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator", usage())
        return answer(page(cursors[locator], int(start), batch_size(request)))

    async def describe(request: Request, body: Any) -> Response:
        sobject = request.path_params["sobject"]
        fields = [
            {
                "name": name,
                "type": kind,
                "updateable": name not in ("Id", "SystemModstamp", "IsDeleted"),
            }
            for name, kind in org.fields(sobject).items()
        ]
        return answer({"name": sobject, "fields": fields})

    async def replication(request: Request, body: Any) -> Response:
        sobject, feed = request.path_params["sobject"], request.path_params["feed"]
        org.fields(sobject)
        try:
            start = _replication_date(request.query_params.get("start"))
            end = _replication_date(request.query_params.get("end"))
        except ValueError:
            return _errors(
                400, "INVALID_REPLICATION_DATE", "start and end are required ISO datetimes", usage()
            )
        if start >= end:
            return _errors(400, "INVALID_REPLICATION_DATE", "start must be before end", usage())
        if feed == "updated":
            ids = [r["Id"] for r in org.rows(sobject) if start <= r["SystemModstamp"] < end]
            return answer({"ids": ids, "latestDateCovered": _stamp(min(end, org.now()))})
        earliest = org.earliest_deleted()
        gone = [
            {"id": record_id, "deletedDate": _stamp(when)}
            for kind, record_id, when in org.delete_log
            if kind == sobject and start <= when < end and when >= earliest
        ]
        return answer(
            {
                "deletedRecords": gone,
                "earliestDateAvailable": _stamp(earliest),
                "latestDateCovered": _stamp(min(end, org.now())),
            }
        )

    async def collections(request: Request, body: Any) -> Response:
        if request.method == "DELETE":
            ids = [one for one in request.query_params.get("ids", "").split(",") if one]
            if len(ids) > _COLLECTION:
                return _errors(400, "EXCEEDED_ID_LIMIT", "too many ids", usage())
            results = []
            for record_id in ids:
                try:
                    org.delete(record_id)
                    results.append({"id": record_id, "success": True, "errors": []})
                except SaveError as error:
                    results.append({"id": record_id, **error.result()})
            return answer(results)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            return _errors(400, "JSON_PARSER_ERROR", "expected allOrNone and records", usage())
        if body.get("allOrNone") is not False:
            return _errors(400, "INVALID_FIELD", "this fake serves allOrNone false only", usage())
        records = body["records"]
        if len(records) > _COLLECTION:
            return _errors(400, "EXCEEDED_ID_LIMIT", "more than 200 records", usage())
        results = []
        for record in records:
            sobject = (record.get("attributes") or {}).get("type")
            try:
                if sobject not in org.records:
                    raise SaveError("INVALID_TYPE", f"sObject type '{sobject}' is not supported")
                if request.method == "POST":
                    record_id = org.create(sobject, record)
                else:
                    record_id = str(record.get("id") or "")
                    if org.sobject_of(record_id) not in (sobject, None):
                        raise SaveError("INVALID_CROSS_REFERENCE_KEY", "id of another type")
                    org.update(record_id, record)
                results.append({"id": record_id, "success": True, "errors": []})
            except SaveError as error:
                results.append(error.result())
        return answer(results)

    async def retrieve(request: Request, body: Any) -> Response:
        sobject = request.path_params["sobject"]
        org.fields(sobject)
        ids = request.query_params.get("ids", "").split(",")
        fields = request.query_params.get("fields", "").split(",")
        if len(ids) > 800:
            return _errors(400, "EXCEEDED_ID_LIMIT", "too many ids", usage())
        try:
            found = [
                shaped(sobject, org.records[sobject][one], fields)
                if one in org.records[sobject]
                else None
                for one in ids
            ]
        except SoqlError as error:
            return _errors(400, error.code, str(error), usage())
        return answer(found)

    async def content(request: Request, body: Any) -> Response:
        note_id = request.path_params["note_id"]
        if note_id not in org.records["ContentNote"]:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist", usage())
        return Response(org.content.get(note_id, b""), 200, usage(), media_type="text/plain")

    async def limits(request: Request, body: Any) -> Response:
        return answer(
            {"DailyApiRequests": {"Max": org.api_limit, "Remaining": org.api_limit - org.api_used}}
        )

    def route(path: str, handler: Any, methods: list[str]) -> Route:
        async def endpoint(request: Request) -> Response:
            return await guarded(request, handler)

        return Route(base + path, endpoint, methods=methods)

    return Starlette(
        routes=[
            Route("/services/oauth2/token", token, methods=["POST"]),
            route("/query", query, ["GET"]),
            route("/queryAll", query, ["GET"]),
            route("/query/{locator}", query_more, ["GET"]),
            route("/limits", limits, ["GET"]),
            route("/sobjects/{sobject}/describe", describe, ["GET"]),
            route("/sobjects/{sobject}/{feed:str}/", replication, ["GET"]),
            route("/sobjects/ContentNote/{note_id}/Content", content, ["GET"]),
            route("/composite/sobjects", collections, ["POST", "PATCH", "DELETE"]),
            route("/composite/sobjects/{sobject}", retrieve, ["GET"]),
        ]
    )
