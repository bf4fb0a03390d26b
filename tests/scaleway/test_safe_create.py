"""Creating calls are never blindly repeated: after an answer that leaves open whether Scaleway
made the thing (5xx, dropped connection), the flows look for it and adopt it, and only send the
POST again when nothing was made. Against the sandbox's ``fail_after_create`` fault (the creation
is carried out, then answered 503), through the real SDK and boto3."""
from __future__ import annotations

import time
from typing import Any

import pytest
import requests
import urllib3

import engine.retry
import engine.scaleway.api
from engine.errors import OperationError
from engine.jobs import DONE
from engine.scaleway.api import Apis, RetryPolicy, UncertainOutcome, _install, create_once
from engine.scaleway.flows import backup_volume, restore_snapshot
from engine.settings import Settings
from tests.scaleway.helpers import FAST, leftovers, same_content
from tests.scaleway.retries import RecordingPolicy
# the flow tests' fixtures (a fresh store, the sandbox's APIs, faults reset around a test)
from tests.scaleway.test_flows import _run, _volume, apis, clean_faults, store  # noqa: F401

FAST_RETRY = RetryPolicy(attempts=5, base=0.01, cap=0.05)




def _posts(log: list[dict[str, Any]], suffix: str) -> list[Any]:
    return [c["status"] for c in log if c["method"] == "POST" and c["path"].endswith(suffix)]


def _lookup_after_503(log: list[dict[str, Any]], suffix: str, lookup: str) -> bool:
    """The POST answered 503 and the next call looked for what it made (no blind retry)."""
    for i, c in enumerate(log):
        if c["method"] == "POST" and c["path"].endswith(suffix) and c["status"] == 503:
            return i + 1 < len(log) and log[i + 1]["method"] in ("GET", "HEAD") \
                and lookup in log[i + 1]["path"]
    return False


