#!/usr/bin/env node
// Reference ids from @lenml/tokenizers (a port of Hugging Face
// transformers.js, pinned in package-lock.json) for the tokenizer.json files shipped in the
// @lenml/tokenizer-{llama3,qwen3,llama2} packages. The C++ tokenizer tests compare against what
// this prints (checked in as tests/unit/tokenizer/expected_*.jsonl).
//
//   node tools/tokenizer/reference.mjs encode <llama3|qwen3|llama2> <corpus.json>
//   node tools/tokenizer/reference.mjs check  <expected.jsonl> encode <name> <corpus.json>
//
// encode: one JSON line per corpus text: ids without and with special tokens, and the decoding
// of the ids with special tokens, keeping and skipping them. Decoding disables
// clean_up_tokenization_spaces: that is a transformers post-pass, not part of the tokenizer
// (Llama-3's config enables it, and it rewrites " ." to "." in generated text).
// Chat templates are rendered by tools/tokenizer/render_chat.py (Python Jinja2, as transformers
// does): the Jinja port bundled here cannot parse Qwen3's template.
// check: regenerates and compares with a checked-in file; exit status 1 on any difference.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

// Exit status 77 (ctest's "skipped") when the npm packages are not installed.
let TokenizerLoader;
try {
  ({ TokenizerLoader } = await import("@lenml/tokenizers"));
} catch (e) {
  console.error(`reference.mjs: @lenml/tokenizers is not installed (run npm ci): ${e.message}`);
  process.exit(77);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");

function load(name) {
  const dir = path.join(root, "node_modules", "@lenml", `tokenizer-${name}`, "models");
  if (!fs.existsSync(dir)) {
    console.error(`reference.mjs: ${dir} is missing (run npm ci)`);
    process.exit(77);
  }
  const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const tokenizerConfig = JSON.parse(
    fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
  return TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
}

function generate(mode, name, inputFile) {
  const tokenizer = load(name);
  const inputs = JSON.parse(fs.readFileSync(inputFile, "utf8"));
  const lines = [];
  inputs.forEach((item, i) => {
    if (mode === "encode") {
      const ids = tokenizer.encode(item, { add_special_tokens: false });
      const ids_special = tokenizer.encode(item, { add_special_tokens: true });
      const opts = { clean_up_tokenization_spaces: false };
      // decode() rejects an empty list; the decoding of no ids is "".
      const decode = (x, o) => (x.length === 0 ? "" : tokenizer.decode(x, o));
      lines.push(JSON.stringify({
        i,
        ids,
        ids_special,
        decoded: decode(ids_special, { ...opts, skip_special_tokens: false }),
        decoded_skip: decode(ids_special, { ...opts, skip_special_tokens: true }),
      }));
    } else {
      throw new Error(`unknown mode ${mode}`);
    }
  });
  return lines.join("\n") + "\n";
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "check") {
  const [expectedFile, subMode, name, inputFile] = args;
  const expected = fs.readFileSync(expectedFile, "utf8").split("\n");
  const actual = generate(subMode, name, inputFile).split("\n");
  let bad = 0;
  for (let i = 0; i < Math.max(expected.length, actual.length); ++i) {
    if (expected[i] !== actual[i]) {
      if (bad++ < 5) {
        console.error(`line ${i + 1} differs:\n  expected: ${expected[i]}\n  live:     ${actual[i]}`);
      }
    }
  }
  if (bad > 0) {
    console.error(`${expectedFile}: ${bad} lines differ from the live reference`);
    process.exit(1);
  }
  console.log(`${expectedFile}: matches the live reference`);
} else if (mode === "encode") {
  process.stdout.write(generate(mode, args[0], args[1]));
} else {
  console.error("usage: reference.mjs encode <llama3|qwen3|llama2> <corpus.json>\n" +
                "       reference.mjs check <expected.jsonl> encode <name> <corpus.json>");
  process.exit(2);
}
