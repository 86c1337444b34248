"""The OpenAPI schema documents the error answers every operation can give.

drf-spectacular describes only successes; clients (and the schema fuzzing test) need
the failures too. They all share one body (portal.api.exception_handler), so one
postprocessing hook adds them to every operation, keeping any an operation declares
itself (e.g. the kubeconfig's 409).
"""

ERROR_SCHEMA = {
    "type": "object",
    "required": ["message", "code", "errors"],
    "properties": {
        "message": {"type": "string", "description": "What went wrong, for people."},
        "code": {"type": "string", "description": "What went wrong, for programs: e.g. invalid, quota_exceeded."},
        "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}},
                   "description": "Messages per input field; empty when no field is at fault."},
    },
}

ERRORS = {
    "400": "Invalid input, or a refusal such as an exhausted quota; nothing was changed.",
    "401": "No valid token or session.",
    "403": "Visible to you, but your role may not do this.",
    "404": "No such object among those you may see.",
    "429": "Too many requests; retry after the `Retry-After` header's seconds.",
}
BODY_ERRORS = {"415": "The body is not JSON."}


def document_errors(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            errors = {**ERRORS, **(BODY_ERRORS if "requestBody" in operation else {})}
            for status, description in errors.items():
                operation["responses"].setdefault(status, {"description": description,
                                                           "content": error_content(operation)})
    return result


def error_content(operation) -> dict:
    """JSON, and any other type the operation answers in (an error follows the client's Accept)."""
    media_types = {"application/json"} | {media_type for response in operation["responses"].values()
                                          for media_type in response.get("content", {})}
    return {media_type: {"schema": {"$ref": "#/components/schemas/Error"}} for media_type in sorted(media_types)}
