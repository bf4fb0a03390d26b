"""The policies in the app: each volume's policy state (tree, table, filter, details), the
`:policies` view, and a bad settings file said in one line, on the FakeSession's fixed data
with a settings file in the test's own XDG config dir."""
from __future__ import annotations

import pytest
from textual.widgets import Input

from engine.settings import load_settings, settings_path
from tests.fixtures.tui import FakeSession
from tests.tui.helpers import screen_text, wait_for
from tests.tui.test_console import everything_listed, label_of, make_app, opened
from tui.widgets.detail import DetailPane
from tui.widgets.volumes import VolumeTable

# web-data and db-[main] are tagged env=prod (backed up 29h and 5h before the app's clock),
# scratch is in "staging [beta]" (never backed up), logs and pvc-1234 match no policy
POLICIES = """\
[policies.prod-daily]
match = { environment = "prod" }
every = "24h"
keep = { daily = 7 }
verify = "7d"
grace = "1h"

[policies.staging-weekly]
match = { project = "staging*" }
every = "1w"
"""


def with_settings(text: str) -> FakeSession:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    session = FakeSession()
    session.settings = load_settings(path)
    return session


def policies_ready(app) -> bool:  # noqa: ANN001
    return app.policy_facts is not None


async def test_each_volume_shows_its_policy_state_and_a_finished_backup_updates_it() -> None:
    app = make_app(with_settings(POLICIES))
    async with app.run_test(size=(110, 30)) as pilot:
        tree = await opened(pilot)
        await everything_listed(pilot)
        await wait_for(pilot, lambda: "✔ ok 5h" in label_of(tree, "db-[main]")
                       and "✖ overdue 1d" in label_of(tree, "web-data"), what="policy states")
        await pilot.press("down", "down", "down", "enter")  # fr-par-2: logs, in no policy
        await wait_for(pilot, lambda: "○ no policy" in label_of(tree, "logs"))
        # the filter's state: and policy: keys know the policy words
        box = app.screen.query_one("#filter", Input)
        for query, names in (("state:overdue", ["web-data", "scratch"]),
                             ("state:no-policy", ["logs", "pvc-1234"]),
                             ("policy:prod", ["db-[main]", "web-data"])):
            box.value = query
            await pilot.pause()
            shown = [n.data.obj.name for n in tree.volume_nodes_in_order()]
            assert sorted(shown) == sorted(names), query
        box.value = ""
        await pilot.pause()
        # the table: the same states, and sorted by them
        await pilot.press("v")
        table = app.screen.query_one(VolumeTable)
        while table.order() != "sort state ↑":
            await pilot.press("o")
        states = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        assert states == ["✔ ok 5h", "✖ overdue", "✖ overdue 1d", "○ no policy", "○ no policy"]
        # a backup of scratch (overdue, never backed up) ends: its state is ok
        table.move_cursor(row=1)
        assert table.current().volume.name == "scratch"
        await pilot.press("b", "y")
        await wait_for(pilot, lambda: any(str(table.get_row_at(i)[1]).startswith("✔ ok")
                                          and table.shown[i].volume.name == "scratch"
                                          for i in range(table.row_count)),
                       what="scratch ok once its backup ended")


async def test_the_detail_pane_shows_the_policy_why_and_new_bytes_per_backup() -> None:
    app = make_app(with_settings(POLICIES))
    async with app.run_test(size=(140, 40)) as pilot:
        tree = await opened(pilot)
        await everything_listed(pilot)
        await wait_for(pilot, lambda: "overdue" in label_of(tree, "web-data"))
        await pilot.press("down", "down")  # web-data (after db-[main])
        assert tree.cursor_node.data.obj.name == "web-data"
        await pilot.pause(0.1)
        text = screen_text(pilot)
        assert "prod-daily · every 1d (+1h grace) · keep daily=7 · verify 7d" in text
        assert "environment" in text.split("matched", 1)[1].split("\n", 1)[0]
        # 1.2 GB then 90 MB (1.1 GiB, 86 MiB): a full bar, then a low one
        assert "new bytes █▁ max +1.1 GiB" in text, text
        assert app.screen.query_one(DetailPane)


async def test_policies_view_lists_compliance_and_enter_filters_the_inventory() -> None:
    app = make_app(with_settings(POLICIES))
    async with app.run_test(size=(120, 30)) as pilot:
        await everything_listed(pilot)
        await wait_for(pilot, lambda: policies_ready(app), what="the survey")
        await pilot.press("colon", *"pol", "enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "PoliciesScreen")
        await pilot.pause(0.1)
        text = screen_text(pilot)
        assert "prod-daily" in text and "2 volumes · 1 ok · 1 overdue" in text
        assert "staging-weekly" in text and "1 volume · 1 overdue" in text
        assert "daily=7" in text and "1d (+1h grace)" in text
        await pilot.press("enter")  # prod-daily's volumes, in the inventory
        await wait_for(pilot, lambda: type(app.screen).__name__ == "MainScreen")
        assert app.screen.query_one("#filter", Input).value == "policy:prod-daily"
        await wait_for(pilot, lambda: sorted(n.data.obj.name for n in app.screen.query_one(
            "#tree").volume_nodes_in_order()) == ["db-[main]", "web-data"])


async def test_a_bad_policy_file_is_one_line_and_the_backup_ages_stay() -> None:
    app = make_app(with_settings('[policies.a]\nmatch = { volume = "*" }\nevery = "1 fortnight"\n'))
    async with app.run_test(size=(110, 30)) as pilot:
        tree = await opened(pilot)
        await everything_listed(pilot)
        await wait_for(pilot, lambda: policies_ready(app), what="the survey")
        problems = [n.message for n in app._notifications if "policies not applied" in n.message]
        assert len(problems) == 1 and "\n" not in problems[0]
        assert "policies.a.every" in problems[0]
        await wait_for(pilot, lambda: "⚠ stale 1d" in label_of(tree, "web-data"))
        await pilot.press("colon", *"policies", "enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "PoliciesScreen")
        await pilot.pause(0.1)
        assert "✖ policies not applied" in screen_text(pilot)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_policies_view_snapshot(snap_compare, size) -> None:  # noqa: ANN001
    async def before(pilot) -> None:  # noqa: ANN001
        await everything_listed(pilot)
        await wait_for(pilot, lambda: policies_ready(pilot.app), what="the survey")
        await pilot.press("colon", *"policies", "enter")
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "PoliciesScreen")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.2)

    assert snap_compare(make_app(with_settings(POLICIES)), terminal_size=size,
                        run_before=before)
