#!/usr/bin/env bash
# The demo on one machine: a simulated camera (GStreamer, digest auth), a local mosquitto with a generated
# password and ACLs (the agent's user writes only under its own base; an "operator" user reads everything and
# writes only the command topics), and the agent with configs/demo.yaml. Secrets are generated once into
# demo-state/secrets/ (0600).
# Ctrl+C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=${CONFIG:-configs/demo.yaml}
STATE=demo-state
PY=.venv/bin/python
[[ -x $PY ]] || { echo "demo: run 'make demo' (or scripts/setup.sh) first" >&2; exit 1; }

# Ports, user names and secret files come from the config, so the two cannot drift apart.
eval "$("$PY" - "$CONFIG" <<'PYEOF'
import shlex, sys, urllib.parse, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
cam = next(iter(cfg["cameras"].values()))
u = urllib.parse.urlsplit(cam["url"])
out = {
    "MQTT_HOST": cfg["mqtt"]["host"], "MQTT_PORT": cfg["mqtt"]["port"], "MQTT_USER": cfg["mqtt"]["username"],
    "MQTT_PASSWORD_FILE": cfg["mqtt"]["password_file"], "TOPIC_PREFIX": cfg["mqtt"].get("topic_prefix", "edgeagent"),
    "AGENT_ID": cfg["agent"]["id"],
    "HTTP_LISTEN": cfg["http"]["listen"], "HTTP_TOKEN_FILE": cfg["http"]["token_file"],
    "CAM_HOST": u.hostname, "CAM_PORT": u.port or 554, "CAM_PATH": u.path or "/stream1",
    "CAM_USER": u.username or "", "CAM_PASSWORD_FILE": cam.get("password_file") or "",
}
for k, v in out.items():
    print(f"{k}={shlex.quote(str(v))}")
PYEOF
)"

mkdir -p "$STATE/mosquitto" "$(dirname "$MQTT_PASSWORD_FILE")" "$(dirname "$HTTP_TOKEN_FILE")"
secret() {  # create once, keep across runs (the operator's bookmarks and mosquitto_sub lines stay valid)
  local file=$1
  [[ -z $file || -s $file ]] && return 0
  mkdir -p "$(dirname "$file")"
  (umask 077 && openssl rand -hex 16 >"$file")
  chmod 600 "$file"
}
secret "$MQTT_PASSWORD_FILE"
OPERATOR_PASSWORD_FILE=$(dirname "$MQTT_PASSWORD_FILE")/mqtt-operator-password
secret "$OPERATOR_PASSWORD_FILE"
secret "$HTTP_TOKEN_FILE"
secret "$CAM_PASSWORD_FILE"

port_free() {
  "$PY" -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2])))' "$1" "$2" 2>/dev/null
}
for hp in "$CAM_HOST:$CAM_PORT" "$MQTT_HOST:$MQTT_PORT" "$HTTP_LISTEN"; do
  port_free "${hp%:*}" "${hp##*:}" || { echo "demo: $hp is in use (another demo running?)" >&2; exit 1; }
done

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The broker: password auth and ACLs (configs/mosquitto-acl.example explains them), on 127.0.0.1.
MQ_CONF=$STATE/mosquitto/mosquitto.conf
MQ_PASSWD=$STATE/mosquitto/passwd
MQ_ACL=$STATE/mosquitto/acl
BASE=$TOPIC_PREFIX/$AGENT_ID
rm -f "$MQ_PASSWD"
(umask 077 && mosquitto_passwd -b -c "$MQ_PASSWD" "$MQTT_USER" "$(cat "$MQTT_PASSWORD_FILE")")
(umask 077 && mosquitto_passwd -b "$MQ_PASSWD" operator "$(cat "$OPERATOR_PASSWORD_FILE")")
(umask 077 && cat >"$MQ_ACL" <<ACL
user $MQTT_USER
topic write $BASE/#
topic read $BASE/cameras/+/snapshot/request
topic read $BASE/cameras/+/restart
topic read $BASE/cameras/+/webrtc/offer

user operator
topic read $TOPIC_PREFIX/#
topic write $TOPIC_PREFIX/+/cameras/+/snapshot/request
topic write $TOPIC_PREFIX/+/cameras/+/restart
topic write $TOPIC_PREFIX/+/cameras/+/webrtc/offer
ACL
)
cat >"$MQ_CONF" <<CONF
user $(id -un)
log_dest stderr
persistence false
allow_anonymous false
password_file $PWD/$MQ_PASSWD
acl_file $PWD/$MQ_ACL
listener $MQTT_PORT $MQTT_HOST
CONF
exec {mq_fd}< <(exec mosquitto -c "$MQ_CONF" 2>&1)
pids+=($!)
deadline=$((SECONDS + 15))
while :; do
  line=""
  if ! read -r -t 15 -u "$mq_fd" line; then echo "demo: mosquitto did not start (see above)" >&2; exit 1; fi
  echo "$line" >>"$STATE/mosquitto/mosquitto.log"
  [[ $line == *" running"* ]] && break
  [[ $line == *rror* ]] && { echo "demo: mosquitto: $line" >&2; exit 1; }
  ((SECONDS < deadline)) || { echo "demo: mosquitto did not start" >&2; exit 1; }
done
cat <&"$mq_fd" >>"$STATE/mosquitto/mosquitto.log" &
pids+=($!)
exec {mq_fd}<&-

# The camera: 1280x720 at 25 fps, 2 s GOP, digest auth.
cam_args=(--host "$CAM_HOST" --port "$CAM_PORT" --path "$CAM_PATH" --width 1280 --height 720 --fps 25 --gop-s 2)
[[ -n $CAM_USER ]] && cam_args+=(--user "$CAM_USER" --password-file "$CAM_PASSWORD_FILE")
exec {cam_fd}< <(exec /usr/bin/python3 edgeagent/simulator/rtsp_camera.py "${cam_args[@]}" 2>>"$STATE/camera.log")
pids+=($!)
if ! read -r -t 20 -u "$cam_fd" line || [[ $line != READY* ]]; then
  echo "demo: the camera simulator did not start; see $STATE/camera.log" >&2
  exit 1
fi
exec {cam_fd}<&-

cat <<INFO

  Camera:   ${line#READY }  (user $CAM_USER, password in $CAM_PASSWORD_FILE)
  Operator page: http://$HTTP_LISTEN/   token: $(cat "$HTTP_TOKEN_FILE")   (file $HTTP_TOKEN_FILE)
  MQTT:     mosquitto_sub -h $MQTT_HOST -p $MQTT_PORT -u operator -P "\$(cat $OPERATOR_PASSWORD_FILE)" -t '$TOPIC_PREFIX/#' -v
            (user operator: reads everything, writes only commands, e.g. -t $BASE/cameras/junction/snapshot/request)
  Logs:     $STATE/camera.log, $STATE/mosquitto/mosquitto.log; the agent logs here. Ctrl+C stops everything.

INFO

.venv/bin/edgeagent run -c "$CONFIG" &
agent=$!
pids=("$agent" "${pids[@]}")
set +e
wait "$agent"
rc=$?
exit "$rc"
