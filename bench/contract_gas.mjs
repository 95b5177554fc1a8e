#!/usr/bin/env node
// Gas and settlement throughput of contracts/AtomaLedger.sol, measured on a local Anvil started by
// this run (docs/ledger_evm_gas.md holds the last table): deploy, registerNode, stake,
// advanceEpoch with 5 and 50 nodes, settle one certificate at n = 1, 3, 5, batches of 10 and 100
// certificates at n = 3 (gas per certificate), batches of 10 and 100 at n = 1, 3, 5 through
// settle and settleCosigned side by side (a co-signed batch pays one ecrecover per distinct
// member of the 50-node echelon, so its note says how many), the marginal gas of a prompt token,
// reportEquivocation, settleDispute at n = 3, and certificates per second end to end (encode,
// send, mined receipt) in batches of 100.
//
// Usage: node bench/contract_gas.mjs [--batches N] [--prompt-tokens N] [--markdown]
//        node bench/contract_gas.mjs --profile [--nodes N] [--settle]
//   --batches        batches of 100 for the throughput figure (default 10)
//   --prompt-tokens  prompt length of the settled requests (default 20)
//   --markdown       print the table as Markdown (for docs/ledger_evm_gas.md)
//   --profile        instead: where the gas of one settleCosigned (--settle: settle) batch of 100
//                    at n = 3 goes, on an echelon of --nodes nodes (default 50): the opcode trace
//                    (debug_traceTransaction, Anvil with --steps-tracing) by category and by
//                    Solidity function (source map of a fresh compile with the artifact's settings;
//                    it warns when that is not the deployed code)
// Needs `npm ci`; compiles the contract (scripts/compile_contracts.mjs) when the artifact is
// missing or older than the source. A program, not a test: it asserts only that what it
// measures settled.
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { SOLC_SETTINGS, contractSources } from "../scripts/solc_input.mjs";
import * as P from "../tests/functional/evm/protocol.mjs";
import { ROOT, ensureArtifact, startAnvil } from "../tests/functional/evm/anvil.mjs";
import { DEFAULT_PARAMS, ECHELON_1, World } from "../tests/functional/evm/world.mjs";

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? Number(process.argv[i + 1]) : fallback;
}
const BATCHES = option("--batches", 10);
const PROMPT = option("--prompt-tokens", 20);
const MARKDOWN = process.argv.includes("--markdown");
const EXTRA_PROMPT = 1000;  // for the marginal gas of a prompt token
const CLIENTS = 10;         // settled requests come from this many clients, round robin
// Realistic token ids (a 50k vocabulary: 2 or 3 non-zero bytes of 8), so calldata costs what a
// real prompt costs.
const promptIds = (count, salt) =>
  Array.from({ length: count }, (_, i) => (1000 + 7919 * (i + 31 * salt)) % 50000);
const OUTPUT = { token_ids: promptIds(20, 999), finish_reason: 0 };


const rows = [];
function row(what, gas, note = "") {
  rows.push({ what, gas: typeof gas === "bigint" ? gas.toString() : String(gas), note });
}
const fmt = (x) => Number(x).toLocaleString("en-US");
const byClient = (certs) => [...certs].sort((x, y) => P.compareAddresses(x.request.client,
                                                                        y.request.client));

// Each client numbers its requests 1, 2, 3, ... as a real client does, so its settled bits fill
// one bitmap word after another (a fresh word, ~20,000 gas, every 256 requests of a client). With
// nonces numbered across all clients instead, every client would touch a fresh word in whichever
// batch crosses a multiple of 256: ~2,000 gas a certificate on that batch alone, which would make
// the rows below depend on their order.
const nonces = new Map();
function nextNonce(client) {
  const a = (client.address ?? client).toLowerCase();
  const n = nonces.get(a) ?? 1n;
  nonces.set(a, n + 1n);
  return n;
}

// Certificates at n from `clients` round robin, with prompts of `promptLen` tokens.
async function certificates(w, clients, count, n, promptLen) {
  const out = [];
  for (let i = 0; i < count; ++i) {
    const client = clients[i % clients.length];
    out.push(await w.certificate({ client, n, prompt: promptIds(promptLen, i), output: OUTPUT,
                                   nonce: nextNonce(client) }));
  }
  return out;
}

