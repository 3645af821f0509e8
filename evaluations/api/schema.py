"""OpenAPI schema post-processing: the error answers every operation can give, documented once.

Every error body is `{"detail": "..."}` (a sentence that names the field and says what to do);
validation errors may add `errors` (per field). The hook adds to each operation the errors it can
give and that its view did not document itself: 401/403 everywhere (no or a bad token; a session
request without its CSRF token), 404 where the path names an object or the list is paginated, 400
where the operation takes a body or query parameters.
"""

from __future__ import annotations

ERROR = {
    "type": "object",
    "properties": {
        "detail": {"type": "string", "description": "what is wrong and what to do"},
        "errors": {
            "description": "validation errors: a list of messages, or messages by field",
            "oneOf": [
                {"type": "array", "items": {"type": "string"}},
                {"type": "object", "additionalProperties": {}},
            ],
        },
    },
    "required": ["detail"],
}
REF = {"$ref": "#/components/schemas/Error"}

DESCRIPTIONS = {
    "400": "Invalid input: `detail` names the field and says what to do",
    "401": "No credentials, or a token that is unknown, revoked or expired",
    "403": "Not allowed (e.g. a session request without its CSRF token)",
    "404": "No such object (or no such page)",
}


def document_errors(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            params = operation.get("parameters", [])
            codes = ["401", "403"]
            if "{" in path or any(p.get("name") == "page" for p in params):
                codes.append("404")
            if "requestBody" in operation or any(p.get("in") == "query" for p in params):
                codes.append("400")
            for code in codes:
                if code not in responses:
                    responses[code] = {
                        "content": {"application/json": {"schema": REF}},
                        "description": DESCRIPTIONS[code],
                    }
    return result
