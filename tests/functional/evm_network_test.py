#!/usr/bin/env python3
"""Functional tests of the EVM ledger with real processes: Anvil (the pinned npm package) on a free
port, the AtomaLedger contract deployed with `atoma-cli ledger deploy`, and 5 atoma-nodes with
`ledger.backend: evm` that register themselves on the contract; the test funds the keys
(`ledger fund`), stakes each node with its own key, pays the client's escrow deposit with the
client's key and opens an epoch, all as transactions, then:

  (a) a verified sampling:3 request: the certificate verifies against the chain (`generate` and
      `verify` with --rpc-url/--contract), it settles on chain once, the fee leaves the client's
      escrow and the members' reward balances share it;
  (b) a dishonest member: one member of a sampling:2 committee computes other tokens (see
      DishonestMember below); the members disagree, the referee outvotes it, and the entry's
      dispute slashes it on chain (stake down, a "dispute" slashing, the others rewarded);
  (c) Anvil stopped while the settlement transaction waits in its pool (automine off), and started
      again from its saved state (`--state FILE`): the node's outbox and the backend's transaction
      journal re-send it and the request settles exactly once;
  (d) the operator commands (status, peers, claim, unstake) read and act on the contract;
  (e) a burst of verified requests through a node that settles in batches of BURST lands in one
      settleCosigned transaction: every member co-signed its slots once over Peer.Cosign
      (docs/ledger_evm.md "Co-signed batches"); the gas per certificate is printed.

Five nodes rather than three: a dispute needs a referee, a draw beyond the disputed committee and
its backups (BackupCount(n) = n). With three nodes sampling:3 draws no backup and no referee, so no
majority could ever slash anyone; sampling:2 needs 2 + 2 + 1 = 5 nodes. (cross_validation:1:1
draws executor, backup, validator and referee, 4 nodes, but then the entry node is always one of
the draws and computes the output itself, so the client sees the executor's claim contradicted
and refuses to reveal its salt before any dispute starts.)

    /usr/bin/python3 tests/functional/evm_network_test.py --node BUILD/src/atoma-node \\
        --cli BUILD/src/atoma-cli [--anvil node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil]

The temporary folder (node logs, Anvil's log and state) is kept when ATOMA_KEEP_TMP=1.
"""

import json
import os
import sys
import signal
import struct
import subprocess
import tempfile
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
import urllib.request

import netlib
from netlib import cli, cli_ok, keygen, run

SETTLE_TIMEOUT_S = 60
BURST = 6  # certificates per settlement batch of the last node (test e)
CHAIN_ID = 31337
STAKE = 1000
DEPOSIT = 1_000_000
SLASH_BPS = 1000
# 1000 coins: gas for registration, epochs and settlements, plus any stake or deposit.
FUNDS = 10**21


def cli_json(*args, timeout=120):
    """Every command here is asked for --json."""
    return netlib.cli_json(*args, "--json", timeout=timeout)


class Anvil:
    """Anvil on a fixed port, its state saved to `state` when it stops (SIGTERM) and loaded from
    it when it starts again."""

    def __init__(self, workdir):
        self.port = netlib.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = os.path.join(workdir, "anvil-state.json")
        self.log_path = os.path.join(workdir, "anvil.log")
        self.proc = None

    def start(self):
        anvil = netlib.ARGS.anvil
        if not os.path.exists(anvil):
            raise RuntimeError(f"{anvil} is missing: run scripts/setup.sh (npm ci)")
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [anvil, "--host", "127.0.0.1", "--port", str(self.port), "--chain-id",
             str(CHAIN_ID), "--silent", "--state", self.state,
             # Without it Anvil writes every old state to ~/.foundry/anvil/tmp and never
             # deletes it (gigabytes a run).
             "--prune-history", "64"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                if int(self.rpc("eth_chainId"), 16) == CHAIN_ID:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Anvil did not start on port {self.port}:\n"
                                   f"{open(self.log_path, errors='replace').read()[-2000:]}")
            time.sleep(0.1)

    def stop(self):
        """SIGTERM: Anvil writes its state to `state` and exits."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def rpc(self, method, *params):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                           "params": list(params)}).encode()
        req = urllib.request.Request(self.url, body, {"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.load(resp)
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer["result"]

    def pending_from(self, address):
        """Transactions of `address` waiting in Anvil's pool (txpool_content)."""
        pool = self.rpc("txpool_content")["pending"]
        for sender, txs in pool.items():
            if sender.lower() == address.lower():
                return list(txs.values())
        return []