async function settleAll(w, certs, label) {
  const res = await w.settle(certs.map((c) => c.item));
  if (res.settled.length !== certs.length) {
    throw new Error(`${label}: ${res.settled.length} of ${certs.length} settled; rejected ` +
                    JSON.stringify(res.rejected));
  }
  return res.receipt.gasUsed;
}

// settleCosigned of `certs` (docs/ledger_evm.md "Co-signed batches"); returns the gas and the
// number of distinct members (table entries, one co-signature each).
async function settleCosignedAll(w, certs, label) {
  const items = certs.map((c) => c.item);
  const res = await w.settleCosigned(items);
  if (res.settled.length !== certs.length) {
    throw new Error(`${label}: ${res.settled.length} of ${certs.length} settled; rejected ` +
                    JSON.stringify(res.rejected));
  }
  return { gas: res.receipt.gasUsed, members: P.cosignChains(w.domain, items).size,
           bytes: P.bytesOf(res.batch).length, batch: res.batch };
}

async function main() {
  ensureArtifact();
  const chain = await startAnvil();
  try {
    // --- deploy, register, stake, advanceEpoch with 5 nodes ---
    const small = await World.deploy(chain);
    const runtime = P.bytesOf(await chain.provider.getCode(small.address)).length;
    row("deploy", small.deployReceipt.gasUsed, `runtime code ${fmt(runtime)} bytes (limit 24,576)`);
    const receipts = [];
    await small.addNodes(5, { prefix: "bench-small-", receipts });
    row("registerNode (1 echelon)", receipts[1].register.gasUsed, "second node, fresh account");
    row("stake (first stake of a node)", receipts[1].stake.gasUsed);
    const more = await small.send(small.walletOf(small.nodes[1]), "stake", [], { value: 1000n });
    row("stake (top-up)", more.gasUsed);
    row("advanceEpoch, 5 nodes", (await small.advanceEpoch()).gasUsed, "epoch 0 -> 1");
    row("advanceEpoch, 5 nodes (again)", (await small.advanceEpoch()).gasUsed, "epoch 1 -> 2");

    // --- an echelon of 10 nodes: both forms at n = 3 in batches of 100 (fewer distinct members to
    // pay and to co-sign than with 50) ---
    const ten = await World.deploy(chain);
    await ten.addNodes(10, { prefix: "bench-ten-" });
    await ten.advanceEpoch();
    const tenClients = [];
    for (let i = 0; i < CLIENTS; ++i) {
      tenClients.push(await ten.client(`bench-ten-client-${i}`, 10n ** 20n));
    }
    await settleAll(ten, await certificates(ten, tenClients, 100, 3, PROMPT), "10 nodes warm-up");
    const tenSettle = await settleAll(ten, byClient(await certificates(ten, tenClients, 100, 3, PROMPT)),
                                      "10 nodes settle");
    row("settle batch of 100, n = 3, echelon of 10 nodes", tenSettle,
        `**${fmt(Math.round(Number(tenSettle) / 100))} gas/cert**`);
    const tenCosigned = await settleCosignedAll(
      ten, byClient(await certificates(ten, tenClients, 100, 3, PROMPT)), "10 nodes settleCosigned");
    row("settleCosigned batch of 100, n = 3, echelon of 10 nodes", tenCosigned.gas,
        `**${fmt(Math.round(Number(tenCosigned.gas) / 100))} gas/cert**; ${tenCosigned.members} ` +
        "distinct members co-sign");
    const small10 = [Number(tenSettle) / 100, Number(tenCosigned.gas) / 100];

    // --- 50 nodes: epochs, settlement, slashing ---
    const w = await World.deploy(chain);
    await w.addNodes(50, { prefix: "bench-node-" });
    row("advanceEpoch, 50 nodes", (await w.advanceEpoch()).gasUsed, "epoch 0 -> 1");
    row("advanceEpoch, 50 nodes (again)", (await w.advanceEpoch()).gasUsed, "epoch 1 -> 2");
    const clients = [];
    for (let i = 0; i < CLIENTS; ++i) clients.push(await w.client(`bench-client-${i}`, 10n ** 20n));

    // Warm-up: the first batch pays for fresh storage (reward balances of members never paid,
    // settlement bitmap words); reported apart, the rest is steady state.
    const warm = await certificates(w, clients, 100, 3, PROMPT);
    const coldGas = await settleAll(w, warm, "warm-up");

    for (const n of [1, 3, 5]) {
      const [c] = await certificates(w, clients, 1, n, PROMPT);
      row(`settle 1 certificate, n = ${n}`, await settleAll(w, [c], `n=${n}`),
          `batch of 1, prompt ${PROMPT} + completion ${OUTPUT.token_ids.length} tokens`);
    }
    const [longPrompt] = await certificates(w, clients, 1, 3, PROMPT + EXTRA_PROMPT);
    const [shortPrompt] = await certificates(w, clients, 1, 3, PROMPT);
    const gasLong = await settleAll(w, [longPrompt], "long prompt");
    const gasShort = await settleAll(w, [shortPrompt], "short prompt");
    const perToken = Number(gasLong - gasShort) / EXTRA_PROMPT;

    // A settler can order its batch freely (results come back by index): grouped by client, the
    // contract writes each client's escrow and bitmap word once (the batches below are). Interleaved
    // clients make it write them at every change of client (measured after them).
    // What the calldata alone costs (16 gas a non-zero byte, 4 a zero byte), per certificate.
    const calldataPerCert = (method, batch, size) => {
      const data = P.bytesOf(w.ledger.interface.encodeFunctionData(method, [batch]));
      const nonZero = data.reduce((k, x) => k + (x !== 0 ? 1 : 0), 0);
      return [Math.round((16 * nonZero + 4 * (data.length - nonZero)) / size),
              Math.round(data.length / size)];
    };
    // Both forms side by side: per-certificate signatures (settle) and one co-signature per
    // member and batch (settleCosigned), each on its own certificates of the same shape.
    let perCert100 = 0;
    let cosigned100 = 0;
    for (const n of [1, 3, 5]) {
      for (const size of [10, 100]) {
        const a = byClient(await certificates(w, clients, size, n, PROMPT));
        const gasA = await settleAll(w, a, `settle ${size} n=${n}`);
        const bytesA = P.bytesOf(P.encodeSettleBatch(a.map((c) => c.item))).length;
        row(`settle batch of ${size}, n = ${n}`, gasA,
            `**${fmt(Math.round(Number(gasA) / size))} gas/cert**, ` +
            `${fmt(Math.round(bytesA / size))} batch bytes/cert`);
        if (n === 3 && size === 100) {
          perCert100 = Number(gasA) / 100;
          const [gas, bytes] = calldataPerCert("settle", P.encodeSettleBatch(a.map((x) => x.item)), 100);
          row("  of which calldata, per certificate", gas, `${fmt(bytes)} bytes per certificate`);
          row("  of which signature recovery, per certificate", 4 * 3000,
              "4 ecrecover (client + 3 members) at 3,000");
        }
        const c = byClient(await certificates(w, clients, size, n, PROMPT));
        const r = await settleCosignedAll(w, c, `settleCosigned ${size} n=${n}`);
        row(`settleCosigned batch of ${size}, n = ${n}`, r.gas,
            `**${fmt(Math.round(Number(r.gas) / size))} gas/cert**, ` +
            `${fmt(Math.round(r.bytes / size))} batch bytes/cert; ${r.members} distinct members ` +
            `of the 50-node echelon co-sign`);
        if (n === 3 && size === 100) {
          cosigned100 = Number(r.gas) / 100;
          const [gas, bytes] = calldataPerCert("settleCosigned", r.batch, 100);
          row("  of which calldata, per certificate", gas, `${fmt(bytes)} bytes per certificate`);
          row("  of which signature recovery, per certificate", 3000 + (r.members * 3000) / 100,
              `1 ecrecover (client) + ${r.members} co-signatures / 100`);
        }
      }
    }
    const mixed = await certificates(w, clients, 100, 3, PROMPT);
    const gasMixed = await settleAll(w, mixed, "batch 100 interleaved");
    row("settle batch of 100, n = 3, clients interleaved", gasMixed,
        `${fmt(Number(gasMixed) / 100)} gas/cert (client changes at every item)`);
    const one = await certificates(w, [clients[0]], 100, 3, PROMPT);
    const gasOne = await settleAll(w, one, "batch 100 one client");
    row("settle batch of 100, n = 3, one client", gasOne, `${fmt(Number(gasOne) / 100)} gas/cert`);
    row("settle batch of 100, n = 3, first batch", coldGas,
        `${fmt(Number(coldGas) / 100)} gas/cert (fresh reward and bitmap slots)`);
    row("marginal gas per prompt token", perToken.toFixed(1),
        `settle n = 3, prompt ${PROMPT} vs ${PROMPT + EXTRA_PROMPT} tokens`);

    // Equivocation: a member of a settled-looking request signs two outputs.
    const eq = await w.certificate({ client: clients[0], n: 3, nonce: nextNonce(clients[0]),
                                     output: OUTPUT });
    const m = eq.committee[0];
    const other = w.attest(m, { request: eq.request, committee: eq.committee,
                                output: { token_ids: [1, 2, 3], finish_reason: 1 } });
    const eqr = await w.send(w.walletOf(eq.committee[1]), "reportEquivocation",
                             [P.hex(P.encodeAttestationBody(eq.attestations[0])),
                              P.hex(P.encodeAttestationBody(other))]);
    row("reportEquivocation", eqr.gasUsed);

    // Dispute at n = 3: member 2 lies, 4 of 7 referees confirm C, 1 dissents, 2 silent.
    const d = await w.certificate({ client: clients[1], n: 3, nonce: nextNonce(clients[1]),
                                    output: OUTPUT });
    const wrong = { token_ids: [4, 5, 6], finish_reason: 1 };
    const members = [d.attestations[0], d.attestations[1],
                     w.attest(d.committee[2], { request: d.request, committee: d.committee,
                                                output: wrong })];
    const refs = d.draws.referees.slice(0, 5).map((r, i) =>
      w.attest(r, { request: d.request, committee: d.committee,
                    output: i === 4 ? wrong : OUTPUT }));
    const dr = await w.send(chain.deployer, "settleDispute", [P.encodeDisputeEvidence({
      request: d.request, clientSignature: d.clientSignature, committee: d.committee,
      memberAttestations: members, refereeAttestations: refs, output: OUTPUT })]);
    row("settleDispute, n = 3", dr.gasUsed,
        "3 member + 5 referee attestations, output of 20 tokens, 1 slashed");

    // Throughput: BATCHES batches of 100 (certificates signed beforehand, as nodes deliver them;
    // timed: encoding, eth_estimateGas, eth_sendRawTransaction, the mined receipt).
    const batches = [];
    for (let b = 0; b < BATCHES; ++b) {
      batches.push(byClient(await certificates(w, clients, 100, 3, PROMPT)));
    }
    const t0 = process.hrtime.bigint();
    let gasTotal = 0n;
    for (const batch of batches) gasTotal += await settleAll(w, batch, "throughput");
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const perSecond = (BATCHES * 100) / seconds;

    print(chain, perCert100, cosigned100, small10, perSecond, seconds, gasTotal);
  } finally {
    await chain.stop();
  }
}

