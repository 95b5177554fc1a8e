#!/usr/bin/env python3
"""Functional tests of the real atoma-node binary: start it on port 0 with a synthesized tiny
model and a temporary config, then drive it with `atoma-cli generate` / `atoma-cli models`, the
Python example (examples/python/generate.py) and raw gRPC stubs; stop it with SIGTERM and check it
exits 0, also while a generation is running.

    /usr/bin/python3 tests/functional/node_test.py --node BUILD/src/atoma-node \
        --cli BUILD/src/atoma-cli --source-dir .
"""

import json
import os
import re
import signal
import sys
import tempfile
import time
import unittest

import netlib
from netlib import cli, run

USAGE_RE = re.compile(r"\[(\w+)\] prompt tokens: (\d+), completion tokens: (\d+), "
                      r"time to first token: ([\d.]+) ms, ([\d.]+) tokens/s")


class Node(netlib.NodeProcess):
    """One atoma-node process on a free port (port 0: the node picks it and writes it to its ports
    file), with its own key, config and log; started and serving when the constructor returns."""

    def __init__(self, workdir, model_dir, drain_deadline_ms=30000):
        super().__init__(workdir, "atoma-node")
        key = os.path.join(workdir, "node.key")
        netlib.keygen(key)
        # The operator's admin token: Admin.Drain needs it.
        self.admin_token_file = os.path.join(workdir, "admin.token")
        fd = os.open(self.admin_token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (os.urandom(16).hex() + "\n").encode())
        os.close(fd)
        with open(self.config, "w") as f:
            f.write(netlib.node_config(key, workdir, "127.0.0.1:0", model_dir, "info",
                                       drain_deadline_ms,
                                       [f"admin_token_file: {self.admin_token_file}"]))
            f.write("metrics:\n  listen: 127.0.0.1:0\n")
            # HTTPS with a throwaway CA (the node's certificate names 127.0.0.1).
            self.http_ca = make_test_certs(os.path.join(workdir, "pki"))
            f.write("http:\n  listen: 127.0.0.1:0\n"
                    f"  tls_cert_file: {os.path.join(workdir, 'pki', 'node.pem')}\n"
                    f"  tls_key_file: {os.path.join(workdir, 'pki', 'node.key')}\n")
        self.start("--listen", "127.0.0.1:0")
        self.wait_started()
        with open(self.ports_file) as f:
            ports = json.load(f)
        self.port = ports["grpc"]
        self.metrics_port = ports.get("metrics")
        self.http_port = ports.get("http")
        self.addr = f"127.0.0.1:{self.port}"


