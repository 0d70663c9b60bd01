"""MQTT signaling: an operator's tool that reaches the cabinet through the broker alone gets live video.

The viewer is a Python aiortc client in this process; it never talks HTTP to the agent: the offer goes
to ``<prefix>/<agent>/cameras/<cam>/webrtc/offer``, the answer comes back on
``<prefix>/<agent>/webrtc/<session>/answer``, and the media flows peer to peer.
"""

from __future__ import annotations

import asyncio
import json

from tests.support import base_config
from tests.support.browser import looks_like_smpte
from tests.support.live_client import PythonViewer


async def answer_to(watcher, topic: str, within_s: float = 15) -> dict:
    message = await asyncio.to_thread(watcher.wait_for, topic, None, within_s)
    return json.loads(message.payload)


async def test_a_python_viewer_gets_video_through_the_broker_only(
    tmp_path, broker, camera_factory, agent_factory, mqtt_watcher_factory
):
    camera = camera_factory(gop_s=1)
    config = base_config(tmp_path, broker, {"north": camera}, webrtc={"host_addresses": ["127.0.0.1"]})
    agent = agent_factory(config)
    base = f"edgeagent/{agent.agent_id}"
    watcher = mqtt_watcher_factory(f"{base}/#")
    await asyncio.to_thread(
        watcher.wait_for, f"{base}/cameras/north/status", lambda m: m.payload == b"online", 30
    )

    # Garbage and unknown cameras get an error on the session's own topic; the agent carries on.
    await asyncio.to_thread(watcher.publish, f"{base}/cameras/north/webrtc/offer", {"session_id": "bad-1", "sdp": "x"})
    assert (await answer_to(watcher, f"{base}/webrtc/bad-1/answer"))["error"].startswith("400")
    await asyncio.to_thread(
        watcher.publish, f"{base}/cameras/nowhere/webrtc/offer", {"session_id": "bad-2", "sdp": "v=0"}
    )
    assert (await answer_to(watcher, f"{base}/webrtc/bad-2/answer"))["error"].startswith("404")
    await asyncio.to_thread(watcher.publish, f"{base}/cameras/north/webrtc/offer", b"not json at all")

    viewer = PythonViewer()
    try:
        offer = {"session_id": "operator-7", "sdp": await viewer.offer()}
        await asyncio.to_thread(watcher.publish, f"{base}/cameras/north/webrtc/offer", offer)
        answer = await answer_to(watcher, f"{base}/webrtc/operator-7/answer")
        assert set(answer) == {"sdp"}, answer
        await viewer.accept(answer["sdp"])
        await viewer.wait_frames(50, within_s=10)
        assert looks_like_smpte(viewer.picture())
        assert "ERROR" not in agent.log_text()
    finally:
        await viewer.close()