function print(chain, perCert100, cosigned100, small10, perSecond, seconds, gasTotal) {
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  if (MARKDOWN) {
    console.log("| operation | gas | note |\n|---|---:|---|");
    for (const r of rows) console.log(`| ${r.what} | ${fmt(r.gas)} | ${r.note} |`);
  } else {
    const w = Math.max(...rows.map((r) => r.what.length));
    for (const r of rows) {
      console.log(`${r.what.padEnd(w)}  ${fmt(r.gas).padStart(12)}  ${r.note.replaceAll("**", "")}`);
    }
  }
  console.log(`\nthroughput: ${BATCHES} batches of 100 certificates (n = 3) in ${seconds.toFixed(2)} s` +
              ` = ${perSecond.toFixed(0)} certificates/s end to end against Anvil ` +
              `(${os.cpus().length} cores, ${cpu}); ${fmt(Number(gasTotal) / (BATCHES * 100))} gas/cert`);
  console.log(`certificates per 30M-gas block at n = 3: ${Math.floor(30e6 / perCert100)}`);
  console.log(`certificates per 30M-gas block at n = 3, co-signed: ${Math.floor(30e6 / cosigned100)}`);
  console.log(`echelon of 10 nodes: batch 100 @ n=3: ${Math.round(small10[0])} gas/cert, ` +
              `co-signed ${Math.round(small10[1])} gas/cert (target <= 30000)`);
  console.log(`echelon of 50 nodes: co-signed batch 100 @ n=3: ${Math.round(cosigned100)} ` +
              "gas/cert (target <= 30000)");
  console.log(`batch 100 @ n=3: ${Math.round(perCert100)} gas/cert (target <= 30000)`);
}

