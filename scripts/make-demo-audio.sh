#!/usr/bin/env bash
# Builds the demo's bundled user speech, bargein/data/demo_user.wav (PCM16 mono 24 kHz), and its
# sidecar demo_user.json with each utterance's span measured from the generated samples.
#
# The user asks a question at 0.5 s, waits while the assistant answers, barges in at 7.5 s and
# then waits for the second answer. The file stops at 14.5 s to stay under 700 KB; the demo feeds
# silence after it if it needs more. Voice, speed and pitch are fixed and sox runs with dither off
# in repeatable mode, so re-running gives the same bytes.
#
# Needs espeak-ng and sox (scripts/install-system-deps.sh).
set -euo pipefail

readonly VOICE="en-us"
readonly SPEED_WPM=220
readonly PITCH=50
readonly RATE=24000
readonly PEAK_DBFS=-3
readonly TOTAL_MS=14500
readonly MIN_TAIL_MS=4500
readonly MAX_BYTES=700000
# start_ms|text, in time order
readonly SCRIPT=(
    "500|Hi! Can you tell me about the history of the lighthouse on the harbour?"
    "7500|Sorry, stop, just tell me when it opens."
)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out_dir="${1:-$here/../bargein/data}"
mkdir -p "$out_dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for tool in espeak-ng sox soxi; do
    command -v "$tool" >/dev/null || { echo "make-demo-audio: $tool is not installed" >&2; exit 1; }
done

pieces=()
json_items=()
cursor=0  # samples written so far
for index in "${!SCRIPT[@]}"; do
    start_ms="${SCRIPT[$index]%%|*}"
    text="${SCRIPT[$index]#*|}"
    start=$(( start_ms * RATE / 1000 ))
    if (( start < cursor )); then
        echo "make-demo-audio: utterance $index would start at $start_ms ms," \
             "before the previous one ends" >&2
        exit 1
    fi
    raw="$work/raw$index.wav"
    speech="$work/speech$index.wav"
    espeak-ng -v "$VOICE" -s "$SPEED_WPM" -p "$PITCH" -w "$raw" "$text"
    # Resample, trim the synthesiser's leading and trailing silence, then peak-normalise.
    sox -R -D "$raw" -r "$RATE" -c 1 -b 16 -e signed-integer "$speech" \
        silence 1 1s 0.05% reverse silence 1 1s 0.05% reverse norm "$PEAK_DBFS"
    samples="$(soxi -s "$speech")"
    gap="$work/gap$index.wav"
    sox -R -D -r "$RATE" -c 1 -n -b 16 -e signed-integer "$gap" \
        trim 0s "$(( start - cursor ))s"
    pieces+=("$gap" "$speech")
    cursor=$(( start + samples ))
    end_ms=$(( cursor * 1000 / RATE ))
    escaped="${text//\\/\\\\}"
    escaped="${escaped//\"/\\\"}"
    json_items+=("{\"start_ms\": $start_ms, \"end_ms\": $end_ms, \"text\": \"$escaped\"}")
done

total=$(( TOTAL_MS * RATE / 1000 ))
tail_ms=$(( (total - cursor) * 1000 / RATE ))
if (( tail_ms < MIN_TAIL_MS )); then
    echo "make-demo-audio: only $tail_ms ms of silence after the last utterance" >&2
    exit 1
fi
wav="$out_dir/demo_user.wav"
sox -R -D "${pieces[@]}" -r "$RATE" -c 1 -b 16 -e signed-integer "$wav" \
    pad 0 "$(( total - cursor ))s"

bytes="$(stat -c %s "$wav")"
if (( bytes >= MAX_BYTES )); then
    echo "make-demo-audio: $wav is $bytes bytes, over $MAX_BYTES" >&2
    exit 1
fi

{
    printf '{"utterances": [\n'
    for index in "${!json_items[@]}"; do
        sep=","
        (( index == ${#json_items[@]} - 1 )) && sep=""
        printf '  %s%s\n' "${json_items[$index]}" "$sep"
    done
    printf ']}\n'
} > "$out_dir/demo_user.json"

echo "wrote $wav ($bytes bytes) and $out_dir/demo_user.json"
