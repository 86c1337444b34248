"""The portal's REST API, as vcp uses it.

Every failure becomes a VcpError carrying the API's own message and the exit code
documented for its kind: the commands never interpret HTTP statuses themselves.
"""

from collections.abc import Iterator

import requests

from .config import Config
from .errors import AUTH, NOT_FOUND, OTHER, QUOTA, USAGE, VcpError

TIMEOUT = 30  # seconds for one request; waiting loops poll with many short requests


def exit_code_for(status: int, code: str) -> int:
    if code == "quota_exceeded":
        return QUOTA
    if status in (401, 403):
        return AUTH
    if status == 404:
        return NOT_FOUND
    if status == 400:
        return USAGE
    return OTHER


class Api:
    def __init__(self, config: Config):
        self.base = config.url.rstrip("/") + "/api/v1/"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {config.token}"

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        url = path if path.startswith("http") else self.base + path
        try:
            response = self.session.request(method, url, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise VcpError(f"Cannot reach the portal at {self.base}: {exc}") from None
        if response.status_code >= 400:
            raise error_from(response)
        return response

    def get(self, path: str, **params) -> dict:
        return self.request("GET", path, params=params or None).json()

    def post(self, path: str, body: dict | None = None) -> dict:
        return self.request("POST", path, json=body).json()

    def patch(self, path: str, body: dict) -> dict:
        return self.request("PATCH", path, json=body).json()

    def delete(self, path: str) -> dict:
        return self.request("DELETE", path).json()

    def text(self, path: str) -> str:
        return self.request("GET", path, headers={"Accept": "application/yaml"}).text

    def all_pages(self, path: str, **params) -> Iterator[dict]:
        page = self.get(path, page_size=500, **params)
        yield from page["results"]
        while page["next"]:
            page = self.request("GET", page["next"]).json()
            yield from page["results"]


def error_from(response: requests.Response) -> VcpError:
    """The API's error body ({"message", "code", "errors"}) as a VcpError."""
    try:
        body = response.json()
        message, code, errors = body["message"], body.get("code", ""), body.get("errors") or {}
    except (ValueError, KeyError, TypeError):
        return VcpError(f"The portal answered {response.status_code} {response.reason} without an API error body "
                        f"(is {response.url} a vcportal?).")
    details = [f"  {field}: {msg}" for field, msgs in errors.items() for msg in msgs
               if msg != message and field != "non_field_errors"]
    if response.status_code == 429 and response.headers.get("Retry-After"):
        message += f" (retry after {response.headers['Retry-After']} s)"
    return VcpError("\n".join([message, *details]), exit_code_for(response.status_code, code))
