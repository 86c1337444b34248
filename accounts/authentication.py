from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from portal.throttling import AnonRateThrottle

from .services import authenticate_token


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` with a personal API token."""

    keyword = "Bearer"

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise _refusal(request, "Malformed Authorization header; use `Bearer <token>`.")
        try:
            token = parts[1].decode()
        except UnicodeDecodeError:
            raise _refusal(request, "Invalid token.") from None
        api_token = authenticate_token(token)
        if api_token is None:
            raise _refusal(request, "Invalid or revoked token.")
        return api_token.user, api_token

    def authenticate_header(self, request):
        return self.keyword


class FailedTokenThrottle(AnonRateThrottle):
    """A wrong token counts against its client address's anonymous rate.

    DRF checks throttles only after authentication succeeds, so without this a client
    could try tokens without limit. Shares AnonRateThrottle's cache key: wrong tokens
    and anonymous requests from one address spend one budget; valid tokens spend none.
    """

    def get_cache_key(self, request, view):
        # Not AnonRateThrottle's: that asks request.user, which is being authenticated.
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def _refusal(request, message: str) -> exceptions.APIException:
    """401 with the message, or 429 once the client address has failed too often."""
    failures = FailedTokenThrottle()
    if failures.allow_request(request, None):
        return exceptions.AuthenticationFailed(message)
    return exceptions.Throttled(failures.wait())


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}
