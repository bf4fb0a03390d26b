"""Command palette provider: each screen offers its own commands.

A screen lists them in ``palette_commands()`` as (name, help, callback); by default these are
the screen's shown bindings, so the palette and the footer never disagree.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen

Command = tuple[str, str, Callable[[], Any]]


def commands_for(screen: Screen) -> list[Command]:
    custom = getattr(screen, "palette_commands", None)
    if callable(custom):
        return list(custom())
    out: list[Command] = []
    for binding in screen.BINDINGS:
        action = getattr(binding, "action", None)
        desc = getattr(binding, "description", "")
        if action and desc:
            out.append((desc, f"key: {binding.key}", partial(screen.run_action, action)))
    return out


class ScreenCommands(Provider):
    def _commands(self) -> Iterable[Command]:
        return commands_for(self.screen)

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
