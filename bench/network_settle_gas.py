#!/usr/bin/env python3
"""Gas per certificate of the settlement transactions a running network sends (issue 4's target:
<= 30,000 gas per certificate in batches of 100 at n = 3).

Starts Anvil (the pinned npm package), deploys the contract, starts --nodes atoma-nodes on it
(ledger.backend: evm) with the tiny model, stakes them equally, and sends --requests verified
sampling:3 requests (about 20 prompt and 20 completion tokens each, like bench/contract_gas.mjs)
through node 0, --batches times, waiting for each batch to settle; node 0's outbox settles in
batches of --requests. Node 0 collects one co-signature per member (Peer.Cosign) and sends
settleCosigned; the script prints each settlement transaction of node 0 with its gas and the gas
per certificate. The first batch of an epoch pays once-per-epoch and first-time costs (the
echelon's snapshot, fresh reward balances and nonce-bitmap words); later ones are the steady
state.

    /usr/bin/python3 bench/network_settle_gas.py --node build/dev/src/atoma-node \\
        --cli build/dev/src/atoma-cli [--nodes 10] [--requests 100] [--parallel 4]

Figures: docs/ledger_evm_gas.md ("The running network").
"""

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))

import netlib  # noqa: E402
import evm_network_test as evmnet  # noqa: E402

# About 20 prompt tokens with the tiny model's tokenizer.
PROMPT = "Settle me, please: 1 2 3 4 5"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", required=True)
    parser.add_argument("--cli", required=True)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=4)
    evmnet.add_anvil_argument(parser)
    netlib.ARGS = args = parser.parse_args()
    if not 3 <= args.nodes or not 1 <= args.requests <= 1024:
        parser.error("--nodes >= 3 and --requests 1..1024")

    tmp = tempfile.mkdtemp(prefix="atoma-settle-gas-")
    anvil = evmnet.Anvil(tmp)
    nodes = []
    try:
        model_dir = netlib.synth_tiny_model(os.path.join(tmp, "tiny"))
        anvil.start()
        rpc = anvil.url
        deployer_key = os.path.join(tmp, "deployer.key")
        deployer = netlib.keygen(deployer_key)
        evmnet.cli_json("ledger", "--rpc-url", rpc, "fund", "--address", deployer, "--amount",
                        evmnet.FUNDS)
        contract = evmnet.cli_json("ledger", "--rpc-url", rpc, "deploy", "--key", deployer_key,
                                   "--epoch-length-s", 3600)["contract"]
        ledger = ["--rpc-url", rpc, "--contract", contract]
        client_key = os.path.join(tmp, "client.key")
        client = netlib.keygen(client_key)
        evmnet.cli_json("ledger", "--rpc-url", rpc, "fund", "--address", client, "--amount",
                        evmnet.FUNDS)
        # Node 0 sends one batch of all the requests (or whatever is pending after 10 minutes).
        nodes = [evmnet.evm_node(os.path.join(tmp, f"node{i}"), i, model_dir, rpc, contract,
                                 (args.requests, 600_000) if i == 0 else (64, 200))
                 for i in range(args.nodes)]
        for node in nodes:
            evmnet.cli_json("ledger", "--rpc-url", rpc, "fund", "--address", node.address,
                            "--amount", evmnet.FUNDS)
            node.start()
        for node in nodes:
            node.wait_started()
        netlib.wait_registered(nodes, lambda: evmnet.cli_json("ledger", *ledger, "nodes"))
        for node in nodes:
            evmnet.cli_json("ledger", *ledger, "--key", node.key, "stake", "--amount",
                            evmnet.STAKE)
        evmnet.cli_json("ledger", *ledger, "--key", client_key, "deposit", "--amount",
                        evmnet.DEPOSIT)
        evmnet.cli_json("ledger", *ledger, "--key", deployer_key, "advance-epoch")
        entry = nodes[0]

        def one(i):
            cmd = netlib.generate_args(entry, client_key, ledger, "--json", "--max-tokens", 20,
                                       "--ignore-eos", "--seed", i, "--nonce", i + 1, PROMPT)
            r = netlib.run(cmd, timeout=600)
            if r.returncode != 0:
                raise RuntimeError(f"request {i}: {r.stdout}\n{r.stderr}")
            return json.loads(r.stdout)

        for batch in range(args.batches):
            start_block = int(anvil.rpc("eth_blockNumber"), 16)
            began = time.monotonic()
            first = batch * args.requests
            with ThreadPoolExecutor(args.parallel) as pool:
                outs = list(pool.map(one, range(first, first + args.requests)))
            served_s = time.monotonic() - began
            members = {m["address"].lower() for out in outs for m in out["committee"]}
            usage = outs[0]["result"]["usage"]
            print(f"batch {batch + 1}: {args.requests} verified sampling:3 requests through node 0 "
                  f"of {args.nodes} in {served_s:.1f} s ({usage['prompt_tokens']} prompt + "
                  f"{usage['completion_tokens']} completion tokens each); {len(members)} "
                  f"distinct members")
            deadline = time.monotonic() + 120
            pending = {out["request_id"] for out in outs}  # asks only about what is not settled
            while pending:
                pending = {rid for rid in pending
                           if not evmnet.cli_json("ledger", *ledger, "settled", rid)["settled"]}
                if pending and time.monotonic() > deadline:
                    raise RuntimeError(f"{len(pending)} of {len(outs)} not settled:\n"
                                       f"{entry.read_log()[-4000:]}")
                if pending:
                    time.sleep(1)
            total_gas = 0
            for method, tx, receipt in evmnet.settlement_txs(anvil, entry.address, start_block):
                gas = int(receipt["gasUsed"], 16)
                total_gas += gas
                calldata = (len(tx["input"]) - 2) // 2
                print(f"  {method}: {gas} gas, {calldata} calldata bytes")
            print(f"  gas per certificate: {total_gas / len(outs):.0f} (target <= 30000 at "
                  f"n = 3 in batches of 100)")
    finally:
        for node in nodes:
            node.terminate()
        anvil.stop()
        netlib.remove_tmp(tmp)


if __name__ == "__main__":
    main()
