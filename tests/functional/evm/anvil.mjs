// A local EVM chain for the contract tests and the gas benchmark: starts Anvil (the pinned npm
// package @foundry-rs/anvil-linux-amd64) on a free loopback port, waits until it answers
// eth_chainId, deploys contracts/build/AtomaLedger.json and funds arbitrary addresses.
//
// The chain is stopped by `chain.stop()`; a process exit (normal, uncaught error, SIGINT/SIGTERM)
// stops it too, so a failing test never leaves an Anvil behind.
// Errors: startAnvil rejects when Anvil exits early or does not answer within `timeoutMs` (the
// message carries Anvil's last output); contract calls reject with ethers errors (see
// revertReason). One Chain per test process; its methods may be called concurrently, but the
// tests send one transaction at a time per signer (nonces come from the node).
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ethers } from "./protocol.mjs";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const ANVIL_BIN = path.join(ROOT, "node_modules", "@foundry-rs", "anvil-linux-amd64", "bin",
                                   "anvil");
// ATOMA_LEDGER_ARTIFACT points the tests and the benchmark at another build of the contract.
export const ARTIFACT = process.env.ATOMA_LEDGER_ARTIFACT ??
    path.join(ROOT, "contracts", "build", "AtomaLedger.json");
// Anvil's first default account (mnemonic "test test ... junk"): deploys and pays for set-up.
export const ANVIL_KEY0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

// A port nobody listens on now: bind port 0 on loopback and give it back.
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function rpc(url, method, params = []) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const body = await res.json();
  if (body.error) throw new Error(`${method}: ${JSON.stringify(body.error)}`);
  return body.result;
}

const running = new Set();
function stopAllSync() {
  for (const p of running) {
    try { p.kill("SIGKILL"); } catch { /* already gone */ }
  }
}
process.on("exit", stopAllSync);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => { stopAllSync(); process.exit(130); });
}

export class Chain {
  constructor(proc, url, port, chainId, output) {
    this.proc = proc;
    this.url = url;
    this.port = port;
    this.chainId = chainId;
    this.output = output;
    this.provider = new ethers.JsonRpcProvider(url, ethers.Network.from(chainId),
                                               { staticNetwork: true, pollingInterval: 20,
                                                 batchMaxCount: 1, cacheTimeout: -1 });
    this.deployer = new ethers.Wallet(ANVIL_KEY0, this.provider);
  }

  rpc(method, params = []) { return this.provider.send(method, params); }

  // Gives `address` exactly `wei` of the native coin (anvil_setBalance).
  async fund(address, wei = 10n ** 24n) {
    await this.rpc("anvil_setBalance", [ethers.getAddress(address), ethers.toBeHex(wei)]);
  }

  // A wallet for a private key on this chain, funded unless `fund` is false.
  async wallet(privateKey, { fund = true } = {}) {
    const w = new ethers.Wallet(privateKey, this.provider);
    if (fund) await this.fund(w.address);
    return w;
  }

  async increaseTime(seconds) {
    await this.rpc("evm_increaseTime", [Number(seconds)]);
    await this.rpc("evm_mine", []);
  }
  async mine() { await this.rpc("evm_mine", []); }
  async snapshot() { return this.rpc("evm_snapshot", []); }
  async revert(id) {
    const ok = await this.rpc("evm_revert", [id]);
    if (!ok) throw new Error(`evm_revert ${id} failed`);
  }

  // Deploys the ledger artifact (abi + bytecode) with the constructor params
  // [unbondingEpochs, epochLengthS, minEpochSpacingS, feePerToken, slashBps, reporterShareBps].
  // Returns { contract, receipt }.
  async deploy(params, { artifact = loadArtifact(), signer = this.deployer } = {}) {
    const factory = new ethers.ContractFactory(artifact.abi, artifact.bytecode, signer);
    const contract = await factory.deploy(...params);
    const receipt = await waitReceipt(this.provider, contract.deploymentTransaction().hash);
    return { contract, receipt };
  }

