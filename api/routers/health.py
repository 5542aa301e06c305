"""`/healthz` (the process answers) and `/readyz` (and its database does too). Public."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from api.deps import public_router

log = logging.getLogger(__name__)

router = public_router(tag="health")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    database: str


@router.get("/healthz", summary="Liveness", response_model=Health)
def healthz() -> Health:
    """Answers as long as the process serves requests; touches nothing else."""
    return Health()


@router.get(
    "/readyz",
    summary="Readiness",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database is unreachable"}},
)
def readyz(request: Request) -> Readiness | JSONResponse:
    """Ready when the database answers a query; 503 with the reason otherwise."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    try:
        with factory() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as err:
        reason = str(getattr(err, "orig", None) or err).splitlines()[0]
        log.warning("not ready: database unreachable: %s", reason)
        body = Readiness(status="unavailable", database=f"unreachable: {reason}")
        return JSONResponse(body.model_dump(), status_code=503)
    return Readiness(status="ready", database="ok")
