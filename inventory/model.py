"""Relational model of the inventory (SQLAlchemy 2.0, typed).

Secrets are stored as references (``env:NAME`` / ``file:/path``), never as values. Enums are
stored as short strings so SQLite and PostgreSQL schemas stay identical.
"""

from __future__ import annotations

from sqlalchemy import Enum, Float, ForeignKey, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from inventory.enums import (
    CredentialKind,
    DeviceKind,
    LinkRole,
    SnmpAuthProtocol,
    SnmpPrivProtocol,
    SnmpVersion,
    Tier,
)

# Deterministic constraint names so Alembic migrations are the same on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _enum(cls: type) -> Enum:
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda e: [m.value for m in e],
    )


class CredentialProfile(Base):
    __tablename__ = "credential_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    kind: Mapped[CredentialKind] = mapped_column(_enum(CredentialKind))
    snmp_version: Mapped[SnmpVersion | None] = mapped_column(_enum(SnmpVersion))
    community_ref: Mapped[str | None] = mapped_column(String(512))
    snmp_user: Mapped[str | None] = mapped_column(String(32))
    auth_protocol: Mapped[SnmpAuthProtocol | None] = mapped_column(_enum(SnmpAuthProtocol))
    auth_key_ref: Mapped[str | None] = mapped_column(String(512))
    priv_protocol: Mapped[SnmpPrivProtocol | None] = mapped_column(_enum(SnmpPrivProtocol))
    priv_key_ref: Mapped[str | None] = mapped_column(String(512))
    ssh_username: Mapped[str | None] = mapped_column(String(64))
    ssh_password_ref: Mapped[str | None] = mapped_column(String(512))
    ssh_private_key_ref: Mapped[str | None] = mapped_column(String(512))

    def __repr__(self) -> str:  # references only, but keep logs short and obviously safe
        return f"CredentialProfile(name={self.name!r}, kind={self.kind!s})"


class SatellitePool(Base):
    __tablename__ = "satellite_pools"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    capacity_kbps: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(128))
    tier: Mapped[Tier] = mapped_column(_enum(Tier), index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="RESTRICT"), index=True
    )
    province_code: Mapped[str | None] = mapped_column(String(6), index=True)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)

    parent: Mapped[Site | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Site]] = relationship(back_populates="parent")
    maintenance: Mapped[list[MaintenanceWindow]] = relationship(
        back_populates="site", cascade="all, delete-orphan", order_by="MaintenanceWindow.id"
    )
    devices: Mapped[list[Device]] = relationship(
        back_populates="site", cascade="all, delete-orphan", order_by="Device.id"
    )
    links: Mapped[list[Link]] = relationship(
        back_populates="site",
        cascade="all, delete-orphan",
        order_by="Link.id",
        foreign_keys="Link.site_id",
    )

    def __repr__(self) -> str:
        return f"Site(name={self.name!r}, tier={self.tier!s})"


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    kind: Mapped[DeviceKind] = mapped_column(_enum(DeviceKind), index=True)
    vendor: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(64))
    mgmt_address: Mapped[str] = mapped_column(String(45))
    snmp_port: Mapped[int] = mapped_column(Integer, default=161)
    ssh_port: Mapped[int] = mapped_column(Integer, default=22)
    snmp_profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("credential_profiles.id", ondelete="RESTRICT"), index=True
    )
    ssh_profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("credential_profiles.id", ondelete="RESTRICT"), index=True
    )

    site: Mapped[Site] = relationship(back_populates="devices")
    snmp_profile: Mapped[CredentialProfile | None] = relationship(foreign_keys=[snmp_profile_id])
    ssh_profile: Mapped[CredentialProfile | None] = relationship(foreign_keys=[ssh_profile_id])

    def __repr__(self) -> str:
        return f"Device(name={self.name!r}, kind={self.kind!s}, mgmt={self.mgmt_address})"


class Link(Base):
    __tablename__ = "links"
    __table_args__ = (UniqueConstraint("site_id", "role", name="uq_links_site_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    router_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="RESTRICT"), index=True
    )
    role: Mapped[LinkRole] = mapped_column(_enum(LinkRole))
    interface: Mapped[str] = mapped_column(String(64))
    capacity_kbps: Mapped[int] = mapped_column(Integer)
    probe_address: Mapped[str] = mapped_column(String(45))
    carrier: Mapped[str | None] = mapped_column(String(64))
    terminal_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="RESTRICT"))
    satellite_pool_id: Mapped[int | None] = mapped_column(
        ForeignKey("satellite_pools.id", ondelete="RESTRICT"), index=True
    )

    site: Mapped[Site] = relationship(back_populates="links", foreign_keys=[site_id])
    router: Mapped[Device] = relationship(foreign_keys=[router_id])
    terminal: Mapped[Device | None] = relationship(foreign_keys=[terminal_id])
    satellite_pool: Mapped[SatellitePool | None] = relationship()

    def __repr__(self) -> str:
        return f"Link(name={self.name!r}, role={self.role!s})"


class MaintenanceWindow(Base):
    """Planned work at a site. Times are kept as ISO 8601 text with the offset they were given
    in, so an import/export round trip is exact; compare them after parsing, never as text."""

    __tablename__ = "maintenance_windows"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[str] = mapped_column(String(40))
    ends_at: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(String(200))

    site: Mapped[Site] = relationship(back_populates="maintenance")
