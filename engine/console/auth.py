"""Who may read and who may operate, and protection against cross-site requests.

Reading needs no credentials only while the console listens on a loopback address.
Operating always needs them: a bearer token (``STATEWRIGHT_CONSOLE_TOKEN``, also
accepted as the password of HTTP basic auth) or the basic-auth user
``STATEWRIGHT_CONSOLE_USER=name:password``. A browser sends basic auth by itself,
so every operation also carries a token that only the console's own pages know
(double submit: a cookie the page was served with and the same value in the form),
and a request from another origin is refused.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field

from starlette.requests import Request

CSRF_COOKIE = "statewright_csrf"
CSRF_FIELD = "csrf"
REALM = 'Basic realm="statewright console", charset="UTF-8"'


class AccessDeniedError(Exception):
    """A request without the credentials or the form token it needs."""

    def __init__(
        self, status: int, message: str, *, challenge: bool = False, sign_in: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        #: Whether the response asks the browser for basic-auth credentials.
        self.challenge = challenge
        #: Whether the page offers a link that signs in.
        self.sign_in = sign_in


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Access:
    """The console's credentials and whether it listens on loopback only."""

    token: str | None = field(default=None, repr=False)
    user: str | None = field(default=None, repr=False)
    loopback: bool = True

    @property
    def can_operate(self) -> bool:
        return self.token is not None or self.user is not None

    def who(self, request: Request) -> str | None:
        """The name the request authenticates as, or ``None``."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and self.token is not None:
            return "token" if _same(value.strip(), self.token) else None
        if scheme.lower() != "basic":
            return None
        try:
            name, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if self.user is not None and _same(f"{name}:{password}", self.user):
            return name
        if self.token is not None and _same(password, self.token):
            return name or "token"
        return None

    def check_read(self, request: Request) -> None:
        if self.loopback or self.who(request) is not None:
            return
        raise AccessDeniedError(
            401, "This console listens beyond loopback: sign in to read.", challenge=True
        )

    def check_operate(self, request: Request, form_token: object) -> str:
        """The operator's name; ``AccessDeniedError`` without credentials or the form's token."""
        if not self.can_operate:
            raise AccessDeniedError(
                403,
                "Operations are turned off: this console has no credentials configured. "
                "Set STATEWRIGHT_CONSOLE_TOKEN or STATEWRIGHT_CONSOLE_USER=name:password "
                "and start it again.",
            )
        who = self.who(request)
        if who is None:
            # no challenge here: a browser would hold the form while it asks; the page
            # links to /login, which asks, and the browser then sends them with every form
            raise AccessDeniedError(
                403,
                "Operations need credentials: sign in with the console's user, or any "
                "name and the console token as password, then send the form again.",
                sign_in=True,
            )
        check_csrf(request, form_token)
        return who


def check_csrf(request: Request, form_token: object) -> None:
    """Refuse a form that did not come from one of this console's pages."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise AccessDeniedError(403, f"Refused a request from another origin ({origin[:100]}).")
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not isinstance(form_token, str) or not _same(form_token, cookie):
        raise AccessDeniedError(
            403,
            "Refused: the form's security token is missing or stale. Reload the page and "
            "try again.",
        )


def csrf_token(request: Request) -> tuple[str, bool]:
    """The token for this browser's forms, and whether it is new (and must be set)."""
    current = request.cookies.get(CSRF_COOKIE)
    if current and 20 <= len(current) <= 100:
        return current, False
    return secrets.token_urlsafe(32), True


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
