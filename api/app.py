"""The FastAPI application factory.

``create_app`` receives everything it needs (a session factory and an :class:`ApiConfig`) from
the composition root; nothing here reads settings or the environment.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy.orm import Session, sessionmaker

from api import errors
from api.account_cache import AccountCache
from api.config import ApiConfig
from api.deps import PUBLIC_PATHS, forget_cached, required_role
from api.inventory_index import InventoryIndex
from api.limits import BodyLimit
from api.login_throttle import LoginThrottle
from api.monitoring_view import MonitoringView
from api.routers import approvals as approval_routes
from api.routers import (
    audit,
    auth,
    credential_profiles,
    devices,
    health,
    inventory,
    links,
    satellite_pools,
    sites,
    users,
)
from api.routers import failover as failover_routes
from api.routers import monitoring as monitoring_routes
from controllers.failover.service import FailoverService

DOC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})

DESCRIPTION = """\
Tiandi manages the national video-conference network: inventory of sites, devices, links,
credential profiles and satellite pools; users, roles and API tokens; the audit trail.

**Authentication**: `POST /auth/token` (OAuth2 password flow) gives a short-lived bearer token;
automation uses API tokens (`tdk_...`) from `POST /auth/api-tokens`. Send either as
`Authorization: Bearer <token>`.

**Roles**: `viewer` reads; `operator` also runs control actions and books conferences; `admin`
also changes the inventory and the users. Each operation names its role. 401 means no usable
credentials (the detail says why); 403 means the role held is too low (the detail names both).
"""

TAGS = [
    {"name": "health", "description": "Liveness and readiness probes; no login needed"},
    {"name": "auth", "description": "Log in, API tokens, own password"},
    {"name": "users", "description": "API users and their roles"},
    {"name": "sites", "description": "Ministry, provinces, prefectures, counties"},
    {"name": "devices", "description": "Routers, satellite terminals, video endpoints, MCUs"},
    {"name": "links", "description": "Primary, backup and satellite links of each site"},
    {"name": "credential profiles", "description": "SNMP and SSH credentials, as references"},
    {"name": "satellite pools", "description": "Shared satellite capacity"},
    {"name": "inventory", "description": "The whole inventory as one document"},
    {"name": "audit", "description": "The hash-chained trail of every change"},
    {"name": "monitoring", "description": "Live state, link health, metric series, alarms"},
    {"name": "failover", "description": "Each site's failover state and events; manual moves"},
    {"name": "approvals", "description": "Two-person rule for high-impact failover actions"},
]


def create_app(
    session_factory: sessionmaker[Session],
    config: ApiConfig,
    monitoring: MonitoringView | None = None,
    failover: FailoverService | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Tiandi",
        version=config.version,
        description=DESCRIPTION,
        openapi_tags=TAGS,
    )
    app.add_middleware(
        BodyLimit,
        limit=config.max_body_bytes,
        per_path={"/inventory/import": inventory.IMPORT_MAX_BYTES},
    )
    app.state.session_factory = session_factory
    app.state.config = config
    app.state.account_cache = AccountCache(ttl_s=config.account_cache_seconds)
    app.state.login_throttle = LoginThrottle()
    app.state.inventory_index = InventoryIndex(lambda: app.state.session_factory)
    app.state.forget_cached = forget_cached(app)
    errors.install(app)
    monitoring_routes.install(app, monitoring)
    failover_routes.install(app, failover)
    for module in (
        health,
        auth,
        users,
        sites,
        devices,
        links,
        credential_profiles,
        satellite_pools,
        inventory,
        audit,
        monitoring_routes,
        failover_routes,
        approval_routes,
    ):
        for name in ("public", "router"):
            if (router := getattr(module, name, None)) is not None:
                app.include_router(router)
    _check_roles(app)
    return app


def _check_roles(app: FastAPI) -> None:
    """Refuse to build an app with a route outside PUBLIC_PATHS that needs no role."""
    for ctx in iter_route_contexts(app.routes):
        if isinstance(ctx.original_route, APIRoute):
            role = required_role(ctx.dependant)
            if ctx.path in PUBLIC_PATHS:
                if role is not None:
                    raise RuntimeError(f"{ctx.path} is public but requires role {role}")
            elif role is None:
                raise RuntimeError(
                    f"route {sorted(ctx.methods or ())} {ctx.path} requires no role; build its "
                    "router with api.deps.role_router or give it an AdminDep/OperatorDep/ViewerDep"
                )
        elif ctx.path not in DOC_PATHS:
            raise RuntimeError(f"unexpected route {ctx.path}: only API routes are served")
