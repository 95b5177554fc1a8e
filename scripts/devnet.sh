#!/usr/bin/env bash
# The README's first command: a local network of N atoma-nodes on one ledger. Installs what is
# missing, builds atoma-node and atoma-cli, synthesizes the demo model, creates a fresh ledger,
# starts N nodes (each registers itself with its endpoint and echelon), stakes them, funds a
# client, opens an epoch, sends a verified demo request (sampling:min(3,N)) whose certificate the
# client checks against the ledger, shows the settlement, and keeps serving until Ctrl-C.
#
#   scripts/devnet.sh [--nodes N] [--base-port PORT] [--exit-after-demo]
#                     [--preset tiny|small|bench-135m] [--prompt TEXT]
#                     [--chain embedded|anvil] [--anvil-port PORT]
#
#   --nodes N          nodes to start (default 3; 1 is allowed: sampling:1)
#   --base-port PORT   node i listens on 127.0.0.1:PORT+i (default 50051)
#   --exit-after-demo  stop every node (and Anvil) after the demo
#   --chain embedded   (default) one embedded SQLite ledger file shared by the nodes
#   --chain anvil      the AtomaLedger contract on a local Anvil chain (node_modules, chain id
#                      31337): a generated deployer key, funded with `atoma-cli ledger fund`,
#                      deploys it; every node key and the client key are funded; the nodes run
#                      with ledger.backend evm, stake with their own keys and the client pays its
#                      escrow deposit, all as transactions; Anvil stops with the nodes
#   --anvil-port PORT  Anvil's JSON-RPC port (default base-port + 1000)
#   ATOMA_NODE_THREADS engine threads per node (default 1)
#   ATOMA_BIN          folder with prebuilt atoma-node and atoma-cli: skips setup and the build
#
# State lives under var/ in the repository: the model in var/models/demo, the network in
# var/devnet/ (ledger.db or anvil.log and deployer.key, client.key,
# node<i>/{node.key,node.yaml,node.log,data}). Keys are kept between runs; the ledger (or the
# chain) and the nodes' journals are recreated every run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"

exit_after_demo=0
preset=small
prompt="Once upon a time"
nodes=3
base_port=50051
chain=embedded
anvil_port=
while [ $# -gt 0 ]; do
  case "$1" in
    --exit-after-demo) exit_after_demo=1 ;;
    --chain) chain="$2"; shift ;;
    --anvil-port) anvil_port="$2"; shift ;;
    --preset) preset="$2"; shift ;;
    --prompt) prompt="$2"; shift ;;
    --nodes) nodes="$2"; shift ;;
    --base-port) base_port="$2"; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "devnet: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$nodes" in ''|*[!0-9]*) echo "devnet: --nodes wants a number, got '$nodes'" >&2; exit 2 ;; esac
case "$base_port" in
  ''|*[!0-9]*) echo "devnet: --base-port wants a number, got '$base_port'" >&2; exit 2 ;;
esac
if [ "$nodes" -lt 1 ] || [ "$nodes" -gt 64 ]; then
  echo "devnet: --nodes must be 1..64, got $nodes" >&2; exit 2
fi
if [ "$base_port" -lt 1 ] || [ $((base_port + nodes - 1)) -gt 65535 ]; then
  echo "devnet: ports $base_port..$((base_port + nodes - 1)) are out of range" >&2; exit 2
fi
case "$chain" in
  embedded|anvil) ;;
  *) echo "devnet: --chain wants embedded or anvil, got '$chain'" >&2; exit 2 ;;
esac
if [ "$chain" = anvil ]; then
  [ -n "$anvil_port" ] || anvil_port=$((base_port + 1000))
  case "$anvil_port" in
    ''|*[!0-9]*) echo "devnet: --anvil-port wants a number, got '$anvil_port'" >&2; exit 2 ;;
  esac
  if [ "$anvil_port" -lt 1 ] || [ "$anvil_port" -gt 65535 ]; then
    echo "devnet: --anvil-port $anvil_port is out of range" >&2; exit 2
  fi
  if [ "$anvil_port" -ge "$base_port" ] && [ "$anvil_port" -lt $((base_port + nodes)) ]; then
    echo "devnet: --anvil-port $anvil_port is one of the nodes' ports" >&2; exit 2
  fi
elif [ -n "$anvil_port" ]; then
  echo "devnet: --anvil-port needs --chain anvil" >&2; exit 2
fi

if [ -n "${ATOMA_BIN:-}" ]; then
  bin="$(cd "$ATOMA_BIN" && pwd)"
else
  bash scripts/setup.sh
  cmake --preset dev >/dev/null
  cmake --build --preset dev -j "${ATOMA_JOBS:-$(nproc)}" --target atoma-node atoma-cli
  bin="$root/build/dev/src"
fi
cli="$bin/atoma-cli"

