"""`/credential-profiles`: how to log in to devices. Only references to secrets
(`{"env": NAME}`, `{"file": PATH}`) are stored or shown, never the secrets."""

from __future__ import annotations

from fastapi import Response
from sqlalchemy import select

from api import inventory_edits
from api.deps import AdminDep, SessionDep, role_router
from api.errors import responses
from api.inventory_edits import PROFILES
from api.listing import DEFAULTS, LimitQuery, NamePath, OffsetQuery, page
from api.listing import one as get_one
from api.roles import Role
from api.schemas import Page
from inventory.document import CredentialProfileDoc
from inventory.enums import CredentialKind
from inventory.model import CredentialProfile

router = role_router(prefix="/credential-profiles", tag="credential profiles", role=Role.VIEWER)

_EXAMPLE = {
    "name": "snmp-v3-ops",
    "kind": "snmp",
    "snmp_version": "v3",
    "user": "tiandi",
    "auth_protocol": "sha",
    "auth_key": {"env": "TIANDI_SNMP_AUTH_KEY"},
    "priv_protocol": "aes",
    "priv_key": {"env": "TIANDI_SNMP_PRIV_KEY"},
}
_BODY_EXAMPLES = {
    "snmp-v3": {"summary": "SNMP v3 authPriv", "value": _EXAMPLE},
    "ssh": {
        "summary": "SSH with a key file",
        "value": {
            "name": "ssh-ops",
            "kind": "ssh",
            "username": "tiandi",
            "private_key": {"file": "/etc/tiandi/ssh/id_ed25519"},
        },
    },
}


@router.get(
    "",
    summary="List credential profiles",
    response_model=Page[CredentialProfileDoc],
    responses=responses(422),
)
def list_profiles(
    session: SessionDep,
    kind: CredentialKind | None = None,
    limit: LimitQuery = DEFAULTS["limit"],
    offset: OffsetQuery = DEFAULTS["offset"],
) -> Page[CredentialProfileDoc]:
    stmt = select(CredentialProfile)
    if kind is not None:
        stmt = stmt.where(CredentialProfile.kind == kind)
    return page(session, stmt, CredentialProfile.name, PROFILES.to_body, limit, offset)


@router.get(
    "/{name}",
    summary="Get a credential profile",
    response_model=CredentialProfileDoc,
    responses=responses(404, 422),
)
def get_profile(name: NamePath, session: SessionDep) -> CredentialProfileDoc:
    return PROFILES.to_body(get_one(session, CredentialProfile, name, "credential profile"))


@router.post(
    "",
    status_code=201,
    summary="Create a credential profile",
    response_model=CredentialProfileDoc,
    responses=responses(409, 413, 422),
    openapi_extra={"requestBody": {"content": {"application/json": {"examples": _BODY_EXAMPLES}}}},
)
def create_profile(
    body: CredentialProfileDoc, session: SessionDep, who: AdminDep
) -> CredentialProfileDoc:
    """SNMP v3 profiles must be authPriv; secrets are given as references only."""
    out = inventory_edits.create(session, PROFILES, body, actor=who.actor)
    session.commit()
    return out


@router.put(
    "/{name}",
    summary="Replace a credential profile",
    response_model=CredentialProfileDoc,
    responses=responses(404, 409, 413, 422),
)
def replace_profile(
    name: NamePath, body: CredentialProfileDoc, session: SessionDep, who: AdminDep
) -> CredentialProfileDoc:
    """A kind change that devices using the profile cannot follow is a 409."""
    out = inventory_edits.replace(session, PROFILES, name, body, actor=who.actor)
    session.commit()
    return out


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    summary="Delete a credential profile",
    responses=responses(404, 409, 422),
)
def delete_profile(name: NamePath, session: SessionDep, who: AdminDep) -> None:
    """A profile still used by devices cannot be deleted (409 lists them)."""
    inventory_edits.delete(session, PROFILES, name, actor=who.actor)
    session.commit()
