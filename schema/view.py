"""The /graphql endpoint: Strawberry's ASGI view with the contract's HTTP rules."""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException as ViewError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.types import ExecutionResult

from core.runtime import Runtime
from schema.api import Schema
from schema.context import Context, apply_cookie
from schema.errors import public_error
from schema.execution import run
from schema.http import BodyTooLarge, loads_json, media_type

PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-requested-with")
REQUEST_KEYS = frozenset({"query", "variables", "operationName", "extensions"})


class GraphQLView(GraphQL[Context, None]):
    schema: Schema

    def __init__(self, runtime: Runtime, schema: Schema) -> None:
        super().__init__(schema, graphql_ide="graphiql", multipart_uploads_enabled=True)
        self.runtime = runtime

    async def respond(self, request: Request) -> Response:
        """The whole answer to one HTTP request, built before any of it is sent."""
        context = Context.from_request(self.runtime, request)
        try:
            _check_post(request)
            response = await self._prepared_post(request, context) or await self.run(
                request, context=context
            )
        except ViewError as exc:
            response = error_response(exc.status_code, exc.reason)
        except BodyTooLarge as exc:
            response = error_response(413, exc.detail, code="PAYLOAD_TOO_LARGE")
        apply_cookie(response, context, self.runtime.settings)
        return response

    async def _prepared_post(self, request: Request, context: Context) -> Response | None:
        """A JSON POST of a valid query or mutation, executed from the prepared cache.

        Returns None for anything else (GET, uploads, GraphiQL, malformed bodies, documents
        with errors), which Strawberry's full path then handles and reports as usual.
        """
        if request.method != "POST" or media_type(request.headers) != "application/json":
            return None
        try:
            body: Any = loads_json(await request.body())
        except ValueError:
            return None
        if not isinstance(body, dict) or not body.keys() <= REQUEST_KEYS:
            return None
        query, variables, name = body.get("query"), body.get("variables"), body.get("operationName")
        if not (
            isinstance(query, str)
            and (variables is None or isinstance(variables, dict))
            and (name is None or isinstance(name, str))
        ):
            return None
        document = self.schema.documents.operation(query, name)
        if document is None:
            return None
        result = await run(
            self.schema, document, variables=variables, operation_name=name, context=context
        )
        outcome = ExecutionResult(data=result.data, errors=result.errors, extensions=None)
        data = await self.process_result(request, outcome)
        return Response(self.encode_json(data), media_type="application/json")

    def decode_json(self, data: str | bytes) -> object:
        return loads_json(data)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        # Every error leaves with its contract code; unexpected ones are masked here,
        # after Schema.process_errors has logged them.
        if result.errors:
            result.errors = [public_error(error) for error in result.errors]
        return process_result(result)


def _check_post(request: Request) -> None:
    if request.method != "POST":
        return
    content_type = media_type(request.headers)
    if content_type == "multipart/form-data":
        # A multipart POST is a "simple" request that skips the CORS preflight; demanding
        # a custom header forces one, so another site cannot post an upload with our cookie.
        if not any(request.headers.get(name, "").strip() for name in PREFLIGHT_HEADERS):
            raise ViewError(
                400, "Uploads need an Apollo-Require-Preflight or X-Requested-With header"
            )
    elif content_type != "application/json":
        raise ViewError(415, "Send application/json (or multipart/form-data for uploads)")


def error_response(status: int, message: str, code: str = "BAD_REQUEST") -> Response:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status
    )
