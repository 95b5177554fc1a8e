// The compiler input of the ledger contracts, shared by scripts/compile_contracts.mjs (the
// checked-in artifact) and bench/contract_gas.mjs --profile (its source map), so both compile the
// same sources with the same settings; each adds the outputs it needs.
import fs from "node:fs";
import path from "node:path";

// Settlement gas decides the optimizer runs (docs/ledger_evm.md, "Gas"): the contract is run far
// more often than it is deployed. viaIR: the settlement path is mostly inline assembly, which only
// the IR pipeline optimizes; it makes a co-signed certificate ~500 gas cheaper and the deployment
// ~6 KB smaller (room under the initcode limit) for a compile of about a minute instead of seconds.
export const SOLC_SETTINGS = {
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 200 },
  viaIR: true,
};

// Every contracts/*.sol of the repository at `root`, keyed by its repository path, sorted.
export function contractSources(root) {
  const dir = path.join(root, "contracts");
  const out = {};
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".sol")).sort()) {
    out[`contracts/${f}`] = { content: fs.readFileSync(path.join(dir, f), "utf8") };
  }
  return out;
}
