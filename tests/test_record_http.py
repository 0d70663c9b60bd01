"""The recordings HTTP routes in-process (aiohttp's test client) over real segment files: what an operator's
page and a stranger can send, and what each gets back."""

from __future__ import annotations

import asyncio
import io
import json
import time
import zipfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import av
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from edgeagent.publish.recordings_http import RecordingRoutes, RecordingsHttpSettings, add_routes, bearer_check
from edgeagent.record.model import Bookmark
from edgeagent.record.signing import load_public_pem, public_pem
from edgeagent.record.verify import verify_export
from tests.support.recordings import T0, FakeIndex, chain, encode_segments, recorded

TOKEN = "recordings-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START, MIDDLE, END = "2026-12-01T08:00:00Z", "2026-12-01T08:00:05Z", "2026-12-01T08:00:10Z"
MARKS = [Bookmark("north", T0 + timedelta(seconds=2), "motion", "onvif", "ONVIF motion: tns1:RuleEngine/Motion"),
         Bookmark("north", T0 + timedelta(seconds=6.5), "blank", "picture", "picture blank"),
         Bookmark("north", T0 + timedelta(seconds=14), "tamper", "onvif", "ONVIF tamper: tns1:RuleEngine/Tamper"),
         Bookmark("south", T0 + timedelta(seconds=3), "moved", "picture", "camera view moved")]


authorized = bearer_check(SecretStr(TOKEN))


@pytest.fixture(scope="module")
def segments_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("segments")


@pytest.fixture(scope="module")
def recorded_index(segments_dir: Path) -> FakeIndex:
    return recorded(segments_dir, count=3, seconds=4, gap_before_last_s=3)  # 0-8 s, offline 8-11 s, 11-15 s


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
async def rig(recorded_index: FakeIndex, key: Ed25519PrivateKey) -> AsyncIterator[tuple[TestClient, RecordingRoutes]]:
    index = FakeIndex(recorded_index.segments_, recorded_index.gaps_, bookmarks_=list(MARKS))
    routes = RecordingRoutes(index, ["north", "south"], key, "cabinet-17", authorized,
                             RecordingsHttpSettings(max_clip_s=60))
    app = web.Application()
    add_routes(app, routes)
    async with TestClient(TestServer(app)) as client:
        yield client, routes


def q(start: str = START, end: str = END) -> str:
    return f"start={start}&end={end}"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", f"/recordings/north?{q()}"),
    ("GET", f"/recordings/north/bookmarks?{q()}"),
    ("GET", f"/recordings/north/clip.mp4?{q()}"),
    ("GET", f"/recordings/north/export.zip?{q()}"),
    ("POST", f"/recordings/north/clip-url?{q()}"),
    ("POST", f"/recordings/north/export-url?{q()}"),
    ("GET", "/recordings/north/locks"),
    ("POST", "/recordings/north/locks"),
    ("DELETE", "/recordings/locks/lock1"),
    ("GET", "/signing-key"),
])
async def test_every_route_wants_the_bearer_token(rig, method: str, path: str) -> None:
    client, _ = rig
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN},
                    {"Authorization": "Basic " + TOKEN}, {"Authorization": "Bearer "}):
        response = await client.request(method, path, headers=headers)
        assert response.status == 401, (path, headers)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_the_listing_has_spans_gaps_with_their_reason_and_segments(rig, recorded_index: FakeIndex) -> None:
    client, _ = rig
    response = await client.get(f"/recordings/north?{q(START, '2026-12-01T08:01:00+00:00')}", headers=AUTH)
    assert response.status == 200
    body = await response.json()
    assert body["camera"] == "north"
    assert body["spans"] == [{"start": "2026-12-01T08:00:00.000Z", "end": "2026-12-01T08:00:08.000Z"},
                             {"start": "2026-12-01T08:00:11.000Z", "end": "2026-12-01T08:00:15.000Z"}]
    assert body["gaps"] == [{"start": "2026-12-01T08:00:08.000Z", "end": "2026-12-01T08:00:11.000Z",
                             "reason": "camera offline"}]
    assert [s["sha256"] for s in body["segments"]] == [s.sha256 for s in recorded_index.segments_]
    light = await (await client.get(f"/recordings/north?{q()}&segments=no", headers=AUTH)).json()
    assert "segments" not in light and light["spans"] and light["gaps"]
    clipped = await (await client.get(f"/recordings/north?{q('2026-12-01T08:00:02Z', '2026-12-01T08:00:12Z')}",
                                      headers=AUTH)).json()
    assert clipped["spans"] == [{"start": "2026-12-01T08:00:02.000Z", "end": "2026-12-01T08:00:08.000Z"},
                                {"start": "2026-12-01T08:00:11.000Z", "end": "2026-12-01T08:00:12.000Z"}]
    assert body["segments"][0]["bytes"] == recorded_index.segments_[0].bytes


