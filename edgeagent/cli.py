"""Command line: run, check-config, config-schema, config-doc, probe, discover, simulate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from edgeagent import __version__, logs
from edgeagent.config import CameraSection, ConfigError, read_secret
from edgeagent.configfile import CheckedConfig, check_config, format_validation_error

EXIT_CONFIG = 2
SIMULATOR = Path(__file__).resolve().parent / "simulator" / "rtsp_camera.py"


def _config_errors(error: ConfigError, path: str) -> None:
    for line in error.lines:
        print(f"config error: {line}" if line.startswith(path) else f"config error: {path}: {line}", file=sys.stderr)


def _checked(path: str) -> CheckedConfig | None:
    """The one check for check-config and run; None (problems printed) when the file cannot run."""
    try:
        return check_config(Path(path))
    except ConfigError as exc:
        _config_errors(exc, path)
        return None


def cmd_check_config(args: argparse.Namespace) -> int:
    checked = _checked(args.config)
    if checked is None:
        return EXIT_CONFIG
    for warning in checked.warnings:
        print(f"config warning: {args.config}: {warning}", file=sys.stderr)
    print("ok")
    return 0


def cmd_config_schema(args: argparse.Namespace) -> int:
    from edgeagent.configdoc import schema_json

    print(schema_json())
    return 0


def cmd_config_doc(args: argparse.Namespace) -> int:
    from edgeagent.configdoc import README, reference_yaml, update_readme

    if args.stdout:
        print(reference_yaml(), end="")
        return 0
    readme = Path(args.readme) if args.readme else README
    try:
        current = update_readme(readme, check=args.check)
    except (OSError, ValueError) as exc:
        print(f"config-doc: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check and not current:
        print(f"config-doc: {readme} is out of date: run `edgeagent config-doc`", file=sys.stderr)
        return 1
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from edgeagent.allocator import fix_mmap_threshold

    fix_mmap_threshold()  # before the agent allocates its buffers
    checked = _checked(args.config)
    if checked is None:
        return EXIT_CONFIG
    config = checked.config
    logs.setup(args.log_level or config.agent.log_level)
    for warning in checked.warnings:
        logging.getLogger("edgeagent.config").warning("config: %s", warning)
    from edgeagent.agent import Agent

    async def main() -> None:
        agent = Agent(config, Path(args.config))
        await agent.run()

    try:
        asyncio.run(main())
    except ConfigError as exc:
        _config_errors(exc, args.config)
        return EXIT_CONFIG
    except OSError as exc:  # a full disk, a taken port: say which, in one line
        where = f": {exc.filename}" if exc.filename else ""
        print(f"edgeagent: cannot start: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    """Open a stream once and say what it is, as the agent would see it."""
    from edgeagent.health import camera_health
    from edgeagent.unit import build_unit

    try:
        section = CameraSection(url=args.url, transport=args.transport, password_env=args.password_env)
        password = read_secret(None, args.password_env, "password") if args.password_env in os.environ else None
    except ValidationError as exc:
        for line in format_validation_error(exc):
            print(f"probe: {line}", file=sys.stderr)
        return EXIT_CONFIG

    async def probe() -> int:
        unit = build_unit("probe", section, password, None)
        camera = unit.camera
        camera.start()
        deadline = time.monotonic() + args.seconds
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                if camera.online and camera.hub.gop_seconds() is not None and time.monotonic() > deadline - 1:
                    break
            health = camera_health(unit)
        finally:
            await camera.stop()
        if not health.online and health.codec is None:
            print(f"probe: {health.url}: {health.last_error or 'no video received'}", file=sys.stderr)
            return 1
        gop = f"{health.gop_s:.2f} s" if health.gop_s is not None else "unknown (no second keyframe yet)"
        print(f"url:      {health.url}")
        print(f"codec:    {health.codec}")
        print(f"size:     {health.width}x{health.height}")
        print(f"fps:      {health.fps:.2f}")
        print(f"gop:      {gop}")
        print(f"bitrate:  {health.bitrate_kbps:.0f} kbit/s")
        return 0

    return asyncio.run(probe())


def cmd_simulate(args: argparse.Namespace) -> int:
    """The GStreamer camera simulator runs on the system Python, which has GStreamer's bindings."""
    python = shutil.which("python3", path="/usr/bin") or "/usr/bin/python3"
    os.execv(python, [python, str(SIMULATOR), *args.simulator_args])
    return 0  # not reached


