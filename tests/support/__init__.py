"""Test helpers with real parts: an RTSP camera simulator, a mosquitto broker, an MQTT watcher, the agent."""

from tests.support.agent import AgentProcess, base_config, write_secret
from tests.support.broker import Broker, TlsFiles, make_tls_files
from tests.support.camera import SIMULATOR, Camera
from tests.support.mqtt import Message, MqttWatcher
from tests.support.net import free_port, wait_for_port

__all__ = [
    "SIMULATOR",
    "AgentProcess",
    "Broker",
    "Camera",
    "Message",
    "MqttWatcher",
    "TlsFiles",
    "base_config",
    "free_port",
    "make_tls_files",
    "wait_for_port",
    "write_secret",
]