var="$root/var"
mkdir -p "$var/models"
model_dir="$var/models/demo"
if [ ! -f "$model_dir/config.json" ] || [ "$(cat "$model_dir/.preset" 2>/dev/null)" != "$preset" ]; then
  echo "devnet: synthesizing the '$preset' demo model into $model_dir"
  "$cli" model synth --preset "$preset" --seed 1 --out "$model_dir"
  echo "$preset" > "$model_dir/.preset"
fi

net="$var/devnet"
ledger="$net/ledger.db"
mkdir -p "$net"
# A fresh network every run: the ledger (with its WAL files) and every node's journal (with its
# transaction journal on a chain) go; keys stay.
rm -f "$ledger" "$ledger-wal" "$ledger-shm" "$net/demo.cert" "$net/demo.cert.output" \
  "$net/demo.out"
for dir in "$net"/node*; do
  [ -d "$dir" ] && rm -rf "$dir/data" "$dir/ports.json"
done
client_key="$net/client.key"
[ -f "$client_key" ] || "$cli" keygen --out "$client_key" >/dev/null 2>&1
client="$("$cli" address --key "$client_key")"

pids=()
anvil_pid=
stop_nodes() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  local status=0
  for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
  pids=()
  return $status
}
stop_anvil() {
  if [ -n "$anvil_pid" ]; then
    kill -TERM "$anvil_pid" 2>/dev/null || true
    wait "$anvil_pid" 2>/dev/null || true
    anvil_pid=
  fi
}
# Nodes first (they may still be settling on the chain), then the chain.
stop_all() {
  local status=0
  stop_nodes || status=$?
  stop_anvil
  return $status
}
trap 'echo; echo "devnet: stopping"; stop_all; exit $?' INT TERM
# Whatever way the script ends (an error under set -e included), nothing is left running.
trap 'stop_all || true' EXIT

if [ "$chain" = anvil ]; then
  anvil="$root/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
  if [ ! -x "$anvil" ]; then
    echo "devnet: $anvil is missing: run scripts/setup.sh (npm ci)" >&2; exit 1
  fi
  rpc="http://127.0.0.1:$anvil_port"
  echo "devnet: starting Anvil on $rpc (log: $net/anvil.log)"
  # --prune-history: Anvil otherwise writes every old state to ~/.foundry/anvil/tmp for good.
  "$anvil" --port "$anvil_port" --silent --prune-history 64 > "$net/anvil.log" 2>&1 &
  anvil_pid=$!
  deadline=$((SECONDS + 30))
  until /usr/bin/python3 - "$rpc" 2>/dev/null <<'PY'
import json, sys, urllib.request
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
req = urllib.request.Request(sys.argv[1], body, {"content-type": "application/json"})
sys.exit(0 if "result" in json.load(urllib.request.urlopen(req, timeout=2)) else 1)
PY
  do
    if ! kill -0 "$anvil_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "devnet: Anvil did not start on port $anvil_port (taken?); its log:" >&2
      tail -n 20 "$net/anvil.log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  # A deployer key of its own (not one of Anvil's well-known dev accounts), funded like the rest.
  deployer_key="$net/deployer.key"
  [ -f "$deployer_key" ] || "$cli" keygen --out "$deployer_key" >/dev/null 2>&1
  fund() { "$cli" ledger --rpc-url "$rpc" fund --address "$1" --amount "$2" >/dev/null; }
  fund "$("$cli" address --key "$deployer_key")" 1000000000000000000000
  # Long epochs, so the demo's epoch stays current while it runs.
  contract="$("$cli" ledger --rpc-url "$rpc" deploy --key "$deployer_key" --epoch-length-s 3600)"
  echo "devnet: AtomaLedger deployed at $contract (chain 31337)"
  ledger_args=(--rpc-url "$rpc" --contract "$contract")
  ledger_name="contract $contract on $rpc"
  # 1000 coins each: gas for registration, epochs and settlements, and the stake or deposit.
  fund "$client" 1000000000000000000000
else
  # Long epochs, so the demo's epoch stays current while it runs.
  "$cli" ledger --db "$ledger" init --epoch-length-s 3600
  ledger_args=(--db "$ledger")
  ledger_name="$ledger"
fi

threads="${ATOMA_NODE_THREADS:-1}"
addrs=()
for i in $(seq 0 $((nodes - 1))); do
  dir="$net/node$i"
  mkdir -p "$dir"
  [ -f "$dir/node.key" ] || "$cli" keygen --out "$dir/node.key" >/dev/null 2>&1
  addrs+=("$("$cli" address --key "$dir/node.key")")
  if [ "$chain" = anvil ]; then
    fund "${addrs[$i]}" 1000000000000000000000
    ledger_yaml="  backend: evm
  rpc_url: $rpc
  contract: \"$contract\"
  chain_id: 31337"
  else
    ledger_yaml="  backend: embedded
  path: ../ledger.db"
  fi
  # Paths are relative to the config file (var/devnet/node<i>/).
  cat > "$dir/node.yaml" <<EOF
