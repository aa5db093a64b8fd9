"""Turns a REST request into its row's GraphQL operation, and the result into a response."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FragmentDefinitionNode,
    OperationDefinitionNode,
    OperationType,
    parse,
    validate,
)
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.runtime import Runtime
from rest_compat.routes import ENDPOINTS, Endpoint
from schema.api import Schema
from schema.context import Context, apply_cookie
from schema.errors import MASKED_MESSAGE, error_extensions
from schema.execution import run
from schema.http import UnreadableJSON, loads_json, media_type

Handler = Callable[[Request], Awaitable[Response]]
DOCUMENT_PATH = Path(__file__).with_name("operations.graphql")

STATUS_BY_CODE = {
    "BAD_USER_INPUT": 400,
    "GRAPHQL_PARSE_FAILED": 400,
    "GRAPHQL_VALIDATION_FAILED": 400,
    "UNAUTHENTICATED": 403,
    "FORBIDDEN": 403,
    "TOTP_REQUIRED": 403,
    "NOT_FOUND": 404,
    "CONFLICT": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "TOO_MANY_REQUESTS": 429,
    "SERVICE_UNAVAILABLE": 503,
}

# Errors whose body also carries the code, where one status has two meanings a client must
# tell apart (a 403 at login: wrong password, or a second factor needed).
CODE_IN_BODY = frozenset({"TOTP_REQUIRED"})
# A query parameter with an integer schema: digits only (no "1_000", "+5" or other scripts'
# digits, which int() would take), and short enough to convert cheaply.
INTEGER = re.compile(r"-?[0-9]{1,12}")


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def load_operations(schema: Schema) -> dict[str, DocumentNode]:
    """Parse and validate the operations once; a mistake stops start-up, not a request.

    Each operation gets a document of its own (with the fragments), so executing one does
    not walk all the others.
    """
    document = parse(DOCUMENT_PATH.read_text())
    errors = validate(schema._schema, document)
    if errors:
        raise RuntimeError(f"{DOCUMENT_PATH.name} does not match the schema: {errors}")
    fragments = [d for d in document.definitions if isinstance(d, FragmentDefinitionNode)]
    return {
        d.name.value: DocumentNode(definitions=(d, *fragments))
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode) and d.name is not None
    }


def rest_routes(runtime: Runtime, schema: Schema) -> list[Route]:
    """One route per path, so a wrong method's `405` lists every method the path has."""
    operations = load_operations(schema)
    by_path: dict[str, dict[str, Handler]] = {}
    changes_state: set[str] = set()
    for endpoint in ENDPOINTS:
        document = operations[endpoint.operation]
        handler = _handler(runtime, schema, document, endpoint)
        for method in endpoint.methods:
            by_path.setdefault(endpoint.path, {})[method] = handler
        if "GET" in endpoint.methods and _is_mutation(document):
            changes_state.add(endpoint.path)
    routes = []
    for path, handlers in by_path.items():
        route = Route(path, _by_method(handlers), methods=list(handlers))
        if path in changes_state:
            # Starlette answers HEAD wherever GET is allowed, by running the GET handler.
            # HEAD must never change state, and a HEAD that answered like GET without doing
            # what GET does (end the session) would misreport it: such paths refuse HEAD
            # with a 405 whose Allow header names what they do take.
            assert route.methods is not None
            route.methods.discard("HEAD")
        routes.append(route)
    return routes


def _is_mutation(document: DocumentNode) -> bool:
    return any(
        isinstance(definition, OperationDefinitionNode)
        and definition.operation == OperationType.MUTATION
        for definition in document.definitions
    )


def _by_method(handlers: dict[str, Handler]) -> Handler:
    async def dispatch(request: Request) -> Response:
        # HEAD reaches here only on paths whose GET is a query (see rest_routes).
        return await handlers["GET" if request.method == "HEAD" else request.method](request)

    return dispatch


def _handler(
    runtime: Runtime, schema: Schema, document: DocumentNode, endpoint: Endpoint
) -> Handler:
    async def handle(request: Request) -> Response:
        try:
            variables = await _variables(request, endpoint)
        except BadRequest as exc:
            return message_response(exc.status, exc.message)
        context = Context.from_request(runtime, request)
        result = await run(
            schema,
            document,
            variables=variables,
            operation_name=endpoint.operation,
            context=context,
        )
        response = _response(endpoint, result)
        apply_cookie(response, context, runtime.settings)
        return response

    handle.__name__ = endpoint.operation
    return handle


