"""Kubernetes `Status` bodies: how the gateway refuses, so kubectl shows the reason."""

import json

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    413: "RequestEntityTooLarge",
    502: "BadGateway",
    503: "ServiceUnavailable",
}


class Refusal(Exception):
    """A request the gateway answers itself, with a Status body."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> bytes:
        return status_body(self.code, self.message)


def status_body(code: int, message: str) -> bytes:
    return json.dumps({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": REASONS.get(code, "InternalError"),
        "code": code,
    }).encode()