# Generated by scripts/devnet.sh (node $i of $nodes); rewritten every run.
node:
  key_file: node.key
  data_dir: data
api:
  listen: 127.0.0.1:$((base_port + i))
engine:
  threads: $threads
models:
  - id: demo
    path: ../../models/demo
ledger:
$ledger_yaml
consensus:
  register: true
EOF
done

for i in $(seq 0 $((nodes - 1))); do
  dir="$net/node$i"
  "$bin/atoma-node" --config "$dir/node.yaml" --ports-file "$dir/ports.json" \
    > "$dir/node.log" 2>&1 &
  pids+=($!)
done

logs_hint() {
  local i
  for i in $(seq 0 $((nodes - 1))); do echo "  $net/node$i/node.log" >&2; done
}

# Each node registers itself (consensus.register) once it has measured its echelon; wait until the
# ledger lists all of them with an echelon.
echo "devnet: waiting for $nodes nodes to register on $ledger_name"
registered=0
deadline=$((SECONDS + 120))
while [ "$SECONDS" -lt "$deadline" ]; do
  for i in $(seq 0 $((nodes - 1))); do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "devnet: node $i exited during start-up; its log: $net/node$i/node.log" >&2
      tail -n 20 "$net/node$i/node.log" >&2 || true
      exit 1
    fi
  done
  registered="$("$cli" ledger "${ledger_args[@]}" nodes --json 2>/dev/null |
    /usr/bin/python3 -c 'import json, sys
print(sum(1 for n in json.load(sys.stdin) if n["echelons"]))' 2>/dev/null || echo 0)"
  [ "$registered" -ge "$nodes" ] && break
  sleep 0.2
done
if [ "$registered" -lt "$nodes" ]; then
  echo "devnet: only $registered of $nodes nodes registered an echelon within 120 s; see the logs:" >&2
  logs_hint
  exit 1
fi

# Embedded: dev operations without signatures. Anvil: each a transaction signed by the actor's key
# (the node's for its stake, the client's for its deposit), which pays the amount and the gas.
for i in $(seq 0 $((nodes - 1))); do
  "$cli" ledger "${ledger_args[@]}" --key "$net/node$i/node.key" stake --amount 1000
done
"$cli" ledger "${ledger_args[@]}" --key "$client_key" deposit --amount 1000000
# Stakes count from the next epoch: open it, so they are frozen in the current one.
if [ "$chain" = anvil ]; then
  "$cli" ledger "${ledger_args[@]}" --key "$deployer_key" advance-epoch
else
  "$cli" ledger "${ledger_args[@]}" advance-epoch
fi
echo "devnet: $nodes nodes staked, client $client funded"

n=$((nodes < 3 ? nodes : 3))
echo "devnet: verified demo request (sampling:$n): atoma-cli generate --model demo \"$prompt\""
demo_status=0
"$cli" generate --addr "127.0.0.1:$base_port" --model demo --security "sampling:$n" \
  --client-key "$client_key" "${ledger_args[@]}" --save-cert "$net/demo.cert" \
  --max-tokens 48 --temperature 0.8 --top-p 0.95 --seed 7 "$prompt" | tee "$net/demo.out" ||
  demo_status=$?

# The nodes' outboxes settle within consensus.settlement_max_delay_ms (2 s by default), then the
# transaction is mined (Anvil: at once): wait for the demo's request id to show up.
request_id="$(sed -n 's/^certificate: request \(0x[0-9a-fA-F]*\),.*/\1/p' "$net/demo.out")"
if [ -n "$request_id" ]; then
  deadline=$((SECONDS + 30))
  until "$cli" ledger "${ledger_args[@]}" settled "$request_id" --json 2>/dev/null |
    grep -q '"settled": true'; do
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.5
  done
fi
echo "devnet: settlements on $ledger_name:"
"$cli" ledger "${ledger_args[@]}" settlements || true
"$cli" ledger "${ledger_args[@]}" escrow "$client" || true

if [ "$exit_after_demo" = 1 ]; then
  stop_all || demo_status=$?
  exit $demo_status
fi
echo "devnet: serving until Ctrl-C; nodes on 127.0.0.1:$base_port..$((base_port + nodes - 1))," \
  "logs in $net/node<i>/node.log. Try:"
echo "  $cli generate --addr 127.0.0.1:$base_port --model demo --security sampling:$n \\"
echo "      --client-key $client_key ${ledger_args[*]} \"Hello\""
echo "  $cli verify ${ledger_args[*]} $net/demo.cert --output $net/demo.cert.output"
wait "${pids[@]}"
