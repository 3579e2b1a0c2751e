#!/usr/bin/env bash
# Install the system packages bargein's tests and audio adapters need, where this machine
# allows it (root, or passwordless sudo, with apt-get). Elsewhere, say what is missing.
#   portaudio19-dev            builds pyaudio (the microphone and speaker adapters)
#   libpulse0                  the native PulseAudio/PipeWire-pulse speaker (ctypes, nothing built)
#   pulseaudio pulseaudio-utils libasound2-plugins
#                              a private PulseAudio with null sinks: real devices without a sound card
#   espeak-ng sox              the simulator's voice and the demo's speech fixtures
#   graphviz                   SVG state diagrams
#   chromium                   a real headless browser for the live inspector's page test
#   openssl                    a self-signed certificate for the wss:// transport test
set -euo pipefail
packages=(portaudio19-dev libpulse0 pulseaudio pulseaudio-utils libasound2-plugins espeak-ng sox graphviz
          chromium openssl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "bargein: please install: ${missing[*]} (no apt-get here)" >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then sudo=(); elif sudo -n true 2>/dev/null; then sudo=(sudo -n); else
  echo "bargein: please install (as root): apt-get install ${missing[*]}" >&2
  exit 0
fi
echo "bargein: installing system packages: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
