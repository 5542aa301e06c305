"""Failed logins are counted: guessing is refused before any password is checked."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api import security
from api.login_throttle import LoginThrottle, ThrottleLimits, TooManyLogins
from api.roles import Role
from tests.api.support import PASSWORD, Users


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_for_a_name_from_one_address_lock_that_pair_only() -> None:
    clock = Clock()
    throttle = LoginThrottle(ThrottleLimits(per_account=5, per_client=20, window_s=300), clock)
    for _ in range(5):
        throttle.check("li.na", "10.0.0.1")
        throttle.failed("li.na", "10.0.0.1")
        clock.now += 10
    with pytest.raises(TooManyLogins) as refused:
        throttle.check("li.na", "10.0.0.1")
    # the oldest failure (at 1000) leaves the window at 1300; it is now 1050
    assert refused.value.retry_after_s == pytest.approx(250)
    assert "user 'li.na' from 10.0.0.1 (5 in the last 5 min)" in str(refused.value)
    assert "try again in 250 s" in str(refused.value)
    throttle.check("li.na", "10.0.0.2")  # the real user, elsewhere, still gets in
    throttle.check("wang.fang", "10.0.0.1")
    clock.now = 1300.0  # the first failure has left the window: one more try is allowed
    throttle.check("li.na", "10.0.0.1")


def test_many_names_from_one_address_lock_the_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(ThrottleLimits(per_account=5, per_client=20, window_s=300), clock)
    for n in range(20):
        throttle.check(f"user{n}", "10.0.0.9")
        throttle.failed(f"user{n}", "10.0.0.9")
    with pytest.raises(TooManyLogins, match=re.escape("client 10.0.0.9 (20 in the last 5 min)")):
        throttle.check("anyone", "10.0.0.9")
    throttle.check("anyone", "10.0.0.8")


def test_a_success_clears_the_pair_and_the_memory_is_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle(ThrottleLimits(per_account=2, per_client=50, max_keys=10), clock)
    throttle.failed("li.na", "10.0.0.1")
    throttle.succeeded("li.na", "10.0.0.1")
    throttle.failed("li.na", "10.0.0.1")
    throttle.check("li.na", "10.0.0.1")  # one failure since the success: under the limit
    for n in range(50):
        throttle.failed(f"u{n}", f"10.1.0.{n}")
    assert len(throttle._failures) <= 10


def test_the_api_refuses_with_429_without_checking_the_password(
    client: TestClient, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    users.add("zhang.wei", Role.OPERATOR)
    for _ in range(5):
        wrong = client.post("/auth/token", data={"username": "zhang.wei", "password": "guess-1"})
        assert wrong.status_code == 401
    checks: list[str] = []
    real = security.verify_password

    def counting(stored: str | None, password: str) -> bool:
        checks.append(password)
        return real(stored, password)

    monkeypatch.setattr(security, "verify_password", counting)
    refused = client.post("/auth/token", data={"username": "zhang.wei", "password": PASSWORD})
    assert refused.status_code == 429
    assert checks == []  # no argon2 verification bought by the attempt
    assert int(refused.headers["Retry-After"]) > 0
    detail = refused.json()["detail"]
    assert "too many failed logins for user 'zhang.wei'" in detail
    assert "tiandi users reset-password" in detail
    # another user from the same address is unaffected
    users.add("li.na", Role.VIEWER)
    ok = client.post("/auth/token", data={"username": "li.na", "password": PASSWORD})
    assert ok.status_code == 200