async def _variables(request: Request, endpoint: Endpoint) -> dict[str, Any]:
    variables: dict[str, Any] = {
        name: request.path_params[name] for name in endpoint.path_parameters
    }
    for name, parameter in endpoint.query.items():
        value = request.query_params.get(name)
        if value is not None:
            variables[parameter.variable] = _query_value(name, value, parameter.schema)
    if endpoint.fields is not None:
        values = _input(endpoint, await _json_object(request))
        if endpoint.body_variable is None:
            variables |= values
        else:
            variables[endpoint.body_variable] = values
    if endpoint.upload is not None:
        form_field, variable = endpoint.upload
        variables[variable] = await _upload(request, form_field)
    return variables


def _query_value(name: str, value: str, schema: Mapping[str, object]) -> object:
    if schema.get("type") != "integer":
        return value
    if not INTEGER.fullmatch(value):
        raise BadRequest(400, f"{name}: must be an integer")
    return int(value)


async def _json_object(request: Request) -> dict[str, Any]:
    content_type = media_type(request.headers)
    if content_type != "application/json":
        raise BadRequest(415, "Send the body as application/json")
    try:
        body = loads_json(await request.body())
    except UnreadableJSON as exc:
        raise BadRequest(400, f"The body {exc.reason}") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "The body must be a JSON object")
    return body


def _input(endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
    assert endpoint.fields is not None
    unknown = sorted(set(body) - set(endpoint.fields) - endpoint.ignored)
    if unknown:
        raise BadRequest(400, f"Unknown field: {', '.join(unknown)}")
    values = {}
    for name, spec in endpoint.fields.items():
        if name not in body:
            if spec.required:
                raise BadRequest(400, f"{name}: this field is required")
            continue
        if not isinstance(body[name], str):
            raise BadRequest(400, f"{name}: must be a string")
        values[spec.graphql_name] = body[name]
    return values


async def _upload(request: Request, form_field: str) -> UploadFile:
    content_type = media_type(request.headers)
    if content_type != "multipart/form-data":
        raise BadRequest(415, f"Send the image as multipart/form-data in the field {form_field!r}")
    try:
        form = await request.form(max_files=1, max_fields=10)
    except (ValueError, AssertionError) as exc:
        raise BadRequest(400, f"The multipart body could not be read: {exc}") from None
    upload = form.get(form_field)
    if not isinstance(upload, UploadFile):
        raise BadRequest(400, f"{form_field}: attach the image as a file in this field")
    return upload


def _response(endpoint: Endpoint, result: ExecutionResult) -> Response:
    # Unexpected errors were logged once already, where they were executed (Schema.process_errors).
    if result.errors:
        error = result.errors[0]
        extensions = error_extensions(error)
        if extensions is None:
            return message_response(500, MASKED_MESSAGE)
        code = extensions["code"]
        response = message_response(
            STATUS_BY_CODE.get(code, 500),
            error.message,
            code=code if code in CODE_IN_BODY else None,
        )
        if "retryAfter" in extensions:
            response.headers["retry-after"] = str(extensions["retryAfter"])
        return response
    assert result.data is not None
    value = result.data["result"]
    if value is None and endpoint.null_means_logged_out:
        return message_response(403, "You must be logged in")
    if endpoint.result == "message":
        extra = {} if endpoint.key is None else {endpoint.key: value}
        return JSONResponse({"message": endpoint.message, **extra})
    if endpoint.result == "json":
        return JSONResponse(value if endpoint.key is None else {endpoint.key: value})
    # The legacy contract spells "no avatar" as an empty string, GraphQL as null.
    return JSONResponse({**value, "avatar": value["avatar"] or ""})


def message_response(
    status: int,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    code: str | None = None,
) -> JSONResponse:
    """The one REST/JSON error (and message) body: `{"message": ...}` (and `"code"`)."""
    body = {"message": message} if code is None else {"message": message, "code": code}
    return JSONResponse(body, status_code=status, headers=headers)
