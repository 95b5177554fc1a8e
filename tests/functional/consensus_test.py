#!/usr/bin/env python3
"""Functional tests of Sampling Consensus with real atoma-node processes: N nodes on one embedded
ledger (a temporary SQLite file), each registering itself at start; the test stakes them, funds a
client and opens an epoch, then drives verified requests with `atoma-cli generate --security
sampling:N` and `--security cross_validation:P:K` and checks certificates, settlement, fault
handling and refusals.

    /usr/bin/python3 tests/functional/consensus_test.py --node BUILD/src/atoma-node \\
        --cli BUILD/src/atoma-cli

Each test class starts its own network in its own temporary folder (kept, with every node's
log, when a test fails and ATOMA_KEEP_TMP=1).
"""

import json
import os
import re
import sqlite3
import subprocess
import tempfile
import time
import unittest

import netlib
from netlib import cli, cli_json, run

SETTLE_TIMEOUT_S = 30
STAKE = 1000
DEPOSIT = 1_000_000


class Network:
    """A ledger, a funded client and N registered, staked nodes in a fresh epoch."""

    def __init__(self, tmp, model_dir, n):
        self.tmp = tmp
        self.ledger = os.path.join(tmp, "ledger.db")
        cli_json("ledger", "--db", self.ledger, "init", "--epoch-length-s", 3600, "--json")
        self.client_key = os.path.join(tmp, "client.key")
        self.client = netlib.keygen(self.client_key)
        self.nodes = [netlib.NetworkNode(os.path.join(tmp, f"node{i}"), i, model_dir,
                                         ["backend: embedded", f"path: {self.ledger}"])
                      for i in range(n)]
        try:
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                node.wait_started()
            self.wait_registered()
            for node in self.nodes:
                cli_json("ledger", "--db", self.ledger, "stake", "--node", node.address,
                         "--amount", STAKE, "--json")
            cli_json("ledger", "--db", self.ledger, "deposit", "--client", self.client,
                     "--amount", DEPOSIT, "--json")
            cli_json("ledger", "--db", self.ledger, "advance-epoch", "--json")
        except BaseException:
            self.stop()  # tearDownClass does not run when setUpClass fails
            raise

    def wait_registered(self):
        return netlib.wait_registered(
            self.nodes, lambda: cli_json("ledger", "--db", self.ledger, "nodes", "--json"))

    def by_address(self, address):
        return netlib.by_address(self.nodes, address)

    def stop(self):
        codes = [node.terminate() for node in self.nodes]
        return codes

    def logs(self):
        return netlib.node_logs(self.nodes)

    # --- ledger views ---
    def settlements(self):
        return cli_json("ledger", "--db", self.ledger, "settlements", "--json")

    def escrow(self):
        return int(cli_json("ledger", "--db", self.ledger, "escrow", self.client,
                            "--json")["escrow"])

    def fee_per_token(self):
        return int(cli_json("ledger", "--db", self.ledger, "info",
                            "--json")["params"]["fee_per_token"])

    def current_epoch(self):
        return cli_json("ledger", "--db", self.ledger, "info",
                        "--json")["current_epoch"]["number"]

    def reward(self, address):
        """A node's reward balance: `atoma-cli ledger rewards` where it exists, else the
        embedded ledger's rewards table (32-byte big-endian balances), read-only."""
        r = cli("ledger", "--db", self.ledger, "rewards", address, "--json")
        if r.returncode == 0:
            j = json.loads(r.stdout)
            return int(j.get("rewards", j.get("balance", 0)))
        db = sqlite3.connect(f"file:{self.ledger}?mode=ro", uri=True, timeout=10)
        try:
            row = db.execute("SELECT balance FROM rewards WHERE address = ?",
                             (bytes.fromhex(address[2:]),)).fetchone()
        finally:
            db.close()
        return int.from_bytes(row[0], "big") if row else 0

    def wait_settled(self, request_id, timeout=SETTLE_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while True:
            found = [s for s in self.settlements() if s["request_id"] == request_id]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    # --- client ---
    def generate_args(self, entry, *extra, security="sampling:3"):
        return netlib.generate_args(entry, self.client_key, ["--ledger-db", self.ledger], *extra,
                                    security=security)

    def dry_run(self, entry, nonce, *extra, security="sampling:3"):
        r = run(self.generate_args(entry, "--dry-run", "--json", "--nonce", nonce, *extra,
                                   security=security))
        if r.returncode != 0:
            raise AssertionError(f"--dry-run failed: {r.stderr}")
        return json.loads(r.stdout)


def stream_until_tokens(proc, min_bytes=1, timeout=120):
    """Reads the CLI's streamed stdout until it printed at least `min_bytes` of text; returns
    what it read (the process keeps running)."""
    got = b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    while len(got) < min_bytes:
        if time.monotonic() > deadline:
            raise AssertionError("no tokens streamed")
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            chunk = None
        if chunk == b"":
            break  # the CLI ended before streaming anything
        if chunk:
            got += chunk
        else:
            time.sleep(0.005)
    os.set_blocking(fd, True)
    return got


COMMITTEE_LINE = re.compile(r"^\s+(\d+) (0x[0-9a-fA-F]{40}) ")


def committee_from_summary(text):
    """Committee addresses from `atoma-cli generate`'s certificate summary."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("committee ("))
    members = []
    for line in lines[start + 1:]:
        m = COMMITTEE_LINE.match(line)
        if not m:
            break
        members.append(m.group(2))
    return members


class ConsensusTestBase(unittest.TestCase):
    """A Network of NODES nodes in a temporary folder for the class's tests (also the base of
    operator_cli_test.py's tests)."""
    NODES = 3
    TMP_PREFIX = "atoma-consensus-"

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix=f"{cls.TMP_PREFIX}{cls.NODES}-")
        cls.model_dir = netlib.synth_tiny_model(os.path.join(cls.tmp, "models", "tiny"))
        cls.net = Network(cls.tmp, cls.model_dir, cls.NODES)

    @classmethod
    def tearDownClass(cls):
        if cls.net is not None:
            cls.net.stop()
        netlib.remove_tmp(cls.tmp)

    def explain(self):
        return self.net.logs()