class DishonestMember:
    """Makes a running node compute other tokens than its echelon, the way a machine whose weights
    went bad after its start-up check would: the node measured its canary fingerprint (and so
    registered its echelon) with the real weights, then the test negates its in-memory copy of
    the token embedding (tied with the output head in the tiny model) through /proc/PID/mem. Its
    digest and echelon still claim the honest model, its outputs no longer match it. Nothing in
    the node is changed for this, and restarting the node makes it honest again (it reloads the
    weights)."""

    @staticmethod
    def embedding(model_dir):
        with open(os.path.join(model_dir, "model.safetensors"), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            t = header["model.embed_tokens.weight"]
            if t["dtype"] != "F32":
                raise AssertionError(f"the tiny model's embedding is {t['dtype']}, expected F32")
            begin, end = t["data_offsets"]
            f.seek(8 + n + begin)
            return f.read(end - begin)

    @staticmethod
    def corrupt(pid, model_dir):
        """Negates every copy of the embedding in the node's writable memory; returns how many."""
        weights = DishonestMember.embedding(model_dir)
        probe = weights[:256]
        negated = bytearray(weights)
        for i in range(3, len(negated), 4):
            negated[i] ^= 0x80  # the sign bit of each little-endian float
        regions = []
        with open(f"/proc/{pid}/maps") as maps:
            for line in maps:
                fields = line.split()
                if fields[1].startswith("rw"):
                    lo, hi = (int(x, 16) for x in fields[0].split("-"))
                    regions.append((lo, hi))
        found = []
        try:
            fd = os.open(f"/proc/{pid}/mem", os.O_RDWR)
        except PermissionError as e:
            raise AssertionError(
                f"cannot write the node's memory ({e}): the test needs ptrace access to its own "
                "child processes (kernel.yama.ptrace_scope 0 or 1)") from e
        try:
            for lo, hi in regions:
                try:
                    data = os.pread(fd, hi - lo, lo)
                except OSError:
                    continue  # guard pages and the like
                at = data.find(probe)
                while at >= 0:
                    if data[at:at + len(weights)] == weights:
                        found.append(lo + at)
                    at = data.find(probe, at + 1)
            for address in found:
                os.pwrite(fd, bytes(negated), address)
        finally:
            os.close(fd)
        return len(found)


def evm_node(workdir, index, model_dir, rpc_url, contract, settlement=(64, 200)):
    """A network node on the contract (netlib.NetworkNode with an evm ledger section)."""
    return netlib.NetworkNode(workdir, index, model_dir, [
        "backend: evm", f"rpc_url: {rpc_url}", f'contract: "{contract}"', f"chain_id: {CHAIN_ID}",
        "receipt_timeout_ms: 5000"], settlement)


class EvmNetwork(unittest.TestCase):
    NODES = 5

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="atoma-evm-network-")
        cls.anvil = None
        cls.nodes = []
        try:
            cls.set_up_network()
        except BaseException:
            cls.tear_down_network()  # tearDownClass does not run when setUpClass fails
            raise

    @classmethod
    def set_up_network(cls):
        cls.model_dir = os.path.join(cls.tmp, "models", "tiny")
        netlib.synth_tiny_model(cls.model_dir)
        cls.anvil = Anvil(cls.tmp)
        cls.anvil.start()
        rpc = cls.anvil.url

        # A deployer of our own, funded on the dev chain, deploys the contract.
        deployer_key = os.path.join(cls.tmp, "deployer.key")
        deployer = keygen(deployer_key)
        funded = cli_json("ledger", "--rpc-url", rpc, "fund", "--address", deployer, "--amount",
                          FUNDS)
        assert int(funded["balance"]) == FUNDS, funded
        deployed = cli_json("ledger", "--rpc-url", rpc, "deploy", "--key", deployer_key,
                            "--epoch-length-s", 3600, "--slash-bps", SLASH_BPS)
        assert deployed["chain_id"] == CHAIN_ID, deployed
        cls.contract = deployed["contract"]
        cls.deployer_key = deployer_key
        cls.ledger = ["--rpc-url", rpc, "--contract", cls.contract]

        cls.client_key = os.path.join(cls.tmp, "client.key")
        cls.client = keygen(cls.client_key)
        cli_ok("ledger", "--rpc-url", rpc, "fund", "--address", cls.client, "--amount", FUNDS)
        # The last node settles in batches of BURST (test e), waiting up to 20 s for them.
        cls.nodes = [evm_node(os.path.join(cls.tmp, f"node{i}"), i, cls.model_dir, rpc,
                              cls.contract, (BURST, 20000) if i == cls.NODES - 1 else (64, 200))
                     for i in range(cls.NODES)]
        for node in cls.nodes:
            # Registration is the node's own transaction: it needs coin before it starts.
            cli_ok("ledger", "--rpc-url", rpc, "fund", "--address", node.address, "--amount",
                   FUNDS)
            node.start()
        for node in cls.nodes:
            node.wait_started()
        netlib.wait_registered(cls.nodes, lambda: cls.ledger_json("nodes"))
        for node in cls.nodes:
            staked = cli_json("ledger", *cls.ledger, "--key", node.key, "stake", "--amount", STAKE)
            assert int(staked["bonded"]) == STAKE, staked
        deposited = cli_json("ledger", *cls.ledger, "--key", cls.client_key, "deposit",
                             "--amount", DEPOSIT)
        assert int(deposited["escrow"]) == DEPOSIT, deposited
        cli_json("ledger", *cls.ledger, "--key", deployer_key, "advance-epoch")

    @classmethod
    def tear_down_network(cls):
        for node in cls.nodes:
            node.terminate()
        if cls.anvil is not None:
            cls.anvil.stop()
        netlib.remove_tmp(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        cls.tear_down_network()

    # --- chain views through atoma-cli ---
    @classmethod
    def ledger_json(cls, *args):
        return cli_json("ledger", *cls.ledger, *args)

    def escrow(self):
        return int(self.ledger_json("escrow", self.client)["escrow"])

    def reward(self, address):
        return int(self.ledger_json("rewards", address)["rewards"])

    def bonded(self, address):
        for n in self.ledger_json("nodes"):
            if n["address"].lower() == address.lower():
                return int(n["bonded"])
        raise AssertionError(f"{address} is not registered")

    def fee_per_token(self):
        return int(self.ledger_json("info")["params"]["fee_per_token"])

    def settlements_of(self, request_id):
        return [s for s in self.ledger_json("settlements") if s["request_id"] == request_id]

    def wait_settled(self, request_id, timeout=SETTLE_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while not self.ledger_json("settled", request_id)["settled"]:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.25)
        return True

    def by_address(self, address):
        return netlib.by_address(self.nodes, address)

    def explain(self):
        return netlib.node_logs(self.nodes)

    def generate_args(self, entry, *extra, security="sampling:3"):
        return netlib.generate_args(entry, self.client_key, self.ledger, *extra,
                                    security=security)

    def assert_paid_once(self, request_id, out, members):
        """One Settled record of the request; the client paid fee_per_token x tokens and exactly
        `members` shared it (checked by the caller against balances taken before)."""
        found = self.settlements_of(request_id)
        self.assertEqual(len(found), 1, f"{found}\n{self.explain()}")
        fee = netlib.fee_of(out, self.fee_per_token())
        self.assertEqual(int(found[0]["fee"]), fee)
        self.assertEqual(found[0]["client"].lower(), self.client.lower())
        return fee

    # --- (a) ---
    def test_a_sampling_3_verifies_against_the_chain_and_settles_once(self):
        entry = self.nodes[0]
        escrow_before = self.escrow()
        rewards_before = {n.address.lower(): self.reward(n.address) for n in self.nodes}
        cert = os.path.join(self.tmp, "a.cert")
        out = netlib.generate_json(
            self, self.generate_args(entry, "--json", "--save-cert", cert, "--max-tokens", 24,
                                     "--temperature", 0.8, "--top-p", 0.95, "--seed", 7,
                                     "Once upon a time"), self.explain)
        self.assertTrue(out["verified"], out)
        self.assertTrue(out["verdict"].startswith("verified: 3/3 members"), out["verdict"])
        members = [m["address"].lower() for m in out["committee"]]
        self.assertEqual(len(set(members)), 3)

        # `atoma-cli verify` checks the saved certificate against the contract's seed and
        # snapshot, and refuses it with another output.
        netlib.assert_verify_checks_output(self, self.ledger, cert)

        self.assertTrue(self.wait_settled(out["request_id"]), self.explain())
        fee = self.assert_paid_once(out["request_id"], out, members)
        self.assertGreater(fee, 0)
        self.assertEqual(self.escrow(), escrow_before - fee)
        netlib.assert_fee_shared(self, self.nodes, self.reward, rewards_before, members, fee)
        time.sleep(1)  # still once after the outboxes had time to retry
        self.assertEqual(len(self.settlements_of(out["request_id"])), 1)

    # --- (b) ---
    def test_b_dishonest_member_is_slashed_on_chain_through_a_dispute(self):
        entry = self.nodes[1]
        prompt_args = ["--max-tokens", 16, "--temperature", 0.7, "--seed", 11, "--ignore-eos",
                       "The dishonest member"]
        security = "sampling:2"
        plan = None
        for nonce in range(9000, 9100):
            r = run(self.generate_args(entry, "--dry-run", "--json", "--nonce", nonce,
                                       *prompt_args, security=security))
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            p = json.loads(r.stdout)
            if len(p["referees"]) == 1:  # 5 nodes: always 2 members, 2 backups, 1 referee
                plan = p
                break
        self.assertIsNotNone(plan, f"no referee drawn: {p}")
        members = [m["address"] for m in plan["committee"]]
        # A member other than the entry lies (the entry streams the client its own tokens when it
        # is a member; an honest entry keeps the story simple).
        liar = self.by_address(next(a for a in reversed(members)
                                    if a.lower() != entry.address.lower()))
        honest = next(a for a in members if a.lower() != liar.address.lower())
        referee = plan["referees"][0]["address"]
        bonded_before = self.bonded(liar.address)
        rewards_before = {n.address.lower(): self.reward(n.address) for n in self.nodes}
        self.assertEqual(
            [s for s in self.ledger_json("slashings") if s["offender"].lower() ==
             liar.address.lower()], [])

        request_id = plan["request_id"]
        try:
            liar.freeze()  # a still node while its memory is changed
            try:
                copies = DishonestMember.corrupt(liar.proc.pid, self.model_dir)
            finally:
                liar.thaw()
            self.assertGreaterEqual(copies, 1, "the embedding was not found in the node")
            r = run(self.generate_args(entry, "--json", "--nonce", nonce, *prompt_args,
                                       security=security), timeout=180)
            # The client is told the request was decided by a dispute (ABORTED naming the
            # slashed member), not handed a certificate.
            self.assertNotEqual(r.returncode, 0, r.stdout)
            self.assertIn("ABORTED", r.stderr, r.stdout + r.stderr)
            self.assertTrue(self.wait_settled(request_id),
                            f"{r.stdout}\n{r.stderr}\n{self.explain()}")
        finally:
            liar.restart()  # honest again (weights reloaded) for the other tests

        slashed = STAKE * SLASH_BPS // 10_000
        self.assertEqual(self.bonded(liar.address), bonded_before - slashed)
        records = [s for s in self.ledger_json("slashings") if s["request_id"] == request_id]
        self.assertEqual(len(records), 1, records)
        self.assertEqual(records[0]["kind"], "dispute")
        self.assertEqual(records[0]["offender"].lower(), liar.address.lower())
        self.assertEqual(int(records[0]["slashed"]), slashed)
        # The honest member and the referee share the pool (slashed stake plus the fee); the
        # liar gets nothing.
        for address in (honest, referee):
            self.assertGreater(self.reward(address), rewards_before[address.lower()], address)
        self.assertEqual(self.reward(liar.address), rewards_before[liar.address.lower()])
        self.assertEqual(self.settlements_of(request_id), [])  # a dispute, not a certificate

    # --- (c) ---
    def test_c_chain_stopped_mid_settlement_settles_exactly_once_after_restart(self):
        entry = self.nodes[2]
        escrow_before = self.escrow()
        rewards_before = {n.address.lower(): self.reward(n.address) for n in self.nodes}
        # Transactions now wait in Anvil's pool until a block is mined: the settlement will be
        # signed, journaled and sent, but not mined, when the chain goes away.
        self.anvil.rpc("evm_setAutomine", False)
        restarted = False
        try:
            out = netlib.generate_json(
                self, self.generate_args(entry, "--json", "--max-tokens", 12, "--seed", 5,
                                         "The chain goes away"), self.explain)
            self.assertTrue(out["verified"], out)
            members = [m["address"].lower() for m in out["committee"]]
            deadline = time.monotonic() + 30
            while not self.anvil.pending_from(entry.address):
                self.assertLess(time.monotonic(), deadline,
                                f"the entry sent no settlement\n{entry.read_log()[-4000:]}")
                time.sleep(0.05)
            pending = self.anvil.pending_from(entry.address)
            self.assertEqual(pending[0]["to"].lower(), self.contract.lower())
            settle_tx = pending[0]["hash"]
            self.assertFalse(self.ledger_json("settled", out["request_id"])["settled"])

            self.anvil.stop()  # the pool (the settle transaction) is lost, the state is saved
            time.sleep(2)  # the entry's receipt polls and a settlement retry fail meanwhile
            self.anvil.start()  # same port, state loaded; mines each transaction again
            restarted = True
        finally:
            if not restarted:
                self.anvil.rpc("evm_setAutomine", True)

        self.assertTrue(self.wait_settled(out["request_id"]), self.explain())
        # What landed is the journaled transaction itself (the same signed bytes, so the same
        # hash), re-sent after the restart, not a second one.
        receipt = self.anvil.rpc("eth_getTransactionReceipt", settle_tx)
        self.assertIsNotNone(receipt, f"{settle_tx} was never mined\n{entry.read_log()[-4000:]}")
        self.assertEqual(receipt["status"], "0x1", receipt)
        fee = self.assert_paid_once(out["request_id"], out, members)
        self.assertEqual(self.escrow(), escrow_before - fee)
        gained = 0
        for node in self.nodes:
            delta = self.reward(node.address) - rewards_before[node.address.lower()]
            if node.address.lower() not in members:
                self.assertEqual(delta, 0, node.address)
            gained += delta
        self.assertEqual(gained, fee)
        time.sleep(2)  # the outbox has nothing left to send: still once
        self.assertEqual(len(self.settlements_of(out["request_id"])), 1)
        self.assertEqual(self.escrow(), escrow_before - fee)

    # --- the operator commands on the chain ---
    def test_d_operator_commands_read_and_act_on_the_chain(self):
        node = max(self.nodes, key=lambda n: self.reward(n.address))
        rewards = self.reward(node.address)
        self.assertGreater(rewards, 0, "earlier tests paid every node nothing")
        st = cli_json("status", "--addr", node.addr, *self.ledger)
        self.assertEqual(st["address"].lower(), node.address.lower())
        self.assertEqual(st["registration"]["endpoint"], node.addr)
        self.assertEqual(int(st["rewards"]), rewards)
        self.assertEqual(len(st["peers"]), self.NODES - 1)
        peers = cli_json("peers", *self.ledger)
        self.assertEqual({p["address"].lower() for p in peers["peers"]},
                         {n.address.lower() for n in self.nodes})
        self.assertTrue(all(p["health"] == "SERVING" for p in peers["peers"]), peers)

        # claim pays the whole reward balance out to the node's account (a transaction the node's
        # key signs); unstake moves stake to unbonding.
        claimed = cli_json("claim", *self.ledger, "--key", node.key)
        self.assertEqual(int(claimed["amount"]), rewards)
        self.assertEqual(int(claimed["rewards"]), 0)
        self.assertEqual(self.reward(node.address), 0)
        bonded = self.bonded(node.address)
        unstaked = cli_json("unstake", *self.ledger, "--key", node.key, "--amount", 1)
        self.assertEqual(int(unstaked["bonded"]), bonded - 1)
        self.assertEqual([int(u["amount"]) for u in unstaked["unbonding"]], [1])

        # A key that is not the actor's cannot act for it on a chain; nothing is sent.
        r = cli("ledger", *self.ledger, "--key", self.client_key, "stake", "--node",
                node.address, "--amount", 1)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("--key", r.stderr)
        self.assertEqual(self.bonded(node.address), bonded - 1)
        # One ledger only, and a contract with the URL.
        r = cli("peers", "--ledger-db", os.path.join(self.tmp, "x.db"), *self.ledger)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not both", r.stderr)
        r = cli("ledger", "--rpc-url", self.anvil.url, "info")
        self.assertEqual(r.returncode, 1)
        self.assertIn("--contract", r.stderr)

    # --- (e) ---
    def test_e_a_burst_settles_in_one_co_signed_batch(self):
        entry = self.nodes[-1]
        start_block = int(self.anvil.rpc("eth_blockNumber"), 16)
        escrow_before = self.escrow()

        def one(i):
            return netlib.generate_json(
                self, self.generate_args(entry, "--json", "--max-tokens", 8, "--seed", i,
                                         f"Burst request number {i}"), self.explain)

        with ThreadPoolExecutor(BURST) as pool:
            outs = list(pool.map(one, range(BURST)))
        fees = 0
        for out in outs:
            self.assertTrue(out["verified"], out)
            self.assertTrue(self.wait_settled(out["request_id"]), self.explain())
            fees += self.assert_paid_once(out["request_id"], out, None)
        self.assertEqual(self.escrow(), escrow_before - fees)
        txs = settlement_txs(self.anvil, entry.address, start_block)
        self.assertEqual([m for m, _, _ in txs], ["settleCosigned(bytes)"],
                         f"{txs}\n{entry.read_log()[-4000:]}")
        receipt = txs[0][2]
        self.assertEqual(receipt["status"], "0x1")
        gas = int(receipt["gasUsed"], 16)
        print(f"\nco-signed batch of {BURST} certificates (sampling:3, 5-node echelon): "
              f"{gas} gas, {gas // BURST} per certificate", file=sys.stderr)


def settlement_txs(anvil, sender, after_block):
    """The settle / settleCosigned transactions `sender` got mined after `after_block`, as
    (method, transaction, receipt) in order (also bench/network_settle_gas.py's gas count)."""
    artifact = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "contracts",
                            "build", "AtomaLedger.json")
    with open(artifact) as f:
        ids = json.load(f)["methodIdentifiers"]
    methods = {"0x" + ids[m]: m for m in ("settle(bytes)", "settleCosigned(bytes)")}
    out = []
    head = int(anvil.rpc("eth_blockNumber"), 16)
    for number in range(after_block + 1, head + 1):
        block = anvil.rpc("eth_getBlockByNumber", hex(number), True)
        for tx in block["transactions"]:
            method = methods.get(tx["input"][:10])
            if method and tx["from"].lower() == sender.lower():
                out.append((method, tx, anvil.rpc("eth_getTransactionReceipt", tx["hash"])))
    return out


def add_anvil_argument(parser):
    parser.add_argument(
        "--anvil",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                             "node_modules", "@foundry-rs", "anvil-linux-amd64", "bin", "anvil"))


if __name__ == "__main__":
    unittest.main(argv=netlib.parse_args(add_anvil_argument), verbosity=2)
