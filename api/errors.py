"""One error shape for every failure, and the map from Tiandi's exceptions to HTTP statuses.

Every error body is ``{"detail": "...", "problems": [{"path": ..., "reason": ...}]}``. Domain
errors (``TiandiError`` subclasses) become 4xx answers with their message; database errors never
reach the client as a stack trace: an integrity error is a 409, an unreachable database a 503,
anything else a 500 with a reference to the server log.
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.login_throttle import TooManyLogins
from inventory.errors import Conflict, InventoryInvalid, NotFound, Problem, TiandiError

log = logging.getLogger(__name__)


class NotAuthenticated(TiandiError):
    """No usable credentials: missing, malformed, expired or revoked token, or a disabled user."""

    def __init__(self, message: str, *, token_given: bool = True) -> None:
        super().__init__(message)
        self.token_given = token_given


class Forbidden(TiandiError):
    """Valid credentials, but the role held is below the role the action needs."""


class ProblemOut(BaseModel):
    path: str = Field(description="where in the request", examples=["body.router"])
    reason: str = Field(examples=["router 'gd-r1' is at site 'guangdong', not 'shaoguan'"])


class ErrorOut(BaseModel):
    detail: str = Field(description="what went wrong and what to do about it")
    problems: list[ProblemOut] = Field(
        default_factory=list, description="each problem of the request, located; may be empty"
    )


_DESCRIPTIONS = {
    400: "The request cannot be carried out as asked",
    401: "No valid credentials: the token is missing, malformed, expired or revoked, or the user "
    "is disabled (the detail says which)",
    403: "Authenticated, but the role held is below the role this needs (the detail names both)",
    404: "No such object",
    409: "Conflicts with the current state: a name already used, or an object still referred to",
    413: "The request body is too large",
    429: "Too many failed logins recently: refused without checking the password; the detail "
    "and the Retry-After header say how long to wait",
    422: "The request is malformed or breaks an inventory rule; every problem is listed",
    503: "The database is unreachable; retry later",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of error answers, for a route's or a router's ``responses``."""
    return {code: {"model": ErrorOut, "description": _DESCRIPTIONS[code]} for code in codes}


def _body(detail: str, problems: list[Problem] | None = None) -> dict[str, Any]:
    return ErrorOut(
        detail=detail,
        problems=[ProblemOut(path=p.path, reason=p.reason) for p in problems or []],
    ).model_dump()


def _bearer_challenge(err: NotAuthenticated) -> str:
    if not err.token_given:
        return "Bearer"
    description = str(err).replace('"', "'")
    return f'Bearer error="invalid_token", error_description="{description}"'


def _validation_problems(err: RequestValidationError) -> list[Problem]:
    problems = []
    for e in err.errors():
        loc = list(e.get("loc", ()))
        reason = str(e.get("msg", "invalid"))
        if e.get("type") == "json_invalid" and len(loc) == 2:
            reason = f"{reason} at character {loc[1]}: {e.get('ctx', {}).get('error', '')}"
            loc = loc[:1]
        # Written like the inventory's own problem paths: body.sites[3].links[0].router
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        problems.append(Problem(path or "(request)", reason))
    return problems


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(NotAuthenticated)
    def _unauthenticated(_: Request, err: NotAuthenticated) -> JSONResponse:
        return JSONResponse(
            _body(str(err)), status_code=401, headers={"WWW-Authenticate": _bearer_challenge(err)}
        )

    @app.exception_handler(TooManyLogins)
    def _too_many(_: Request, err: TooManyLogins) -> JSONResponse:
        retry = str(max(1, math.ceil(err.retry_after_s)))
        return JSONResponse(_body(str(err)), status_code=429, headers={"Retry-After": retry})

    @app.exception_handler(Forbidden)
    def _forbidden(_: Request, err: Forbidden) -> JSONResponse:
        return JSONResponse(_body(str(err)), status_code=403)

    @app.exception_handler(NotFound)
    def _not_found(_: Request, err: NotFound) -> JSONResponse:
        return JSONResponse(_body(str(err)), status_code=404)

    @app.exception_handler(Conflict)
    def _conflict(_: Request, err: Conflict) -> JSONResponse:
        return JSONResponse(_body(str(err)), status_code=409)

    @app.exception_handler(InventoryInvalid)
    def _invalid(_: Request, err: InventoryInvalid) -> JSONResponse:
        n = len(err.problems)
        detail = f"the request breaks {n} inventory rule(s); nothing was changed"
        return JSONResponse(_body(detail, err.problems), status_code=422)

    @app.exception_handler(TiandiError)
    def _other_domain_error(_: Request, err: TiandiError) -> JSONResponse:
        return JSONResponse(_body(str(err)), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> Response:
        # FastAPI answers 400 when the body is not even text (not UTF-8): that is invalid JSON
        # too, and invalid input is a 422 everywhere else.
        if err.status_code == 400 and isinstance(err.__cause__, UnicodeDecodeError):
            problem = Problem("body", f"not valid JSON: not UTF-8 text ({err.__cause__.reason})")
            return JSONResponse(_body("the request body is not valid JSON", [problem]), 422)
        if not isinstance(err.detail, str) or err.status_code < 400:
            return await http_exception_handler(request, err)
        return JSONResponse(_body(err.detail), status_code=err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    def _request_invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = _validation_problems(err)
        detail = f"the request is invalid ({len(problems)} problem(s)); nothing was changed"
        return JSONResponse(_body(detail, problems), status_code=422)

    @app.exception_handler(IntegrityError)
    def _integrity(_: Request, err: IntegrityError) -> JSONResponse:
        # The driver's first line names the constraint ("UNIQUE constraint failed: sites.name",
        # 'duplicate key value violates unique constraint "uq_sites_name"'), never row data.
        first_line = str(err.orig).splitlines()[0] if err.orig is not None else "integrity error"
        log.info("write refused by the database: %s", first_line)
        return JSONResponse(
            _body(
                "the database refused the change because it conflicts with existing data "
                f"({first_line}); nothing was changed"
            ),
            status_code=409,
        )

    @app.exception_handler(DataError)
    def _data(_: Request, err: DataError) -> JSONResponse:
        # A value the database cannot hold or compare (PostgreSQL: a NUL character, a number
        # out of range): the request is at fault, and the driver's first line says how.
        first_line = str(err.orig).splitlines()[0] if err.orig is not None else "invalid value"
        return JSONResponse(
            _body(f"the database cannot take a value of this request ({first_line})"),
            status_code=422,
        )

    @app.exception_handler(OperationalError)
    def _database_down(_: Request, err: OperationalError) -> JSONResponse:
        log.error("database unavailable: %s", str(err.orig).splitlines()[0] if err.orig else err)
        return JSONResponse(
            _body("the database is unavailable; retry in a moment"),
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(SQLAlchemyError)
    def _database_error(_: Request, err: SQLAlchemyError) -> JSONResponse:
        return _internal(err)

    @app.exception_handler(Exception)
    def _unexpected(_: Request, err: Exception) -> JSONResponse:
        return _internal(err)


def _internal(err: Exception) -> JSONResponse:
    reference = uuid.uuid4().hex[:12]
    log.error("internal error (reference %s)", reference, exc_info=err)
    return JSONResponse(
        _body(f"internal error; the server log has the details under reference {reference}"),
        status_code=500,
    )