class ThreeNodes(ConsensusTestBase):
    NODES = 3

    def test_sampling_3_is_certified_verified_and_settled_once(self):
        net = self.net
        entry = net.nodes[0]
        escrow_before = net.escrow()
        rewards_before = {n.address.lower(): net.reward(n.address) for n in net.nodes}
        cert = os.path.join(self.tmp, "three.cert")
        out = netlib.generate_json(
            self, net.generate_args(entry, "--json", "--save-cert", cert, "--max-tokens", 24,
                                    "--temperature", 0.8, "--top-p", 0.95, "--seed", 7,
                                    "Once upon a time"), self.explain)
        self.assertTrue(out["verified"], out)
        self.assertTrue(out["verdict"].startswith("verified: 3/3 members"), out["verdict"])
        self.assertEqual(len(out["committee"]), 3)
        self.assertEqual({m["address"].lower() for m in out["committee"]},
                         {n.address.lower() for n in net.nodes})
        self.assertEqual(len(out["request_id"]), 66)

        # `atoma-cli verify` accepts what --save-cert wrote, and refuses it with another output.
        netlib.assert_verify_checks_output(self, ["--db", net.ledger], cert)

        # Settled exactly once within a few seconds; the client paid the fee, members got it.
        found = net.wait_settled(out["request_id"])
        self.assertEqual(len(found), 1, f"settlements: {net.settlements()}\n{self.explain()}")
        fee = netlib.fee_of(out, net.fee_per_token())
        self.assertEqual(int(found[0]["fee"]), fee)
        self.assertEqual(found[0]["client"].lower(), net.client.lower())
        self.assertEqual(net.escrow(), escrow_before - fee)
        # Every node is a member (3 of 3): each gained, together the fee.
        netlib.assert_fee_shared(self, net.nodes, net.reward, rewards_before,
                                 [n.address for n in net.nodes], fee)
        # Still once after the outboxes had time to retry.
        time.sleep(1)
        self.assertEqual(
            len([s for s in net.settlements() if s["request_id"] == out["request_id"]]), 1)

    def test_dry_run_matches_the_certificate(self):
        net = self.net
        plan = net.dry_run(net.nodes[1], 4242, "--max-tokens", 8, "hello")
        self.assertEqual(len(plan["committee"]), 3)
        self.assertEqual(plan["epoch"], net.current_epoch())
        self.assertEqual(plan["backups"], [])  # 3 nodes, all in the committee
        out = netlib.generate_json(
            self, net.generate_args(net.nodes[1], "--json", "--nonce", 4242, "--max-tokens", 8,
                                    "hello"), self.explain)
        self.assertEqual(out["request_id"], plan["request_id"])
        self.assertEqual([m["address"] for m in out["committee"]],
                         [m["address"] for m in plan["committee"]])
        # Settled before the next test looks at balances.
        self.assertEqual(len(net.wait_settled(plan["request_id"])), 1, self.explain())

    def test_bad_client_signature_is_permission_denied(self):
        r = run(self.net.generate_args(self.net.nodes[0], "--corrupt-signature-for-test",
                                       "--max-tokens", 4, "hi"), timeout=120)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("PERMISSION_DENIED", r.stderr)

    def test_stale_epoch_is_failed_precondition(self):
        stale = self.net.current_epoch() - 1
        r = run(self.net.generate_args(self.net.nodes[0], "--epoch-for-test", stale,
                                       "--max-tokens", 4, "hi"), timeout=120)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("FAILED_PRECONDITION", r.stderr)

    # --- cross-validation (DESIGN §4.6): one executor, k validators when the coin says so ---

    def run_cross_validation(self, security, salt, nonce, *extra):
        """Plans (--dry-run with the same salt and nonce), runs and checks a cross-validation
        request; returns (plan, out, rewards before, escrow before)."""
        net = self.net
        entry = net.nodes[2]
        args = ["--salt-for-test", salt, "--max-tokens", 12, "--temperature", 0.7, "--seed", 11,
                *extra, "A cross-checked story"]
        plan = net.dry_run(entry, nonce, *args, security=security)
        self.assertEqual(len(plan["committee"]), 1, plan)
        self.assertEqual(plan["executor"], plan["committee"][0])
        self.assertEqual(len(plan["backups"]), 1, plan)  # 3 nodes: executor, backup, one more
        escrow_before = net.escrow()
        rewards_before = {n.address.lower(): net.reward(n.address) for n in net.nodes}
        cert = os.path.join(self.tmp, f"xv-{nonce}.cert")
        out = netlib.generate_json(
            self, net.generate_args(entry, "--json", "--nonce", nonce, "--save-cert", cert,
                                    *args, security=security), self.explain)
        self.assertEqual(out["request_id"], plan["request_id"])
        self.assertTrue(out["verified"], out)
        self.assertEqual([m["address"] for m in out["committee"]], [plan["executor"]["address"]])
        self.assertEqual(out["provisional"]["executor"].lower(),
                         plan["executor"]["address"].lower())
        self.assertEqual(out["provisional"]["commitment"], out["commitment"])
        self.assertEqual(out["provisional"]["output_tokens"],
                         int(out["result"]["usage"]["completion_tokens"]))
        self.assertTrue(out["salt_revealed"])
        self.assertFalse(out["unrevealed"])
        # `atoma-cli verify` accepts the saved 0x02 certificate with its output, not another one.
        netlib.assert_verify_checks_output(self, ["--db", net.ledger], cert)
        return plan, out, rewards_before, escrow_before

    def assert_settled_once_and_paid(self, out, paid, rewards_before, escrow_before):
        """One settlement of the request; the client paid fee_per_token x tokens and exactly the
        nodes in `paid` (addresses) shared it."""
        net = self.net
        found = net.wait_settled(out["request_id"])
        self.assertEqual(len(found), 1, f"settlements: {net.settlements()}\n{self.explain()}")
        fee = netlib.fee_of(out, net.fee_per_token())
        self.assertEqual(int(found[0]["fee"]), fee)
        self.assertEqual(net.escrow(), escrow_before - fee)
        netlib.assert_fee_shared(self, net.nodes, net.reward, rewards_before, paid, fee)
        time.sleep(1)  # still once after the outboxes had time to retry
        self.assertEqual(
            len([s for s in net.settlements() if s["request_id"] == out["request_id"]]), 1)

    def test_cross_validation_always_checked(self):
        # p = 1: the coin always draws, the one validator re-executes and agrees.
        plan, out, rewards_before, escrow_before = self.run_cross_validation(
            "cross_validation:1:1", "11" * 32, 501)
        self.assertEqual(len(plan["validators"]), 1, plan)
        self.assertTrue(out["check_drawn"], out)
        self.assertTrue(out["verdict"].startswith("verified: executor + 1 validators (coin drawn)"),
                        out["verdict"])
        self.assertEqual([m["address"] for m in out["validators"]],
                         [m["address"] for m in plan["validators"]])
        self.assertLess(out["coin"], 1_000_000)
        self.assert_settled_once_and_paid(
            out, [plan["executor"]["address"], plan["validators"][0]["address"]], rewards_before,
            escrow_before)

    def test_cross_validation_never_checked(self):
        # p = 0: the coin never draws; the executor alone is certified and paid.
        plan, out, rewards_before, escrow_before = self.run_cross_validation(
            "cross_validation:0:1", "22" * 32, 502)
        self.assertFalse(out["check_drawn"], out)
        self.assertTrue(out["verdict"].startswith("verified: executor only (coin not drawn)"),
                        out["verdict"])
        self.assertEqual(out["validators"], [])
        self.assert_settled_once_and_paid(out, [plan["executor"]["address"]], rewards_before,
                                          escrow_before)

    def test_cross_validation_unrevealed_after_the_salt_timeout(self):
        # The client never reveals: after consensus.salt_timeout_ms (3 s here) the executor's
        # result is final and unchecked; the executor is paid.
        net = self.net
        escrow_before = net.escrow()
        rewards_before = {n.address.lower(): net.reward(n.address) for n in net.nodes}
        out = netlib.generate_json(
            self, net.generate_args(net.nodes[0], "--json", "--no-reveal-for-test",
                                    "--max-tokens", 6, "unrevealed",
                                    security="cross_validation:1:1"), self.explain)
        self.assertTrue(out["verified"], out)
        self.assertIsNotNone(out["provisional"])
        self.assertFalse(out["salt_revealed"])
        self.assertTrue(out["unrevealed"])
        self.assertIsNone(out["check_drawn"])
        self.assertTrue(
            out["verdict"].startswith("verified: executor only (salt never revealed)"),
            out["verdict"])
        self.assert_settled_once_and_paid(out, [out["committee"][0]["address"]], rewards_before,
                                          escrow_before)

    def test_client_side_refusals(self):
        net = self.net
        for bad in ["cross_validation:1.5:1", "cross_validation:0.5", "cross_validation:x:1",
                    "cross_validation:0.5:65"]:
            r = run(net.generate_args(net.nodes[0], "hi", security=bad))
            self.assertEqual(r.returncode, 1, bad)
            self.assertIn("cross_validation:P:K", r.stderr, bad)
        r = run(net.generate_args(net.nodes[0], "--no-reveal-for-test", "hi"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("cross_validation", r.stderr)
        r = cli("generate", "--addr", net.nodes[0].addr, "--model", "tiny", "--security",
                "sampling:3", "--ledger-db", net.ledger, "hi")
        self.assertEqual(r.returncode, 1)
        self.assertIn("--client-key", r.stderr)
        r = run(net.generate_args(net.nodes[0], "hi", security="sampling:0"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("sampling:N", r.stderr)
        # More members than staked nodes: the client cannot draw a committee.
        r = run(net.generate_args(net.nodes[0], "--dry-run", "hi", security="sampling:4"))
        self.assertEqual(r.returncode, 1, r.stdout)


class FourNodes(ConsensusTestBase):
    NODES = 4

    def find_nonce(self, entry, want, *extra):
        """A nonce whose committee satisfies `want(plan)`, with its dry-run plan. Every call
        searches a fresh range: one client's nonce settles once on the ledger, so two tests of
        one network must never pick the same one."""
        start = getattr(self.net, "next_nonce", 1)
        self.net.next_nonce = start + 200
        for nonce in range(start, start + 200):
            plan = self.net.dry_run(entry, nonce, *extra)
            if want(plan):
                return nonce, plan
        self.fail("no nonce gives the wanted committee")

    def test_a_member_killed_mid_stream_is_replaced_by_the_backup(self):
        net = self.net
        entry = net.nodes[0]
        prompt = "The backup"
        extra = ["--max-tokens", 200, "--ignore-eos", "--temperature", 0.8, "--seed", 3]
        # The entry node is a member (it streams its own tokens); another member dies.
        nonce, plan = self.find_nonce(
            entry, lambda p: entry.address.lower() in
            [m["address"].lower() for m in p["committee"]], *extra, prompt)
        self.assertEqual(len(plan["backups"]), 1)
        victim_slot = next(i for i, m in enumerate(plan["committee"])
                           if m["address"].lower() != entry.address.lower())
        victim = net.by_address(plan["committee"][victim_slot]["address"])
        backup = plan["backups"][0]["address"]

        # The tiny model writes 200 tokens in milliseconds, so a member killed only when the
        # client sees tokens would usually have attested already. Freezing it before the request
        # makes it a member that never answers (as a machine that died mid-round does), whatever
        # the speed; it is SIGKILLed once the entry's tokens stream.
        victim.freeze()
        cert = os.path.join(self.tmp, "backup.cert")
        proc = subprocess.Popen(
            net.generate_args(entry, "--nonce", nonce, "--save-cert", cert, *extra, prompt),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            first = stream_until_tokens(proc)
        finally:
            victim.kill()
        rest, err = proc.communicate(timeout=180)
        text = (first + rest).decode(errors="replace")
        self.assertEqual(proc.returncode, 0,
                         f"{text}\n{err.decode(errors='replace')}\n{self.explain()}")
        self.assertIn("verified: 3/3 members", text)
        committee = committee_from_summary(text)
        self.assertEqual(len(committee), 3, text)
        self.assertEqual(committee[victim_slot].lower(), backup.lower(), text)
        for i, m in enumerate(plan["committee"]):
            if i != victim_slot:
                self.assertEqual(committee[i].lower(), m["address"].lower())
        v = cli("verify", "--db", net.ledger, cert, "--output", cert + ".output")
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        found = net.wait_settled(plan["request_id"])
        self.assertEqual(len(found), 1, self.explain())

        # Bring the victim back for the other tests (same config, same port).
        victim.start()
        victim.wait_started()

    def test_entry_killed_and_restarted_settles_the_request_once(self):
        net = self.net
        entry = net.nodes[1]
        prompt = "The restart"
        extra = ["--max-tokens", 200, "--ignore-eos", "--temperature", 0.8, "--seed", 5]
        for node in net.nodes:
            if not node.alive():
                node.start()
                node.wait_started()
        nonce, plan = self.find_nonce(
            entry, lambda p: entry.address.lower() in
            [m["address"].lower() for m in p["committee"]], *extra, prompt)
        # A frozen member holds the round open (its attestation cannot come before
        # member_timeout_ms), so the entry dies with the request accepted but not certified and
        # must finish it from its journal after the restart.
        other = next(net.by_address(m["address"]) for m in plan["committee"]
                     if m["address"].lower() != entry.address.lower())
        other.freeze()
        proc = subprocess.Popen(
            net.generate_args(entry, "--nonce", nonce, *extra, prompt),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            stream_until_tokens(proc)
        finally:
            entry.kill()
            other.thaw()
        proc.communicate(timeout=120)
        self.assertNotEqual(proc.returncode, 0, "the CLI saw the entry node die")
        entry.start()
        entry.wait_started()
        found = net.wait_settled(plan["request_id"], timeout=SETTLE_TIMEOUT_S)
        self.assertEqual(len(found), 1, f"{net.settlements()}\n{self.explain()}")
        time.sleep(1)
        self.assertEqual(
            len([s for s in net.settlements() if s["request_id"] == plan["request_id"]]), 1)


if __name__ == "__main__":
    unittest.main(argv=netlib.parse_args(), verbosity=2)