async def test_a_clip_streams_as_playable_mp4(rig) -> None:
    client, _ = rig
    response = await client.get(f"/recordings/north/clip.mp4?{q('2026-12-01T08:00:02.500Z', '2026-12-01T08:00:06Z')}",
                                headers=AUTH)
    assert response.status == 200 and response.content_type == "video/mp4"
    assert response.headers["X-Actual-Start"] == "2026-12-01T08:00:02.500Z"
    assert "Content-Length" not in response.headers  # streamed while it is cut
    data = await response.read()
    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == round(0.5 * 25) + round(3.5 * 25)  # pre-roll from the keyframe at 2 s, then 3.5 s


def _read_member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


async def test_an_export_downloads_and_verifies(rig, key: Ed25519PrivateKey, tmp_path: Path) -> None:
    client, _ = rig
    response = await client.get(f"/recordings/north/export.zip?{q(MIDDLE, '2026-12-01T08:00:13Z')}", headers=AUTH)
    assert response.status == 200 and response.content_type == "application/zip"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="cabinet-17-north-')
    path = tmp_path / "export.zip"
    body = await response.read()
    # The verifier is the offline command's code: run it, and the file work around it, off the loop.
    await asyncio.to_thread(path.write_bytes, body)
    verdict = await asyncio.to_thread(verify_export, path, public_pem(key.public_key()))
    assert verdict.problems == [] and "2 source segment(s)" in verdict.ok_line
    manifest = json.loads(await asyncio.to_thread(_read_member, path, "manifest.json"))
    assert manifest["actual"] == {"start": "2026-12-01T08:00:05.000Z", "end": "2026-12-01T08:00:13.000Z"}
    assert [m["time"] for m in manifest["bookmarks"]] == ["2026-12-01T08:00:06.500Z"]  # those of the actual range
    assert "1 bookmark(s)" in verdict.ok_line


async def test_the_public_key_is_served_as_pem(rig, key: Ed25519PrivateKey) -> None:
    client, _ = rig
    response = await client.get("/signing-key", headers=AUTH)
    assert response.status == 200
    assert public_pem(load_public_pem(await response.read())) == public_pem(key.public_key())


@pytest.mark.parametrize(("query", "status", "says"), [
    ("", 400, "start is required"),
    (f"start={START}", 400, "end is required"),
    (q("yesterday"), 400, "start is not an RFC 3339 time"),
    (q("2026-12-01T08:00:00"), 400, "start is not an RFC 3339 time with a time zone"),
    (q("2026-13-01T08:00:00Z"), 400, "start is not a valid time"),
    (q(START, "2026-12-01T08:00:00.0000000000000000000000000000000001Z"), 400, "end is not an RFC 3339"),
    (q("0001-01-01T00:00:00Z"), 400, "start is out of range"),
    (q(END, START), 400, "end must be after start"),
    (q(START, START), 400, "end must be after start"),
    (q(START, "2026-12-01T09:00:01Z"), 413, "longer than 60 s"),
])
async def test_bad_ranges_get_one_line(rig, query: str, status: int, says: str) -> None:
    client, _ = rig
    for route in ("clip.mp4", "export.zip"):
        response = await client.get(f"/recordings/north/{route}?{query}", headers=AUTH)
        text = await response.text()
        assert response.status == status and says in text and text.count("\n") == 1, (route, text)


