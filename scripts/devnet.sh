#!/usr/bin/env bash
# The README's first command: installs what is missing, builds atoma-node and atoma-cli, synthesizes
# the demo model, starts a local node on the embedded defaults (config/node.yaml), sends it a demo
# request and keeps serving until Ctrl-C.
#
#   scripts/devnet.sh [--exit-after-demo] [--preset tiny|small|bench-135m] [--prompt TEXT]
#
# State (keys, models, logs) lives under var/ in the repository.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"

exit_after_demo=0
preset=small
prompt="Once upon a time"
while [ $# -gt 0 ]; do
  case "$1" in
    --exit-after-demo) exit_after_demo=1 ;;
    --preset) preset="$2"; shift ;;
    --prompt) prompt="$2"; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "devnet: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

bash scripts/setup.sh
cmake --preset dev >/dev/null
cmake --build --preset dev -j "${ATOMA_JOBS:-$(nproc)}" --target atoma-node atoma-cli
bin="$root/build/dev/src"

var="$root/var"
mkdir -p "$var/models" "$var/node0"
model_dir="$var/models/demo"
if [ ! -f "$model_dir/config.json" ] || [ "$(cat "$model_dir/.preset" 2>/dev/null)" != "$preset" ]; then
  echo "devnet: synthesizing the '$preset' demo model into $model_dir"
  "$bin/atoma-cli" model synth --preset "$preset" --seed 1 --out "$model_dir"
  echo "$preset" > "$model_dir/.preset"
fi
key="$var/node0/node.key"
[ -f "$key" ] || "$bin/atoma-cli" keygen --out "$key"

ports="$var/node0/ports.json"
rm -f "$ports"
"$bin/atoma-node" --config config/node.yaml --ports-file "$ports" &
node_pid=$!
stop_node() {
  kill -TERM "$node_pid" 2>/dev/null || true
  wait "$node_pid"
}
trap 'echo; echo "devnet: stopping"; stop_node; exit $?' INT TERM

for _ in $(seq 1 600); do
  [ -s "$ports" ] && break
  kill -0 "$node_pid" 2>/dev/null || { echo "devnet: atoma-node exited during start-up" >&2; exit 1; }
  sleep 0.1
done
[ -s "$ports" ] || { echo "devnet: atoma-node did not start within 60 s" >&2; stop_node; exit 1; }
port="$(sed -E 's/.*"grpc": *([0-9]+).*/\1/' "$ports")"
echo "devnet: atoma-node serving on 127.0.0.1:$port"

echo "devnet: demo request: atoma-cli generate --model demo \"$prompt\""
"$bin/atoma-cli" generate --addr "127.0.0.1:$port" --model demo --max-tokens 48 \
  --temperature 0.8 --top-p 0.95 --seed 7 "$prompt"

if [ "$exit_after_demo" = 1 ]; then
  stop_node
  exit $?
fi
echo "devnet: serving until Ctrl-C (try: $bin/atoma-cli generate --addr 127.0.0.1:$port --model demo \"Hello\")"
wait "$node_pid"
