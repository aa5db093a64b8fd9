"""The OpenAPI 3.1 document, derived from the same table the routes are built from."""

from __future__ import annotations

from typing import Any

from rest_compat.routes import ENDPOINTS, Endpoint

ERROR_TEXT = {
    400: "Invalid input: a field breaks its rule, or the body is malformed",
    403: "Not logged in, or a wrong password (`code` TOTP_REQUIRED: a second factor is needed)",
    404: "Not found",
    409: "The login or email is already taken",
    413: "The body is too large",
    415: "Wrong content type",
    429: "Too many attempts; see Retry-After",
    503: "The database cannot serve now; retry after Retry-After seconds",
}
# What any endpoint that reads the database may answer, whatever its own errors.
ALWAYS = (503,)

PROFILE = {
    "type": "object",
    "properties": {
        name: {"type": "string"}
        for name in ("username", "email", "firstname", "lastname", "avatar")
    },
    "required": ["username", "email", "firstname", "lastname", "avatar"],
}
MESSAGE = {
    "type": "object",
    "properties": {"message": {"type": "string"}, "code": {"type": "string"}},
    "required": ["message"],
}


def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS:
        for method in endpoint.methods:
            paths.setdefault(endpoint.path, {})[method.lower()] = _operation(endpoint, method)
    paths["/avatars/{key}"] = {
        "get": {
            "operationId": "Avatar",
            "summary": "An avatar image, by the key in its URL",
            "parameters": [
                {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {
                    "description": "The image",
                    "content": {
                        f"image/{kind}": {"schema": {"type": "string", "format": "binary"}}
                        for kind in ("png", "jpeg", "webp")
                    },
                },
                "304": {"description": "Not modified (If-None-Match)"},
                "404": _error(404),
                "503": _error(503),
            },
        }
    }
    paths["/healthz"] = {
        "get": {
            "operationId": "Health",
            "summary": "200 once the database answers, else 503",
            "responses": {
                "200": _json("Healthy", {"type": "object"}),
                "503": _json("The database is unreachable", {"type": "object"}),
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Accounts API (REST compatibility layer)", "version": "1.0.0"},
        "components": {
            "schemas": {"Profile": PROFILE, "Message": MESSAGE},
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "session_id"}
            },
        },
        "paths": paths,
    }


def _result(endpoint: Endpoint) -> dict[str, Any]:
    if endpoint.result == "profile":
        return {"$ref": "#/components/schemas/Profile"}
    if endpoint.result == "json":
        assert endpoint.returns is not None, f"{endpoint.operation} needs its result's schema"
        return endpoint.returns
    if endpoint.key is None:
        return {"$ref": "#/components/schemas/Message"}
    return {
        "type": "object",
        "properties": {"message": {"type": "string"}, endpoint.key: {"type": "integer"}},
        "required": ["message", endpoint.key],
    }


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    in_path = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in endpoint.path_parameters
    ]
    in_query = [
        {"name": name, "in": "query", "required": False, "schema": parameter.schema}
        for name, parameter in endpoint.query.items()
    ]
    return in_path + in_query


def _operation(endpoint: Endpoint, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = {
        # operationIds are unique: a second method of one row gets a suffix.
        "operationId": endpoint.operation
        if method == endpoint.methods[0]
        else f"{endpoint.operation}Via{method.title()}",
        "summary": endpoint.summary,
        "responses": {
            "200": _json("Success", _result(endpoint)),
            **{str(status): _error(status) for status in (*endpoint.errors, *ALWAYS)},
        },
    }
    if endpoint.session:
        operation["security"] = [{"session": []}]
    if parameters := _parameters(endpoint):
        operation["parameters"] = parameters
    if endpoint.fields is not None:
        properties = {name: spec.schema for name, spec in endpoint.fields.items()}
        properties |= {name: {"readOnly": True} for name in endpoint.ignored}
        body = {
            "type": "object",
            "properties": properties,
            "required": [name for name, spec in endpoint.fields.items() if spec.required],
            "additionalProperties": False,
        }
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    if endpoint.upload is not None:
        form_field = endpoint.upload[0]
        upload_schema = {
            "type": "object",
            "properties": {form_field: {"type": "string", "format": "binary"}},
            "required": [form_field],
        }
        operation["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": upload_schema}},
        }
    return operation


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(status: int) -> dict[str, Any]:
    return _json(ERROR_TEXT[status], {"$ref": "#/components/schemas/Message"})
