"""A GraphQL request read from HTTP: GET parameters, a JSON body, or a multipart upload.

Whatever arrives either becomes a `GraphQLRequest` of the right shape or a `RequestError`
(a 4xx); nothing a client sends reaches GraphQL in a shape it does not expect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from schema.http import (
    BodyTooLarge,
    BodyTooSlow,
    RequestError,
    UnreadableJSON,
    loads_json,
    media_type,
)

PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-requested-with")
# One upload is all a document can use (updateAvatar, at most once per document).
MAX_FILES = 1
MAX_FORM_FIELDS = 8
# Where `map` may put that file: a few places, each a short path into the variables.
MAX_FILE_PATHS = 8
MAX_PATH_CHARS = 256
MAX_PATH_KEYS = 8
PARAMETERS = ("query", "operationName", "variables", "extensions")
NOT_GRAPHQL = (
    "Send application/json (or multipart/form-data with the fields operations and map, for uploads)"
)


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None

    @property
    def persisted_query(self) -> object:
        """`extensions.persistedQuery` as sent (None when absent or null)."""
        return (self.extensions or {}).get("persistedQuery")


async def read_request(request: Request) -> tuple[GraphQLRequest, FormData | None]:
    """The request's GraphQL parameters, and its form when it is an upload (to close)."""
    if request.method == "GET":
        return _from_query_string(request), None
    content_type = media_type(request.headers)
    if content_type == "application/json":
        return _from_json(await request.body()), None
    if content_type == "multipart/form-data":
        return await _from_multipart(request)
    raise RequestError(415, NOT_GRAPHQL)


def _from_query_string(request: Request) -> GraphQLRequest:
    values: dict[str, Any] = {}
    for name in PARAMETERS:
        given = request.query_params.getlist(name)
        if len(given) > 1:
            raise RequestError(400, f"The parameter {name} is given more than once")
        if given and given[0] != "":
            values[name] = given[0]
    for name in ("variables", "extensions"):
        if name in values:
            values[name] = _decode(values[name], name)
    return _shaped(values)


def _from_json(body: bytes) -> GraphQLRequest:
    if not body.strip():
        raise RequestError(400, "The body is empty; send a JSON object with a query")
    parsed = _decode(body, "body")
    if isinstance(parsed, list):
        raise RequestError(400, "Batched requests are not supported; send one operation")
    if not isinstance(parsed, dict):
        raise RequestError(400, "The body must be a JSON object")
    return _shaped(parsed)


async def _from_multipart(request: Request) -> tuple[GraphQLRequest, FormData]:
    form = await _read_form(request)
    try:
        operations = form.get("operations")
        files_map = form.get("map")
        if operations is None and files_map is None:
            # A form, not a GraphQL multipart request: the media type is the mistake.
            raise RequestError(415, NOT_GRAPHQL)
        # A multipart POST is a "simple" request that skips the CORS preflight; demanding
        # a custom header forces one, so another site cannot post an upload with our cookie.
        if not any(request.headers.get(name, "").strip() for name in PREFLIGHT_HEADERS):
            raise RequestError(
                400, "Uploads need an Apollo-Require-Preflight or X-Requested-With header"
            )
        if not isinstance(operations, str) or not isinstance(files_map, str):
            raise RequestError(400, "An upload needs the form fields operations and map")
        body = _decode(operations, "operations")
        if not isinstance(body, dict):
            raise RequestError(400, "operations must be a JSON object (one operation)")
        paths = _decode(files_map, "map")
        if not isinstance(paths, dict) or not all(
            isinstance(targets, list) and all(isinstance(path, str) for path in targets)
            for targets in paths.values()
        ):
            raise RequestError(400, 'map must be a JSON object {"<field>": ["<path>", ...]}')
        _place_files(body, paths, form)
        return _shaped(body), form
    except RequestError:
        await form.close()
        raise


async def _read_form(request: Request) -> FormData:
    """The multipart form, or a `RequestError` saying why it cannot be read."""
    try:
        return await request.form(max_files=MAX_FILES, max_fields=MAX_FORM_FIELDS)
    except (BodyTooLarge, BodyTooSlow):
        raise
    except (MultiPartException, HTTPException) as exc:
        # Starlette turns the parser's MultiPartException into a plain 400 HTTPException.
        detail = exc.message if isinstance(exc, MultiPartException) else exc.detail
        raise RequestError(400, f"The multipart body could not be read: {detail}") from None


def _place_files(operations: dict[str, Any], paths: dict[str, list[str]], form: FormData) -> None:
    """Puts each file into the (freshly decoded) operations where `map` says (the
    multipart request spec)."""
    if sum(len(targets) for targets in paths.values()) > MAX_FILE_PATHS:
        raise RequestError(400, f"map may name at most {MAX_FILE_PATHS} places for files")
    for field, targets in paths.items():
        upload = form.get(field)
        if not isinstance(upload, UploadFile):
            raise RequestError(400, f"map names {field[:40]!r}, which is not a file in the form")
        for path in targets:
            _place(operations, path, upload)


def _place(operations: dict[str, Any], path: str, upload: UploadFile) -> None:
    if len(path) > MAX_PATH_CHARS or path.count(".") >= MAX_PATH_KEYS:
        raise RequestError(
            400,
            f"A path in map is longer than {MAX_PATH_CHARS} characters or "
            f"{MAX_PATH_KEYS} keys: {path[:80]!r}",
        )
    *parents, last = path.split(".")
    if not parents or parents[0] != "variables":
        raise RequestError(400, f"A file can only go into variables, not {path[:80]!r}")
    target: Any = operations
    try:
        for key in parents:
            target = target[_index(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[_index(last)] = upload
        elif isinstance(target, dict):
            target[last] = upload
        else:
            raise TypeError(last)
    except (KeyError, IndexError, ValueError, TypeError):
        raise RequestError(400, f"map names {path[:80]!r}, not in operations") from None


def _index(key: str) -> int:
    """A list index as written in a path: digits only (no sign, no spaces)."""
    if not key.isdecimal() or not key.isascii():
        raise ValueError(key)
    return int(key)


def _decode(data: str | bytes, name: str) -> Any:
    try:
        return loads_json(data)
    except UnreadableJSON as exc:
        raise RequestError(400, f"The {name} {exc.reason}") from None


def _shaped(values: dict[str, Any]) -> GraphQLRequest:
    query = values.get("query")
    variables = values.get("variables")
    name = values.get("operationName")
    extensions = values.get("extensions")
    if query is not None and not isinstance(query, str):
        raise RequestError(400, "query must be a string")
    if name is not None and not isinstance(name, str):
        raise RequestError(400, "operationName must be a string")
    if variables is not None and not isinstance(variables, dict):
        raise RequestError(400, "variables must be a JSON object")
    if extensions is not None and not isinstance(extensions, dict):
        raise RequestError(400, "extensions must be a JSON object")
    return GraphQLRequest(query, variables, name, extensions)
