#!/usr/bin/env bash
# A real WHIP server for the uplink tests: meetecho's simple-whip-server (Janus behind a WHIP front), from
# Debian's package. The package itself cannot always be installed (its Debian node-* dependencies conflict
# with a nodejs from elsewhere), so its files are unpacked into .cache/ and its few Node.js dependencies come
# from the npm registry. Fast when done: skipped while the unpacked copy is there.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/simple-whip-server
[[ -f $dest/.installed ]] && exit 0
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: installing nodejs npm (for the WHIP server of the uplink tests)"
  SUDO=(); [[ $(id -u) -ne 0 ]] && SUDO=(sudo)
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends nodejs npm
fi
rm -rf "$dest" && mkdir -p "$dest/deb"
(cd "$dest/deb" && apt-get download simple-whip-server >/dev/null)
dpkg-deb -x "$dest"/deb/simple-whip-server_*.deb "$dest/deb/x"
cp -r "$dest/deb/x/usr/share/simple-whip-server/src" "$dest/src"
rm -f "$dest/src/config.js"  # a link to /etc/simple-whip-server/config.js; each test writes its own
(cd "$dest" && npm install --no-audit --no-fund --silent express@4 cors@2 colors@1 debug@4 websocket@1 async@3 body-parser@1)
touch "$dest/.installed"
echo "setup: simple-whip-server unpacked into $dest"
