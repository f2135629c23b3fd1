"""The sandbox's OAuth 2.0 servers: Google's and the Microsoft identity platform's (v2.0)
authorization code flow with PKCE, answering as the real ones do.

Routes (the real hosts' paths, so pointing a deployment at the sandbox is a base-URL swap):

    GET  /o/oauth2/v2/auth                 Google authorize      (GOOGLE_AUTH_URL)
    POST /token                            Google token          (GOOGLE_TOKEN_URL)
    GET  /{tenant}/oauth2/v2.0/authorize   Microsoft authorize   (MICROSOFT_LOGIN_URL)
    POST /{tenant}/oauth2/v2.0/token       Microsoft token

Authorize approves at once (there is no user to ask) and redirects back with a code and the
state. ``login_hint`` picks the account: an existing account's id, ``contacts:<N>,seed:<S>`` for
a new one, or nothing for a new account with the state's default book. The token endpoint checks
the client secret (form or HTTP Basic), the code (single use, 60 s), the redirect URI and the
PKCE verifier (S256 only). A refresh token comes with ``access_type=offline`` (Google) or the
``offline_access`` scope (Microsoft). Google's refresh keeps its refresh token; Microsoft's
rotates it, and the old one answers ``grace`` more times before it is ``invalid_grant``.
Access tokens work on the sandbox's contact APIs until ``Faults.access_token_ttl`` runs out;
``Faults.revoked`` (``SandboxState.revoke``) makes every token of the account invalid.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from contact_import.sandbox.accounts import Account
from contact_import.sandbox.folder_tree import NESTED_FOLDERS, FolderTree
from contact_import.sandbox.oauth_store import OAuthStore, PendingCode, RefreshGrant
from contact_import.sandbox.oauth_wire import (
    BAD_REQUEST,
    BAD_SECRET,
    BAD_VERIFIER,
    GOOGLE,
    MICROSOFT,
    MISSING,
    NO_STORE,
    REDIRECT_MISMATCH,
    REVOKED,
    UNKNOWN_CLIENT,
    UNSUPPORTED_GRANT,
    AuthorizeError,
    Dialect,
    TokenError,
)
from contact_import.sandbox.state import SandboxState, sandbox_state

__all__ = ["oauth_routes"]

_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")

# --- routes ------------------------------------------------------------------------------------


def oauth_routes() -> list[Route]:
    """Both providers' authorize and token endpoints."""

    async def google_authorize(request: Request) -> Response:
        return _authorize(request, GOOGLE)

    async def google_token(request: Request) -> Response:
        return await _token(request, GOOGLE)

    async def microsoft_authorize(request: Request) -> Response:
        return _authorize(request, MICROSOFT)

    async def microsoft_token(request: Request) -> Response:
        return await _token(request, MICROSOFT)

    return [
        Route("/o/oauth2/v2/auth", google_authorize, methods=["GET"]),
        Route("/token", google_token, methods=["POST"]),
        Route("/{tenant}/oauth2/v2.0/authorize", microsoft_authorize, methods=["GET"]),
        Route("/{tenant}/oauth2/v2.0/token", microsoft_token, methods=["POST"]),
    ]


def _authorize(request: Request, dialect: Dialect) -> Response:
    state, params = sandbox_state(request), request.query_params
    client = state.oauth.client(params.get("client_id", ""))
    if client is None or client.provider != dialect.provider:
        return _error_page("invalid_client", "The OAuth client was not found.")
    redirect_uri = params.get("redirect_uri", "")
    if not _is_redirect_uri(redirect_uri):
        return _error_page("invalid_request", "redirect_uri must be an absolute http(s) URL.")
    try:
        scopes, challenge = _check_authorize_params(params, dialect)
        account = _login_account(state, params.get("login_hint", ""))
    except AuthorizeError as exc:
        error = {"error": exc.error, "error_description": exc.description}
        return _redirect(redirect_uri, error, params.get("state"))
    pending = PendingCode(
        account=account,
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        challenge=challenge,
        scope=" ".join(sorted(scopes - {"offline_access"})),
        offline=dialect.wants_refresh_token(params, scopes),
        expires_at=state.oauth.clock() + state.oauth.code_ttl,
    )
    code = state.oauth.issue_code(dialect.new_token("code"), pending)
    return _redirect(redirect_uri, {"code": code}, params.get("state"))


def _check_authorize_params(params: QueryParams, dialect: Dialect) -> tuple[frozenset[str], str]:
    """(the scopes asked for, the PKCE challenge); AuthorizeError for the first problem."""
    if params.get("response_type") != "code":
        raise AuthorizeError("unsupported_response_type", "response_type must be 'code'.")
    scopes = frozenset(params.get("scope", "").split())
    if not dialect.has_contacts_scope(scopes):
        raise AuthorizeError("invalid_scope", "The contacts scope was not requested.")
    challenge = params.get("code_challenge", "")
    if not challenge:
        raise AuthorizeError("invalid_request", "code_challenge is required (PKCE).")
    if params.get("code_challenge_method") != "S256":
        raise AuthorizeError("invalid_request", "code_challenge_method must be S256.")
    if not 43 <= len(challenge) <= 128:
        raise AuthorizeError("invalid_request", "code_challenge is not a valid S256 challenge.")
    return scopes, challenge


# ``folders:`` of a login hint: how the account's book is filed in Outlook folders.
_SPREADS: dict[str | None, Callable[[], FolderTree | None]] = {
    None: lambda: None,
    "nested": lambda: FolderTree(NESTED_FOLDERS),
}


