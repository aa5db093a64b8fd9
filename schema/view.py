"""The /graphql endpoint: Strawberry's ASGI view with the contract's HTTP rules."""

from __future__ import annotations

from cross_web import HTTPException as ViewError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.types import ExecutionResult

from app.runtime import Runtime
from app.web import BodyTooLarge, media_type
from schema.context import Context, apply_cookie
from schema.errors import public_error

PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-requested-with")


class GraphQLView(GraphQL[Context, None]):
    def __init__(self, runtime: Runtime, schema: object) -> None:
        super().__init__(schema, graphql_ide="graphiql", multipart_uploads_enabled=True)  # type: ignore[arg-type]
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await error_response(400, "Only HTTP is served here")(scope, receive, send)
            return
        request = Request(scope, receive)
        context = Context.from_request(self.runtime, request)
        try:
            _check_post(request)
            response = await self.run(request, context=context)
        except ViewError as exc:
            response = error_response(exc.status_code, exc.reason)
        except BodyTooLarge as exc:
            response = error_response(413, exc.detail, code="PAYLOAD_TOO_LARGE")
        apply_cookie(response, context, self.runtime.settings)
        await response(scope, receive, send)

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
