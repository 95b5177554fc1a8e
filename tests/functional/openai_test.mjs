// Functional test of the OpenAI-compatible HTTP API with the official `openai` npm client: starts
// the real atoma-node (synthesized tiny model, http.listen on a free port), then chat
// (non-streaming and streaming), completions, and an unknown model (404 → NotFoundError).
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
const { default: OpenAI, NotFoundError, BadRequestError } = await import(
  require.resolve("openai"));

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 120000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "atoma-openai-"));
const modelDir = path.join(tmp, "models", "tiny");
run(CLI, ["model", "synth", "--preset", "tiny", "--seed", "1", "--out", modelDir]);
const key = path.join(tmp, "node.key");
run(CLI, ["keygen", "--out", key]);
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

try {
  const ports = await waitForPorts();
  assert.ok(ports.http > 0, `ports file has no http port: ${JSON.stringify(ports)}`);
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${ports.http}/v1`, apiKey: "dummy",
                              maxRetries: 0, timeout: 60000 });

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
} catch (e) {
  failed++;
  console.log(`FAIL setup: ${e.stack || e}`);
} finally {
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