def make_test_certs(folder):
    """A CA and a certificate for IP 127.0.0.1 signed by it (EC P-256, one day), made with the
    openssl command-line tool in `folder`; returns the CA certificate's path."""
    os.makedirs(folder)
    with open(os.path.join(folder, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for cmd in (["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
                 "-subj", "/CN=atoma-functional-ca"],
                ["req", *ec, "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=node"],
                ["x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "node.pem", "-days", "1", "-extfile", "ext.cnf"]):
        r = run(["openssl", *cmd], cwd=folder)
        if r.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(cmd)} failed:\n{r.stderr}")
    return os.path.join(folder, "ca.pem")


def load_stubs():
    sys.path.insert(0, os.path.join(netlib.ARGS.source_dir, "examples", "python"))
    import generate  # the example's own stub generation
    return generate.import_stubs(None)


class NodeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="atoma-functional-")
        cls.model_dir = netlib.synth_tiny_model(os.path.join(cls.tmp, "models", "tiny"))
        cls.node = Node(os.path.join(cls.tmp, "node0"), cls.model_dir)
        cls.pb, cls.pb_grpc = load_stubs()

    @classmethod
    def tearDownClass(cls):
        if cls.node.proc.poll() is None:
            cls.node.terminate()
        netlib.remove_tmp(cls.tmp)

    def generate_cli(self, *args):
        return cli("generate", "--addr", self.node.addr, "--model", "tiny", *args)

    def python_example(self, *args):
        script = os.path.join(netlib.ARGS.source_dir, "examples", "python", "generate.py")
        return run(["/usr/bin/python3", script, "--addr", self.node.addr, *args])

    def check_usage(self, stderr, max_tokens):
        m = USAGE_RE.search(stderr)
        self.assertIsNotNone(m, f"no usage line in stderr: {stderr!r}")
        finish, prompt, completion, ttft, tps = m.groups()
        self.assertIn(finish, ("length", "stop"))
        self.assertGreater(int(prompt), 0)
        self.assertGreater(int(completion), 0)
        self.assertLessEqual(int(completion), max_tokens)
        self.assertGreater(float(ttft), 0.0)
        return finish, int(completion)

    def test_cli_generate_streams_text_and_usage(self):
        r = self.generate_cli("--max-tokens", "12", "Hello world")
        self.assertEqual(r.returncode, 0, r.stderr)
        finish, completion = self.check_usage(r.stderr, 12)
        if finish == "length":
            self.assertEqual(completion, 12)
        # --json gives the same greedy completion, with its ids and usage.
        j = self.generate_cli("--max-tokens", "12", "--json", "Hello world")
        self.assertEqual(j.returncode, 0, j.stderr)
        out = json.loads(j.stdout)
        self.assertEqual(len(out["result"]["output_ids"]), completion)
        self.assertEqual(out["result"]["usage"]["completion_tokens"], completion)
        self.assertEqual(out["result"]["model"], "tiny")
        streamed = r.stdout[:-1] if r.stdout.endswith("\n") and not out["text"].endswith("\n") \
            else r.stdout
        self.assertEqual(streamed, out["text"])

    def test_python_example_matches_cli(self):
        cli = self.generate_cli("--max-tokens", "10", "--seed", "3", "Once upon a time")
        self.assertEqual(cli.returncode, 0, cli.stderr)
        py = self.python_example("--model", "tiny", "--max-tokens", "10", "--seed", "3",
                                 "Once upon a time")
        self.assertEqual(py.returncode, 0, py.stderr)
        self.check_usage(py.stderr, 10)
        # Greedy decoding on one node is deterministic: both clients see the same text.
        self.assertEqual(py.stdout, cli.stdout)
        models = self.python_example("--list-models")
        self.assertEqual(models.returncode, 0, models.stderr)
        self.assertTrue(models.stdout.startswith("tiny\t"), models.stdout)

    def test_sampled_generation_is_reproducible_with_a_seed(self):
        args = ["--max-tokens", "16", "--temperature", "0.9", "--top-p", "0.95", "--seed", "7",
                "--json", "The"]
        a = self.generate_cli(*args)
        b = self.generate_cli(*args)
        self.assertEqual(a.returncode, 0, a.stderr)
        self.assertEqual(json.loads(a.stdout)["result"]["output_ids"],
                         json.loads(b.stdout)["result"]["output_ids"])

    def test_stop_string_and_token_limit(self):
        base = self.generate_cli("--max-tokens", "24", "--json", "Stop here")
        self.assertEqual(base.returncode, 0, base.stderr)
        text = json.loads(base.stdout)["text"]
        if len(text) < 8:
            self.skipTest(f"greedy completion too short to pick a stop string: {text!r}")
        stop = text[4:7]
        cut = self.generate_cli("--max-tokens", "24", "--json", "--stop", stop, "Stop here")
        self.assertEqual(cut.returncode, 0, cut.stderr)
        out = json.loads(cut.stdout)
        self.assertEqual(out["text"], text[:text.index(stop)])
        self.assertEqual(out["result"]["finish_reason"], "FINISH_REASON_STOP")
        # max_tokens above the node's engine.max_new_tokens is refused by the engine, naming it.
        big = self.generate_cli("--max-tokens", "100000", "x")
        self.assertEqual(big.returncode, 1)
        self.assertIn("INVALID_ARGUMENT", big.stderr)
        self.assertIn("max_tokens", big.stderr)

    def test_models_lists_the_model(self):
        r = cli("models", "--addr", self.node.addr, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        models = json.loads(r.stdout)["models"]
        self.assertEqual([m["id"] for m in models], ["tiny"])
        self.assertEqual(len(models[0]["digest_hex"]), 64)
        self.assertEqual(models[0]["vocab_size"], 512)

    def test_fingerprint_is_the_same_across_restarts(self):
        # A second process on the same model folder measures the canary again at start-up
        # (DESIGN §4.2): same digest, same fingerprint, bit for bit.
        def listing(addr):
            r = cli("models", "--addr", addr, "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            return json.loads(r.stdout)["models"][0]

        first = listing(self.node.addr)
        self.assertEqual(len(first["fingerprint_hex"]), 64, first)
        node = Node(os.path.join(self.tmp, "node-restart"), self.model_dir)
        try:
            second = listing(node.addr)
        finally:
            self.assertEqual(node.terminate(), 0, node.read_log())
        self.assertEqual(second["digest_hex"], first["digest_hex"])
        self.assertEqual(second["fingerprint_hex"], first["fingerprint_hex"])

    def test_chat_follows_the_models_chat_format(self):
        r = cli("models", "--addr", self.node.addr, "--json")
        chat_format = json.loads(r.stdout)["models"][0]["chat_format"]
        chat = self.generate_cli("--max-tokens", "4", "--system", "Be brief.", "--chat", "Hi")
        if chat_format:
            self.assertEqual(chat.returncode, 0, chat.stderr)
            self.check_usage(chat.stderr, 4)
        else:
            self.assertEqual(chat.returncode, 1)
            self.assertIn("FAILED_PRECONDITION", chat.stderr)

    def scrape(self):
        """The node's /metrics as {(name, frozenset(labels)): value}."""
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.node.metrics_port}/metrics",
                                    timeout=10) as r:
            self.assertEqual(r.status, 200)
            text = r.read().decode()
        series = {}
        for line in text.splitlines():
            m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ([-+0-9.eEinfNa]+)$', line)
            if not m:
                continue
            labels = frozenset(re.findall(r'([a-zA-Z_]+)="([^"]*)"', m.group(2) or ""))
            series[(m.group(1), labels)] = float(m.group(3))
        return series

    def test_metrics_count_what_was_served(self):
        self.assertIsNotNone(self.node.metrics_port, "ports file has no metrics port")
        ok = ("atoma_requests_total",
              frozenset({("model", "tiny"), ("outcome", "ok"), ("security", "none")}))
        gen = ("atoma_generation_tokens_total", frozenset({("model", "tiny")}))
        ttft = ("atoma_time_to_first_token_seconds_count", frozenset({("model", "tiny")}))
        before = self.scrape()
        for prompt in ("one", "two"):
            r = self.generate_cli("--max-tokens", "5", "--ignore-eos", prompt)
            self.assertEqual(r.returncode, 0, r.stderr)
        # The OpenAI-compatible HTTP API (HTTPS here) is metered the same way.
        import ssl
        import urllib.error
        import urllib.request
        body = json.dumps({"model": "tiny", "prompt": "three", "max_tokens": 5}).encode()
        url = f"127.0.0.1:{self.node.http_port}/v1/completions"
        with self.assertRaises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(urllib.request.Request(f"http://{url}", data=body), timeout=10)
        request = urllib.request.Request(f"https://{url}", data=body,
                                         headers={"Content-Type": "application/json"})
        context = ssl.create_default_context(cafile=self.node.http_ca)
        with urllib.request.urlopen(request, timeout=60, context=context) as r:
            self.assertEqual(r.status, 200)
            http_tokens = json.loads(r.read())["usage"]["completion_tokens"]
        self.assertGreater(http_tokens, 0)
        after = self.scrape()
        self.assertEqual(after.get(ok, 0) - before.get(ok, 0), 3)
        self.assertEqual(after.get(gen, 0) - before.get(gen, 0), 10 + http_tokens)
        self.assertEqual(after.get(ttft, 0) - before.get(ttft, 0), 3)
        running = ("atoma_requests_running", frozenset({("model", "tiny")}))
        self.assertEqual(after.get(running), 0)

    def test_errors_have_codes_and_field_names(self):
        r = cli("generate", "--addr", self.node.addr, "--model", "nope", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn("NOT_FOUND", r.stderr)
        py = self.python_example("--model", "tiny", "--max-tokens", "0", "x")
        self.assertEqual(py.returncode, 1)
        self.assertIn("INVALID_ARGUMENT", py.stderr)
        self.assertIn("max_tokens", py.stderr)
        py = self.python_example("--model", "tiny", "--top-p", "1.5", "x")
        self.assertIn("sampling.top_p", py.stderr)
        unreachable = cli("generate", "--addr", "127.0.0.1:1", "--model", "tiny",
                               "--timeout", "5", "x")
        self.assertEqual(unreachable.returncode, 1)
        self.assertIn("UNAVAILABLE", unreachable.stderr)

    def test_grpc_stream_carries_ids_logprobs_and_final(self):
        import grpc
        stub = self.pb_grpc.InferenceStub(grpc.insecure_channel(self.node.addr))
        request = self.pb.GenerateRequest(model="tiny", text="abc", max_tokens=6,
                                          ignore_eos=True)
        request.sampling.top_logprobs = 2
        chunks, final = [], None
        for message in stub.Generate(request, timeout=60):
            if message.WhichOneof("event") == "chunk":
                chunks.append(message.chunk)
            else:
                final = message.final
        self.assertIsNotNone(final)
        self.assertEqual(final.finish_reason, self.pb.FINISH_REASON_LENGTH)
        ids = [i for c in chunks for i in c.token_ids]
        self.assertEqual(ids, list(final.output_ids))
        self.assertEqual(len(ids), 6)
        for c in chunks:
            for t in c.tokens:
                self.assertLessEqual(t.logprob, 0.0)
                self.assertEqual(len(t.top_logprobs), 2)
                # Greedy: the chosen token is the most likely one.
                self.assertEqual(t.top_logprobs[0].token_id, t.token_id)
        tokenized = stub.Tokenize(self.pb.TokenizeRequest(model="tiny", text="abc"), timeout=30)
        self.assertEqual(final.usage.prompt_tokens, len(tokenized.ids))

    def test_sighup_rotates_the_https_certificate(self):
        # A certificate from another CA replaces the node's on SIGHUP: new connections get it.
        import shutil
        import ssl
        import urllib.error
        import urllib.request
        workdir = os.path.dirname(self.node.config)
        new_ca = make_test_certs(os.path.join(workdir, "pki-next"))
        for name in ("node.pem", "node.key"):
            shutil.copy(os.path.join(workdir, "pki-next", name), os.path.join(workdir, "pki", name))
        self.node.proc.send_signal(signal.SIGHUP)
        url = f"https://127.0.0.1:{self.node.http_port}/health"
        deadline = time.monotonic() + 30
        while True:
            try:
                context = ssl.create_default_context(cafile=new_ca)
                with urllib.request.urlopen(url, timeout=10, context=context) as r:
                    self.assertEqual(r.status, 200)
                break
            except urllib.error.URLError:
                self.assertLess(time.monotonic(), deadline, self.node.read_log()[-2000:])
                time.sleep(0.05)
        with self.assertRaises(urllib.error.URLError):
            urllib.request.urlopen(url, timeout=10,
                                   context=ssl.create_default_context(cafile=self.node.http_ca))
        self.node.http_ca = new_ca
        self.assertIn("SIGHUP: HTTPS certificate", self.node.read_log())

    def test_oversized_and_non_utf8_prompts_are_refused(self):
        import grpc
        channel = grpc.insecure_channel(self.node.addr)
        stub = self.pb_grpc.InferenceStub(channel)
        big = self.pb.GenerateRequest(model="tiny", text="x" * (300 << 10), max_tokens=1)
        with self.assertRaises(grpc.RpcError) as e:
            list(stub.Generate(big, timeout=30))
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("text", e.exception.details())
        self.assertIn("limit", e.exception.details())
        # Python protobuf cannot put invalid UTF-8 in a string field; send the bytes by hand:
        # model = "tiny" (field 1), text = FF FE (field 2).
        raw = channel.unary_stream("/atoma.v1.Inference/Generate",
                                   request_serializer=lambda b: b,
                                   response_deserializer=self.pb.GenerateResponse.FromString)
        with self.assertRaises(grpc.RpcError) as e:
            list(raw(b"\x0a\x04tiny\x12\x02\xff\xfe", timeout=30))
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(e.exception.details(), "text: not valid UTF-8")

    def test_sigterm_during_generation_exits_cleanly(self):
        # A node of its own, with no drain time, so the running generation is cut at once (the
        # tiny model would otherwise finish 2000 tokens within a short deadline).
        import grpc
        node = Node(os.path.join(self.tmp, "node-sigterm"), self.model_dir, drain_deadline_ms=0)
        try:
            stub = self.pb_grpc.InferenceStub(grpc.insecure_channel(node.addr))
            request = self.pb.GenerateRequest(model="tiny", text="go", max_tokens=2000,
                                              ignore_eos=True)
            stream = stub.Generate(request, timeout=120)
            first = next(stream)
            self.assertEqual(first.WhichOneof("event"), "chunk")
            node.proc.send_signal(signal.SIGTERM)
            final, status = None, None
            try:
                for message in stream:
                    if message.WhichOneof("event") == "final":
                        final = message.final
            except grpc.RpcError as e:
                status = e.code()
            print(f"\n  SIGTERM mid-generation: final={final.finish_reason if final else None} "
                  f"status={status}", file=sys.stderr)
            # Either the generation finished or was cancelled with a final message, or the call
            # ended with a clean status; never a hang or a broken connection.
            if final is None:
                self.assertIn(status, (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE),
                              node.read_log())
            else:
                self.assertEqual(final.finish_reason, self.pb.FINISH_REASON_CANCELLED)
                self.assertEqual(final.usage.completion_tokens, len(final.output_ids))
                self.assertLess(len(final.output_ids), 2000)
            code = node.terminate(timeout=60, signal_first=False)
            self.assertEqual(code, 0, node.read_log())
        finally:
            if node.proc.poll() is None:
                node.proc.kill()

    def test_zz_drain_then_sigterm_exits_zero(self):
        # Runs last (unittest orders tests by name): Admin.Status and Admin.Drain on the real node,
        # then the shared node stops cleanly.
        import grpc
        from atoma.v1 import admin_pb2, admin_pb2_grpc
        channel = grpc.insecure_channel(self.node.addr)
        admin = admin_pb2_grpc.AdminStub(channel)
        status = admin.Status(admin_pb2.StatusRequest(), timeout=30)
        self.assertTrue(status.node_address.startswith("0x"), status)
        self.assertEqual(len(status.node_address), 42)
        self.assertEqual([m.info.id for m in status.models], ["tiny"])
        self.assertGreater(status.models[0].requests_finished, 0)
        self.assertFalse(status.draining)
        # The node has an admin token: Drain without it (or with another) is refused.
        for metadata in ([], [("authorization", "Bearer " + "0" * 32)]):
            with self.assertRaises(grpc.RpcError) as refused:
                admin.Drain(admin_pb2.DrainRequest(), timeout=30, metadata=metadata)
            self.assertEqual(refused.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        self.assertFalse(admin.Status(admin_pb2.StatusRequest(), timeout=30).draining)
        r = cli("drain", "--addr", self.node.addr, "--admin-token-file",
                self.node.admin_token_file, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(json.loads(r.stdout)["draining"])
        self.assertTrue(admin.Status(admin_pb2.StatusRequest(), timeout=30).draining)
        stub = self.pb_grpc.InferenceStub(channel)
        with self.assertRaises(grpc.RpcError) as refused:
            list(stub.Generate(self.pb.GenerateRequest(model="tiny", text="x", max_tokens=2),
                               timeout=30))
        self.assertEqual(refused.exception.code(), grpc.StatusCode.UNAVAILABLE)
        code = self.node.terminate(timeout=60)
        self.assertEqual(code, 0, self.node.read_log())
        self.assertFalse(os.path.exists(self.node.ports_file), "ports file left behind")


if __name__ == "__main__":
    unittest.main(argv=netlib.parse_args(
        lambda parser: parser.add_argument("--source-dir", required=True)), verbosity=2)
