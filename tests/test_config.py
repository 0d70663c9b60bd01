"""Configuration: a bad file fails at start with one clear line per problem, naming field and value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgeagent.config import ConfigError, load_config, parse_config, redact_url, url_with_password

GOOD = {
    "agent": {"id": "cabinet-17", "state_dir": "/tmp/x"},
    "mqtt": {"host": "127.0.0.1", "port": 1883},
    "cameras": {"north": {"url": "rtsp://viewer@10.0.0.21:554/stream1"}},
}


def with_change(path: str, value: object) -> dict:
    """GOOD with one dotted path set (or deleted when value is ...)."""
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


def run_check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "edgeagent.yaml"
    config.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "edgeagent", "check-config", str(config)], capture_output=True, text=True, timeout=60
    )


MALFORMED = [
    # (what, YAML text, words the single error line must hold)
    ("unknown key", yaml.safe_dump(with_change("agent.colour", "red")), ["agent.colour", "unknown key"]),
    ("missing agent id", yaml.safe_dump(with_change("agent.id", ...)), ["agent.id", "missing"]),
    ("bad agent id", yaml.safe_dump(with_change("agent.id", "Cabinet 17!")), ["agent.id", "Cabinet 17!"]),
    ("port out of range", yaml.safe_dump(with_change("mqtt.port", 70000)), ["mqtt.port", "70000"]),
    ("port not a number", yaml.safe_dump(with_change("mqtt.port", "eighty")), ["mqtt.port", "eighty"]),
    (
        "password in the URL",
        yaml.safe_dump(with_change("cameras.north", {"url": "rtsp://viewer:hunter2@10.0.0.21/s"})),
        ["cameras.north.url", "password", "***"],
    ),
    (
        "not an RTSP URL",
        yaml.safe_dump(with_change("cameras.north", {"url": "http://10.0.0.21/s"})),
        ["cameras.north.url", "rtsp://"],
    ),
    (
        "unknown transport",
        yaml.safe_dump(with_change("cameras.north", {"url": "rtsp://h/s", "transport": "sctp"})),
        ["cameras.north.transport", "sctp"],
    ),
    (
        "mask outside the picture",
        yaml.safe_dump(with_change("cameras.north", {"url": "rtsp://h/s", "privacy_masks": [[0.9, 0, 0.5, 0.1]]})),
        ["cameras.north.privacy_masks.0", "inside the picture"],
    ),
    (
        "mask with three numbers",
        yaml.safe_dump(with_change("cameras.north", {"url": "rtsp://h/s", "privacy_masks": [[0, 0, 0.5]]})),
        ["cameras.north.privacy_masks.0", "[x, y, w, h]"],
    ),
    (
        "stall timeout too short",
        yaml.safe_dump(with_change("cameras.north", {"url": "rtsp://h/s", "stall_timeout_s": 0})),
        ["cameras.north.stall_timeout_s", "0"],
    ),
    (
        "bad camera name",
        yaml.safe_dump(with_change("cameras", {"North Gate": {"url": "rtsp://h/s"}})),
        ["cameras", "North Gate"],
    ),
    ("listen without port", yaml.safe_dump(with_change("http", {"listen": "127.0.0.1"})), ["http.listen", "HOST:PORT"]),
    ("not YAML", "agent: {id: [unclosed\n", ["line", "column"]),
    ("not a mapping", "- just\n- a list\n", ["top level", "mapping"]),
    (
        "missing secret file",
        yaml.safe_dump(with_change("mqtt.password_file", "/nonexistent/mqtt-password")),
        ["mqtt.password_file", "/nonexistent/mqtt-password"],
    ),
    (
        "cert without key",
        yaml.safe_dump(with_change("mqtt.tls", {"cert_file": "/etc/hostname"})),
        ["mqtt.tls", "cert_file and key_file go together"],
    ),
]


@pytest.mark.parametrize(("what", "text", "words"), MALFORMED, ids=[case[0] for case in MALFORMED])
def test_malformed_config_exits_2_with_one_clear_line(tmp_path: Path, what: str, text: str, words: list[str]) -> None:
    result = run_check(tmp_path, text)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("config error: ")
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_run_refuses_a_malformed_config_the_same_way(tmp_path: Path) -> None:
    config = tmp_path / "edgeagent.yaml"
    config.write_text(yaml.safe_dump(with_change("mqtt.port", 0)))
    result = subprocess.run(
        [sys.executable, "-m", "edgeagent", "run", "-c", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"config error: {config}: mqtt.port: ") and "(got 0)" in lines[0]


def test_every_error_gets_its_own_line(tmp_path: Path) -> None:
    data = with_change("agent.colour", "red")
    data["mqtt"]["port"] = -1
    result = run_check(tmp_path, yaml.safe_dump(data))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert any("agent.colour" in line for line in lines) and any("mqtt.port" in line for line in lines)


def test_good_config_prints_ok(tmp_path: Path) -> None:
    result = run_check(tmp_path, yaml.safe_dump(GOOD))
    assert (result.returncode, result.stdout) == (0, "ok\n")


def test_shipped_configs_are_valid(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    config = parse_config(yaml.safe_load((root / "configs" / "example.yaml").read_text()))
    assert config.cameras["north"].privacy_masks[0].w == 0.25
    demo = parse_config(yaml.safe_load((root / "configs" / "demo.yaml").read_text()))
    assert demo.cameras


def test_secret_read_from_systemd_credentials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mqtt").write_text("s3cret\n")
    (tmp_path / "mqtt").chmod(0o600)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump(with_change("mqtt.password_file", "mqtt")))
    config = load_config(config_file)
    assert str(config.mqtt.password_file) == "mqtt"
    assert config.mqtt.password.get_secret_value() == "s3cret"


def secret(path: Path, value: str, mode: int = 0o600) -> str:
    path.write_text(value + "\n")
    path.chmod(mode)
    return str(path)


def test_every_secret_is_read_once_at_load_and_never_dumped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEAGENT_TEST_CAMERA_PASSWORD", "camera-pw-2")
    data = with_change("mqtt.password_file", secret(tmp_path / "mqtt", "mqtt-pw-1"))
    data["http"] = {"token_file": secret(tmp_path / "token", "Xk39-fj2Lq0_pZ8vR5tY")}
    data["cameras"]["north"]["password_file"] = secret(tmp_path / "north", "camera-pw-1")
    data["cameras"]["south"] = {"url": "rtsp://viewer@10.0.0.22/s", "password_env": "EDGEAGENT_TEST_CAMERA_PASSWORD"}
    data["webrtc"] = {"ice_servers": [{"urls": ["turn:turn.example"], "username": "edge",
                                       "credential_file": secret(tmp_path / "turn", "turn-pw-1")}]}
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump(data))
    config = load_config(config_file)
    values = [
        config.mqtt.password, config.http.token, config.cameras["north"].password,
        config.cameras["south"].password, config.webrtc.ice_servers[0].credential,
    ]
    assert [value.get_secret_value() for value in values] == [
        "mqtt-pw-1", "Xk39-fj2Lq0_pZ8vR5tY", "camera-pw-1", "camera-pw-2", "turn-pw-1"
    ]
    shown = repr(config) + config.model_dump_json() + str(config.model_dump())
    assert not any(value.get_secret_value() in shown for value in values)
    # The old reader still answers for callers that have not moved to the loaded values yet.
    from edgeagent.config import read_secret

    assert read_secret(Path(tmp_path / "mqtt"), None, "mqtt.password_file").get_secret_value() == "mqtt-pw-1"


def test_secret_from_missing_environment_variable_is_an_error(tmp_path: Path) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump(with_change("mqtt.password_env", "EDGEAGENT_TEST_UNSET_VARIABLE")))
    with pytest.raises(ConfigError, match="EDGEAGENT_TEST_UNSET_VARIABLE"):
        load_config(config_file)


def test_urls_are_redacted_and_passwords_escaped() -> None:
    assert redact_url("rtsp://viewer:p@ss@10.0.0.1:554/s") == "rtsp://viewer:***@10.0.0.1:554/s"
    assert redact_url("rtsp://10.0.0.1/s") == "rtsp://10.0.0.1/s"
    assert redact_url("rtsp://viewer@10.0.0.1/s") == "rtsp://viewer:***@10.0.0.1/s"  # password or not: unsaid
    from pydantic import SecretStr

    url = url_with_password("rtsp://viewer@10.0.0.1/s", SecretStr("a:b@c/d"))
    assert url == "rtsp://viewer:a%3Ab%40c%2Fd@10.0.0.1/s"


def all_models() -> list[type]:
    """Every model reachable from Config, wherever it is defined (a section may live beside its feature)."""
    import typing

    from pydantic import BaseModel

    from edgeagent.config import Config

    found: list[type] = []
    pending: list[object] = [Config]
    while pending:
        kind = pending.pop()
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            if kind not in found:
                found.append(kind)
                pending.extend(field.annotation for field in kind.model_fields.values())
        else:
            pending.extend(typing.get_args(kind))
    return found


def test_every_field_describes_itself() -> None:
    missing = [f"{model.__name__}.{name}" for model in all_models()
               for name, field in model.model_fields.items() if not field.description]
    assert not missing, f"add Field(description=...) to {missing}, then run `edgeagent config-doc`"


def test_readme_reference_is_generated_from_the_models() -> None:
    from edgeagent.configdoc import README, readme_block, update_readme

    assert update_readme(README, check=True), (
        "README.md's configuration reference is stale: run `python -m edgeagent config-doc`"
    )
    assert readme_block() in README.read_text()


def test_the_generated_reference_is_itself_a_valid_configuration() -> None:
    from edgeagent.configdoc import reference_yaml

    config = parse_config(yaml.safe_load(reference_yaml()))
    assert config.cameras["north"].url == "rtsp://viewer@10.0.0.21:554/stream1"
    assert config.mqtt is not None and config.mqtt.host == "broker.example"


def test_config_doc_check_fails_on_a_stale_readme(tmp_path: Path) -> None:
    from edgeagent.configdoc import END_MARKER, START_MARKER

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{START_MARKER}\n```yaml\nagent: {{}}\n```\n{END_MARKER}\nafter\n")
    command = [sys.executable, "-m", "edgeagent", "config-doc", "--readme", str(readme)]
    stale = subprocess.run([*command, "--check"], capture_output=True, text=True, timeout=60)
    assert stale.returncode == 1 and "out of date" in stale.stderr
    assert subprocess.run(command, timeout=60).returncode == 0
    assert subprocess.run([*command, "--check"], timeout=60).returncode == 0
    assert readme.read_text().endswith(f"{END_MARKER}\nafter\n") and "health_interval_s: 10" in readme.read_text()


def test_config_schema_command_prints_the_json_schema() -> None:
    import json

    result = subprocess.run([sys.executable, "-m", "edgeagent", "config-schema"], capture_output=True, text=True,
                            timeout=60)
    schema = json.loads(result.stdout)
    sections = {"agent", "mqtt", "http", "webrtc", "cameras", "uplink", "recording", "offload"}
    assert result.returncode == 0 and set(schema["properties"]) == sections
    camera = schema["$defs"]["CameraSection"]
    assert camera["additionalProperties"] is False
    assert "never holds a password" in camera["properties"]["url"]["description"]
    assert "_password" not in json.dumps(schema)


def test_the_version_lives_in_one_place() -> None:
    import tomllib

    from edgeagent import __version__

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "edgeagent.__version__"}
    assert __version__.count(".") == 2


def test_the_agent_takes_the_secrets_the_load_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeagent.credentials import read_credentials

    data = with_change("mqtt.password_file", secret(tmp_path / "mqtt", "mqtt-pw-1"))
    data["cameras"]["north"]["password_file"] = secret(tmp_path / "north", "camera-pw-1")
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump(data))
    config = load_config(config_file)
    (tmp_path / "mqtt").unlink()  # read once, at load: nothing is read again
    credentials = read_credentials(config)
    assert credentials.mqtt_password.get_secret_value() == "mqtt-pw-1"
    assert credentials.camera_passwords["north"].get_secret_value() == "camera-pw-1"
    # A Config built in code (not loaded from a file) gets the same checks when the agent reads it.
    built = parse_config(with_change("mqtt.password_file", str(tmp_path / "mqtt")))
    with pytest.raises(ConfigError, match="mqtt.password_file: cannot read secret file"):
        read_credentials(built)
