"""The access token of a page served beyond this machine (`onfh web --host 0.0.0.0`): every HTTP request and the
views' websocket need it, so a passer-by on the booth network who only knows the address sees a refusal, not the
page. The printed URL carries it once (`?token=…`); the server answers with a cookie and the same address without
the token, so the token does not stay on a projected address bar and the page's own requests carry the cookie."""
from __future__ import annotations

import hmac
import ipaddress
import secrets

from aiohttp import web

COOKIE = "onfh_token"
QUERY = "token"
REFUSAL = ("ONFH Assist Web: this server needs its access token. Open the address `onfh web` printed, the one "
           "that ends in ?token=…\n")


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host` (a name other than localhost counts as reachable)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def choose_token(host: str, token: str | None) -> str | None:
    """The token asked for; else a new random one when the page is served beyond this machine (a forgotten flag
    never leaves it open to a whole conference network); else none (only this machine can reach it)."""
    if token is not None:
        return token
    return None if is_loopback(host) else secrets.token_urlsafe(12)


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def middleware(token: str):
    """An aiohttp middleware that lets through only requests with the token (query once, then the cookie)."""

    @web.middleware
    async def check_token(request: web.Request, handler):
        if QUERY in request.query and _same(request.query[QUERY], token):
            rest = {k: v for k, v in request.query.items() if k != QUERY}
            response = web.Response(status=303, headers={"Location": str(request.rel_url.with_query(rest))})
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
            return response
        if _same(request.cookies.get(COOKIE, ""), token):
            return await handler(request)
        return web.Response(status=403, text=REFUSAL)

    return check_token
