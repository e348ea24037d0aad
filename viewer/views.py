"""HTML pages every user meets: the page layout, login and logout, the language switch,
the duty officer's wall, the health board and one's own account."""

from __future__ import annotations

import json
import secrets

from aiohttp import web

from viewer.accounts import User
from viewer.audit import Action
from viewer.auth import (
    CSRF_FIELD,
    PRELOGIN_COOKIE,
    SESSION_COOKIE,
    Permission,
    Session,
    has_permission,
    tokens_match,
)
from viewer.config import LANGUAGES
from viewer.errors import AccountError, AccountLocked, AuthError, LoginThrottled, RequestInvalid
from viewer.i18n import LANGUAGE_COOKIE, catalog, choose_language, translate
from viewer.templates import escape, render
from viewer.web import client_address, context, current_session, require, text_field

NAV = (  # (path, permission, label key)
    ("/", Permission.WALL, "nav.wall"),
    ("/health", Permission.HEALTH, "nav.health"),
    ("/audit", Permission.AUDIT, "nav.audit"),
    ("/users", Permission.USERS, "nav.users"),
    ("/account", Permission.ACCOUNT, "nav.account"),
)
COOKIE_MAX_AGE_S = 365 * 24 * 3600


def language_of(request: web.Request) -> str:
    session = current_session(request)
    return choose_language(
        session.user.language if session else None,
        request.cookies.get(LANGUAGE_COOKIE),
        context(request).config.default_language,
    )


def _json_for_script(data: object) -> str:
    """JSON safe inside <script type="application/json"> (no '</script>' breakout)."""
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")


def _nav(user: User, language: str, active: str) -> str:
    links = []
    for path, permission, label in NAV:
        if has_permission(user, permission):
            cls = ' class="active" aria-current="page"' if path == active else ""
            links.append(f'<a href="{path}"{cls}>{escape(translate(language, label))}</a>')
    return "".join(links)


def _language_switch(language: str, csrf: str, back: str) -> str:
    buttons = "".join(
        f'<button type="submit" name="language" value="{lang}"'
        f'{" disabled" if lang == language else ""}>{lang.upper()}</button>'
        for lang in LANGUAGES
    )
    return (
        f'<form class="lang" method="post" action="/language">'
        f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf)}">'
        f'<input type="hidden" name="back" value="{escape(back)}">{buttons}</form>'
    )


def page(
    request: web.Request, session: Session, *, name: str, title_key: str, body: str,
    scripts: tuple[str, ...] = (),
) -> web.Response:
    language = language_of(request)
    user = session.user
    html = render(
        "base.html", language,
        lang=language,
        page=name,
        csrf=session.csrf_token,
        title=translate(language, title_key),
        nav=_nav(user, language, request.path),
        username=user.username,
        role=translate(language, f"role.{user.role.value}"),
        language_switch=_language_switch(language, session.csrf_token, request.path),
        body=body,
        i18n=_json_for_script(catalog(language)),
        permissions=" ".join(sorted(p.value for p in Permission if has_permission(user, p))),
        scripts="".join(f'<script src="/static/{s}" defer></script>' for s in scripts),
    )
    return web.Response(text=html, content_type="text/html")


# login and logout


def _set_cookie(response: web.StreamResponse, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name, value, path="/", secure=True, httponly=True, samesite="Strict", max_age=max_age
    )


async def login_form(
    request: web.Request, error: str = "", status: int = 200, username: str = ""
) -> web.Response:
    if current_session(request) is not None and request.method == "GET":
        raise web.HTTPSeeOther("/")
    language = language_of(request)
    token = secrets.token_urlsafe(32)
    html = render(
        "login.html", language, lang=language, csrf=token, username=username,
        error=f'<p class="error" role="alert">{escape(error)}</p>' if error else "",
        languages="".join(
            f'<a href="/language?set={lang}" class="{"active" if lang == language else ""}">'
            f"{lang.upper()}</a>"
            for lang in LANGUAGES
        ),
    )
    response = web.Response(text=html, content_type="text/html", status=status)
    _set_cookie(response, PRELOGIN_COOKIE, token, max_age=3600)
    return response


