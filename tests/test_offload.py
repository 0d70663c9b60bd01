"""Recordings to object storage, against a real SeaweedFS cluster (master, two volume servers with
replication 001, filer, S3 gateway with credentials enforced).

The segments here are files of random bytes registered in a real recording index (SQLite, hash chain):
offload moves bytes, and random bytes of a few MB cost nothing to make, where MP4 encodes would.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from edgeagent.offload.pacer import TokenBucket
from edgeagent.offload.service import Offloader
from edgeagent.offload.settings import OffloadSection
from edgeagent.record.index import RecordingIndex
from edgeagent.record.model import Segment
from edgeagent.record.retention import Retention
from edgeagent.record.settings import RecordingSection
from tests.support.seaweed import Seaweed

pytestmark = pytest.mark.timeout(120)

BUCKET = "cabinet-recordings"
AGENT = "cabinet-17"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    cluster = Seaweed(tmp_path_factory.mktemp("seaweed"))
    try:
        cluster.start()
        asyncio.run(_create_bucket(cluster))
        yield cluster
    finally:
        cluster.stop()


async def _create_bucket(cluster: Seaweed) -> None:
    async with cluster.client() as s3:
        await s3.create_bucket(Bucket=BUCKET)


class Recorded:
    """A recording directory with its index and retention, and segments made on demand."""

    def __init__(self, root: Path, retain: str = "30d", min_free: str = "0%") -> None:
        self.dir = root / "recordings"
        self.settings = RecordingSection(dir=self.dir, retain=retain, min_free=min_free)
        self.index = RecordingIndex(self.dir / "index.sqlite3")
        self.retention = Retention(self.settings, self.index)
        self._next = T0

    def segment(self, size: int, camera: str = "north", seconds: float = 10) -> Segment:
        start, end = self._next, self._next + timedelta(seconds=seconds)
        self._next = end
        path = self.dir / camera / f"{start:%Y-%m-%d}" / f"{camera}-{start:%Y%m%dT%H%M%S.%fZ}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(size)
        path.write_bytes(data)
        segment = Segment(camera, path, start, end, size, "h264", 320, 180, hashlib.sha256(data).hexdigest(),
                          self.index.last_sha256(camera))  # fmt: skip
        self.index.close_segment(segment)
        return segment

    async def asegment(self, size: int, camera: str = "north") -> Segment:
        return await asyncio.to_thread(self.segment, size, camera)

    def lock_all(self, camera: str = "north") -> None:
        self.index.add_lock(camera, T0 - timedelta(days=1), T0 + timedelta(days=1), "incident")

    def close(self) -> None:
        self.index.close()


def section(cluster: Seaweed, secret: str | None = None, **overrides: object) -> OffloadSection:
    fields: dict[str, object] = {
        "endpoint": cluster.endpoint, "bucket": BUCKET, "access_key_file": "unused", "secret_key_file": "unused",
        "prefix": "test", "scan_s": 0.2, "retry_initial_s": 0.5, "retry_max_s": 2, "timeout_s": 10, "part_mb": 5,
    }  # fmt: skip
    fields.update(overrides)
    return OffloadSection.model_validate(fields).with_keys(
        SecretStr(cluster.access_key), SecretStr(secret or cluster.secret_key)
    )


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[Recorded]:
    rec = Recorded(tmp_path)
    yield rec
    rec.close()


async def until(check: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def stored_sha256(cluster: Seaweed, key: str) -> str:
    async with cluster.client() as s3:
        answer = await s3.get_object(Bucket=BUCKET, Key=key)
        async with answer["Body"] as body:
            return hashlib.sha256(await body.read()).hexdigest()


async def offloader_for(rec: Recorded, settings: OffloadSection) -> Offloader:
    offloader = await asyncio.to_thread(Offloader, settings, rec.index.path, rec.dir, AGENT)
    rec.retention.before_delete.append(offloader.enqueue_segments)
    return offloader


# -- against SeaweedFS --------------------------------------------------------------------------------


async def test_segments_and_an_export_land_with_matching_sha256(seaweed: Seaweed, recorded: Recorded,
                                                                tmp_path: Path) -> None:  # fmt: skip
    small = await recorded.asegment(300_000)
    big = await recorded.asegment(12 * 1024 * 1024 + 12345)  # three parts of 5 MiB: multipart
    export = tmp_path / "north-export.zip"
    export.write_bytes(os.urandom(200_000))
    offloader = await offloader_for(recorded, section(seaweed, segments=True))
    offloader.start()
    try:
        key = await offloader.enqueue_export(export)
        await until(lambda: offloader.uploaded == 3, 60, "three uploads")
    finally:
        await offloader.stop()
    assert offloader.stats().failures == 0 and offloader.stats().last_error is None
    keys = {
        f"test/{AGENT}/north/{small.start:%Y-%m-%d}/{small.path.name}": small.sha256,
        f"test/{AGENT}/north/{big.start:%Y-%m-%d}/{big.path.name}": big.sha256,
        key: hashlib.sha256(export.read_bytes()).hexdigest(),
    }
    assert key == f"test/{AGENT}/exports/north-export.zip"
    for object_key, sha in keys.items():
        assert await stored_sha256(seaweed, object_key) == sha, object_key
    async with seaweed.client() as s3:
        head = await s3.head_object(Bucket=BUCKET, Key=next(iter(keys)), ChecksumMode="ENABLED")
    assert head["Metadata"]["sha256"] == small.sha256 and head["ChecksumSHA256"]


async def test_only_locked_segments_go_unless_every_segment_is_asked_for(seaweed: Seaweed, tmp_path: Path) -> None:
    rec = await asyncio.to_thread(Recorded, tmp_path)
    locked = await rec.asegment(50_000, camera="south")
    unlocked = await rec.asegment(50_000, camera="east")
    await rec.index.aadd_lock("south", locked.start, locked.end, "incident")
    offloader = await offloader_for(rec, section(seaweed, prefix="locked"))
    offloader.start()
    try:
        await until(lambda: offloader.uploaded == 1, 30, "the locked segment's upload")
        await asyncio.sleep(0.5)  # a few more scans: the unlocked one must not be queued
        assert offloader.uploaded == 1 and offloader.stats().queued == 0
        assert await asyncio.to_thread(offloader.queue.is_done, locked.path)
        assert not await asyncio.to_thread(offloader.queue.is_done, unlocked.path)
    finally:
        await offloader.stop()
        await asyncio.to_thread(rec.close)


async def test_a_volume_server_killed_mid_upload_and_the_upload_still_completes(
    seaweed: Seaweed, recorded: Recorded
) -> None:
    before = await recorded.asegment(100_000)
    big = await recorded.asegment(15 * 1024 * 1024)  # three parts at 16 Mbit/s: about 8 s
    await asyncio.to_thread(recorded.lock_all)
    offloader = await offloader_for(recorded, section(seaweed, prefix="kill", max_kbps=16_000, timeout_s=5))
    offloader.start()
    try:
        await until(lambda: offloader.uploaded == 1, 30, "the first upload")
        await until(lambda: offloader.stats().state == "uploading" and offloader.pacer._tokens < 0, 30,
                    "the big upload")  # fmt: skip
        await asyncio.sleep(1.0)  # inside the multipart upload
        seaweed.kill_volume(0)
        # Replication 001: what was written before is still there on the other volume server.
        before_key = f"kill/{AGENT}/north/{before.start:%Y-%m-%d}/{before.path.name}"
        assert await stored_sha256(seaweed, before_key) == before.sha256
        await until(lambda: offloader.failures >= 1, 40, "a failed attempt while a replica is missing")
        assert offloader.stats().state == "retrying" and offloader.stats().last_error
        seaweed.start_volume(0)  # the volume server comes back (a reboot): the retry completes the upload
        await until(lambda: offloader.uploaded == 2, 90, "the upload after the volume server came back")
    finally:
        if not seaweed.volume_running(0):
            seaweed.start_volume(0)
        await offloader.stop()
    key = f"kill/{AGENT}/north/{big.start:%Y-%m-%d}/{big.path.name}"
    assert await stored_sha256(seaweed, key) == big.sha256
    assert offloader.stats().last_error is None


async def test_wrong_credentials_give_a_clear_error_in_health_and_nothing_is_deleted(
    seaweed: Seaweed, tmp_path: Path
) -> None:
    rec = await asyncio.to_thread(Recorded, tmp_path, "1s")  # every segment is past its retention
    segments = [await rec.asegment(20_000) for _ in range(3)]
    offloader = await offloader_for(rec, section(seaweed, secret="not-the-secret", segments=True))
    offloader.start()
    try:
        await until(lambda: offloader.failures >= 2, 30, "two refused attempts")
        stats = offloader.stats()
        assert stats.state == "error" and stats.uploaded == 0
        assert stats.last_error is not None and "refused the credentials (SignatureDoesNotMatch)" in stats.last_error
        assert "not-the-secret" not in stats.last_error and seaweed.secret_key not in stats.last_error
        assert offloader.alarms() == [f"offload: {stats.last_error}"]
        await asyncio.to_thread(rec.retention.check)
        assert rec.retention.deleted == 0 and all(s.path.exists() for s in segments)
        assert len(await asyncio.to_thread(rec.index.all_segments)) == 3
    finally:
        await offloader.stop()
        await asyncio.to_thread(rec.close)


async def test_a_restarted_offloader_resumes_its_queue(seaweed: Seaweed, recorded: Recorded) -> None:
    segments = [await recorded.asegment(250_000) for _ in range(4)]
    await asyncio.to_thread(recorded.lock_all)
    first = await offloader_for(recorded, section(seaweed, prefix="restart", max_kbps=4000))  # 0.5 s a file
    first.start()
    try:
        await until(lambda: first.uploaded >= 1, 30, "the first upload")
    finally:
        await first.stop()
    assert 1 <= first.uploaded < 4
    second = await offloader_for(recorded, section(seaweed, prefix="restart"))
    second.start()
    try:
        await until(lambda: first.uploaded + second.uploaded == 4, 30, "the rest of the queue")
        await asyncio.sleep(0.5)  # a few more rounds: nothing is sent twice
    finally:
        await second.stop()
    assert first.uploaded + second.uploaded == 4 and second.stats().queued == 0  # nothing twice, nothing left
    for segment in segments:
        key = f"restart/{AGENT}/north/{segment.start:%Y-%m-%d}/{segment.path.name}"
        assert await stored_sha256(seaweed, key) == segment.sha256


async def test_the_bandwidth_cap_is_honoured(seaweed: Seaweed, recorded: Recorded) -> None:
    cap_kbps = 2000
    sizes = [200_000] * 8  # 1.6 MB: 6.4 s at 2000 kbit/s
    for size in sizes:
        await recorded.asegment(size)
    offloader = await offloader_for(recorded, section(seaweed, prefix="cap", segments=True, max_kbps=cap_kbps))
    started = time.monotonic()
    offloader.start()
    try:
        await until(lambda: offloader.uploaded == len(sizes), 30, "every upload")
    finally:
        elapsed = time.monotonic() - started
        await offloader.stop()
    kbps = sum(sizes) * 8 / 1000 / elapsed
    assert cap_kbps * 0.8 <= kbps <= cap_kbps * 1.2, f"{kbps:.0f} kbit/s with a cap of {cap_kbps}"


# -- retention and the queue, without storage ----------------------------------------------------------


def test_retention_keeps_segments_waiting_for_offload_and_says_so_when_the_disk_is_short(tmp_path: Path) -> None:
    rec = Recorded(tmp_path, retain="1s", min_free="99%")  # everything expired, and the disk is "short"
    kept = [rec.segment(10_000) for _ in range(3)]
    unqueued = rec.segment(10_000, camera="east")
    settings = OffloadSection(endpoint="http://127.0.0.1:9", bucket=BUCKET, access_key_file=Path("a"),
                              secret_key_file=Path("b"))  # fmt: skip
    offloader = Offloader(settings, rec.index.path, rec.dir, AGENT)
    rec.retention.before_delete.append(offloader.enqueue_segments)
    rec.index.add_lock("north", kept[0].start, kept[-1].end, "incident")
    offloader.enqueue_segments()
    rec.index.remove_lock(rec.index.locks()[0].id)  # the lock went before the upload: the video still must go
    assert rec.retention.check() is True  # short: only video waiting for offload is left
    assert all(s.path.exists() for s in kept) and not unqueued.path.exists()
    assert rec.retention.held_for_offload == 30_000
    item = offloader.queue.next_due()
    assert item is not None and item.path == kept[0].path
    offloader.queue.done(item)
    rec.retention.check()
    assert not kept[0].path.exists() and kept[1].path.exists()
    offloader.queue.close()
    rec.index.close()


def test_the_pacer_spends_tokens_at_the_cap_rate() -> None:
    bucket = TokenBucket(250_000)  # 2000 kbit/s
    waits = [bucket.delay(125_000) for _ in range(4)]
    assert waits[0] == pytest.approx(0.5, abs=0.01) and waits[-1] == pytest.approx(2.0, abs=0.02)
    assert TokenBucket(None).delay(10**9) == 0.0


def test_offload_needs_recording_and_keys_from_files(tmp_path: Path) -> None:
    from edgeagent.config import ConfigError
    from edgeagent.configfile import check_config

    access, secret = tmp_path / "access", tmp_path / "secret"
    access.write_text("edge-access\n")
    secret.write_text("very-secret-value\n")
    for path in (access, secret):
        path.chmod(0o600)
    offload = (f"offload:\n  endpoint: http://127.0.0.1:8333\n  bucket: {BUCKET}\n"
               f"  access_key_file: {access}\n  secret_key_file: {secret}\n")  # fmt: skip
    config = tmp_path / "agent.yaml"
    config.write_text(f"agent: {{id: {AGENT}}}\nrecording: {{dir: {tmp_path / 'rec'}}}\n{offload}")
    loaded = check_config(config).config.offload
    assert loaded is not None and loaded.secret_key is not None
    assert loaded.secret_key.get_secret_value() == "very-secret-value"
    assert "very-secret-value" not in repr(loaded) and "very-secret-value" not in loaded.model_dump_json()
    config.write_text(f"agent: {{id: {AGENT}}}\n{offload}")
    with pytest.raises(ConfigError, match="offload needs a recording section"):
        check_config(config)
    config.write_text(f"agent: {{id: {AGENT}}}\nrecording: {{dir: {tmp_path}}}\n"
                      + offload.replace(BUCKET, BUCKET + "\n  secret_key: x"))  # fmt: skip
    with pytest.raises(ConfigError, match="offload.secret_key: unknown key"):
        check_config(config)


async def test_start_offload_joins_a_recording_service_and_its_retention(seaweed: Seaweed, tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from edgeagent.offload.service import start_offload
    from edgeagent.publish.offload_metrics import OffloadCollector
    from edgeagent.record.service import RecordingService

    service = await asyncio.to_thread(RecordingService, RecordingSection(dir=tmp_path / "rec", min_free="0%"), {})
    await service.start()
    offloader = None
    try:
        rec = Recorded.__new__(Recorded)  # segments written into the service's own index
        rec.dir, rec.index, rec._next = service.settings.dir, service.index, T0
        segment = await rec.asegment(40_000)
        await service.index.aadd_lock("north", segment.start, segment.end, "incident")
        offloader = await start_offload(section(seaweed, prefix="wired"), service, AGENT)
        assert offloader.enqueue_segments in service.retention.before_delete
        await until(lambda: offloader is not None and offloader.uploaded == 1, 30, "the locked segment's upload")
        registry = CollectorRegistry(auto_describe=False)
        registry.register(OffloadCollector(offloader.stats))
        text = generate_latest(registry).decode()
        assert "edgeagent_offload_uploaded_bytes_total 40000.0" in text and "edgeagent_offload_queued_files 0.0" in text
        assert offloader.stats().to_json()["uploaded"] == 1
    finally:
        if offloader is not None:
            await offloader.stop()
        await service.stop()
    key = f"wired/{AGENT}/north/{segment.start:%Y-%m-%d}/{segment.path.name}"
    assert await stored_sha256(seaweed, key) == segment.sha256


async def test_a_stop_is_bounded_when_the_s3_client_will_not_close(
    seaweed: Seaweed, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeagent.offload import s3

    async def never(self: object) -> None:
        await asyncio.Event().wait()  # a connection that never finishes closing

    monkeypatch.setattr(s3.AsyncExitStack, "aclose", never)
    monkeypatch.setattr(s3, "CLOSE_S", 0.5)
    offloader = await offloader_for(recorded, section(seaweed, prefix="stuck"))
    offloader.start()
    await until(lambda: offloader._task is not None and offloader.state in ("idle", "uploading"), 30, "the uploader")
    started = time.monotonic()
    await offloader.stop()
    assert time.monotonic() - started < 0.5 + 2.0  # the client's close given up, not waited on for ever
