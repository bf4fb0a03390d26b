"""The store screen's forget: a live preview of a keep policy with reasons, confirmed by typing
the volume's name, then forget and prune as one job — the real app, Session and store."""
from __future__ import annotations

import io
from pathlib import Path

from textual.widgets import DataTable, Input, Static

from engine.jobs import DONE
from engine.session import Session
from engine.settings import Settings
from tests.tui.helpers import wait_for


async def test_forget_by_policy_from_the_store_screen(tmp_path: Path, fast_kdf: None) -> None:
    from engine.store import Store
    from tui.app import StrongroomApp
    from tui.screens.forget import ForgetScreen
    from tui.screens.store import StoreScreen

    url = str(tmp_path / "store")
    with Store.init(url, "pw") as store:
        for day in range(1, 6):
            store.backup(io.BytesIO(bytes([day]) * 300_000 + b"x" * day), name="web-data",
                         time=f"2026-11-0{day}T03:00:00Z")
    with Session(Settings(), store_url=url, passphrase=lambda: "pw") as session:
        app = StrongroomApp(session)
        async with app.run_test(size=(110, 32)) as pilot:
            await pilot.pause(0.2)
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen), what="store")
            await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 5,
                           what="snapshot rows")
            await pilot.press("f")
            await wait_for(pilot, lambda: isinstance(app.screen, ForgetScreen), what="forget")
            screen = app.screen
            confirm = screen.query_one("#confirm", Input)
            assert confirm.disabled  # no policy yet
            screen.query_one("#keep-last", Input).value = "2"
            table = screen.query_one("#preview", DataTable)
            await wait_for(pilot, lambda: table.row_count == 5, what="preview")
            rows = [[str(c) for c in table.get_row_at(i)] for i in range(5)]
            assert [r[0] for r in rows] == ["keep", "keep", "remove", "remove", "remove"]
            assert rows[0][3] == "last" and rows[0][2].startswith("2026-11-05")
            summary = screen.query_one("#summary", Static)
            assert "keep 2, forget 3" in str(summary.content)
            assert not confirm.disabled
            confirm.focus()
            await pilot.press(*"web", "enter")  # not the name: nothing happens
            await pilot.pause(0.1)
            assert isinstance(app.screen, ForgetScreen) and not app.jobs.views()
            confirm.value = ""
            await pilot.press(*"web-data", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen), what="back")
            await wait_for(pilot, lambda: [v.state for v in app.jobs.views()] == [DONE],
                           timeout=60, what="the forget job")
            [view] = app.jobs.views()
            assert len(view.result["removed"]) == 3 and view.result["prune"]["snapshots"] == 2
    with Store.open(url, "pw") as store:
        assert [s.time[:10] for s in store.snapshots()] == ["2026-11-04", "2026-11-05"]
        assert store.check(read_data=True).ok


async def test_p_prunes_the_store_as_a_job(tmp_path: Path, fast_kdf: None) -> None:
    from engine.store import Store
    from tui.app import StrongroomApp
    from tui.screens.confirm import ConfirmScreen
    from tui.screens.store import StoreScreen

    url = str(tmp_path / "store")
    with Store.init(url, "pw") as store:
        first = store.backup(io.BytesIO(b"\1" * 400_000), name="disk").snapshot.id
        store.backup(io.BytesIO(b"\2" * 400_000), name="disk")
        store.forget([first])
    with Session(Settings(), store_url=url, passphrase=lambda: "pw") as session:
        app = StrongroomApp(session)
        async with app.run_test(size=(110, 32)) as pilot:
            await pilot.pause(0.2)
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen), what="store")
            await pilot.press("P")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
            await pilot.press("y")
            await wait_for(pilot, lambda: [v.state for v in app.jobs.views()] == [DONE],
                           timeout=60, what="the prune job")
            [view] = app.jobs.views()
            assert view.kind == "prune" and view.result["packs_deleted"] == 1