async def test_unknown_cameras_nothing_recorded_and_huge_listings(rig) -> None:
    client, _ = rig
    for path in (f"/recordings/west?{q()}", f"/recordings/west/clip.mp4?{q()}", "/recordings/west/locks",
                 f"/recordings/west/clip-url?{q()}"):
        method = "POST" if path.endswith("clip-url?" + q()) else "GET"
        response = await client.request(method, path, headers=AUTH)
        assert response.status == 404 and await response.text() == "unknown camera\n", path
    response = await client.get(f"/recordings/south/clip.mp4?{q()}", headers=AUTH)  # known, nothing recorded
    assert response.status == 404 and await response.text() == "nothing was recorded in this range\n"
    response = await client.get(f"/recordings/north?{q(START, '2026-12-09T08:00:00Z')}", headers=AUTH)
    assert response.status == 413


async def test_bookmarks_are_listed_for_a_camera_and_range(rig) -> None:
    client, _ = rig
    response = await client.get(f"/recordings/north/bookmarks?{q(START, '2026-12-01T08:01:00Z')}", headers=AUTH)
    assert response.status == 200
    assert await response.json() == {
        "camera": "north", "start": "2026-12-01T08:00:00.000Z", "end": "2026-12-01T08:01:00.000Z", "truncated": False,
        "bookmarks": [
            {"time": "2026-12-01T08:00:02.000Z", "kind": "motion", "source": "onvif",
             "text": "ONVIF motion: tns1:RuleEngine/Motion"},
            {"time": "2026-12-01T08:00:06.500Z", "kind": "blank", "source": "picture", "text": "picture blank"},
            {"time": "2026-12-01T08:00:14.000Z", "kind": "tamper", "source": "onvif",
             "text": "ONVIF tamper: tns1:RuleEngine/Tamper"}]}  # fmt: skip
    part = await (await client.get(f"/recordings/north/bookmarks?{q(START, '2026-12-01T08:00:02Z')}",
                                   headers=AUTH)).json()
    assert part["bookmarks"] == []  # [start, end): one at the end is not in it
    south = await (await client.get(f"/recordings/south/bookmarks?{q()}", headers=AUTH)).json()
    assert [m["kind"] for m in south["bookmarks"]] == ["moved"]


@pytest.mark.parametrize(("query", "status", "says"), [
    ("", 400, "start is required"),
    (f"start={START}", 400, "end is required"),
    (q("yesterday"), 400, "start is not an RFC 3339 time"),
    (q("2026-12-01T08:00:00"), 400, "with a time zone"),
    (q("2026-02-30T08:00:00Z"), 400, "start is not a valid time"),
    (q("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"), 400, "start is out of range"),
    (q(START, "2" * 1000), 400, "end is not an RFC 3339"),
    (q(END, START), 400, "end must be after start"),
    (q(START, "2026-12-08T08:00:01Z"), 413, "longer than 604800 s"),
    (q("2000-01-01T00:00:00Z", "2200-01-01T00:00:00Z"), 413, "longer than 604800 s"),
])
async def test_bad_or_huge_bookmark_ranges_get_one_line(rig, query: str, status: int, says: str) -> None:
    client, _ = rig
    response = await client.get(f"/recordings/north/bookmarks?{query}", headers=AUTH)
    text = await response.text()
    assert response.status == status and says in text and text.count("\n") == 1, text


