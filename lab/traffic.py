"""Where a site's traffic flows, and at what rate: the coherence rules between faces.

A router forwards its site's traffic over the default route with the lowest administrative
distance whose next hop is reachable — as IOS does, a static route whose next hop sits behind a
down interface leaves the routing table. The next hop of a link is its far-end (probe) address.
The carrying interface sees the site's background traffic plus every call of the site's codecs;
the others see only keepalives. Call ``reroute_site`` after anything that can change this.
"""

from __future__ import annotations

from lab.state import Device, LabNetwork, Link, StaticRoute

KEEPALIVE_BPS = 2_000.0
DEFAULT_PREFIX = ("0.0.0.0", "0.0.0.0")


def link_usable(net: LabNetwork, link: Link) -> bool:
    """Can this link carry traffic at all (interface up, not cut, terminal transmitting)?"""
    if link.cut:
        return False
    router = net.devices[link.router]
    if not router.powered:
        return False
    iface = router.interface_by_name(link.interface)
    if iface is None or not iface.oper_up:
        return False
    if link.terminal is not None:
        terminal = net.devices[link.terminal]
        if not (terminal.powered and terminal.tx_enabled and terminal.demod_locked):
            return False
    return True


def _route_link(net: LabNetwork, route: StaticRoute) -> Link | None:
    return net.by_probe_address.get(route.next_hop)


def active_default_route(net: LabNetwork, router: Device) -> tuple[StaticRoute, Link] | None:
    """The installed default route and the link it leaves by, or None (no usable default)."""
    best: tuple[StaticRoute, Link] | None = None
    for route in router.static_routes:
        if (route.prefix, route.mask) != DEFAULT_PREFIX:
            continue
        link = _route_link(net, route)
        if link is None or link.router != router.name or not link_usable(net, link):
            continue
        if best is None or route.distance < best[0].distance:
            best = (route, link)
    return best


def site_demand_bps(net: LabNetwork, site_name: str) -> tuple[float, float]:
    """(out, in) bit/s the site offers: background plus its codecs' calls."""
    site = net.sites[site_name]
    out_bps = in_bps = site.background_kbps * 1000.0
    for name in site.devices:
        dev = net.devices[name]
        if not dev.powered:
            continue
        for call in dev.calls:
            out_bps += call.tx_kbps * 1000.0
            in_bps += call.rx_kbps * 1000.0
    return out_bps, in_bps


def reroute_site(net: LabNetwork, site_name: str) -> Link | None:
    """Recompute the rates of the site's router interfaces; returns the carrying link."""
    now = net.now()
    site = net.sites[site_name]
    carrying: Link | None = None
    for name in site.devices:
        router = net.devices[name]
        if not router.interfaces:
            continue
        active = active_default_route(net, router)
        out_bps, in_bps = site_demand_bps(net, site_name)
        for iface in router.interfaces:
            iface.settle(now)
            if not (router.powered and iface.oper_up) or iface.link is None:
                iface.in_rate_bps = iface.out_rate_bps = 0.0
                continue
            link = net.links[iface.link]
            if not link_usable(net, link):
                iface.in_rate_bps = iface.out_rate_bps = 0.0
            elif active is not None and active[1].name == link.name:
                capacity = link.capacity_kbps * 1000.0
                iface.out_rate_bps = min(out_bps, capacity)
                iface.in_rate_bps = min(in_bps, capacity)
                carrying = link
            else:
                iface.in_rate_bps = iface.out_rate_bps = KEEPALIVE_BPS
    return carrying