async def test_backup_adopts_the_snapshot_and_export_a_lost_answer_made(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    bucket = sandbox.buckets["fr-par"]
    before = {s.id for s in apis.block.list_snapshots_all(zone=vol.zone, include_deleted=False)}
    # The snapshot creation and the export are both carried out, then answered 503.
    sandbox.faults(fail_after_create=2)
    job = await _run(lambda r: backup_volume(r, store=store, client=apis, volume_id=vol.id,
                                             zone=vol.zone, timeouts=FAST, settings=Settings()))
    assert job.state == DONE, job.error
    assert sandbox.world.faults.fail_after_create == 0  # both faults fired
    # One POST each: the 503 was followed by a look-up, not by a second creation...
    assert _posts(job.log, "/snapshots") == [503]
    assert _posts(job.log, "/export-to-object-storage") == [503]
    assert _lookup_after_503(job.log, "/snapshots", "/snapshots")
    assert _lookup_after_503(job.log, "/export-to-object-storage",
                             f"/snapshots/{job.result.scw_snapshot_id}")
    # ...the adopted snapshot is the one whose export was stored...
    info = store.resolve(job.result.snapshot)
    assert info.source["scw_snapshot_id"] == job.result.scw_snapshot_id
    assert info.source["volume_id"] == vol.id and info.bytes > 0
    # ...and nothing is left: no second snapshot, no object, no upload.
    after = {s.id for s in apis.block.list_snapshots_all(zone=vol.zone, include_deleted=False)}
    assert after == before
    assert leftovers(apis, vol.zone, bucket) == {"objects": [], "uploads": [], "snapshots": []}


async def test_restore_adopts_the_import_and_volume_a_lost_answer_made(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    bucket = sandbox.buckets["fr-par"]
    backup = await backup_volume(None, store=store, client=apis, volume_id=vol.id,
                                 zone=vol.zone, timeouts=FAST, settings=Settings())
    volumes_before = {v.id for v in apis.block.list_volumes_all(zone=vol.zone,
                                                                 include_deleted=False)}
    snaps_before = {s.id for s in apis.block.list_snapshots_all(zone=vol.zone,
                                                                 include_deleted=False)}
    # The import and the volume creation are both carried out, then answered 503.
    sandbox.faults(fail_after_create=2)
    job = await _run(lambda r: restore_snapshot(r, store=store, client=apis, ref=backup.snapshot,
                                                zone=vol.zone, rename_on_clash=True, timeouts=FAST,
                                                settings=Settings()))
    assert job.state == DONE, job.error
    assert sandbox.world.faults.fail_after_create == 0
    assert _posts(job.log, "/import-from-object-storage") == [503]
    assert _posts(job.log, "/volumes") == [503]
    assert _lookup_after_503(job.log, "/import-from-object-storage", "/snapshots")
    assert _lookup_after_503(job.log, "/volumes", "/volumes")
    # Exactly one new volume, the one reported, with the original bytes; no other snapshot.
    volumes_after = {v.id for v in apis.block.list_volumes_all(zone=vol.zone,
                                                                include_deleted=False)}
    assert volumes_after - volumes_before == {job.result.volume_id}
    new = apis.block.get_volume(volume_id=job.result.volume_id, zone=vol.zone)
    assert str(new.status) == "available" and new.parent_snapshot_id == job.result.snapshot_id
    assert same_content(sandbox.volume_path(vol.id), sandbox.volume_path(new.id))
    snaps_after = {s.id for s in apis.block.list_snapshots_all(zone=vol.zone,
                                                                include_deleted=False)}
    assert snaps_after == snaps_before
    assert leftovers(apis, vol.zone, bucket) == {"objects": [], "uploads": [], "snapshots": []}
    apis.block.delete_volume(volume_id=new.id, zone=vol.zone)


# ---------------------------------------------------------------------------------------------
# The retry rules themselves, over a stand-in for the SDK's one HTTP entry point (ours to wrap).

class _Answers:
    """Plays the SDK API object's ``_request``: answers (status codes or exceptions) in turn."""

    def __init__(self, *answers: int | tuple[int, dict[str, str]] | BaseException) -> None:
        self.answers = list(answers)
        self.sent: list[str] = []
        self.client = type("C", (), {"api_url": "http://127.0.0.1:9"})()

    def _request(self, method: str, path: str, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent.append(method)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        res = requests.Response()
        res.status_code, headers = answer if isinstance(answer, tuple) else (answer, {})
        headers = dict(headers)
        res._content = headers.pop("_body", "").encode()
        res.headers.update(headers)
        return res


class _Log:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int | str]] = []

    def call(self, method: str, path: str, status: int | str, ms: float) -> None:
        self.calls.append((method, status))


def _refused() -> requests.ConnectionError:
    reason = urllib3.exceptions.NewConnectionError(None, "connection refused")  # type: ignore[arg-type]
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", reason))  # type: ignore[arg-type]


def test_a_post_answered_5xx_or_cut_is_not_sent_again() -> None:
    for failure in (503, 502, 500, requests.ConnectionError("Connection aborted")):
        api, log = _Answers(failure, 200), _Log()
        _install(api, log, FAST_RETRY)
        with pytest.raises(UncertainOutcome):
            api._request("post", "/block/v1/zones/fr-par-1/snapshots")
        assert api.sent == ["post"]
        assert log.calls[0][0] == "POST"


def test_429_unsent_posts_and_other_methods_are_retried() -> None:
    for method, first in (("post", 429), ("post", _refused()), ("get", 503), ("delete", 502),
                          ("patch", 504), ("get", requests.ConnectionError("aborted"))):
        api, log = _Answers(first, 200), _Log()
        _install(api, log, FAST_RETRY)
        assert api._request(method, "/block/v1/zones/fr-par-1/volumes").status_code == 200
        assert api.sent == [method, method]
        assert [status for _, status in log.calls][1] == 200


def test_create_once_adopts_what_was_made_and_only_retries_when_nothing_was() -> None:
    made: list[str] = []
    answers: list[Any] = [UncertainOutcome("POST", "/x", 503), "second"]

    def make() -> str:
        made.append("call")
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    # Nothing found after the 503: the POST goes again.
    assert create_once(make, lambda: None, FAST_RETRY, "creating x") == "second"
    assert made == ["call", "call"]
    # Found after the 503: adopted, no second POST.
    made.clear()
    answers[:] = [UncertainOutcome("POST", "/x", 503), "never"]
    assert create_once(make, lambda: "first", FAST_RETRY, "creating x") == "first"
    assert made == ["call"]
    # Never made, never answered: a one-line error after the policy's attempts.
    made.clear()
    answers[:] = [UncertainOutcome("POST", "/x", 504)] * FAST_RETRY.attempts
    with pytest.raises(OperationError, match="creating x failed.*504.*made nothing"):
        create_once(make, lambda: None, FAST_RETRY, "creating x")
    assert len(made) == FAST_RETRY.attempts


def test_the_api_waits_the_one_policy_s_delays_between_attempts() -> None:
    # One policy: api.py's names are engine.retry's, not a copy that may drift.
    assert engine.scaleway.api.RetryPolicy is engine.retry.RetryPolicy
    assert engine.scaleway.api.DEFAULT_RETRY is engine.retry.DEFAULT_RETRY
    policy = RecordingPolicy(attempts=5, base=0.02, cap=0.5)
    api = _Answers(503, (429, {"Retry-After": "0.03"}), requests.ConnectionError("aborted"), 200)
    _install(api, _Log(), policy)
    started = time.monotonic()
    assert api._request("get", "/block/v1/zones/fr-par-1/volumes").status_code == 200
    waited = time.monotonic() - started
    assert api.sent == ["get"] * 4
    # A jittered backoff after the 503 and the cut connection, the server's word after the 429...
    first, after_429, third = policy.chosen
    assert 0 < first <= 0.02 and 0 < third <= 0.08 and after_429 == 0.03
    # ...and each one slept.
    assert waited >= 0.9 * sum(policy.chosen)
    # Attempts used up: the last 5xx answer with a JSON body goes back to the SDK, which
    # raises its own error; one the SDK cannot read is one clear error here (test_rate_limits).
    api = _Answers(*[(503, {"_body": '{"type": "service_unavailable", "message": "x"}'})]
                   * policy.attempts)
    _install(api, None, policy)
    assert api._request("get", "/x").status_code == 503 and len(api.sent) == policy.attempts


def test_create_once_waits_at_least_the_base_before_looking() -> None:
    policy = RecordingPolicy(attempts=4, base=0.02, cap=1.0)

    def make() -> str:
        raise UncertainOutcome("POST", "/x", 503)

    with pytest.raises(OperationError, match="made nothing"):
        create_once(make, lambda: None, policy, "creating x")
    # A floor (the API may list a new thing late) under the same jittered backoff.
    assert len(policy.chosen) == policy.attempts
    assert all(d >= policy.base for d in policy.chosen)
