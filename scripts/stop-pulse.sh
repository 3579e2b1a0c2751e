#!/usr/bin/env bash
# Stop what start-pulse.sh started, by the PIDs it recorded (never by name).
PULSE_DIR=${BARGEIN_PULSE_DIR:-/tmp/bargein-pulse}
if [ -f "$PULSE_DIR/keepalive.pid" ]; then
  while read -r p; do [ -n "$p" ] && kill "$p" 2>/dev/null; done < "$PULSE_DIR/keepalive.pid"
fi
[ -f "$PULSE_DIR/pid" ] && kill "$(cat "$PULSE_DIR/pid")" 2>/dev/null
rm -f "$PULSE_DIR/pid" "$PULSE_DIR/keepalive.pid"
exit 0
