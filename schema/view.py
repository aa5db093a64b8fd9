"""The /graphql endpoint, to the GraphQL-over-HTTP specification and the contract.

One path for every request (GET, JSON POST, multipart upload, persisted query): read the
request (schema/transport.py), find its document (schema/persisted.py), prepare it under
every limit (schema/documents.py), select the operation, execute (schema/execution.py).

Status codes: a client that prefers `application/graphql-response+json` gets that type and
`400` whenever the operation never ran (the document does not parse or validate, the
operation cannot be selected, the variables do not coerce), `200` once it started. Others
get `application/json` and `200` for every well-formed GraphQL request. Either way a
response of an operation that never ran has no `data` key, a mutation over GET is `405`
(`Allow: POST`), and a malformed HTTP request is a 4xx. Every answer keeps
`Cache-Control: no-store` (set by the app): it may hold account data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from graphql import GraphQLError, OperationType
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from strawberry.asgi import GraphQL

from core.errors import Unavailable
from core.runtime import Runtime
from schema.api import Schema
from schema.context import Context, apply_cookie
from schema.documents import QueryTooLarge, TooManyNewDocuments
from schema.errors import public_error, service_extensions
from schema.execution import run, select_operation
from schema.http import GRAPHQL_RESPONSE, RequestError, code_for_status, response_media_type
from schema.persisted import PersistedQueries, standalone_operations
from schema.transport import GraphQLRequest, read_request


class GraphQLView(GraphQL[Context, None]):
    schema: Schema

    def __init__(self, runtime: Runtime, schema: Schema, *, operations: str = "") -> None:
        """`operations`: a document whose operations are pre-registered (the REST layer's)."""
        super().__init__(schema, graphql_ide="graphiql")
        self.runtime = runtime
        settings = runtime.settings
        self.persisted = PersistedQueries.with_documents(
            runtime.db,
            standalone_operations(operations) if operations else [],
            manifest=settings.graphql_persisted_documents,
            only=settings.graphql_persisted_only,
        )

    async def respond(self, request: Request) -> Response:
        """The whole answer to one HTTP request, built before any of it is sent."""
        context = Context.from_request(self.runtime, request)
        media = response_media_type(request.headers.get("accept", ""))
        form: FormData | None = None
        try:
            if _wants_ide(request):
                response = await self.render_graphql_ide(request)
            else:
                graphql_request, form = await read_request(request)
                response = await self._answer(request, graphql_request, context, media)
        except RequestError as exc:
            response = errors_response(exc.status, exc.message, exc.code, media, exc.headers)
        except QueryTooLarge as exc:
            response = errors_response(413, str(exc), "PAYLOAD_TOO_LARGE", media)
        except TooManyNewDocuments as exc:
            retry = {"retry-after": str(exc.retry_after)}
            response = errors_response(429, str(exc), "TOO_MANY_REQUESTS", media, retry)
        except HTTPException as exc:
            # A body too large or too slow, refused while it streamed in.
            code = code_for_status(exc.status_code)
            response = errors_response(exc.status_code, exc.detail, code, media, exc.headers)
        except Unavailable as exc:
            # The database failed before the operation ran (finding a persisted document).
            response = unavailable_response(exc, media)
        finally:
            if form is not None:
                await form.close()
        apply_cookie(response, context, self.runtime.settings)
        return response

    async def _answer(
        self, request: Request, graphql_request: GraphQLRequest, context: Context, media: str
    ) -> Response:
        documents = self.schema.documents
        if graphql_request.query is not None:
            # Before anything hashes, parses or caches the text.
            documents.check_size(graphql_request.query)
        resolved = await self.persisted.resolve(graphql_request)
        prepared = await documents.prepare_new(resolved.text, client=context.client)
        if prepared.document is None or prepared.errors:
            return _not_run(prepared.errors, media)
        operation = select_operation(prepared.document, graphql_request.operation_name)
        if isinstance(operation, GraphQLError):
            return _not_run([operation], media)
        if request.method == "GET" and operation.operation != OperationType.QUERY:
            raise RequestError(
                405, "Only queries can be sent with GET; use POST", headers={"allow": "POST"}
            )
        if resolved.register is not None:
            await self.persisted.register(resolved.register, resolved.text)
        outcome = await run(
            self.schema,
            prepared.document,
            variables=graphql_request.variables,
            operation_name=graphql_request.operation_name,
            context=context,
        )
        if not outcome.started:
            return _not_run(outcome.errors or [], media)
        body: dict[str, Any] = {"data": outcome.data}
        if outcome.errors:
            body["errors"] = [public_error(error).formatted for error in outcome.errors]
        return json_response(body, 200, media)


def _wants_ide(request: Request) -> bool:
    """A browser opening /graphql: a GET with no GraphQL parameters that accepts HTML."""
    if request.method != "GET":
        return False
    if "query" in request.query_params or "extensions" in request.query_params:
        return False
    accept = request.headers.get("accept", "")
    return "text/html" in accept or "*/*" in accept


def _not_run(errors: Sequence[GraphQLError], media: str) -> Response:
    """Errors of an operation that never ran: no `data` key; the status as media requires."""
    status = 400 if media == GRAPHQL_RESPONSE else 200
    return json_response({"errors": [public_error(e).formatted for e in errors]}, status, media)


def errors_response(
    status: int,
    message: str,
    code: str,
    media: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return json_response(body, status, media, headers)


def unavailable_response(error: Unavailable, media: str) -> Response:
    body = {"errors": [{"message": error.message, "extensions": service_extensions(error)}]}
    headers = {"retry-after": str(error.retry_after)}
    return json_response(body, 503, media, headers)


def json_response(
    body: object, status: int, media: str, headers: Mapping[str, str] | None = None
) -> Response:
    content = json.dumps(body, separators=(",", ":")).encode()
    return Response(content, status_code=status, media_type=media, headers=headers)
