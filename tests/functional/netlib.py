"""Helpers shared by the Python functional tests (node_test.py, consensus_test.py,
operator_cli_test.py, evm_network_test.py): the command line, running atoma-cli, free ports, keys,
the tiny synthesized model, atoma-node processes (config, ports file, log, start, stop, signals),
waiting for a network to register, and the checks every network test makes of a certificate and
of a fee shared out.

The scripts are run by path, so their folder is on sys.path and `import netlib` finds this file.

The command line lives in netlib.ARGS, set once by parse_args() in a script's __main__ before any
helper runs a binary; read it as `netlib.ARGS` (a `from netlib import ARGS` would copy the None it
holds at import time). Nothing here is thread-safe: the tests drive their processes from one
thread.

Errors: a CLI command whose output the caller needs raises AssertionError when it fails (a test
failure, with the command's output); a set-up step that cannot go on (keygen, model synthesis, a
node that does not start or register) raises RuntimeError with the end of the node's log. The
assert_* helpers fail the given unittest.TestCase like its own assertions.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

ARGS = None  # the parsed command line, set by parse_args()
START_TIMEOUT_S = 120


def parse_args(add_arguments=None):
    """--node and --cli (plus what `add_arguments(parser)` adds) into netlib.ARGS; returns the argv
    to hand to unittest.main (this script's name and the options argparse did not know)."""
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--node", required=True)
    parser.add_argument("--cli", required=True)
    if add_arguments is not None:
        add_arguments(parser)
    ARGS, rest = parser.parse_known_args()
    return [sys.argv[0]] + rest


# --- processes and the CLI ---

def run(cmd, timeout=120, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


def cli(*args, timeout=120):
    return run([ARGS.cli, *[str(a) for a in args]], timeout=timeout)


def cli_ok(*args, timeout=120):
    """atoma-cli's stdout; AssertionError with its output when it fails."""
    r = cli(*args, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"atoma-cli {' '.join(map(str, args))} failed ({r.returncode}):\n"
                             f"{r.stdout}\n{r.stderr}")
    return r.stdout


def cli_json(*args, timeout=120):
    """atoma-cli's stdout parsed as JSON (the caller passes --json where the command needs it)."""
    return json.loads(cli_ok(*args, timeout=timeout))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path):
    """A new key written to `path`; returns its address."""
    r = cli("keygen", "--out", path)
    if r.returncode != 0:
        raise RuntimeError(f"atoma-cli keygen failed: {r.stderr}")
    return r.stdout.strip()


def synth_tiny_model(out_dir):
    """The tiny test model (seed 1: every test of every script sees the same weights)."""
    r = run([ARGS.cli, "model", "synth", "--preset", "tiny", "--seed", "1", "--out", out_dir])
    if r.returncode != 0:
        raise RuntimeError(f"atoma-cli model synth failed: {r.stderr}")
    return out_dir


def remove_tmp(tmp):
    """Removes a test's temporary folder, unless ATOMA_KEEP_TMP=1 asks to keep it for a look."""
    if os.environ.get("ATOMA_KEEP_TMP") != "1":
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept {tmp}", file=sys.stderr)


# --- atoma-node processes ---

class NodeProcess:
    """One atoma-node process with its config (node.yaml, written by the subclass), ports file and
    log in `workdir`. The node writes the ports file once it serves, so that file's existence is
    what wait_started() waits for. `name` names the node in errors."""

    def __init__(self, workdir, name):
        self.workdir = workdir
        self.name = name
        os.makedirs(workdir, exist_ok=True)
        self.config = os.path.join(workdir, "node.yaml")
        self.ports_file = os.path.join(workdir, "ports.json")
        self.log_path = os.path.join(workdir, "node.log")
        self.proc = None
        self.log = None

    def start(self, *extra_args):
        if os.path.exists(self.ports_file):
            os.remove(self.ports_file)  # a SIGKILLed node leaves it behind
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [ARGS.node, "--config", self.config, *extra_args, "--ports-file", self.ports_file],
            stdout=self.log, stderr=subprocess.STDOUT)

    def wait_started(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while not os.path.exists(self.ports_file):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} during "
                                   f"start-up:\n{self.read_log()[-4000:]}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"{self.name} did not write {self.ports_file} in "
                                   f"{START_TIMEOUT_S} s:\n{self.read_log()[-4000:]}")
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def freeze(self):
        """SIGSTOP: the node keeps its sockets but answers nothing, like a hung machine."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)

    def terminate(self, timeout=60, signal_first=True):
        """SIGTERM (unless the caller sent it already: a second one means "exit at once"), then
        the exit code (None, after a kill, if the process does not exit in time)."""
        if self.proc is None:
            return None
        if signal_first and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            if self.log and not self.log.closed:
                self.log.close()

    def restart(self):
        self.terminate()
        self.start()
        self.wait_started()

    def read_log(self):
        if self.log and not self.log.closed:
            self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()


def node_config(key, workdir, listen, model_dir, log_level, drain_deadline_ms, api_lines=()):
    """The config sections every test node has (the tiny model, one engine thread); the caller
    appends its own (ledger, consensus, metrics). `api_lines` go into the `api:` section."""
    api = "".join(f"  {line}\n" for line in api_lines)
    return f"""node:
  key_file: {key}
  data_dir: {os.path.join(workdir, 'data')}
