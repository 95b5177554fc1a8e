// Functional test of the OpenAI-compatible HTTP API with the official `openai` npm client: starts
// the real atoma-node (synthesized tiny model, http.listen on a free port), then chat
// (non-streaming and streaming), completions, and an unknown model (404 → NotFoundError).
//
// Then verified requests over HTTP (docs/http.md): a 3-node network on one embedded ledger (as
// tests/functional/consensus_test.py sets it up), node 0 with http.listen. `atoma-cli authorize`
// signs the body; the official client sends it with the extra body fields atoma_security
// "sampling:3" and atoma_client; the response's atoma_certificate is checked with `atoma-cli
// verify` against the ledger and the request settles; streaming carries the certificate in the
// finish chunk; refusals come back as 403 / 409 / 402 / 400 / 501. The request id `authorize`
// signs equals the one `atoma-cli generate --security sampling:3 --dry-run` (the gRPC client)
// computes for the same input and nonce. Cross-validation "cross_validation:1:1" (always checked)
// over the official client's stream: the atoma_provisional chunk, the salt `authorize` drew
// revealed with a fetch to /v1/atoma/reveal_salt, the 0x02 certificate in the finish chunk checked
// with `atoma-cli verify`.
//
// The first node runs with http.api_keys_file: the official client with the right apiKey works,
// a wrong one gets 401 (AuthenticationError), GET /health needs none; a keys file others may
// read stops the node at start.
//
// Usage: node openai_test.mjs --node PATH --cli PATH --source-dir DIR
// The openai package comes from the repository's package.json (npm ci in the source dir).
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import assert from "node:assert/strict";

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) throw new Error(`missing ${name}`);
  return process.argv[i + 1];
}
const NODE = arg("--node");
const CLI = arg("--cli");
const SOURCE_DIR = path.resolve(arg("--source-dir"));

// Resolve `openai` from the source tree's node_modules, wherever this script runs from.
const require = createRequire(path.join(SOURCE_DIR, "package.json"));
const { default: OpenAI, NotFoundError, BadRequestError, PermissionDeniedError, ConflictError,
        AuthenticationError, APIError } = await import(require.resolve("openai"));

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 120000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}
function runJson(cmd, args) { return JSON.parse(run(cmd, args)); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "atoma-openai-"));
const modelDir = path.join(tmp, "models", "tiny");
run(CLI, ["model", "synth", "--preset", "tiny", "--seed", "1", "--out", modelDir]);
const key = path.join(tmp, "node.key");
run(CLI, ["keygen", "--out", key]);
// API keys for the first node's HTTP port (owner-only, as the node requires).
const API_KEY = "sk-atoma-test-1";
const apiKeys = path.join(tmp, "http_keys");
fs.writeFileSync(apiKeys, `# test clients\n${API_KEY}\nsk-atoma-test-2\n`, { mode: 0o600 });
fs.chmodSync(apiKeys, 0o600);
const config = path.join(tmp, "node.yaml");
fs.writeFileSync(config, `node:
  key_file: ${key}
  data_dir: ${path.join(tmp, "data")}
api:
  listen: 127.0.0.1:0
log:
  level: info
engine:
  threads: 1
models:
  - id: tiny
    path: ${modelDir}
http:
  listen: 127.0.0.1:0
  api_keys_file: ${apiKeys}
`);
const portsFile = path.join(tmp, "ports.json");
const logPath = path.join(tmp, "node.log");
const log = fs.openSync(logPath, "w");
const node = spawn(NODE, ["--config", config, "--ports-file", portsFile],
                   { stdio: ["ignore", log, log] });
let exited = null;
node.on("exit", (code) => { exited = code; });

function nodeLog() { return fs.readFileSync(logPath, "utf8"); }