async def login(request: web.Request) -> web.Response:
    ctx = context(request)
    language = language_of(request)
    form = await request.post()
    if not tokens_match(request.cookies.get(PRELOGIN_COOKIE), form.get(CSRF_FIELD)):
        return await login_form(request, translate(language, "login.expired"), status=403)
    username = text_field(form, "username", max_len=64).strip().lower()
    password = text_field(form, "password", max_len=256)
    if not username or not password:
        return await login_form(request, translate(language, "login.missing"), status=400)
    address = client_address(request)
    try:
        user = await ctx.authenticator.login(username, password, address)
    except AuthError as err:
        if isinstance(err, LoginThrottled):
            outcome, key, status = "throttled", "login.throttled", 429
        elif isinstance(err, AccountLocked):
            outcome, key, status = "locked", "login.locked", 403
        else:
            outcome, key, status = "bad_credentials", "login.failed", 401
        ctx.audit.record(Action.LOGIN_FAILED, username=username, address=address,
                         outcome=outcome)
        response = await login_form(request, translate(language, key), status=status,
                                    username=username)
        if isinstance(err, LoginThrottled):
            response.headers["Retry-After"] = str(max(1, round(err.retry_after_s)))
        return response
    token, _session = ctx.sessions.create(user, address)
    ctx.audit.record(Action.LOGIN, username=user.username, address=address)
    response = web.HTTPSeeOther("/" if has_permission(user, Permission.WALL) else "/health")
    _set_cookie(response, SESSION_COOKIE, token, max_age=None)
    response.del_cookie(PRELOGIN_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.Response:
    ctx = context(request)
    session = current_session(request)
    if session is not None:
        ctx.sessions.end(session)
        ctx.audit.record(Action.LOGOUT, username=session.user.username,
                         address=client_address(request))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def set_language(request: web.Request) -> web.Response:
    """POST (logged in, CSRF-checked) or GET ?set= on the login page (cookie only)."""
    ctx = context(request)
    if request.method == "POST":
        form = await request.post()
        language = text_field(form, "language", max_len=8)
        back = text_field(form, "back", max_len=200, required=False, default="/")
    else:
        language = text_field(request.query, "set", max_len=8)
        back = "/login"
    if language not in LANGUAGES:
        raise RequestInvalid("language", f"must be one of {', '.join(LANGUAGES)}")
    if not back.startswith("/") or back.startswith("//"):
        back = "/"
    session = current_session(request)
    if session is not None and request.method == "POST":
        ctx.accounts.set_language(session.user.id, language)
    response = web.HTTPSeeOther(back)
    response.set_cookie(LANGUAGE_COOKIE, language, path="/", secure=True, samesite="Strict",
                        max_age=COOKIE_MAX_AGE_S)
    raise response


# pages


async def wall(request: web.Request) -> web.Response:
    session = require(request, Permission.WALL)
    language = language_of(request)
    return page(request, session, name="wall", title_key="nav.wall",
                body=render("wall.html", language), scripts=("desk.js", "live.js"))


async def health_page(request: web.Request) -> web.Response:
    session = require(request, Permission.HEALTH)
    language = language_of(request)
    return page(request, session, name="health", title_key="nav.health",
                body=render("health.html", language), scripts=("desk.js",))


async def account_page(request: web.Request, error: str = "", status: int = 200
                       ) -> web.Response:
    session = require(request, Permission.ACCOUNT)
    language = language_of(request)
    body = render("account.html", language, csrf=session.csrf_token,
                  username=session.user.username,
                  error=f'<p class="error" role="alert">{escape(error)}</p>' if error else "")
    response = page(request, session, name="account", title_key="nav.account", body=body)
    response.set_status(status)
    return response


async def account_password(request: web.Request) -> web.Response:
    """Change one's own password. The current one is checked like a login (throttled,
    counted towards lock-out), so a stolen session cannot guess it."""
    session = require(request, Permission.ACCOUNT)
    ctx = context(request)
    language = language_of(request)
    form = await request.post()
    current = text_field(form, "current", max_len=256)
    new = text_field(form, "new", max_len=256)
    repeat = text_field(form, "repeat", max_len=256)
    if new != repeat:
        return await account_page(request, translate(language, "account.mismatch"), 400)
    address = client_address(request)
    username = session.user.username
    try:
        await ctx.authenticator.login(username, current, address)
    except AuthError:
        ctx.audit.record(Action.CONFIG_CHANGE, username=username, address=address,
                         outcome="wrong_current_password", change="own_password")
        return await account_page(request, translate(language, "account.wrong_current"), 400)
    try:
        ctx.accounts.set_password(username, new, now=ctx.clock.wall())
    except AccountError as err:
        return await account_page(request, str(err), 400)
    ctx.audit.record(Action.CONFIG_CHANGE, username=username, address=address,
                     change="own_password")
    response = web.HTTPSeeOther("/login")  # every session of the user has ended
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/language", set_language)
    app.router.add_post("/language", set_language)
    app.router.add_get("/", wall)
    app.router.add_get("/health", health_page)
    app.router.add_get("/account", account_page)
    app.router.add_post("/account/password", account_password)
