"""What every console page stands on: the signed-in session (else a redirect to the
sign-in page), the admin API as that session, forms checked for their CSRF token, and
the templates (Jinja2, autoescaped: what users typed is shown as text, never as markup)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.datastructures import FormData

from services.console.api import Caller, SignedOut
from services.console.session import COOKIE, Session, csrf_matches

CSRF_FIELD, CSRF_HEADER = "csrf", "x-csrf-token"
MAX_FORM_FIELDS = 1000

templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(default=True), auto_reload=False,
                        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)

# The navigation, in the order of the work: (path, label).
NAV = (("/events", "Events & messages"), ("/test-profiles", "Test profiles"),
       ("/lookup", "Event lookup"),
       ("/profiles", "Profiles"), ("/audiences", "Audiences"), ("/journeys", "Journeys"),
       ("/operations", "Operations"))


class NeedSignIn(Exception):
    """No valid session: the page answers with the sign-in page's address."""


class BadCsrf(Exception):
    """A form or htmx request without the session's CSRF token."""


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def session_of(request: Request) -> Session:
    session = request.app.state.seal.open(request.cookies.get(COOKIE))
    if session is None:
        raise NeedSignIn()
    return session


SessionDep = Annotated[Session, Depends(session_of)]


def api_of(request: Request, session: SessionDep) -> Caller:
    return Caller(request.app.state.admin_api, session.api_key)


Api = Annotated[Caller, Depends(api_of)]


async def checked_form(request: Request, session: SessionDep) -> FormData:
    """The request's form, once its CSRF token (form field or htmx header) is the session's."""
    form = await request.form(max_fields=MAX_FORM_FIELDS)
    given = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    if not csrf_matches(session, given if isinstance(given, str) else None):
        raise BadCsrf()
    return form


Form = Annotated[FormData, Depends(checked_form)]


def render(request: Request, name: str, session: Session | None = None, status: int = 200,
           headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    page = templates.get_template(name).render(
        session=session, nav=NAV, path=request.url.path, csrf_field=CSRF_FIELD,
        grafana_url=request.app.state.settings.console_grafana_url, **context)
    return HTMLResponse(page, status_code=status, headers=headers)


def sign_in_redirect(request: Request) -> Response:
    """To the sign-in page, coming back here after: a 303 for a page, ``HX-Redirect``
    for an htmx request (which would otherwise swap the sign-in page into a fragment)."""
    back = request.url.path if request.method == "GET" and not is_htmx(request) else "/"
    target = f"/sign-in?next={quote(back)}"
    if is_htmx(request):
        response: Response = Response(status_code=204, headers={"HX-Redirect": target})
    else:
        response = RedirectResponse(target, status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


async def on_need_sign_in(request: Request, _error: Exception) -> Response:
    return sign_in_redirect(request)


async def on_signed_out(request: Request, _error: Exception) -> Response:
    assert isinstance(_error, SignedOut)
    return sign_in_redirect(request)


async def on_bad_csrf(request: Request, _error: Exception) -> Response:
    return render(request, "error.html", status=403, title="Form expired",
                  message="This form was not sent from this session's page (or the session"
                          " changed). Reload the page and send it again.")


def field_errors(errors: dict[str, str], prefix: str) -> dict[str, str]:
    """The errors under ``prefix`` (``template``), keyed by what follows it."""
    dotted = prefix + "."
    return {key[len(dotted):]: why for key, why in errors.items() if key.startswith(dotted)}