  // Stops Anvil (SIGTERM, then SIGKILL after 5 s). Idempotent.
  async stop() {
    this.provider.destroy();
    const p = this.proc;
    if (p.exitCode !== null || p.signalCode !== null) { running.delete(p); return; }
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    const timer = setTimeout(() => p.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
    running.delete(p);
  }
}

// Read once per file and kept: every deploy of a run uses the same bytes, even if the file is
// rewritten meanwhile.
const artifacts = new Map();
// Uses the checked-in artifact (contracts/build/AtomaLedger.json); compiles it only when it is
// missing. A stale one (older than a source) is used with a warning rather than rewritten under
// whoever is editing the contract: `node scripts/compile_contracts.mjs` refreshes it.
export function ensureArtifact() {
  const dir = path.join(ROOT, "contracts");
  if (!fs.existsSync(ARTIFACT)) {
    const r = spawnSync(process.execPath, [path.join(ROOT, "scripts", "compile_contracts.mjs")],
                        { cwd: ROOT, encoding: "utf8", timeout: 300000 });
    if (r.status !== 0) throw new Error(`compile_contracts.mjs failed:\n${r.stdout}\n${r.stderr}`);
    return;
  }
  const newest = Math.max(...fs.readdirSync(dir).filter((f) => f.endsWith(".sol"))
                                .map((f) => fs.statSync(path.join(dir, f)).mtimeMs));
  if (!process.env.ATOMA_LEDGER_ARTIFACT && fs.statSync(ARTIFACT).mtimeMs < newest) {
    console.error(`warning: ${ARTIFACT} is older than contracts/*.sol ` +
                  "(node scripts/compile_contracts.mjs refreshes it)");
  }
}

export function loadArtifact(file = ARTIFACT) {
  if (!artifacts.has(file)) artifacts.set(file, JSON.parse(fs.readFileSync(file, "utf8")));
  const a = artifacts.get(file);
  const bytecode = typeof a.bytecode === "string" ? a.bytecode : a.bytecode?.object;
  if (!a.abi || !bytecode) throw new Error(`${file}: no abi or bytecode`);
  return { abi: a.abi, bytecode: bytecode.startsWith("0x") ? bytecode : "0x" + bytecode };
}

// Starts Anvil on a free loopback port. `args`: extra Anvil flags (e.g. ["--gas-limit", "..."]).
export async function startAnvil({ args = [], timeoutMs = 30000, chainId = 31337 } = {}) {
  if (!fs.existsSync(ANVIL_BIN)) throw new Error(`${ANVIL_BIN} missing (npm ci)`);
  // The port is free when we look and Anvil binds it a moment later; another process could take
  // it in between, so retry a few times on an early exit.
  let lastError;
  for (let attempt = 0; attempt < 3; ++attempt) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const output = [];
    const proc = spawn(ANVIL_BIN, ["--host", "127.0.0.1", "--port", String(port),
                                   "--chain-id", String(chainId),
                                   // Without it Anvil writes every old state to
                                   // ~/.foundry/anvil/tmp and never deletes it (gigabytes a run).
                                   "--prune-history", "64", ...args],
                       { stdio: ["ignore", "pipe", "pipe"] });
    running.add(proc);
    const keep = (d) => {
      output.push(d.toString());
      if (output.length > 200) output.splice(0, output.length - 200);
    };
    proc.stdout.on("data", keep);
    proc.stderr.on("data", keep);
    let exited = false;
    proc.once("exit", () => { exited = true; running.delete(proc); });
    const deadline = Date.now() + timeoutMs;
    while (!exited && Date.now() < deadline) {
      try {
        const id = await rpc(url, "eth_chainId");
        if (BigInt(id) !== BigInt(chainId)) throw new Error(`chain id ${id}`);
        return new Chain(proc, url, port, chainId, output);
      } catch (e) {
        lastError = e;
        await sleep(100);
      }
    }
    if (!exited) {
      proc.kill("SIGKILL");
      throw new Error(`anvil did not answer on ${url} within ${timeoutMs} ms: ${lastError}\n` +
                      output.join("").slice(-2000));
    }
    lastError = new Error(`anvil exited early: ${output.join("").slice(-2000)}`);
  }
  throw lastError;
}

// The revert reason of an ethers error (Error(string) of a reverted call or transaction), or null.
export function revertReason(e) {
  if (e?.reason) return e.reason;
  const data = e?.data ?? e?.info?.error?.data ?? e?.error?.data;
  if (typeof data === "string" && data.startsWith("0x08c379a0")) {
    return ethers.AbiCoder.defaultAbiCoder().decode(["string"], "0x" + data.slice(10))[0];
  }
  const m = /reverted with reason string '([^']*)'/.exec(e?.message ?? "");
  return m ? m[1] : null;
}

// Sends a transaction from `contract.connect(signer)` and waits for its receipt. The gas limit is
// the estimate plus a margin: Anvil estimates in an environment whose prevrandao is the last
// block's, so a call whose storage writes depend on it can need a little more when mined. A
// reverting call rejects at the estimate with the revert reason (see revertReason).
export async function send(contract, signer, method, args = [], overrides = {}) {
  const fn = contract.connect(signer)[method];
  if (overrides.gasLimit === undefined) {
    const estimate = await fn.estimateGas(...args, overrides);
    overrides = { ...overrides, gasLimit: estimate + estimate / 5n + 20000n };
  }
  const tx = await fn(...args, overrides);
  return waitReceipt(contract.runner?.provider ?? signer.provider, tx.hash);
}

// Polls eth_getTransactionReceipt until the transaction is mined (ethers' tx.wait() can miss an
// Anvil block that was mined before its block poller started, and then waits for a block that
// never comes when nothing else is sent). Rejects after `timeoutMs`, and with CALL_EXCEPTION
// (receipt attached) when the transaction reverted.
export async function waitReceipt(provider, hash, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    const receipt = await provider.getTransactionReceipt(hash);
    if (receipt) {
      if (receipt.status !== 1) {
        const e = new Error(`transaction ${hash} reverted`);
        e.code = "CALL_EXCEPTION";
        e.receipt = receipt;
        throw e;
      }
      return receipt;
    }
    if (Date.now() > deadline) throw new Error(`no receipt for ${hash} after ${timeoutMs} ms`);
    await sleep(delay);
  }
}
