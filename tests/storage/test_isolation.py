"""The tenant-isolation matrix: for every tenant-scoped store method, tenant B neither
sees nor changes tenant A's series, samples, rollups, keys or audit entries, even when it
names A's series ids. (Alerting and task stores add their rows on their branches.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import batch_of
from vigil.core.matchers import Matcher
from vigil.storage.duckdb_store import DuckDBStore
from vigil.storage.security_store import ApiKeyRecord, AuditEntry, SecurityStore
from vigil.storage.store import Selection, Tier

T = 1_700_000_000_000
DAY = 86_400_000


@pytest.fixture
def two_tenants(tmp_path: Path) -> Iterator[tuple[DuckDBStore, np.ndarray]]:
    """A store where tenant "a" has cpu{host=x} samples over two days (rolled up) and "b"
    has nothing; yields the store and a's series ids."""
    s = DuckDBStore(tmp_path / "iso.duckdb")
    rows = [("cpu", {"host": "x"}, T + i * 60_000, float(i)) for i in range(2 * 24 * 60)]
    s.submit("a", batch_of(rows)).result()
    s.refresh_rollups(2**53)
    ids = np.array([i.id for i in s.find_series("a", "cpu")], np.int32)
    yield s, ids
    s.close()


def _buckets(s: DuckDBStore, t: str, ids: np.ndarray, tier: Tier) -> int:
    return len(s.buckets(t, tier, Selection.each(ids.tolist()), T, T + 2 * DAY, DAY).t_ms)


def _quantiles(s: DuckDBStore, t: str, ids: np.ndarray, tier: Tier) -> int:
    sel = Selection.each(ids.tolist())
    return len(s.quantiles(t, tier, sel, T, T + 2 * DAY, DAY, 0.5).t_ms)


Read = Callable[[DuckDBStore, str, np.ndarray], int]
READS: dict[str, Read] = {
    "find_series": lambda s, t, ids: len(s.find_series(t, "cpu")),
    "find_series(any name, matcher)": lambda s, t, ids: len(
        s.find_series(t, None, [Matcher.parse("host=x")])),
    "metric_names": lambda s, t, ids: len(s.metric_names(t)),
    "label_names": lambda s, t, ids: len(s.label_names(t)),
    "label_values": lambda s, t, ids: len(s.label_values(t, "host")),
    "cardinality": lambda s, t, ids: len(s.cardinality(t)["metrics"]),  # type: ignore[arg-type]
    "raw": lambda s, t, ids: len(s.raw(t, ids, 0, 2**62).t_ms),
    "latest": lambda s, t, ids: len(s.latest(t, ids).t_ms),
    **{f"buckets({tier})": partial(_buckets, tier=tier) for tier in ("raw", "5m", "1h", "1d")},
    **{f"quantiles({tier})": partial(_quantiles, tier=tier) for tier in ("raw", "5m", "1h")},
}


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
def test_another_tenant_sees_nothing(two_tenants: tuple[DuckDBStore, np.ndarray],
                                     read: Read) -> None:
    s, ids = two_tenants
    assert read(s, "a", ids) > 0
    assert read(s, "b", ids) == 0


def test_same_series_key_in_two_tenants_stays_apart(
        two_tenants: tuple[DuckDBStore, np.ndarray]) -> None:
    s, ids = two_tenants
    before = len(s.raw("a", ids, 0, 2**62).t_ms)
    s.submit("b", batch_of([("cpu", {"host": "x"}, T, 99.0)])).result()
    [b_info] = s.find_series("b", "cpu")
    assert b_info.id not in ids.tolist()
    assert len(s.raw("a", ids, 0, 2**62).t_ms) == before
    assert s.raw("b", np.array([b_info.id], np.int32), 0, 2**62).value.tolist() == [99.0]


def _key(tenant: str, key_id: str) -> ApiKeyRecord:
    return ApiKeyRecord(key_id, tenant, "agent", "editor", "", "0" * 64, T)


def _entry(tenant: str) -> AuditEntry:
    return AuditEntry(T, tenant, "jwt:u", "admin", "POST", "/r", "/r", 200, "127.0.0.1")


@pytest.fixture
def security(two_tenants: tuple[DuckDBStore, np.ndarray]) -> SecurityStore:
    """The security store on the same file, with a key and an audit entry of tenant a."""
    sec = SecurityStore(two_tenants[0].connection())
    sec.add_key("a", _key("a", "aaaaaaaaaaaa"))
    sec.append_audit("a", _entry("a"))
    return sec


def test_keys_are_listed_and_revoked_only_in_their_tenant(security: SecurityStore) -> None:
    assert [k.id for k in security.keys("a")] == ["aaaaaaaaaaaa"]
    assert security.keys("b") == []
    assert security.revoke_key("b", "aaaaaaaaaaaa", T) is False
    assert security.keys("a")[0].revoked_ms is None
    assert security.revoke_key("a", "aaaaaaaaaaaa", T + 1) is True
    assert security.keys("a")[0].revoked_ms == T + 1
    assert security.revoke_key("a", "aaaaaaaaaaaa", T + 2) is False  # once


def test_audit_entries_are_read_only_in_their_tenant(security: SecurityStore) -> None:
    assert [e.tenant for e in security.audit("a")] == ["a"]
    assert security.audit("b") == []
    security.append_audit("b", _entry("b"))
    assert [e.tenant for e in security.audit("a")] == ["a"]


def test_writing_a_record_of_another_tenant_is_a_bug(security: SecurityStore) -> None:
    with pytest.raises(AssertionError, match="BUG"):
        security.add_key("b", _key("a", "bbbbbbbbbbbb"))
    with pytest.raises(AssertionError, match="BUG"):
        security.append_audit("b", _entry("a"))


def test_audit_filters_and_orders(security: SecurityStore) -> None:
    for i in range(1, 4):
        security.append_audit("a", AuditEntry(T + i, "a", "u", "admin", "DELETE", "/k", "/k",
                                              204, "::1"))
    assert [e.ts_ms for e in security.audit("a", since_ms=T + 1, until_ms=T + 3)] == \
        [T + 2, T + 1]
    assert [e.ts_ms for e in security.audit("a", limit=2)] == [T + 3, T + 2]
    ids = [e.id for e in security.audit("a")]
    assert len(set(ids)) == len(ids)


def test_migration_4_goes_down_and_up(tmp_path: Path) -> None:
    s = DuckDBStore(tmp_path / "m.duckdb")
    try:
        SecurityStore(s.connection()).add_key("a", _key("a", "cccccccccccc"))
        assert s.migrate(3)[-1] == "3: undo API keys (hashed) and the append-only audit log"
        tables = {r[0] for r in s.connection().execute("SHOW TABLES").fetchall()}
        assert not tables & {"api_keys", "audit_log"}
        s.migrate(4)
        assert SecurityStore(s.connection()).keys("a") == []
    finally:
        s.close()