// ---- --profile ---------------------------------------------------------------------------------

// The deployed ledger's source map: pc → the innermost Solidity function around its instruction.
function sourceFunctions() {
  const solc = createRequire(path.join(ROOT, "package.json"))("solc");
  const sources = contractSources(ROOT);
  // The artifact's sources and settings, with the outputs a source map needs.
  const settings = { ...SOLC_SETTINGS,
                     outputSelection: { "*": { "*": ["evm.deployedBytecode.object",
                                                     "evm.deployedBytecode.sourceMap"],
                                               "": ["ast"] } } };
  const out = JSON.parse(solc.compile(JSON.stringify({ language: "Solidity", sources, settings })));
  const dep = out.contracts["contracts/AtomaLedger.sol"].AtomaLedger.evm.deployedBytecode;
  const code = Buffer.from(dep.object, "hex");
  const index = new Map();  // pc → instruction index
  for (let pc = 0, i = 0; pc < code.length; ++i) {
    index.set(pc, i);
    pc += 1 + (code[pc] >= 0x60 && code[pc] <= 0x7f ? code[pc] - 0x5f : 0);
  }
  const entries = [];
  let last = [0, 0, -1];
  for (const e of dep.sourceMap.split(";")) {
    const f = e.split(":");
    const cur = [...last];
    for (let k = 0; k < 3; ++k) if (f[k] !== undefined && f[k] !== "") cur[k] = Number(f[k]);
    entries.push(cur);
    last = cur;
  }
  const funcs = [];
  const walk = (node) => {
    if (!node || typeof node !== "object") return;
    if (node.nodeType === "FunctionDefinition") {
      const [start, len, file] = node.src.split(":").map(Number);
      funcs.push({ start, end: start + len, file, name: node.name || node.kind });
    }
    for (const v of Object.values(node)) if (typeof v === "object") walk(v);
  };
  for (const src of Object.values(out.sources)) walk(src.ast);
  const cache = new Map();
  return {
    size: code.length,
    fn(pc) {
      if (!cache.has(pc)) {
        const e = entries[index.get(pc)];
        let best = null;
        for (const f of funcs) {
          if (e && f.file === e[2] && f.start <= e[0] && e[0] < f.end &&
              (!best || f.end - f.start < best.end - best.start)) best = f;
        }
        cache.set(pc, best?.name ?? null);  // null: compiler-generated code
      }
      return cache.get(pc);
    },
  };
}