async def test_a_listing_of_bookmarks_holds_at_most_1000(rig) -> None:
    client, routes = rig
    routes.index.bookmarks_ += [Bookmark("north", T0 + timedelta(seconds=20, milliseconds=i), "motion", "onvif",
                                         f"m{i}") for i in range(5000)]  # fmt: skip
    body = await (await client.get(f"/recordings/north/bookmarks?{q(START, '2026-12-08T08:00:00Z')}",
                                   headers=AUTH)).json()
    assert len(body["bookmarks"]) == 1000 and body["truncated"] is True
    assert body["bookmarks"][0]["kind"] == "motion" and body["bookmarks"][-1]["text"] == "m996"  # oldest first
    again = q(body["bookmarks"][-1]["time"], "2026-12-08T08:00:00Z")
    rest = await (await client.get(f"/recordings/north/bookmarks?{again}", headers=AUTH)).json()
    assert rest["bookmarks"][0]["text"] == "m996" and rest["truncated"] is True  # asked again from the last one
    unknown = await client.get(f"/recordings/west/bookmarks?{q()}", headers=AUTH)
    assert unknown.status == 404 and await unknown.text() == "unknown camera\n"


async def test_locks_are_made_listed_and_removed(rig) -> None:
    client, _ = rig
    body = {"start": START, "end": "2027-01-15T00:00:00Z", "reason": "collision, police case 4711"}
    made = await client.post("/recordings/north/locks", json=body, headers=AUTH)  # reaches into the future
    assert made.status == 201
    lock = await made.json()
    assert lock["reason"] == body["reason"] and lock["start"] == "2026-12-01T08:00:00.000Z" and lock["id"]
    listed = await (await client.get("/recordings/north/locks", headers=AUTH)).json()
    assert [item["id"] for item in listed["locks"]] == [lock["id"]]
    assert (await client.get("/recordings/south/locks", headers=AUTH)).status == 200
    assert (await client.delete(f"/recordings/locks/{lock['id']}", headers=AUTH)).status == 200
    assert (await client.delete(f"/recordings/locks/{lock['id']}", headers=AUTH)).status == 404
    assert (await client.delete("/recordings/locks/..%2F..%2Fetc", headers=AUTH)).status in (400, 404)


@pytest.mark.parametrize(("data", "status", "says"), [
    (b"not json", 400, "body is not JSON"),
    (b"[1, 2]", 400, "body must be a JSON object"),
    (b"[" * 3000 + b"]" * 1000, 400, "body is not JSON"),
    (json.dumps({"start": START, "end": END}).encode(), 400, "reason must be 1 to 200"),
    (json.dumps({"start": START, "end": END, "reason": "x" * 201}).encode(), 400, "reason must be 1 to 200"),
    (json.dumps({"start": START, "end": END, "reason": "a\nb"}).encode(), 400, "printable"),
    (json.dumps({"start": 5, "end": END, "reason": "r"}).encode(), 400, "must be strings"),
    (json.dumps({"start": END, "end": START, "reason": "r"}).encode(), 400, "end must be after start"),
    (json.dumps({"start": START, "end": "2027-12-01T08:00:00Z", "reason": "r"}).encode(), 413, "longer than"),
    (json.dumps({"start": START, "end": END, "reason": "x" * 5000}).encode(), 413, "larger than 4096 bytes"),
])
async def test_bad_lock_bodies_get_one_line(rig, data: bytes, status: int, says: str) -> None:
    client, routes = rig
    response = await client.post("/recordings/north/locks", data=data, headers=AUTH)
    text = await response.text()
    assert response.status == status and says in text and text.count("\n") == 1, text
    assert routes.index.locks("north") == []