def cmd_verify(args: argparse.Namespace) -> int:
    from edgeagent.record.verify import main as verify

    return verify(args.export, args.public_key)


def cmd_systemd_dropin(args: argparse.Namespace) -> int:
    """The unit's IPAddressAllow= drop-in for the addresses the configuration names."""
    from edgeagent import unit_dropin

    checked = _checked(args.config)
    if checked is None:
        return EXIT_CONFIG
    try:
        text = unit_dropin.dropin_text(checked.config, args.clients)
    except (OSError, ValueError) as exc:  # a name that does not resolve, a bad --clients network
        print(f"systemd-dropin: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.output == "-":
        sys.stdout.write(text)
    else:
        unit_dropin.write(Path(args.output), text)
        print(f"wrote {args.output}; now: systemctl daemon-reload && systemctl restart edgeagent")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeagent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edgeagent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the agent")
    run.add_argument("-c", "--config", required=True, help="YAML configuration file")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.set_defaults(handler=cmd_run)

    check = commands.add_parser("check-config", help="apply run's checks to a configuration file and exit")
    check.add_argument("config")
    check.set_defaults(handler=cmd_check_config)

    schema = commands.add_parser("config-schema", help="print the configuration's JSON schema (for editors)")
    schema.set_defaults(handler=cmd_config_schema)

    doc = commands.add_parser("config-doc", help="write the configuration reference into README.md")
    doc.add_argument("--readme", help="the README to update (default: the project's)")
    doc.add_argument("--check", action="store_true", help="only say whether it is current (exit 1 if not)")
    doc.add_argument("--stdout", action="store_true", help="print the reference instead")
    doc.set_defaults(handler=cmd_config_doc)

    probe = commands.add_parser("probe", help="open a stream once and print codec, size, fps, GOP, bitrate")
    probe.add_argument("url", help="rtsp://user@host/path (no password in the URL)")
    probe.add_argument("--password-env", default="EDGEAGENT_CAMERA_PASSWORD",
                       help="environment variable holding the password (default: %(default)s)")
    probe.add_argument("--transport", choices=["tcp", "udp"], default="tcp")
    probe.add_argument("--seconds", type=float, default=6.0, help="how long to watch the stream")
    probe.set_defaults(handler=cmd_probe)

    from edgeagent.record.commands import add_recordings_commands
    from edgeagent.record.export_command import add_export_command

    add_export_command(add_recordings_commands(commands))  # recordings list | reindex | export

    verify = commands.add_parser("verify", help="check an export's signature, clip and hash chain (offline)")
    verify.add_argument("export", help="the export.zip")
    verify.add_argument("--public-key", help="the cabinet's public key (PEM, from GET /signing-key)")
    verify.set_defaults(handler=cmd_verify)

    dropin = commands.add_parser("systemd-dropin", help="write the unit's IPAddressAllow= drop-in from a config")
    dropin.add_argument("-c", "--config", required=True, help="YAML configuration file")
    dropin.add_argument("-o", "--output", default="-",
                        help="file to write, e.g. /etc/systemd/system/edgeagent.service.d/ip-allow.conf "
                             "(default: standard output)")
    dropin.add_argument("--clients", action="append", default=[], metavar="CIDR",
                        help="an operators' network allowed to reach HTTP and receive live video (repeatable)")
    dropin.set_defaults(handler=cmd_systemd_dropin)

    from edgeagent.onvif.commission import add_parser as add_discover_parser

    add_discover_parser(commands)

    simulate = commands.add_parser("simulate", help="run the RTSP camera simulator (see --help after --)",
                                   add_help=False)
    simulate.add_argument("simulator_args", nargs=argparse.REMAINDER)
    simulate.set_defaults(handler=cmd_simulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