const PROFILE_GROUPS = {
  parsing: ["_frame", "_parseRequest", "_cd", "_committeeSize", "_requestId", "_clientDigest"],
  "co-sign chains": ["_chain", "_attestationHeader", "_sha"],
  "committee check": ["_asDrawn", "_checkView", "_checkMembers", "_resetDraws", "_drawUpTo", "_snap",
                      "_loadSnap", "_keepSnap", "_newDraws", "_recoverSlots"],
  "ledger rules": ["_charge", "_hold", "_flushWord", "_flushEscrow", "_flushClient"],
  "co-signatures": ["_checkCosigners", "_table"],
  payouts: ["_payOut"],
};

async function profile() {
  const NODES = option("--nodes", 50);
  const cosigned = !process.argv.includes("--settle");
  ensureArtifact();
  const map = sourceFunctions();
  const chain = await startAnvil({ args: ["--steps-tracing"] });
  try {
    const w = await World.deploy(chain);
    if (P.bytesOf(await chain.provider.getCode(w.address)).length !== map.size) {
      console.error("warning: the deployed code is not a fresh compile of contracts/: " +
                    "functions are attributed wrongly (node scripts/compile_contracts.mjs)");
    }
    await w.addNodes(NODES, { prefix: "bench-node-" });
    await w.advanceEpoch();
    const clients = [];
    for (let i = 0; i < CLIENTS; ++i) clients.push(await w.client(`bench-client-${i}`, 10n ** 20n));
    // Two warm-up batches: after them (almost) every member's reward slot exists.
    for (let i = 0; i < 2; ++i) {
      await settleAll(w, await certificates(w, clients, 100, 3, PROMPT), "warm-up");
    }
    const certs = byClient(await certificates(w, clients, 100, 3, PROMPT));
    const res = cosigned ? await settleCosignedAll(w, certs, "profile")
                         : { gas: await settleAll(w, certs, "profile") };
    const receipt = await chain.provider.getTransactionReceipt(
      (await chain.provider.getBlock("latest")).transactions[0]);
    const tx = await chain.provider.getTransaction(receipt.hash);
    const data = P.bytesOf(tx.data);
    const nonZero = data.reduce((k, x) => k + (x !== 0 ? 1 : 0), 0);
    // The trace is large (hundreds of thousands of steps): fetched raw, without stack or memory.
    const body = await (await fetch(chain.url, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "debug_traceTransaction",
                             params: [receipt.hash, { disableStack: true, disableMemory: true,
                                                      disableStorage: true }] }),
    })).json();
    const logs = body.result.structLogs;
    const groupOf = (fn) => Object.keys(PROFILE_GROUPS).find((g) => PROFILE_GROUPS[g].includes(fn)) ??
                            "glue";
    const byCategory = new Map();
    const byFunction = new Map();
    const add = (m, k, g) => m.set(k, (m.get(k) ?? 0) + g);
    let caller = "?";
    for (let i = 0; i < logs.length; ++i) {
      const l = logs[i];
      if (l.depth !== 1) continue;
      let j = i + 1;
      while (j < logs.length && logs[j].depth !== 1) ++j;
      // An opcode's gas: the drop to the next opcode of this frame (a call includes the callee).
      const g = j < logs.length ? l.gas - logs[j].gas : l.gasCost;
      const fn = map.fn(l.pc) ?? caller;  // compiler helpers count for the function that jumped
      caller = fn;
      let k;
      if (l.op === "STATICCALL") k = g >= 3000 ? "precompile: ecrecover" : "precompile: SHA-256";
      else if (l.op.startsWith("LOG")) k = `event (${l.op})`;
      else if (l.op === "SLOAD" || l.op === "SSTORE") {
        k = groupOf(fn) === "payouts" ? "storage: rewards" : "storage: escrow, bitmap, epoch, snapshot";
      } else if (l.op.startsWith("EXTCODE")) k = "snapshot read (EXTCODE*)";
      else k = `compute: ${groupOf(fn)}`;
      add(byCategory, k, g);
      if (k.startsWith("compute")) add(byFunction, fn, g);
    }
    const gas = Number(receipt.gasUsed);
    const execution = [...byCategory.values()].reduce((a, b) => a + b, 0);
    console.log(`${cosigned ? "settleCosigned" : "settle"} batch of 100, n = 3, echelon of ${NODES} ` +
                `nodes${cosigned ? `, ${res.members} distinct members` : ""}: ${fmt(gas)} gas, ` +
                `${fmt(gas / 100)} a certificate`);
    const show = (what, g) => console.log(`  ${fmt(Math.round(g / 100)).padStart(7)}  ${what}`);
    show("transaction base", 21000);
    show(`calldata (${fmt(data.length / 100)} bytes a certificate)`, 16 * nonZero + 4 * (data.length - nonZero));
    show("other intrinsic gas", gas - execution - 21000 - 16 * nonZero - 4 * (data.length - nonZero));
    for (const [k, g] of [...byCategory].sort((a, b) => b[1] - a[1])) show(k, g);
    console.log("compute by function (per certificate):");
    for (const [k, g] of [...byFunction].sort((a, b) => b[1] - a[1])) show(k, g);
  } finally {
    await chain.stop();
  }
}

if (process.argv.includes("--profile")) await profile();
else await main();