def _login_account(state: SandboxState, hint: str) -> Account:
    """The account ``login_hint`` names, or a new one it describes (no hint: the default)."""
    if not hint:
        return state.new_account(state.default_size, state.default_seed)
    existing = state.account_by_id(hint)
    if existing is not None:
        return existing
    spec = dict(part.partition(":")[::2] for part in hint.split(","))
    size, seed = spec.pop("contacts", ""), spec.pop("seed", str(state.default_seed))
    folders = spec.pop("folders", None)
    if spec or not size.isdigit() or not seed.lstrip("-").isdigit() or folders not in _SPREADS:
        raise AuthorizeError(
            "invalid_request",
            "login_hint must be an account id or contacts:<N>,seed:<S>[,folders:nested].",
        )
    try:
        return state.new_account(int(size), int(seed), folders=_SPREADS[folders]())
    except ValueError as exc:
        raise AuthorizeError("invalid_request", str(exc)) from None


async def _token(request: Request, dialect: Dialect) -> Response:
    state = sandbox_state(request)
    try:
        form = _form(await request.body())
        client_id = _authenticate_client(state.oauth, form, request.headers, dialect)
        grant_type = _required(form, "grant_type")
        if grant_type == "authorization_code":
            body = _redeem_code(state, client_id, form, dialect)
        elif grant_type == "refresh_token":
            body = _refresh(state, client_id, form, dialect)
        else:
            raise TokenError(UNSUPPORTED_GRANT, grant_type)
    except TokenError as exc:
        return dialect.error(exc.failure, exc.detail)
    return JSONResponse(body, headers=NO_STORE)


def _redeem_code(
    state: SandboxState, client_id: str, form: dict[str, str], dialect: Dialect
) -> dict[str, object]:
    code, redirect_uri = _required(form, "code"), _required(form, "redirect_uri")
    verifier = _required(form, "code_verifier")
    pending = state.oauth.redeem_code(code, client_id)
    if redirect_uri != pending.redirect_uri:
        raise TokenError(REDIRECT_MISMATCH)
    if not _verifier_matches(verifier, pending.challenge):
        raise TokenError(BAD_VERIFIER)
    if pending.account.faults.revoked:
        raise TokenError(REVOKED)
    refresh_token = None
    if pending.offline:
        grant = RefreshGrant(pending.account, client_id, pending.scope)
        refresh_token = state.oauth.issue_refresh_token(dialect.new_token("refresh"), grant)
    return _token_body(state, dialect, pending.account, pending.scope, refresh_token)


def _refresh(
    state: SandboxState, client_id: str, form: dict[str, str], dialect: Dialect
) -> dict[str, object]:
    token = _required(form, "refresh_token")
    rotate = dialect.rotates_refresh_tokens
    grant = state.oauth.use_refresh_token(token, client_id, rotate=rotate)
    new_refresh_token = None
    if rotate:
        fresh = RefreshGrant(grant.account, client_id, grant.scope)
        new_refresh_token = state.oauth.issue_refresh_token(dialect.new_token("refresh"), fresh)
    return _token_body(state, dialect, grant.account, grant.scope, new_refresh_token)


def _token_body(
    state: SandboxState,
    dialect: Dialect,
    account: Account,
    scope: str,
    refresh_token: str | None,
) -> dict[str, object]:
    ttl = account.faults.access_token_ttl
    access_token = state.add_token(account, dialect.new_token("access"), ttl=ttl)
    body: dict[str, object] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": scope,
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    return body | dialect.token_fields(ttl)


def _verifier_matches(verifier: str, challenge: str) -> bool:
    if not _VERIFIER.fullmatch(verifier):  # RFC 7636 4.1; also keeps non-ASCII out of the hash
        return False
    expected = str(create_s256_code_challenge(verifier))  # type: ignore[no-untyped-call]
    return secrets.compare_digest(expected, challenge)


def _authenticate_client(
    store: OAuthStore, form: dict[str, str], headers: Headers, dialect: Dialect
) -> str:
    """The client id, once its secret checked (HTTP Basic or the form: RFC 6749 2.3.1)."""
    basic = _basic_credentials(headers)
    if basic is not None and "client_secret" in form:
        raise TokenError(BAD_REQUEST, "Use one client authentication method only.")
    client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
    if not client_id:
        raise TokenError(MISSING, "client_id")
    client = store.client(client_id)
    if client is None or client.provider != dialect.provider:
        raise TokenError(UNKNOWN_CLIENT, client_id)
    if not secret:
        raise TokenError(MISSING, "client_secret")
    if not secrets.compare_digest(secret.encode(), client.client_secret.encode()):
        raise TokenError(BAD_SECRET)
    return client_id


def _basic_credentials(headers: Headers) -> tuple[str, str] | None:
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise TokenError(BAD_SECRET) from None
    client_id, _, secret = decoded.partition(":")
    return unquote(client_id), unquote(secret)  # RFC 6749 2.3.1: form-encoded, then Basic


def _form(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body; each parameter at most once (RFC 6749 3.2)."""
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise TokenError(BAD_REQUEST, "The body is not form-encoded.") from None
    repeated = sorted(name for name, values in parsed.items() if len(values) > 1)
    if repeated:
        raise TokenError(BAD_REQUEST, f"Parameter '{repeated[0]}' is repeated.")
    return {name: values[0] for name, values in parsed.items()}


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name, "")
    if not value:
        raise TokenError(MISSING, name)
    return value


def _is_redirect_uri(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname) and not parts.fragment


def _redirect(uri: str, params: dict[str, str], state: str | None) -> Response:
    if state is not None:
        params = params | {"state": state}  # echoed verbatim
    separator = "&" if urlsplit(uri).query else "?"
    return RedirectResponse(f"{uri}{separator}{urlencode(params)}", status_code=302)


def _error_page(error: str, description: str) -> Response:
    # No redirect: the redirect URI cannot be trusted, so the user sees the error (as Google does).
    return JSONResponse({"error": error, "error_description": description}, status_code=400)
