#!/usr/bin/env node
// Compiles contracts/AtomaLedger.sol with the pinned solc-js (npm `solc`, package.json) and writes
// the checked-in artifact contracts/build/AtomaLedger.json:
//   {"contractName", "solcVersion", "abi", "bytecode", "deployedBytecode", "methodIdentifiers"}
// (bytecode as 0x-prefixed hex; the dispute module's creation code is inside `bytecode`, the
// constructor deploys it). The output is deterministic: fixed settings, sources keyed by their
// repository path, object keys in a fixed order, so the same sources give the same bytes.
//
//   node scripts/compile_contracts.mjs           compile and write the artifact
//   node scripts/compile_contracts.mjs --check   compile and exit 1 if the artifact differs (CI)
//
// Any compiler warning fails the build (the contract compiles with none); errors print solc's
// formatted messages. Exit codes: 0 ok, 1 stale artifact or compile failure, 2 bad usage.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

import { SOLC_SETTINGS, contractSources } from "./solc_input.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CONTRACTS = path.join(ROOT, "contracts");
const ARTIFACT = path.join(CONTRACTS, "build", "AtomaLedger.json");
const MAIN = "contracts/AtomaLedger.sol";
const NAME = "AtomaLedger";
// The dispute and epoch module the ledger's constructor deploys (its own size limit applies).
const MODULE = "contracts/AtomaDisputes.sol";
const MODULE_NAME = "AtomaDisputes";

// The shared settings (scripts/solc_input.mjs) and the outputs the artifact needs.
const SETTINGS = {
  ...SOLC_SETTINGS,
  outputSelection: {
    [MAIN]: { [NAME]: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object",
                       "evm.methodIdentifiers"] },
    [MODULE]: { [MODULE_NAME]: ["evm.deployedBytecode.object"] },
  },
};

function usage() {
  console.error("usage: node scripts/compile_contracts.mjs [--check]");
  process.exit(2);
}

function sortKeys(obj) {
  return Object.fromEntries(Object.keys(obj).sort().map((k) => [k, obj[k]]));
}

function compile() {
  const require = createRequire(path.join(ROOT, "package.json"));
  const solc = require("solc");
  const input = { language: "Solidity", sources: contractSources(ROOT), settings: SETTINGS };
  const started = Date.now();
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const problems = output.errors ?? [];
  for (const e of problems) console.error(e.formattedMessage ?? e.message);
  if (problems.length > 0) {
    const errors = problems.filter((e) => e.severity === "error").length;
    console.error(`solc ${solc.version()}: ${errors} error(s), ${problems.length - errors} warning(s)`);
    process.exit(1);
  }
  const c = output.contracts[MAIN][NAME];
  const artifact = {
    contractName: NAME,
    solcVersion: solc.version(),
    abi: c.abi,
    bytecode: "0x" + c.evm.bytecode.object,
    deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    methodIdentifiers: sortKeys(c.evm.methodIdentifiers),
  };
  const moduleSize = output.contracts[MODULE][MODULE_NAME].evm.deployedBytecode.object.length / 2;
  return { text: JSON.stringify(artifact, null, 2) + "\n", artifact, seconds, moduleSize };
}

const args = process.argv.slice(2);
if (args.length > 1 || (args.length === 1 && args[0] !== "--check")) usage();
const { text, artifact, seconds, moduleSize } = compile();
const runtime = (artifact.deployedBytecode.length - 2) / 2;
const initcode = (artifact.bytecode.length - 2) / 2;
// The deployment's initcode is the bytecode followed by the six ABI-encoded constructor
// arguments: EIP-3860's limit applies to both together.
const CONSTRUCTOR_ARGS = 6 * 32;
const summary = `${NAME}: runtime ${runtime} bytes, ${MODULE_NAME} runtime ${moduleSize} bytes ` +
  `(limit 24576 each), initcode ${initcode} + ${CONSTRUCTOR_ARGS} bytes of constructor ` +
  `arguments (limit 49152), compiled in ${seconds} s`;
if (args[0] === "--check") {
  const current = fs.existsSync(ARTIFACT) ? fs.readFileSync(ARTIFACT, "utf8") : "";
  if (current !== text) {
    console.error(`${path.relative(ROOT, ARTIFACT)} is stale: run node scripts/compile_contracts.mjs`);
    process.exit(1);
  }
  console.log(`${summary}; ${path.relative(ROOT, ARTIFACT)} is up to date`);
} else {
  fs.mkdirSync(path.dirname(ARTIFACT), { recursive: true });
  fs.writeFileSync(ARTIFACT, text);
  console.log(`${summary}; wrote ${path.relative(ROOT, ARTIFACT)}`);
}
if (runtime > 24576 || moduleSize > 24576 || initcode + CONSTRUCTOR_ARGS > 49152) {
  console.error("the contract exceeds the EIP-170 / EIP-3860 size limits");
  process.exit(1);
}
