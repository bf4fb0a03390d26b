"""The daemon's client as the app uses it: a stream of every job's events that a reader can
line up with the job list (``ready``), and that another thread can end (``interrupt``)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine.daemon.client import DaemonUnavailable, connect, job_context
from engine.jobs import EventKind, JobEvent, JobSpec
from tests.fixtures.store import PASSPHRASE


def test_ready_comes_after_the_subscription_and_interrupt_ends_the_stream(
        store_dir: Path, tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(b"x" * 100_000)
    spec = JobSpec("backup-image", {"path": str(image), "name": "streamed"}, "streamed")
    context = job_context(str(store_dir), None, PASSPHRASE)
    submitted: list[str] = []

    def ready() -> None:  # submitted only now: the stream must still see all of it
        with connect() as other:
            submitted.append(other.submit(spec, context))

    seen: list[JobEvent] = []
    stream = connect()
    ended = threading.Event()

    def read() -> None:
        try:
            for event in stream.subscribe(None, ready=ready):
                seen.append(event)
                if event.kind == EventKind.FINISHED.value:
                    ended.set()
        except DaemonUnavailable:
            pass
        finally:
            ended.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert ended.wait(60), "the job never finished"
    mine = [e for e in seen if e.job_id == submitted[0]]
    assert [e.seq for e in mine] == list(range(1, len(mine) + 1))  # from its first, no gap
    assert mine[-1].state == "done"
    # the stream of every job goes on after one ends; another thread can end it
    ended.clear()
    assert reader.is_alive()
    stream.interrupt()
    reader.join(10)
    assert not reader.is_alive()
    stream.close()
    stream.interrupt()  # a closed client: nothing to do, no error


def test_interrupt_before_any_event(store_dir: Path) -> None:
    stream = connect()
    failures: list[BaseException] = []
    ready = threading.Event()

    def read() -> None:
        with pytest.raises(DaemonUnavailable) as caught:
            for _ in stream.subscribe(None, ready=ready.set):
                pass
        failures.append(caught.value)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert ready.wait(30)
    stream.interrupt()
    reader.join(10)
    assert not reader.is_alive() and failures
    stream.close()