async def test_a_signed_url_plays_without_the_token_once_and_for_that_range_only(rig) -> None:
    client, routes = rig
    made = await client.post(f"/recordings/north/clip-url?{q(START, MIDDLE)}", headers=AUTH)
    assert made.status == 200
    url = (await made.json())["url"]
    assert TOKEN not in url and url.startswith("/recordings-signed/north/clip.mp4?")
    played = await client.get(url)  # no Authorization header: what a <video> element sends
    assert played.status == 200 and played.content_type == "video/mp4" and len(await played.read()) > 1000

    forged = [url.replace("08%3A00%3A05", "08%3A00%3A06"),  # another range
              url.replace("/north/", "/south/"),  # another camera
              url.replace("/clip.mp4", "/export.zip"),  # another purpose
              url[:-4] + ("0000" if not url.endswith("0000") else "1111")]  # another signature
    for attempt in forged:
        response = await client.get(attempt)
        assert response.status == 403, attempt
        assert "Content-Type" in response.headers and response.content_type == "text/plain"
    probe = await client.get("/recordings-signed/west/clip.mp4?start=x&end=y&expires=1&sig=" + "0" * 64)
    assert probe.status == 403  # not 404: a stranger cannot learn which cameras exist
    export = await (await client.post(f"/recordings/north/export-url?{q(START, MIDDLE)}", headers=AUTH)).json()
    assert export["url"].startswith("/recordings-signed/north/export.zip?")
    assert (await client.get(export["url"])).status == 200


async def test_a_signed_url_expires(rig) -> None:
    client, routes = rig
    now = [time.time()]
    routes.urls._clock = lambda: now[0]
    url = (await (await client.post(f"/recordings/north/clip-url?{q(START, MIDDLE)}", headers=AUTH)).json())["url"]
    now[0] += 61
    response = await client.get(url)
    assert response.status == 403 and await response.text() == "this URL has expired\n"


async def test_a_client_that_leaves_mid_clip_stops_the_cutting(key: Ed25519PrivateKey, tmp_path: Path) -> None:
    # Lossless noise: 8 s are far more than the queue and the socket buffers hold, so the cutter is still
    # writing when the client leaves.
    paths = encode_segments(tmp_path, 1, 8, extra=["-qp", "0", "-vf", "noise=alls=80:allf=t"])
    index = FakeIndex(chain("north", paths, [T0], 8))
    assert index.segments_[0].bytes > 12_000_000
    routes = RecordingRoutes(index, ["north"], key, "cabinet-17", authorized)
    app = web.Application()
    add_routes(app, routes)
    async with TestClient(TestServer(app)) as client:
        response = await client.get(f"/recordings/north/clip.mp4?{q(START, '2026-12-01T08:00:08Z')}", headers=AUTH)
        assert response.status == 200
        await response.content.readexactly(100_000)
        assert routes.streams == 1
        response.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if routes.streams == 0:
                break
            await asyncio.sleep(0.05)
        assert routes.streams == 0
        assert (routes.counts.client_left, routes.counts.completed) == (1, 0)


async def test_an_export_of_a_segment_altered_on_disk_is_never_signed(recorded_index: FakeIndex,
                                                                       key: Ed25519PrivateKey) -> None:
    from dataclasses import replace

    altered = [replace(recorded_index.segments_[0], sha256="f" * 64), *recorded_index.segments_[1:]]
    routes = RecordingRoutes(FakeIndex(altered), ["north"], key, "cabinet-17", authorized)
    app = web.Application()
    add_routes(app, routes)
    async with TestClient(TestServer(app)) as client:
        response = await client.get(f"/recordings/north/export.zip?{q(START, MIDDLE)}", headers=AUTH)
        body = b""
        if response.status == 200:  # the zip had begun: it is broken off before its manifest
            with pytest.raises(aiohttp.ClientPayloadError):
                while chunk := await response.content.read(65536):
                    body += chunk
            assert body.startswith(b"PK\x03\x04clip.mp4"[:4])
        else:
            body = await response.read()
            assert response.status == 409 and b"part000.mp4 does not match its SHA-256" in body
        assert b"manifest.json" not in body and b"manifest.sig" not in body
    assert routes.counts.completed == 0 and routes.counts.failed == 1
