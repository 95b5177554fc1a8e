#!/usr/bin/env python3
"""Functional tests of `atoma-cli ledger` and `atoma-cli verify` against a temporary embedded
ledger file: the dev operations (init, register-node, stake, advance-epoch, deposit, the two steps
of an escrow withdrawal) and the read commands in --json and text form (slashings with their kind), plus verify's rejection of
files that are not certificates.

    /usr/bin/python3 tests/functional/cli_ledger_test.py --cli BUILD/src/atoma-cli
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import unittest

ARGS = None  # parsed command line, set in __main__
NODE = "0x" + "11" * 20
CLIENT = "0x" + "c1" * 20
MODEL = "ab" * 32
ECHELON = "cd" * 32


def cli(*args, check=True):
    r = subprocess.run([ARGS.cli, *args], capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"atoma-cli {' '.join(args)} exited {r.returncode}: {r.stderr}")
    return r


class LedgerCliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="atoma_cli_ledger_")
        self.db = os.path.join(self.tmp.name, "ledger.db")

    def tearDown(self):
        self.tmp.cleanup()

    def ledger(self, *args, check=True):
        return cli("ledger", "--db", self.db, *args, check=check)

    def ledger_json(self, *args):
        return json.loads(self.ledger("--json", *args).stdout)

    def test_read_commands_need_an_existing_file(self):
        r = self.ledger("info", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no ledger file", r.stderr)
        self.assertFalse(os.path.exists(self.db), "a read command must not create the ledger")

    def test_init_refuses_an_existing_file(self):
        self.ledger("init", "--chain-id", "7")
        r = self.ledger("init", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("exists already", r.stderr)

    def test_demo_flow(self):
        created = self.ledger_json("init", "--chain-id", "4242", "--unbonding-epochs", "3",
                                   "--fee-per-token", "5")
        self.assertEqual(created["epoch"]["number"], 0)
        info = self.ledger_json("info")
        self.assertEqual(info["params"]["chain_id"], 4242)
        self.assertEqual(info["params"]["unbonding_epochs"], 3)
        self.assertEqual(info["params"]["fee_per_token"], "5")
        self.assertEqual(info["current_epoch"]["number"], 0)
        seed0 = info["current_epoch"]["seed"]
        self.assertRegex(seed0, r"^0x[0-9a-f]{64}$")

        self.assertEqual(self.ledger_json("nodes"), [])
        self.ledger("register-node", "--node", NODE, "--endpoint", "127.0.0.1:7001",
                    "--echelon", f"{MODEL}:0x{ECHELON}")
        self.assertEqual(self.ledger_json("stake", "--node", NODE, "--amount", "1000")["bonded"],
                         "1000")

        advanced = self.ledger_json("advance-epoch")
        self.assertEqual(advanced["number"], 1)
        self.assertNotEqual(advanced["seed"], seed0)
        info = self.ledger_json("info")
        self.assertEqual(info["current_epoch"], advanced)

        self.assertEqual(self.ledger_json("deposit", "--client", CLIENT, "--amount", "300")
                         ["escrow"], "300")
        self.ledger("deposit", "--client", CLIENT, "--amount", "200")
        escrow = self.ledger_json("escrow", CLIENT)
        self.assertEqual(escrow["escrow"], "500")

        nodes = self.ledger_json("nodes")
        self.assertEqual(len(nodes), 1)
        node = nodes[0]
        self.assertEqual(node["address"].lower(), NODE)
        self.assertEqual(node["endpoint"], "127.0.0.1:7001")
        self.assertEqual(node["bonded"], "1000")
        self.assertEqual(node["unbonding"], [])
        self.assertEqual(node["echelons"],
                         [{"model_digest": "0x" + MODEL, "echelon_id": "0x" + ECHELON}])

        # The stake bonded in epoch 0 is frozen into epoch 1's snapshot, not epoch 0's.
        epoch1 = self.ledger_json("epoch")
        self.assertEqual(epoch1["number"], 1)
        self.assertEqual(epoch1["snapshots"], [{"echelon_id": "0x" + ECHELON, "candidates": [
            {"address": node["address"], "stake": "1000"}]}])
        epoch0 = self.ledger_json("epoch", "0")
        self.assertEqual(epoch0["seed"], seed0)
        self.assertEqual(epoch0["snapshots"], [])
        r = self.ledger("epoch", "9", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("has not started", r.stderr)

        self.assertEqual(self.ledger_json("settlements"), [])
        self.assertEqual(self.ledger_json("slashings"), [])

        # Human output carries the same facts.
        text = self.ledger("info").stdout
        self.assertIn("chain id         4242", text)
        self.assertIn("current epoch    1", text)
        self.assertIn("bonded 1000", self.ledger("nodes").stdout)

    def test_escrow_withdrawal_takes_two_steps(self):
        self.ledger("init", "--unbonding-epochs", "2")
        self.ledger("deposit", "--client", CLIENT, "--amount", "500")
        escrow = self.ledger_json("escrow", CLIENT)
        self.assertEqual(escrow["client"].lower(), CLIENT)
        self.assertEqual((escrow["escrow"], escrow["pending"], escrow["unlock_epoch"],
                          escrow["withdrawable"]), ("500", "0", 0, "0"))
        r = self.ledger("withdraw", "--client", CLIENT, "--amount", "1", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no withdrawal requested", r.stderr)
        requested = self.ledger_json("request-withdrawal", "--client", CLIENT, "--amount", "200")
        self.assertEqual((requested["escrow"], requested["pending"], requested["unlock_epoch"],
                          requested["withdrawable"]), ("500", "200", 2, "0"))
        self.assertIn("withdrawal of 200 pending, unlocked at epoch 2",
                      self.ledger("escrow", CLIENT).stdout)
        r = self.ledger("withdraw", "--client", CLIENT, "--amount", "200", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("unlocks at epoch 2 (current epoch 0)", r.stderr)
        self.ledger("advance-epoch")
        self.ledger("advance-epoch")
        self.assertEqual(self.ledger_json("escrow", CLIENT)["withdrawable"], "200")
        left = self.ledger_json("withdraw", "--client", CLIENT, "--amount", "150")
        self.assertEqual((left["escrow"], left["pending"], left["withdrawable"]),
                         ("350", "50", "50"))
        left = self.ledger_json("withdraw", "--client", CLIENT, "--amount", "50")
        self.assertEqual((left["escrow"], left["pending"], left["unlock_epoch"]), ("300", "0", 0))
        self.assertEqual(self.ledger("escrow", CLIENT).stdout.strip().split(" ", 1)[1],
                         "escrow 300")

    def test_slashings_show_their_kind(self):
        # No CLI command slashes (that takes signed evidence), so write the two kinds of record
        # the ledger writes (schema 3: slashes.kind) straight into the file.
        self.ledger("init")
        db = sqlite3.connect(self.db)
        with db:
            for kind, fill in (("equivocation", 0x0e), ("dispute", 0x0d)):
                db.execute("INSERT INTO slashes(kind, evidence_hash, offender, request_id, "
                           "reporter, slashed, reporter_reward, epoch) VALUES(?,?,?,?,?,?,?,?)",
                           (kind, bytes([fill]) * 32, bytes.fromhex("11" * 20),
                            bytes([fill]) * 32, bytes.fromhex("22" * 20),
                            (100).to_bytes(32, "big"), (0).to_bytes(32, "big"), 0))
        db.close()
        slashings = self.ledger_json("slashings")
        self.assertEqual([s["kind"] for s in slashings], ["equivocation", "dispute"])
        self.assertEqual(slashings[1]["slashed"], "100")
        self.assertEqual(slashings[1]["offender"].lower(), NODE)
        text = self.ledger("slashings").stdout.splitlines()
        self.assertEqual(len(text), 2)
        self.assertTrue(text[0].startswith("equivocation: "), text[0])
        self.assertTrue(text[1].startswith("dispute: "), text[1])
        self.assertEqual(len(self.ledger_json("slashings", "--limit", "1")), 1)

    def test_bad_input_is_rejected_clearly(self):
        self.ledger("init")
        r = self.ledger("deposit", "--client", "0x1234", "--amount", "1", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad address", r.stderr)
        r = self.ledger("deposit", "--client", CLIENT, "--amount", "-3", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad amount", r.stderr)
        r = self.ledger("stake", "--node", NODE, "--amount", "5", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not registered", r.stderr)

    def test_verify_rejects_files_that_are_not_certificates(self):
        self.ledger("init")
        garbage = os.path.join(self.tmp.name, "garbage.cert")
        with open(garbage, "wb") as f:
            f.write(b"\x01" + bytes(range(256)) * 3)
        r = cli("verify", "--db", self.db, garbage, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a certificate", r.stderr)
        self.assertEqual(r.stdout, "")

        empty = os.path.join(self.tmp.name, "empty.cert")
        open(empty, "wb").close()
        r = cli("verify", "--db", self.db, empty, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a certificate", r.stderr)

        r = cli("verify", "--db", self.db, os.path.join(self.tmp.name, "missing"), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot read", r.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--cli", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest])
