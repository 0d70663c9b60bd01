#!/usr/bin/env bash
# Everything `make test` and `make demo` need, on a fresh Debian 12 (run as root, or with sudo available).
# Fast when there is nothing to do: packages are checked with dpkg-query, and the venv is reinstalled only
# when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-x
  python3-gi python3-venv
  mosquitto mosquitto-clients
  ffmpeg chromium chromium-driver
  openssl ca-certificates systemd
  janus iproute2 prometheus
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
  [[ $status == ii* ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: run as root (or install sudo) to install: ${missing[*]}" >&2; exit 1; }
    SUDO=(sudo)
  fi
  mosquitto_was_installed=$(dpkg-query -W -f='${db:Status-Abbrev}' mosquitto 2>/dev/null || true)
  # Keep package installs from starting services (Debian's policy-rc.d convention); tests start their own
  # broker on ports they pick. Only when no policy is in place already.
  policy_added=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  trap 'if [[ $policy_added == 1 ]]; then "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; fi' EXIT
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [[ $mosquitto_was_installed != ii* ]]; then
    # A freshly installed mosquitto may still have been started (or enabled) as a system service on port
    # 1883: stop and disable it; the tests and the demo run their own.
    if [[ -d /run/systemd/system ]]; then
      "${SUDO[@]}" systemctl disable --now mosquitto.service >/dev/null 2>&1 || true
    elif [[ -x /etc/init.d/mosquitto ]]; then
      "${SUDO[@]}" /etc/init.d/mosquitto stop >/dev/null 2>&1 || true
      "${SUDO[@]}" update-rc.d mosquitto disable >/dev/null 2>&1 || true
    fi
  fi
  # Janus likewise: the uplink tests run their own, in a network namespace.
  if [[ -d /run/systemd/system ]]; then "${SUDO[@]}" systemctl disable --now janus.service >/dev/null 2>&1 || true; fi
fi
scripts/setup-whip-server.sh

# The project's venv (the simulator runs on Debian's /usr/bin/python3 with python3-gi, not in the venv).
stamp=.venv/.edgeagent-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]] || ! .venv/bin/python -c 'import edgeagent, onvif, ipycam' 2>/dev/null; then
  echo "setup: pip install -e '.[test]'"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  # The independent ONVIF device of the tests (IPyCam); --no-deps: it asks for opencv-python, and the
  # project's opencv-python-headless already provides cv2 (two OpenCV wheels must not share a venv).
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps 'ipycam==1.3.0'
  echo "$want" >"$stamp"
fi
