"""`/inventory`: the whole inventory as one document, out and in (admin only)."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated

from fastapi import Query

from api.deps import AdminDep, SessionDep, role_router
from api.errors import responses
from api.roles import Role
from api.schemas import ImportResult
from controllers import audit
from inventory.document import InventoryDoc
from inventory.errors import InventoryInvalid, Problem
from inventory.store import apply_document, load_document
from inventory.validation import check_references

IMPORT_MAX_BYTES = 64 << 20
"""A national inventory as JSON is several MiB; only the import takes bodies this large
(``create_app`` gives this path its own limit)."""

router = role_router(prefix="/inventory", tag="inventory", role=Role.ADMIN)


@router.get("/export", summary="Export the inventory", response_model=InventoryDoc)
def export_inventory(session: SessionDep) -> InventoryDoc:
    """The whole inventory in the YAML document's shape (as JSON); secrets as references only."""
    return load_document(session)


@router.post(
    "/import",
    summary="Import an inventory document",
    response_model=ImportResult,
    responses=responses(409, 413, 422),
)
def import_inventory(
    body: InventoryDoc,
    session: SessionDep,
    who: AdminDep,
    prune: Annotated[
        bool, Query(description="also delete what the document does not contain")
    ] = False,
    dry_run: Annotated[bool, Query(description="report what would change, change nothing")] = False,
) -> ImportResult:
    """Makes the database hold the document (upsert by name): the same rules as
    `tiandi inventory import`, all problems reported at once, nothing changed on a problem."""
    problems = check_references(body)
    if problems:
        raise InventoryInvalid([Problem(f"body.{p.path}", p.reason) for p in problems])
    audit.lock_chain(session)
    summary = apply_document(session, body, prune=prune)
    result = ImportResult(
        dry_run=dry_run, prune=prune, changed=summary.changed, **summary.as_dict()
    )
    if dry_run or not summary.changed:
        session.rollback()
        return result
    digest = hashlib.sha256(
        json.dumps(body.model_dump(mode="json"), sort_keys=True).encode("utf-8")
    ).hexdigest()
    audit.append(
        session,
        actor=who.actor,
        action="inventory.import",
        target_type="inventory",
        target="inventory",
        before=None,
        after={"prune": prune, "document_sha256": digest, **summary.as_dict()},
    )
    session.commit()
    return result
