"""A real Prometheus (Debian's) scrapes the agent with its bearer token and answers queries about it; the
alert rules shipped in deploy/prometheus/ load and fire as their unit tests say (promtool)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.agent import write_secret
from tests.support.camera import ROOT
from tests.support.net import free_port, wait_for_port

pytestmark = pytest.mark.timeout(90)

DEPLOY = ROOT / "deploy" / "prometheus"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
FPS = 10


class Prometheus:
    def __init__(self, directory: Path, config: dict) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config_file = self.dir / "prometheus.yml"
        self.config_file.write_text(yaml.safe_dump(config))
        self.log_path = self.dir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Prometheus:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={self.config_file}", f"--storage.tsdb.path={self.dir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_for_port(
            "127.0.0.1", self.port, timeout=30, alive=lambda: self.proc is not None and self.proc.poll() is None
        )
        deadline = time.monotonic() + 30
        while True:  # 503 until the TSDB is open and the rules loaded
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):  # noqa: S310
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def get(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback
            document = json.loads(answer.read())
        assert document["status"] == "success", document
        return document["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]

    def wait_query(self, expr: str, timeout: float = 30.0) -> list[dict]:
        """The first non-empty answer to ``expr`` (scrapes every second; polled, Prometheus has no push)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.5)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def prometheus_factory(tmp_path) -> Iterator:
    made: list[Prometheus] = []

    def make(config: dict) -> Prometheus:
        server = Prometheus(tmp_path / f"prometheus{len(made)}", config)
        made.append(server)
        return server.start()

    yield make
    for server in made:
        server.close()


def scrape_job(name: str, target: str, token_file: Path) -> dict:
    return {
        "job_name": name,
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
        "static_configs": [{"targets": [target]}],
    }


def test_prometheus_scrapes_the_agent_with_its_token_and_answers_for_a_camera(
    tmp_path, broker, camera_factory, agent_factory, base_config, prometheus_factory
):
    camera = camera_factory(width=320, height=180, fps=FPS, gop_s=1.0)
    agent = agent_factory(base_config(tmp_path, broker, cameras={"north": {"url": camera.url}}))
    agent.wait_log("camera north: online", timeout=20)
    target = agent.http_url.removeprefix("http://")
    wrong = write_secret(tmp_path / "wrong-token", "not-the-token-of-this-agent")
    config = {
        "global": {"evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "alerts.yml")],  # the shipped rules load beside a live scrape
        "scrape_configs": [
            scrape_job("edgeagent", target, Path(agent.config["http"]["token_file"])),
            scrape_job("stranger", target, wrong),
        ],
    }
    prometheus = prometheus_factory(config)

    up = prometheus.wait_query('edgeagent_camera_up{job="edgeagent",camera="north"}')
    assert [sample["value"][1] for sample in up] == ["1"]
    fps = prometheus.wait_query('edgeagent_camera_fps{job="edgeagent",camera="north"} > 0')
    assert len(fps) == 1 and abs(float(fps[0]["value"][1]) - FPS) <= 1.5, fps
    assert prometheus.wait_query('edgeagent_mqtt_connected{job="edgeagent"} == 1')

    # The wrong token gets nothing: its target is down with a 401, and no series of it exists.
    targets = prometheus.get("/api/v1/targets")["activeTargets"]
    deadline = time.monotonic() + 15
    while any(t["health"] == "unknown" for t in targets) and time.monotonic() < deadline:
        time.sleep(0.5)  # until both targets were scraped once
        targets = prometheus.get("/api/v1/targets")["activeTargets"]
    health = {t["labels"]["job"]: t for t in targets}
    assert health["edgeagent"]["health"] == "up"
    assert health["stranger"]["health"] == "down" and "401" in health["stranger"]["lastError"]
    assert prometheus.query('edgeagent_camera_up{job="stranger"}') == []

    # The camera goes away: Prometheus sees it offline (what CameraOffline fires on after 2 minutes).
    camera.stop()
    down = prometheus.wait_query('edgeagent_camera_up{job="edgeagent",camera="north"} == 0', timeout=30)
    assert len(down) == 1
    rules = prometheus.get("/api/v1/rules")["groups"]
    assert {rule["name"] for group in rules for rule in group["rules"]} >= {"CameraOffline", "BrokerDisconnected"}


def test_shipped_alert_rules_check_and_pass_their_unit_tests() -> None:
    checked = subprocess.run([PROMTOOL, "check", "rules", str(DEPLOY / "alerts.yml")], capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=DEPLOY, capture_output=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_example_scrape_config_is_valid_prometheus_configuration(tmp_path) -> None:
    config = yaml.safe_load((DEPLOY / "scrape.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["authorization"]["credentials_file"] and "credentials" not in job["authorization"]  # a file only
    # promtool opens the files the configuration names: give it stand-ins at those paths' names.
    for key, path in (
        ("ca_file", job["tls_config"]["ca_file"]),
        ("credentials_file", job["authorization"]["credentials_file"]),
    ):
        stand_in = tmp_path / Path(path).name
        stand_in.write_text("x\n")
        (job["tls_config"] if key == "ca_file" else job["authorization"])[key] = str(stand_in)
    config["rule_files"] = [str(DEPLOY / "alerts.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = subprocess.run(
        [PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
