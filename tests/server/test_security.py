"""The server's key and address rules, without a server."""

from __future__ import annotations

import pytest

from lorakit.server.security import SecurityError, check_bind, is_loopback, load_key


def test_the_key_comes_from_a_key_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LORAKIT_API_KEY", "from-env")
    assert load_key(None) == "from-env"
    (tmp_path / "key").write_text("  from-file  \nsecond line\n")
    assert load_key(str(tmp_path / "key")) == "from-file"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SecurityError, match="empty"):
        load_key(str(tmp_path / "empty"))
    with pytest.raises(SecurityError, match="no such file"):
        load_key(str(tmp_path / "missing"))
    monkeypatch.delenv("LORAKIT_API_KEY")
    assert load_key(None) is None


def test_only_loopback_addresses_may_go_without_a_key():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.org"))
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "a key")
    with pytest.raises(SecurityError, match="LORAKIT_API_KEY"):
        check_bind("0.0.0.0", None)
