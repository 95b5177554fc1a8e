#!/usr/bin/env python3
"""Functional tests of the operator commands of atoma-cli (`status`, `peers`, `drain`, `stake`,
`unstake`, `withdraw`, `claim`) against 2 real atoma-node processes on one embedded ledger.

    /usr/bin/python3 tests/functional/operator_cli_test.py --node BUILD/src/atoma-node \\
        --cli BUILD/src/atoma-cli

The network (ledger, staked nodes, funded client, fresh epoch) is consensus_test.py's Network. The
tests run in name order on one network: the later ones drain and stop node 1.
"""

import os
import unittest

import consensus_test
import netlib
from consensus_test import STAKE
from netlib import cli, cli_json


class OperatorCli(consensus_test.ConsensusTestBase):
    NODES = 2
    TMP_PREFIX = "atoma-operator-cli-"
    net = None

    def status(self, node):
        return cli_json("status", "--addr", node.addr, "--ledger-db", self.net.ledger, "--json")

    def peers(self):
        return {p["address"].lower(): p for p in
                cli_json("peers", "--ledger-db", self.net.ledger, "--json")["peers"]}

    def stake_cmd(self, action, node, *extra):
        return cli_json(action, "--ledger-db", self.net.ledger, "--key", node.key, *extra,
                        "--json")

    def test_1_status_shows_models_echelon_epoch_stake_and_peer(self):
        net = self.net
        registered = {n["address"].lower(): n for n in
                      cli_json("ledger", "--db", net.ledger, "nodes", "--json")}
        for node, other in [(net.nodes[0], net.nodes[1]), (net.nodes[1], net.nodes[0])]:
            st = self.status(node)
            self.assertEqual(st["address"].lower(), node.address.lower())
            self.assertFalse(st["draining"])
            self.assertEqual(st["queue"], {"waiting": 0, "running": 0, "active_streams": 0})
            self.assertEqual([m["id"] for m in st["models"]], ["tiny"])
            model = st["models"][0]
            self.assertRegex(model["digest"], "^0x[0-9a-f]{64}$")
            self.assertRegex(model["echelon_id"], "^0x[0-9a-f]{64}$")
            # The echelon the CLI computes is the one the node registered.
            self.assertEqual([e["echelon_id"] for e in registered[node.address.lower()]["echelons"]],
                             [model["echelon_id"]])
            self.assertEqual(st["registration"]["echelons"], [model["echelon_id"]])
            self.assertEqual(st["registration"]["endpoint"], node.addr)
            self.assertEqual(st["epoch"], net.current_epoch())
            self.assertEqual(st["stake"]["bonded"], str(STAKE))
            self.assertEqual([p["address"].lower() for p in st["peers"]], [other.address.lower()])
            self.assertEqual(st["peers"][0]["health"], "SERVING")
        # Both nodes compute the same echelon (same model, same fingerprint).
        self.assertEqual(self.status(net.nodes[0])["models"][0]["echelon_id"],
                         self.status(net.nodes[1])["models"][0]["echelon_id"])
        # Text output by default.
        r = cli("status", "--addr", net.nodes[0].addr, "--ledger-db", net.ledger)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("echelon", r.stdout)
        self.assertIn("SERVING", r.stdout)

    def test_2_stake_shows_in_status(self):
        node = self.net.nodes[0]
        out = self.stake_cmd("stake", node, "--amount", 500)
        self.assertEqual(out["bonded"], str(STAKE + 500))
        self.assertEqual(out["node"].lower(), node.address.lower())
        self.assertEqual(self.status(node)["stake"]["bonded"], str(STAKE + 500))

    def test_3_peers_lists_both_serving(self):
        peers = self.peers()
        self.assertEqual(set(peers), {n.address.lower() for n in self.net.nodes})
        for node in self.net.nodes:
            p = peers[node.address.lower()]
            self.assertEqual(p["health"], "SERVING", p)
            self.assertEqual(p["endpoint"], node.addr)
            self.assertEqual(len(p["echelons"]), 1)
        echelon = peers[self.net.nodes[0].address.lower()]["echelons"][0]["echelon_id"]
        only = cli_json("peers", "--ledger-db", self.net.ledger, "--echelon", echelon, "--json")
        self.assertEqual(len(only["peers"]), 2)
        none = cli_json("peers", "--ledger-db", self.net.ledger, "--echelon", "ab" * 32, "--json")
        self.assertEqual(none["peers"], [])

    def test_4_claim_moves_the_reward_of_a_verified_request(self):
        net = self.net
        node = net.nodes[0]
        before = int(self.status(node)["rewards"])
        out = netlib.generate_json(
            self, net.generate_args(node, "--json", "--max-tokens", 8, "hello",
                                    security="sampling:2"), self.explain)
        self.assertTrue(out["verified"], out)
        self.assertEqual(len(net.wait_settled(out["request_id"])), 1, self.explain())
        reward = int(self.status(node)["rewards"])
        self.assertGreater(reward, before)
        # Part of it, then the rest (the default).
        part = self.stake_cmd("claim", node, "--amount", 1)
        self.assertEqual(part["amount"], "1")
        self.assertEqual(int(part["rewards"]), reward - 1)
        rest = self.stake_cmd("claim", node)
        self.assertEqual(int(rest["amount"]), reward - 1)
        self.assertEqual(rest["rewards"], "0")
        self.assertEqual(self.status(node)["rewards"], "0")
        # More than the balance is refused.
        r = cli("claim", "--ledger-db", net.ledger, "--key", node.key, "--amount", 5)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("atoma-cli:", r.stderr)

    def test_5_unstake_then_withdraw(self):
        net = self.net
        node = net.nodes[1]
        out = self.stake_cmd("unstake", node, "--amount", 200)
        self.assertEqual(out["bonded"], str(STAKE - 200))
        self.assertEqual([u["amount"] for u in out["unbonding"]], ["200"])
        self.assertEqual(out["withdrawable"], "0")
        release = out["unbonding"][0]["release_epoch"]
        st = self.status(node)["stake"]
        self.assertEqual(st["bonded"], str(STAKE - 200))
        self.assertEqual(st["unbonding"], out["unbonding"])
        # Not yet released.
        r = cli("withdraw", "--ledger-db", net.ledger, "--key", node.key, "--amount", 200)
        self.assertEqual(r.returncode, 1, r.stdout)
        while net.current_epoch() < release:
            cli_json("ledger", "--db", net.ledger, "advance-epoch", "--json")
        st = self.status(node)["stake"]
        self.assertEqual(st["withdrawable"], "200")
        out = self.stake_cmd("withdraw", node, "--amount", 200)
        self.assertEqual(out["withdrawable"], "0")
        self.assertEqual(out["unbonding"], [])
        self.assertEqual(out["bonded"], str(STAKE - 200))

    def test_6_drain_refuses_new_generations(self):
        net = self.net
        node = net.nodes[1]
        out = cli_json("drain", "--addr", node.addr, "--json")
        self.assertTrue(out["draining"])
        self.assertTrue(self.status(node)["draining"])
        r = cli("generate", "--addr", node.addr, "--model", "tiny", "--max-tokens", 4, "hi")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("UNAVAILABLE", r.stderr)
        self.assertEqual(self.peers()[node.address.lower()]["health"], "NOT_SERVING")
        self.assertEqual(self.peers()[net.nodes[0].address.lower()]["health"], "SERVING")

    def test_7_stopped_node_is_unreachable(self):
        net = self.net
        node = net.nodes[1]
        node.kill()
        peers = self.peers()
        self.assertEqual(peers[node.address.lower()]["health"], "UNREACHABLE")
        self.assertEqual(peers[net.nodes[0].address.lower()]["health"], "SERVING")
        st = self.status(net.nodes[0])
        self.assertEqual(st["peers"][0]["health"], "UNREACHABLE")
        r = cli("status", "--addr", node.addr)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertTrue(r.stderr.startswith("atoma-cli: "), r.stderr)

    def test_bad_arguments(self):
        r = cli("stake", "--ledger-db", os.path.join(self.tmp, "missing.db"), "--key",
                self.net.nodes[0].key, "--amount", 1)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no ledger file", r.stderr)
        r = cli("stake", "--ledger-db", self.net.ledger, "--key", self.net.nodes[0].key,
                "--amount", "lots")
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad amount", r.stderr)
        r = cli("peers", "--ledger-db", self.net.ledger, "--echelon", "xyz")
        self.assertEqual(r.returncode, 1)


if __name__ == "__main__":
    unittest.main(argv=netlib.parse_args(), verbosity=2)
