"""The request context both faces build, and the cookie effects it carries back."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from core import request_id, sessions
from core.accounts import Profile, SignedIn, get_profile, profile_of_session
from core.config import IPNetwork, Settings
from core.devices import NewDevice
from core.errors import NotAuthenticated
from core.runtime import Runtime
from core.security import network
from core.sessions import NewSession, Principal

COOKIE_NAME = "session_id"
DEVICE_COOKIE_NAME = "device_id"


@dataclass
class Context:
    """What a resolver may know about the request, and the HTTP effects it asks for."""

    runtime: Runtime
    request: Request
    client: str
    token: str | None
    # The `device_id` cookie: a browser that logged in before (core/devices.py).
    device: str | None = None
    # None: leave the cookie alone; a NewSession: set it; False: clear it.
    cookie: NewSession | bool | None = None
    # A device token to set (after a login or signup).
    device_cookie: NewDevice | None = None
    _principal: Principal | None = field(default=None, repr=False)
    _resolved: bool = field(default=False, repr=False)

    @classmethod
    def from_request(cls, runtime: Runtime, request: Request) -> Context:
        client = client_address(request, runtime.settings.trusted_proxies)
        # For the rest of this request's task: shared work takes turns by client (the
        # database's writers on SQLite, core/db.py).
        request_id.CLIENT.set(network(client))
        return cls(
            runtime=runtime,
            request=request,
            client=client,
            token=request.cookies.get(COOKIE_NAME),
            device=request.cookies.get(DEVICE_COOKIE_NAME),
        )

    @property
    def user_agent(self) -> str:
        # Read only by the operations that record it, not on every request.
        return self.request.headers.get("user-agent", "")

    async def principal(self) -> Principal | None:
        if not self._resolved:
            self._principal = await sessions.resolve(self.runtime.db, self.token)
            self._resolved = True
        return self._principal

    async def profile(self) -> Profile | None:
        """The caller's profile, None when not logged in.

        On a request whose session is not resolved yet, the session and the profile are
        read in one statement (accounts.profile_of_session), and the session is resolved.
        """
        if self._resolved:
            principal = self._principal
            return None if principal is None else await get_profile(self.runtime, principal)
        found = await profile_of_session(self.runtime.db, self.token)
        self._resolved = True
        if found is None:
            self._principal = None
            return None
        self._principal, profile = found
        return profile

    async def require_principal(self) -> Principal:
        principal = await self.principal()
        if principal is None:
            raise NotAuthenticated("You must be logged in")
        return principal

    def sign_in(self, signed_in: SignedIn) -> None:
        """After a login or signup: the new session's cookie and the device's."""
        self.start_session(signed_in.session)
        self.device_cookie = signed_in.device
        self.device = signed_in.device.token

    def start_session(self, session: NewSession) -> None:
        self.cookie = session
        self._principal = None
        self._resolved = False
        self.token = session.token

    def end_session(self) -> None:
        self.cookie = False
        self._principal = None
        self._resolved = True
        self.token = None


def apply_cookie(response: Response, context: Context, settings: Settings) -> None:
    """Turn the context's cookie effects into Set-Cookie headers."""
    if context.cookie is not None:
        response.headers.append("set-cookie", session_cookie(context.cookie, settings))
    if context.device_cookie is not None:
        device = context.device_cookie
        response.headers.append(
            "set-cookie",
            cookie_header(
                DEVICE_COOKIE_NAME, device.token, max_age=device.max_age, settings=settings
            ),
        )


def session_cookie(effect: NewSession | bool, settings: Settings) -> str:
    if isinstance(effect, NewSession):
        return cookie_header(COOKIE_NAME, effect.token, max_age=effect.max_age, settings=settings)
    return cookie_header(COOKIE_NAME, '""', max_age=0, settings=settings)


SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}


def cookie_header(name: str, value: str, *, max_age: int, settings: Settings) -> str:
    """A Set-Cookie value with the attributes every cookie of this service carries.

    Written out rather than through SimpleCookie so the attributes read exactly as the
    contract spells them (`SameSite=Lax`, `session_id=""` when clearing). With
    `SameSite=None`, `Partitioned` keeps the cookie usable (per top-level site) in browsers
    that block third-party cookies.
    """
    attributes = [f"{name}={value}", f"Max-Age={max_age}", "Path=/", "HttpOnly"]
    attributes.append(f"SameSite={SAMESITE[settings.cookie_samesite]}")
    if settings.cookie_secure:
        attributes.append("Secure")
    if settings.cookie_samesite == "none":
        attributes.append("Partitioned")
    return "; ".join(attributes)


def client_address(request: Request, trusted: tuple[IPNetwork, ...]) -> str:
    """The socket's peer, or, behind proxies the operator trusts, the first hop before them."""
    peer = request.client.host if request.client else ""
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    forwarded = [
        hop.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for hop in header.split(",")
    ]
    # Walk from the nearest hop outwards; the first address not ours is the client.
    for hop in reversed(forwarded):
        if not _is_trusted(hop, trusted):
            return hop[:64]
    return peer


def _is_trusted(address: str, trusted: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
