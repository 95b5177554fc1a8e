#!/bin/sh
# The compose service `init` (docker/compose.yaml): what scripts/devnet.sh does before it starts
# the nodes, on the compose volumes, once. Keeps what exists, so `docker compose up` again keeps
# the network; `docker compose down -v` starts over.
#   - the demo model (ATOMA_PRESET, default small, seed 1) in /var/lib/atoma/models/demo
#   - node keys /etc/atoma/keys/node0..2.key and the demo client's key client.key (mode 0600)
#   - the embedded ledger /var/lib/atoma/ledger/ledger.db (1-hour epochs, as devnet.sh)
set -eu
models=/var/lib/atoma/models
keys=/etc/atoma/keys
ledger=/var/lib/atoma/ledger/ledger.db
preset="${ATOMA_PRESET:-small}"

if [ ! -f "$models/demo/config.json" ] || [ "$(cat "$models/demo/.preset" 2>/dev/null)" != "$preset" ]; then
  echo "init: synthesizing the '$preset' demo model"
  atoma-cli model synth --preset "$preset" --seed 1 --out "$models/demo"
  echo "$preset" > "$models/demo/.preset"
fi
for name in node0 node1 node2 client; do
  if [ ! -f "$keys/$name.key" ]; then
    printf 'init: %s key, address ' "$name"
    atoma-cli keygen --out "$keys/$name.key"
  fi
done
if [ ! -f "$ledger" ]; then
  atoma-cli ledger --db "$ledger" init --epoch-length-s 3600
fi
echo "init: ok"