api:
  listen: {listen}
{api}log:
  level: {log_level}
engine:
  threads: 1
models:
  - id: tiny
    path: {model_dir}
shutdown:
  drain_deadline_ms: {drain_deadline_ms}
"""


class NetworkNode(NodeProcess):
    """A member of a test network: its own key, a fixed port (so a restart keeps its endpoint),
    registration at start and short consensus timeouts, on the ledger that `ledger_lines` (the
    lines of the config's `ledger:` section) names. `settlement` = (batch size, max delay ms) of
    its settlement outbox; default: batches of 64 sent 200 ms after the oldest certificate."""

    def __init__(self, workdir, index, model_dir, ledger_lines, settlement=(64, 200)):
        super().__init__(workdir, f"node {index}")
        self.index = index
        self.key = os.path.join(workdir, "node.key")
        self.address = keygen(self.key)
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        ledger = "".join(f"  {line}\n" for line in ledger_lines)
        with open(self.config, "w") as f:
            f.write(node_config(self.key, workdir, self.addr, model_dir, "debug", 10000))
            f.write(f"""ledger:
{ledger}consensus:
  register: true
  member_timeout_ms: 3000
  reattest_timeout_ms: 1000
  referee_timeout_ms: 5000
  salt_timeout_ms: 3000
  peer_call_timeout_ms: 2000
  settlement_batch_size: {settlement[0]}
  settlement_max_delay_ms: {settlement[1]}
""")


# --- networks ---

def wait_registered(nodes, list_nodes):
    """Waits until every node has registered an echelon; `list_nodes()` is the ledger's node list
    (`atoma-cli ledger nodes --json`). Returns that list by lower-case address."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        listed = {n["address"].lower(): n for n in list_nodes()}
        missing = [node.index for node in nodes
                   if not listed.get(node.address.lower(), {}).get("echelons")]
        if not missing:
            return listed
        if time.monotonic() > deadline:
            raise RuntimeError(f"nodes {missing} did not register an echelon in "
                               f"{START_TIMEOUT_S} s; log of node {missing[0]}:\n"
                               f"{nodes[missing[0]].read_log()[-4000:]}")
        time.sleep(0.2)


def by_address(nodes, address):
    for node in nodes:
        if node.address.lower() == address.lower():
            return node
    raise AssertionError(f"{address} is none of the network's nodes")


def node_logs(nodes):
    """The end of every node's log, for a failed assertion's message."""
    return "\n".join(f"===== node {n.index} ({n.address}) =====\n{n.read_log()[-6000:]}"
                     for n in nodes)


def generate_args(entry, client_key, ledger_args, *extra, security="sampling:3"):
    """`atoma-cli generate` of a verified request through `entry` on the ledger `ledger_args`
    names (--ledger-db FILE, or --rpc-url URL --contract ADDRESS)."""
    return [ARGS.cli, "generate", "--addr", entry.addr, "--model", "tiny", "--security", security,
            "--client-key", client_key, *ledger_args, "--timeout", "120",
            *[str(e) for e in extra]]


def fee_of(out, fee_per_token):
    """What the client pays for a `generate --json` result: every token, prompt and output."""
    usage = out["result"]["usage"]
    return fee_per_token * (int(usage["prompt_tokens"]) + int(usage["completion_tokens"]))


# --- checks a network test makes (`test` is the unittest.TestCase) ---

def generate_json(test, args, explain):
    """Runs `atoma-cli generate --json` (`args`, from generate_args) and returns its JSON; fails
    the test, with the nodes' logs (`explain()`), when the CLI does not exit 0."""
    r = run(args, timeout=180)
    test.assertEqual(r.returncode, 0, f"{r.stdout}\n{r.stderr}\n{explain()}")
    return json.loads(r.stdout)


def assert_verify_checks_output(test, ledger_args, cert):
    """`atoma-cli verify` accepts the certificate that --save-cert wrote to `cert` with its output
    (cert + ".output"), and refuses it with one token changed."""
    v = cli("verify", *ledger_args, cert, "--output", cert + ".output")
    test.assertEqual(v.returncode, 0, v.stdout + v.stderr)
    test.assertIn("verified", v.stdout)
    with open(cert + ".output") as f:
        output = json.load(f)
    output["token_ids"][0] = (output["token_ids"][0] + 1) % 100
    bad = cert + ".bad-output"
    with open(bad, "w") as f:
        json.dump(output, f)
    v = cli("verify", *ledger_args, cert, "--output", bad)
    test.assertEqual(v.returncode, 1, v.stdout + v.stderr)


def assert_fee_shared(test, nodes, reward, rewards_before, paid, fee):
    """Exactly the nodes in `paid` (addresses) gained reward since `rewards_before` (by lower-case
    address), and together they gained `fee`. `reward(address)` reads a balance."""
    paid = {a.lower() for a in paid}
    gained = 0
    for node in nodes:
        delta = reward(node.address) - rewards_before[node.address.lower()]
        if node.address.lower() in paid:
            test.assertGreater(delta, 0, node.address)
        else:
            test.assertEqual(delta, 0, node.address)
        gained += delta
    test.assertEqual(gained, fee)
