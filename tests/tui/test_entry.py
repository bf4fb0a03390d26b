"""The two entry points the command line calls build the Session the app is given."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

import tui.app
from engine.errors import UsageError
from engine.session import Session
from engine.store import Store


@dataclass
class Ctx:
    """What the command line hands over: store_url, profile, passphrase()."""

    store_url: str
    profile: str | None
    secret: str | None = None

    def passphrase(self) -> str:
        if self.secret is None:
            raise UsageError("no passphrase: set STRONGROOM_PASSPHRASE or "
                             "STRONGROOM_PASSPHRASE_FILE, or run on a terminal")
        return self.secret


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Session, bool]]:
    calls: list[tuple[Session, bool]] = []
    monkeypatch.setattr(tui.app, "_run", lambda session, settings, demo=False:
                        calls.append((session, demo)) or 0)
    return calls


def test_run_builds_the_session_from_the_context(started, tmp_path, fast_kdf) -> None:  # noqa: ANN001
    url = str(tmp_path / "store")
    Store.init(url, "s3cret").close()
    assert tui.app.run(Ctx(url, "work", "s3cret")) == 0
    [(session, demo)] = started
    assert not demo
    assert (session.store_url, session.profile, session.label) == (url, "work", "work")
    assert session.store_status().ok  # with the context's passphrase
    session.close()


def test_without_a_passphrase_the_app_still_opens_and_the_store_says_why(
        started, tmp_path) -> None:  # noqa: ANN001
    tui.app.run(Ctx(str(tmp_path / "store"), None))
    [(session, _)] = started
    status = session.store_status()  # what the store screen shows, the inventory goes on
    assert not status.ok and "no passphrase" in status.message


def test_run_demo_labels_the_session_and_uses_the_default_buckets(
        started, tmp_path, fast_kdf) -> None:  # noqa: ANN001
    url = str(tmp_path / "store")
    Store.init(url, "pw").close()
    tui.app.run_demo(store_url=url, passphrase="pw")
    [(session, demo)] = started
    assert demo and session.label == "demo" and session.store_status().ok
    assert session.bucket_for("nl-ams-1") == "strongroom-staging-nl-ams"
    session.close()
