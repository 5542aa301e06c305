"""Every table Tiandi keeps, gathered on one metadata for Alembic and for tests."""

from __future__ import annotations

from sqlalchemy import MetaData


def all_metadata() -> MetaData:
    # Importing a model module registers its tables on the shared declarative Base.
    import api.accounts  # noqa: F401 - users, api_tokens
    import controllers.audit  # noqa: F401 - audit_records
    import controllers.failover.models as _failover  # noqa: F401 - failover_* tables
    import inventory.model as inventory_model

    return inventory_model.Base.metadata