async function waitForPorts() {
  const deadline = Date.now() + 120000;
  while (!fs.existsSync(portsFile)) {
    if (exited !== null) throw new Error(`atoma-node exited with ${exited}:\n${nodeLog()}`);
    if (Date.now() > deadline) throw new Error(`no ports file:\n${nodeLog()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return JSON.parse(fs.readFileSync(portsFile, "utf8"));
}

let failed = 0;
async function test(name, fn) {
  try {
    await fn();
    console.log(`ok ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
}

// --- verified requests over HTTP on a 3-node network -------------------------------------------

const network = [];  // { proc, exited, log, address, dir }

function networkLogs() {
  return network.map((n, i) => `===== node ${i} =====\n` +
                               fs.readFileSync(n.log, "utf8").slice(-6000)).join("\n");
}

async function stopNetwork() {
  for (const n of network) if (n.exited === null) n.proc.kill("SIGTERM");
  const deadline = Date.now() + 60000;
  while (network.some((n) => n.exited === null) && Date.now() < deadline) await sleep(50);
  for (const n of network) {
    if (n.exited === null) n.proc.kill("SIGKILL");
    else if (n.exited !== 0) {
      failed++;
      console.log(`FAIL network node ${n.address} exited with ${n.exited}`);
    }
  }
}

async function startNetwork(ledger) {
  for (let i = 0; i < 3; i++) {
    const dir = path.join(tmp, `node${i}`);
    fs.mkdirSync(dir, { recursive: true });
    const nodeKey = path.join(dir, "node.key");
    const address = run(CLI, ["keygen", "--out", nodeKey]).trim();
    const cfg = path.join(dir, "node.yaml");
    fs.writeFileSync(cfg, `node:
  key_file: ${nodeKey}
  data_dir: ${path.join(dir, "data")}
api:
  listen: 127.0.0.1:0
log:
  level: debug
engine:
  threads: 1
models:
  - id: tiny
    path: ${modelDir}
shutdown:
  drain_deadline_ms: 10000
ledger:
  backend: embedded
  path: ${ledger}
consensus:
  register: true
  member_timeout_ms: 3000
  reattest_timeout_ms: 1000
  referee_timeout_ms: 5000
  peer_call_timeout_ms: 2000
  settlement_max_delay_ms: 200
${i === 0 ? "http:\n  listen: 127.0.0.1:0\n" : ""}`);
    const log = path.join(dir, "node.log");
    const fd = fs.openSync(log, "w");
    const ports = path.join(dir, "ports.json");
    const proc = spawn(NODE, ["--config", cfg, "--ports-file", ports],
                       { stdio: ["ignore", fd, fd] });
    const n = { proc, exited: null, log, address, dir, ports };
    proc.on("exit", (code) => { n.exited = code; });
    network.push(n);
  }
  for (const n of network) {
    const deadline = Date.now() + 120000;
    while (!fs.existsSync(n.ports)) {
      if (n.exited !== null || Date.now() > deadline) {
        throw new Error(`network node did not start:\n${networkLogs()}`);
      }
      await sleep(50);
    }
    n.portsJson = JSON.parse(fs.readFileSync(n.ports, "utf8"));
  }
  // Each node registers its echelon at start.
  const deadline = Date.now() + 120000;
  while (true) {
    const listed = runJson(CLI, ["ledger", "--db", ledger, "nodes", "--json"]);
    const registered = new Set(listed.filter((x) => x.echelons && x.echelons.length)
                                     .map((x) => x.address.toLowerCase()));
    if (network.every((n) => registered.has(n.address.toLowerCase()))) break;
    if (Date.now() > deadline) throw new Error(`nodes did not register:\n${networkLogs()}`);
    await sleep(200);
  }
}

async function verifiedTests(hasChat) {
  const ledger = path.join(tmp, "ledger.db");
  runJson(CLI, ["ledger", "--db", ledger, "init", "--epoch-length-s", "3600", "--json"]);
  const clientKey = path.join(tmp, "client.key");
  const clientAddress = run(CLI, ["keygen", "--out", clientKey]).trim();
  await startNetwork(ledger);
  for (const n of network) {
    runJson(CLI, ["ledger", "--db", ledger, "stake", "--node", n.address, "--amount", "1000",
                  "--json"]);
  }
  runJson(CLI, ["ledger", "--db", ledger, "deposit", "--client", clientAddress, "--amount",
                "1000000", "--json"]);
  runJson(CLI, ["ledger", "--db", ledger, "advance-epoch", "--json"]);
  const entry = network[0];
  const grpcAddr = `127.0.0.1:${entry.portsJson.grpc}`;
  const verified = new OpenAI({ baseURL: `http://127.0.0.1:${entry.portsJson.http}/v1`,
                                apiKey: "dummy", maxRetries: 0, timeout: 120000 });

  // The body a client would send; `atoma-cli authorize` adds atoma_security and atoma_client.
  const body = hasChat
      ? { model: "tiny", max_tokens: 8, temperature: 0.8, top_p: 0.95, seed: 7,
          messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }] }
      : { model: "tiny", max_tokens: 8, temperature: 0.8, top_p: 0.95, seed: 7, prompt: "Hi" };
  const create = (params, opts) => hasChat ? verified.chat.completions.create(params, opts)
                                           : verified.completions.create(params, opts);
  let bodyCount = 0;
  const authorizeAs = (security, b, ...extra) => {
    const file = path.join(tmp, `body${bodyCount++}.json`);
    fs.writeFileSync(file, JSON.stringify(b));
    return runJson(CLI, ["authorize", "--addr", grpcAddr, "--client-key", clientKey,
                         "--ledger-db", ledger, "--security", security, ...extra, file]);
  };
  const authorize = (b, ...extra) => authorizeAs("sampling:3", b, ...extra);
  // `atoma-cli verify` of a response's certificate and output; returns its stdout.
  let certCount = 0;
  const verify = (certHex, output) => {
    const cert = path.join(tmp, `http${certCount++}.cert`);
    fs.writeFileSync(cert, Buffer.from(certHex.replace(/^0x/, ""), "hex"));
    fs.writeFileSync(`${cert}.output`, JSON.stringify(output));
    return run(CLI, ["verify", "--db", ledger, cert, "--output", `${cert}.output`]);
  };
  const waitSettled = async (requestId) => {
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      const s = runJson(CLI, ["ledger", "--db", ledger, "settlements", "--json"]);
      const found = s.filter((x) => x.request_id.toLowerCase() === requestId.toLowerCase());
      if (found.length) return found;
      await sleep(200);
    }
    return [];
  };

  await test("verified: authorize signs the gRPC client's request id", async () => {
    const auth = authorize(body, "--nonce", "4242");
    const prompt = hasChat ? ["--system", "Be brief.", "Hi"] : ["Hi"];
    const plan = runJson(CLI, [
        "generate", "--addr", grpcAddr, "--model", "tiny", "--security", "sampling:3",
        "--client-key", clientKey, "--ledger-db", ledger, "--max-tokens", "8",
        "--temperature", "0.8", "--top-p", "0.95", "--seed", "7", "--nonce", "4242",
        "--dry-run", "--json", ...prompt]);
    assert.equal(auth.request_id, plan.request_id);
    assert.equal(auth.atoma_client.max_fee, plan.max_fee);
  });

  let settledAuth = null;
  await test("verified: sampling:3 over HTTP is certified, verified and settled", async () => {
    const auth = authorize(body);
    const r = await create({ ...body, atoma_security: auth.atoma_security,
                             atoma_client: auth.atoma_client });
    assert.equal(r.atoma_request_id, auth.request_id);
    assert.match(r.atoma_certificate, /^0x[0-9a-f]+$/);
    assert.deepEqual(Object.keys(r.atoma_output).sort(), ["finish_reason", "token_ids"]);
    assert.equal(r.atoma_output.token_ids.length, r.usage.completion_tokens);
    assert.equal(r.atoma_output.finish_reason, r.choices[0].finish_reason);
    assert.equal(r.usage.prompt_tokens, auth.prompt_tokens);
    const out = verify(r.atoma_certificate, r.atoma_output);
    assert.match(out, /verified/);
    // One token changed: the certificate no longer matches.
    const bad = { ...r.atoma_output,
                  token_ids: [(r.atoma_output.token_ids[0] + 1) % 100,
                              ...r.atoma_output.token_ids.slice(1)] };
    assert.throws(() => verify(r.atoma_certificate, bad));
    const settled = await waitSettled(auth.request_id);
    assert.equal(settled.length, 1, `not settled once:\n${networkLogs()}`);
    assert.equal(settled[0].client.toLowerCase(), clientAddress.toLowerCase());
    settledAuth = auth;
  });

  await test("verified: streaming carries the certificate in the finish chunk", async () => {
    const auth = authorize(body);
    const stream = await create({ ...body, stream: true, atoma_security: auth.atoma_security,
                                  atoma_client: auth.atoma_client });
    let text = "";
    let finish = null;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      text += (hasChat ? choice?.delta?.content : choice?.text) ?? "";
      if (choice?.finish_reason) finish = chunk;
    }
    assert.ok(finish, "no finish chunk");
    assert.equal(finish.atoma_request_id, auth.request_id);
    assert.equal(finish.atoma_output.token_ids.length > 0, text.length > 0);
    assert.match(verify(finish.atoma_certificate, finish.atoma_output), /verified/);
    assert.equal((await waitSettled(auth.request_id)).length, 1);
  });

  await test("verified: cross_validation:1:1 streams a provisional result, then the certificate " +
             "after the salt reveal", async () => {
    const auth = authorizeAs("cross_validation:1:1", body);
    assert.match(auth.salt, /^0x[0-9a-f]{64}$/);
    assert.match(auth.atoma_client.salt_hash, /^0x[0-9a-f]{64}$/);
    const base = `http://127.0.0.1:${entry.portsJson.http}/v1`;
    const stream = await create({ ...body, stream: true, atoma_security: auth.atoma_security,
                                  atoma_client: auth.atoma_client });
    let provisional = null;
    let revealed = null;
    let finish = null;
    let text = "";
    for await (const chunk of stream) {
      if (chunk.atoma_provisional) {
        assert.equal(provisional, null, "a second provisional chunk");
        assert.deepEqual(chunk.choices, []);
        provisional = chunk.atoma_provisional;
        assert.equal(provisional.request_id, auth.request_id);
        assert.match(provisional.attestation, /^0x[0-9a-f]+$/);
        // The salt leaves the client only now, on another connection; the stream waits for it.
        const r = await fetch(`${base}/atoma/reveal_salt`, {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ request_id: provisional.request_id, salt: auth.salt }) });
        assert.equal(r.status, 200, await r.clone().text());
        revealed = await r.json();
        continue;
      }
      const choice = chunk.choices[0];
      text += (hasChat ? choice?.delta?.content : choice?.text) ?? "";
      if (choice?.finish_reason) finish = chunk;
    }
    assert.ok(provisional, "no atoma_provisional chunk");
    assert.deepEqual(revealed, { checked: true });  // p = 1: always checked
    assert.ok(finish, "no finish chunk");
    assert.equal(finish.atoma_request_id, auth.request_id);
    assert.match(finish.atoma_certificate, /^0x02[0-9a-f]+$/);  // the cross-validation form
    assert.deepEqual(finish.atoma_output, provisional.output);
    assert.equal(finish.atoma_output.token_ids.length > 0, text.length > 0);
    assert.match(verify(finish.atoma_certificate, finish.atoma_output), /verified/);
    // A second reveal: the round is over.
    const again = await fetch(`${base}/atoma/reveal_salt`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ request_id: auth.request_id, salt: auth.salt }) });
    assert.ok([404, 409].includes(again.status), `second reveal: ${again.status}`);
    assert.equal((await waitSettled(auth.request_id)).length, 1);
  });

  await test("verified: authorize --merge keeps the cross-validation salt out of the body",
             async () => {
    assert.throws(() => authorizeAs("cross_validation:1:1", body, "--merge"));
    const saltFile = path.join(tmp, "xv.salt");
    const merged = authorizeAs("cross_validation:1:1", body, "--merge", "--salt-out", saltFile);
    assert.equal(merged.salt, undefined);
    assert.equal(merged.model, "tiny");
    assert.match(merged.atoma_client.salt_hash, /^0x[0-9a-f]{64}$/);
    assert.match(fs.readFileSync(saltFile, "utf8"), /^0x[0-9a-f]{64}\n$/);
    assert.equal(fs.statSync(saltFile).mode & 0o077, 0);
  });

  await test("verified: refusals map to HTTP codes", async () => {
    const withAuth = (auth) => ({ ...body, atoma_security: auth.atoma_security,
                                  atoma_client: auth.atoma_client });
    // A signature over another request (one hex digit changed).
    const forged = authorize(body);
    const sig = forged.atoma_client.signature;
    forged.atoma_client.signature = sig.slice(0, 10) + (sig[10] === "0" ? "1" : "0") +
                                    sig.slice(11);
    await assert.rejects(create(withAuth(forged)),
                         (e) => e instanceof PermissionDeniedError && e.status === 403 &&
                                e.code === "invalid_client_signature");
    // Signed for an epoch that is not the ledger's current one.
    const current = runJson(CLI, ["ledger", "--db", ledger, "info", "--json"])
                        .current_epoch.number;
    const stale = authorize(body, "--epoch-for-test", String(current + 5));
    await assert.rejects(create(withAuth(stale)),
                         (e) => e instanceof ConflictError && e.code === "stale_epoch");
    // The nonce of a settled request.
    if (settledAuth) {
      await assert.rejects(create(withAuth(settledAuth)),
                           (e) => e instanceof ConflictError && e.code === "nonce_used");
    }
    // A max_fee below the worst case.
    const cheap = authorize(body, "--max-fee", "1");
    await assert.rejects(create(withAuth(cheap)),
                         (e) => e instanceof APIError && e.status === 402 &&
                                e.code === "max_fee_too_low");
    // Cross-validation needs a stream to carry the provisional result before the reveal.
    const xv = authorizeAs("cross_validation:0.5:2", body);
    await assert.rejects(create({ ...body, atoma_security: xv.atoma_security,
                                  atoma_client: xv.atoma_client }),
                         (e) => e instanceof BadRequestError && e.param === "stream");
    // max_tokens is part of what the client signs.
    const { max_tokens, ...unbounded } = withAuth(cheap);
    assert.equal(max_tokens, 8);
    await assert.rejects(create(unbounded),
                         (e) => e instanceof BadRequestError && e.param === "max_tokens");
  });
}

