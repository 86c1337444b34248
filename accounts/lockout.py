"""What a locked-out login sees: the login page saying why and for how long.

django-axes (configured in portal.settings) refuses a (username, client address)
pair after too many failed logins and calls `lockout_response` instead of the view's
own answer; even the right password is refused until the cool-off has passed.
"""

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import render
from django.utils import timezone
from django.utils.timesince import timeuntil


class LockedOutForm(AuthenticationForm):
    """The login form, empty but for the username, showing the lockout as its error."""

    def __init__(self, request, username: str, message: str):
        super().__init__(request, initial={"username": username})
        self.message = message

    def non_field_errors(self):
        return self.error_class([self.message])


def lockout_response(request, original_response=None, credentials=None):
    cool_off = settings.AXES_COOLOFF_TIME
    now = timezone.now()
    message = ("Too many failed logins for this user from your address. "
               f"Try again in {timeuntil(now + cool_off, now)}.")
    form = LockedOutForm(request, (credentials or {}).get("username", ""), message)
    response = render(request, "registration/login.html", {"form": form, "next": request.POST.get("next", "")},
                      status=429)
    response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response
