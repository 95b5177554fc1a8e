#!/bin/sh
# The compose service `stake` (docker/compose.yaml): what scripts/devnet.sh does once its nodes
# run. Waits until the three nodes have registered with an echelon, bonds 1000 for each, credits
# the demo client's escrow and opens the next epoch so the stakes count. Once per ledger: a
# marker next to the ledger file stops a second `docker compose up` from staking again.
set -eu
keys=/etc/atoma/keys
ledger=/var/lib/atoma/ledger/ledger.db
marker=/var/lib/atoma/ledger/staked

if [ -f "$marker" ]; then
  echo "stake: already staked (remove the volumes to start over: docker compose down -v)"
  exit 0
fi
echo "stake: waiting for 3 nodes to register an echelon"
tries=0
# One "  echelon ..." line per registered (node, model); the devnet serves one model.
until [ "$(atoma-cli ledger --db "$ledger" nodes 2>/dev/null | grep -c '^  echelon ')" -ge 3 ]; do
  tries=$((tries + 1))
  if [ "$tries" -ge 600 ]; then
    echo "stake: the nodes did not register within 300 s; see docker compose logs node0" >&2
    exit 1
  fi
  sleep 0.5
done
for i in 0 1 2; do
  atoma-cli ledger --db "$ledger" --key "$keys/node$i.key" stake --amount 1000
done
atoma-cli ledger --db "$ledger" --key "$keys/client.key" deposit --amount 1000000
atoma-cli ledger --db "$ledger" advance-epoch
touch "$marker"
echo "stake: 3 nodes staked, client $(atoma-cli address --key "$keys/client.key") funded"