try {
  const ports = await waitForPorts();
  assert.ok(ports.http > 0, `ports file has no http port: ${JSON.stringify(ports)}`);
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${ports.http}/v1`, apiKey: API_KEY,
                              maxRetries: 0, timeout: 60000 });

  await test("API keys: a wrong key is a 401, /health needs none", async () => {
    const wrong = new OpenAI({ baseURL: `http://127.0.0.1:${ports.http}/v1`, apiKey: "sk-nope",
                               maxRetries: 0, timeout: 60000 });
    await assert.rejects(wrong.models.list(),
                         (e) => e instanceof AuthenticationError && e.status === 401 &&
                                e.code === "invalid_api_key");
    await assert.rejects(
        wrong.completions.create({ model: "tiny", prompt: "x", max_tokens: 1 }),
        (e) => e instanceof AuthenticationError && e.code === "invalid_api_key");
    const health = await fetch(`http://127.0.0.1:${ports.http}/health`);
    assert.equal(health.status, 200);
    // The second key of the file works too.
    const second = new OpenAI({ baseURL: `http://127.0.0.1:${ports.http}/v1`,
                                apiKey: "sk-atoma-test-2", maxRetries: 0, timeout: 60000 });
    assert.deepEqual((await second.models.list()).data.map((m) => m.id), ["tiny"]);
  });

  await test("API keys: a keys file others may read stops the node", async () => {
    const open = path.join(tmp, "open_keys");
    fs.writeFileSync(open, `${API_KEY}\n`);
    fs.chmodSync(open, 0o644);
    const cfg = path.join(tmp, "open.yaml");
    fs.writeFileSync(cfg, fs.readFileSync(config, "utf8")
                              .replace(`api_keys_file: ${apiKeys}`, `api_keys_file: ${open}`)
                              .replace(`data_dir: ${path.join(tmp, "data")}`,
                                       `data_dir: ${path.join(tmp, "data_open")}`));
    const r = spawnSync(NODE, ["--config", cfg], { encoding: "utf8", timeout: 120000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stdout + r.stderr, /http\.api_keys_file.*chmod 600/);
  });

  await test("API keys: SIGHUP re-reads the keys file; a bad file keeps the old keys", async () => {
    const keyed = (apiKey) => new OpenAI({ baseURL: `http://127.0.0.1:${ports.http}/v1`, apiKey,
                                           maxRetries: 0, timeout: 60000 });
    const works = async (apiKey) => {
      try {
        await keyed(apiKey).models.list();
        return true;
      } catch (e) {
        if (e instanceof AuthenticationError) return false;
        throw e;
      }
    };
    fs.writeFileSync(apiKeys, `${API_KEY}\nsk-atoma-rotated\n`, { mode: 0o600 });
    node.kill("SIGHUP");
    const deadline = Date.now() + 30000;
    while (!(await works("sk-atoma-rotated"))) {
      assert.ok(Date.now() < deadline, `the new key never worked:\n${nodeLog()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(await works("sk-atoma-test-2"), false, "a key no longer in the file still works");
    assert.equal(await works(API_KEY), true);
    // A file others may read is refused on reload too; the keys in force stay.
    fs.chmodSync(apiKeys, 0o644);
    node.kill("SIGHUP");
    const logged = Date.now() + 30000;
    while (!/http.api_keys_file: .*the previous one stays in force/.test(nodeLog())) {
      assert.ok(Date.now() < logged, `no reload error logged:\n${nodeLog()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    fs.chmodSync(apiKeys, 0o600);
    assert.equal(await works("sk-atoma-rotated"), true);
    assert.equal(exited, null, "SIGHUP stopped the node");
  });

  const models = await client.models.list();
  const hasChat = Boolean(
      JSON.parse(run(CLI, ["models", "--addr", `127.0.0.1:${ports.grpc}`, "--json"]))
          .models[0].chat_format);
  console.log(`model has a chat format: ${hasChat}`);

  await test("models", async () => {
    assert.deepEqual(models.data.map((m) => m.id), ["tiny"]);
  });

  await test("completions", async () => {
    const r = await client.completions.create({ model: "tiny", prompt: "Hello", max_tokens: 5,
                                                temperature: 0, seed: 3 });
    assert.equal(r.object, "text_completion");
    assert.equal(r.choices.length, 1);
    assert.equal(typeof r.choices[0].text, "string");
    assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
    assert.ok(r.usage.prompt_tokens > 0);
    assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 5);
    // Greedy and keyed by the request: the same request gives the same text.
    const again = await client.completions.create({ model: "tiny", prompt: "Hello",
                                                    max_tokens: 5, temperature: 0, seed: 3 });
    assert.equal(again.choices[0].text, r.choices[0].text);
  });

  const messages = [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }];
  await test("chat non-streaming", async () => {
    if (!hasChat) {
      await assert.rejects(client.chat.completions.create({ model: "tiny", messages }),
                           BadRequestError);
      return;
    }
    const r = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 6,
                                                     seed: 1 });
    assert.equal(r.object, "chat.completion");
    assert.equal(r.choices[0].message.role, "assistant");
    assert.equal(typeof r.choices[0].message.content, "string");
    assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  });

  await test("chat streaming", async () => {
    if (!hasChat) return;
    const full = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 6,
                                                        seed: 1 });
    const stream = await client.chat.completions.create({ model: "tiny", messages,
                                                          max_tokens: 6, seed: 1, stream: true });
    let text = "";
    let finish = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      assert.equal(chunk.object, "chat.completion.chunk");
      text += chunk.choices[0]?.delta?.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.ok(chunks >= 2, `only ${chunks} chunks`);
    assert.equal(finish, full.choices[0].finish_reason);
    // The same request streamed and not streamed gives the same text (same request key).
    assert.equal(text, full.choices[0].message.content);
  });

  await test("completions streaming", async () => {
    const stream = await client.completions.create({ model: "tiny", prompt: "Hello",
                                                     max_tokens: 4, stream: true });
    let finish = null;
    for await (const chunk of stream) finish = chunk.choices[0]?.finish_reason ?? finish;
    assert.ok(["stop", "length"].includes(finish));
  });

  await test("unknown model is a 404", async () => {
    await assert.rejects(
        client.chat.completions.create({ model: "gpt-4", messages }),
        (e) => e instanceof NotFoundError && e.status === 404 && e.code === "model_not_found");
  });

  await test("bad field is a 400 naming it", async () => {
    await assert.rejects(
        client.completions.create({ model: "tiny", prompt: "x", temperature: 9 }),
        (e) => e instanceof BadRequestError && e.param === "temperature");
  });
  await test("verified request on a node without a ledger is a 501", async () => {
    await assert.rejects(
        client.completions.create({
          model: "tiny", prompt: "x", max_tokens: 2, atoma_security: "sampling:3",
          atoma_client: { address: `0x${"a".repeat(40)}`, signature: `0x${"1".repeat(130)}`,
                          nonce: "1", max_fee: "1", epoch: 1 } }),
        (e) => e instanceof APIError && e.status === 501 && e.param === "atoma_security");
  });

  await verifiedTests(hasChat);
} catch (e) {
  failed++;
  console.log(`FAIL setup: ${e.stack || e}`);
} finally {
  await stopNetwork();
  if (exited === null) {
    node.kill("SIGTERM");
    const deadline = Date.now() + 60000;
    while (exited === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    if (exited === null) node.kill("SIGKILL");
  }
  if (exited !== null && exited !== 0) {
    failed++;
    console.log(`FAIL atoma-node exited with ${exited}`);
  }
  if (failed) console.log(nodeLog());
  fs.rmSync(tmp, { recursive: true, force: true });
}
console.log(failed ? `${failed} failed` : "all passed");
process.exit(failed ? 1 : 0);
