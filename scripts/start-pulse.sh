#!/usr/bin/env bash
# Start (or reuse) a private PulseAudio daemon for headless tests: no sound card, no D-Bus, works
# as root. Two null sinks:
#   ci_speaker : default output; what was played can be recorded from ci_speaker.monitor
#   ci_mic     : its monitor ci_mic.monitor is the default input; inject "user speech" with
#                paplay -d ci_mic speech.wav
# Usage: scripts/start-pulse.sh && source "${BARGEIN_PULSE_DIR:-/tmp/bargein-pulse}/env"
# Stop with scripts/stop-pulse.sh. Running it again while the daemon is up reuses the daemon.
set -euo pipefail
PULSE_DIR=${BARGEIN_PULSE_DIR:-/tmp/bargein-pulse}
RATE=${BARGEIN_PULSE_RATE:-24000}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

command -v pulseaudio >/dev/null || { echo "start-pulse: no pulseaudio binary (apt install pulseaudio pulseaudio-utils)" >&2; exit 2; }

mkdir -p "$PULSE_DIR/runtime" "$PULSE_DIR/state" "$PULSE_DIR/config"
chmod 700 "$PULSE_DIR/runtime"
export XDG_RUNTIME_DIR="$PULSE_DIR/runtime"
export PULSE_RUNTIME_PATH="$PULSE_DIR/runtime/pulse"
export PULSE_STATE_PATH="$PULSE_DIR/state"
export PULSE_CONFIG_PATH="$PULSE_DIR/config"
export PULSE_COOKIE="$PULSE_DIR/cookie"
export PULSE_SERVER="unix:$PULSE_DIR/native"

cat > "$PULSE_DIR/env" <<ENV
export PULSE_SERVER=$PULSE_SERVER
export XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR
export PULSE_RUNTIME_PATH=$PULSE_RUNTIME_PATH
export PULSE_STATE_PATH=$PULSE_STATE_PATH
export PULSE_CONFIG_PATH=$PULSE_CONFIG_PATH
export PULSE_COOKIE=$PULSE_COOKIE
export ALSA_CONFIG_PATH=$HERE/asound-pulse-only.conf
ENV

if [ -f "$PULSE_DIR/pid" ] && kill -0 "$(cat "$PULSE_DIR/pid")" 2>/dev/null && pactl info >/dev/null 2>&1; then
  echo "start-pulse: reusing pulseaudio pid $(cat "$PULSE_DIR/pid"), server $PULSE_SERVER"
  exit 0
fi

cat > "$PULSE_DIR/default.pa" <<PA
load-module module-null-sink sink_name=ci_speaker format=s16le rate=$RATE channels=1 sink_properties=device.description=CI_Speaker
load-module module-null-sink sink_name=ci_mic format=s16le rate=$RATE channels=1 sink_properties=device.description=CI_Mic_Feed
load-module module-native-protocol-unix auth-anonymous=1 auth-cookie-enabled=0 socket=$PULSE_DIR/native
set-default-sink ci_speaker
set-default-source ci_mic.monitor
PA
pulseaudio --daemonize=no --system=false --exit-idle-time=-1 -n -F "$PULSE_DIR/default.pa" \
  --use-pid-file=false --log-target=file:"$PULSE_DIR/pulse.log" --log-level=notice \
  </dev/null >/dev/null 2>&1 &
echo $! > "$PULSE_DIR/pid"
for _ in $(seq 1 600); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done  # 60 s at most: a busy machine is slow
if ! pactl info >/dev/null 2>&1; then
  echo "start-pulse: pulseaudio failed to start; log follows" >&2; cat "$PULSE_DIR/pulse.log" >&2; exit 1
fi
# Keep-alive recorders at 10 ms latency: an idle null sink otherwise sleeps in 2-second blocks
# and a newly opened stream stalls for up to ~2 s before audio flows.
: > "$PULSE_DIR/keepalive.pid"
for s in ci_speaker ci_mic; do
  parec --latency-msec=10 --format=s16le --rate="$RATE" --channels=1 -d "$s.monitor" --raw \
    >/dev/null 2>>"$PULSE_DIR/keepalive.err" </dev/null &
  echo $! >> "$PULSE_DIR/keepalive.pid"
done
for _ in $(seq 1 600); do [ "$(pactl list short source-outputs | wc -l)" -ge 2 ] && break; sleep 0.1; done
# A sink may still be inside its first 2 s idle block: suspending and resuming restarts its timer.
for s in ci_speaker ci_mic; do pactl suspend-sink "$s" 1; pactl suspend-sink "$s" 0; done
echo "start-pulse: pulseaudio pid $(cat "$PULSE_DIR/pid"), server $PULSE_SERVER"
