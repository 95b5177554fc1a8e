// Tests of contracts/AtomaLedger.sol on a real local chain (Anvil, started on a free loopback port
// and stopped at the end), driven through ethers v6 and the independent protocol implementation
// of tests/functional/evm/protocol.mjs, against the interface of docs/ledger_evm.md: parameters,
// registry, stake and unbonding, epochs and seeds, frozen snapshots, escrow and rewards,
// committee selection against tests/vectors/committee.json, settlement of sampling and
// cross-validation certificates with every rejection code, equivocation, disputes, and the
// status-code prefix of every revert reason.
//
// Run: node --test tests/functional/contract_test.mjs   (ctest -R contract_test)
// Needs `npm ci` (ethers, solc, the Anvil package). The artifact contracts/build/AtomaLedger.json
// is (re)built with scripts/compile_contracts.mjs when it is missing or older than the source.
import { after, before, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import * as P from "./evm/protocol.mjs";
import { ensureArtifact, ROOT, revertReason, startAnvil } from "./evm/anvil.mjs";
import { DEFAULT_OUTPUT, DEFAULT_PARAMS, ECHELON_1, ECHELON_2, MODEL_1, MODEL_2,
         World } from "./evm/world.mjs";

const { ethers } = P;


// Awaits `fn()` and requires a revert whose reason is "CODE: <reason>" (docs/ledger_evm.md
// "Errors"); returns the reason.
async function expectRevert(fn, code, match) {
  let reason;
  try {
    await fn();
  } catch (e) {
    reason = revertReason(e);
    assert.ok(reason, `expected a ${code} revert reason, got: ${e.shortMessage ?? e.message}`);
    assert.match(reason, new RegExp(`^${code}: \\S`), `reason ${JSON.stringify(reason)}`);
    if (match) assert.match(reason, match);
    return reason;
  }
  assert.fail(`expected a revert with ${code}`);
}

const big = (v) => BigInt(v);
const lower = (xs) => xs.map((x) => x.toLowerCase());
const sortAddrs = (xs) => [...xs].map((x) => x.toLowerCase()).sort(P.compareAddresses);
// Equal shares of `pool` among `count`, the remainder to the first.
function shares(pool, count) {
  const c = BigInt(count);
  return Array.from({ length: count }, (_, i) => pool / c + (i === 0 ? pool % c : 0n));
}
const randomHash = (label) => P.hex(P.sha256(new TextEncoder().encode(label)));
// Bonded plus still-locked unbonding stake: what slashing takes its fraction of.
async function locked(w, a) {
  const [bonded, unbonding] = await w.ledger.getStake(a);
  const current = (await w.currentEpoch()).number;
  return big(bonded) + unbonding.filter((u) => big(u[1]) > current)
    .reduce((sum, u) => sum + big(u[0]), 0n);
}

// A certificate for the epoch after the current one (not started: no seed, no snapshot), signed
// by the members the current epoch's seed and snapshot would draw.
async function futureCertificate(w, client) {
  const cur = await w.currentEpoch();
  const next = cur.number + 1n;
  w.frozen.set(next, w.frozen.get(cur.number));
  try {
    return await w.certificate({ client, n: 3, epoch: next, seed: cur.seed });
  } finally {
    w.frozen.delete(next);
  }
}

// One Anvil for the whole file, started by the first group that needs it (the protocol vector
// tests run without it) and stopped at the end.
let chain;
let starting;
function ensureChain() {
  starting ??= (async () => {
    ensureArtifact();
    chain = await startAnvil();
  })();
  return starting;
}
after(async () => {
  await chain?.stop();
});

// ---- protocol.mjs against the Python reference ---------------------------------------------------
describe("protocol.mjs against tests/vectors", () => {
  const load = (name) => P.parseJsonBig(fs.readFileSync(path.join(ROOT, "tests", "vectors",
                                                                  `${name}.json`), "utf8")).vectors;
  const h = (x) => "0x" + x;

  it("encodes and hashes every encoding vector", () => {
    const vectors = load("encoding");
    assert.ok(vectors.length >= 8);
    for (const v of vectors) {
      const payload = P.cat(v.fields.map((f) => P.ENCODERS[f.type](f.value)));
      assert.equal(P.hex(payload), h(v.encoded), v.name);
      assert.equal(P.hex(P.taggedHash(v.tag, payload)), h(v.hash), v.name);
    }
  });

  it("computes request encodings and ids, proofs, C, Merkle roots, attestation digests", () => {
    const v = load("request");
    assert.equal(v.requests.length, 4);
    for (const r of v.requests) {
      assert.equal(P.hex(P.encodeRequest(r.request)), h(r.request_encoding), r.name);
      assert.equal(P.requestId(r.request), h(r.request_id), r.name);
      const proofs = r.committee.map((a) => P.proof(r.request_id, r.output, a));
      assert.deepEqual(proofs, r.proofs.map(h), r.name);
      assert.equal(P.commitment(proofs), h(r.commitment), r.name);
      assert.equal(P.merkleRoot(r.output.token_ids), h(r.merkle_root), r.name);
    }
    for (const m of v.merkle) assert.equal(P.merkleRoot(m.token_ids), h(m.root), m.name);
    for (const a of v.attestation_digests) {
      assert.equal(P.attestationDigest({
        chainId: a.chain_id, ledger: a.ledger, requestId: a.request_id, echelonId: a.echelon_id,
        commitment: a.commitment, proof: a.proof, promptTokens: a.prompt_tokens,
        completionTokens: a.completion_tokens, merkleRoot: a.merkle_root, epoch: a.epoch,
      }), h(a.digest));
    }
  });

  it("selects committees as every committee vector says", () => {
    for (const v of load("committee")) {
      if (v.error) {
        assert.throws(() => P.selectCommittee(v.epoch_seed, v.request_id, v.candidates, v.n,
                                              v.backups, v.referees),
                      (e) => e.code === v.error, v.name);
        continue;
      }
      const d = P.selectCommittee(v.epoch_seed, v.request_id, v.candidates, v.n, v.backups,
                                  v.referees);
      assert.deepEqual([d.committee, d.backups, d.referees],
                       [v.committee.map(h), v.backup_draws.map(h), v.referee_draws.map(h)],
                       v.name);
    }
  });

  it("signs 65-byte r||s||v with v in {27, 28} and low s, recoverable to the key's address",
     () => {
       const vs = new Set();
       for (let i = 0; i < 16; ++i) {
         const key = P.testKey(`sig-${i}`);
         const digest = randomHash(`digest-${i}`);
         const sig = P.bytesOf(P.sign(key, digest), 65);
         vs.add(sig[64]);
         assert.ok(sig[64] === 27 || sig[64] === 28);
         assert.ok(P.readUint(sig.slice(32, 64)) <= P.SECP256K1_N / 2n);
         assert.equal(P.recover(digest, sig), P.addressOf(key));
       }
       assert.deepEqual([...vs].sort(), [27, 28]);
     });

  it("packs settle items, attestation bodies and dispute evidence as docs/ledger_evm.md says",
     () => {
       const v = load("request").requests[0];
       const req = P.encodeRequest(v.request);
       const att = { chainId: 31337n, ledger: "0x" + "22".repeat(20), requestId: h(v.request_id),
                     echelonId: randomHash("e"), commitment: h(v.commitment),
                     proof: h(v.proofs[0]), promptTokens: 19n, completionTokens: 0n,
                     merkleRoot: h(v.merkle_root), epoch: 12n, member: h(v.committee[0]),
                     signature: "0x" + "ab".repeat(64) + "1b" };
       const body = P.encodeAttestationBody(att);
       assert.equal(body.length, 297);
       assert.equal(P.hex(body.slice(0, 8)), "0x0000000000007a69");
       assert.equal(P.hex(body.slice(212, 232)), h(v.committee[0]));
       const slot = { proof: att.proof, signature: att.signature };
       const item = { kind: 1, request: v.request, clientSignature: att.signature,
                      echelonId: att.echelonId, commitment: att.commitment, completionTokens: 0n,
                      merkleRoot: att.merkleRoot, slots: [slot, slot, slot] };
       const one = P.encodeSettleItem(item);
       assert.equal(one.length, 1 + 4 + req.length + 65 + 32 + 32 + 8 + 32 + 3 * 97);
       assert.equal(P.readUint(one.slice(1, 5)), BigInt(req.length));
       const batch = P.bytesOf(P.encodeSettleBatch([item, item]));
       assert.equal(batch.length, 2 + 2 * one.length);
       assert.equal(P.hex(batch.slice(0, 2)), "0x0002");
       const xv = P.encodeSettleItem({ ...item, kind: 2, slots: [slot], salt: randomHash("s"),
                                       validators: [slot, slot] });
       assert.equal(xv.length, one.length - 2 * 97 + 1 + 32 + 1 + 2 * 97);
       const ev = P.bytesOf(P.encodeDisputeEvidence({
         request: v.request, clientSignature: att.signature, committee: v.committee.map(h),
         memberAttestations: [att, att, att], refereeAttestations: [att],
         output: { token_ids: [1, 2], finish_reason: 1 } }));
       assert.equal(ev.length, 4 + req.length + 65 + 1 + 60 + 1 + 3 * 297 + 1 + 297 + 1 +
                               (4 + 16 + 8));
     });
});

// ---- parameters ---------------------------------------------------------------------------------
describe("params and constructor", () => {
  before(ensureChain);
  it("getParams returns the constructor's values and the chain id", async () => {
    const w = await World.deploy(chain, [3n, 120n, 7n, 5n, 1500n, 3000n]);
    const p = await w.ledger.getParams();
    assert.deepEqual([...p].slice(0, 6).map(big), [3n, 120n, 7n, 5n, 1500n, 3000n]);
    assert.equal(big(p[6]), 31337n);
  });

  it("rejects parameters out of range with INVALID_ARGUMENT and accepts the edges", async () => {
    const ok = [1n, 1n, 0n, 0n, 0n, 0n];
    const bad = [
      [0n, 1n, 0n, 0n, 0n, 0n],              // unbondingEpochs 0
      [1000001n, 1n, 0n, 0n, 0n, 0n],        // unbondingEpochs above 1e6
      [1n, 0n, 0n, 0n, 0n, 0n],              // epochLengthS 0
      [1n, 1n, 0n, 0n, 10001n, 0n],          // slashBps above 10000
      [1n, 1n, 0n, 0n, 0n, 10001n],          // reporterShareBps above 10000
    ];
    for (const params of bad) {
      await expectRevert(() => chain.deploy(params), "INVALID_ARGUMENT");
    }
    await chain.deploy(ok);
    const { contract } = await chain.deploy([1000000n, 2n ** 64n - 1n, 0n, 10n ** 30n, 10000n,
                                             10000n]);
    const p = await contract.getParams();
    assert.equal(big(p[0]), 1000000n);
    assert.equal(big(p[4]), 10000n);
  });
});

// ---- registry -----------------------------------------------------------------------------------
describe("registry", () => {
  before(ensureChain);
  let w;
  beforeEach(async () => { w = await World.deploy(chain); });
  const ech = (pairs) => pairs.map(([m, e]) => ({ modelDigest: m, echelonId: e }));

  it("registers nodes with endpoint, echelons and epoch, emits NodeRegistered, lists sorted",
     async () => {
       const wallets = [];
       for (let i = 0; i < 5; ++i) wallets.push(await w.walletFor(`reg-${i}`));
       const r = await w.send(wallets[0], "registerNode",
                              ["node0.example.com:50051", ech([[MODEL_1, ECHELON_1],
                                                               [MODEL_2, ECHELON_2]])]);
       const ev = w.events(r, "NodeRegistered");
       assert.equal(ev.length, 1);
       assert.equal(ev[0].args[0].toLowerCase(), wallets[0].address.toLowerCase());
       assert.equal(ev[0].args[1], "node0.example.com:50051");
       const [endpoint, echelons, registered] = await w.ledger.getNode(wallets[0].address);
       assert.equal(endpoint, "node0.example.com:50051");
       assert.deepEqual(echelons.map((e) => lower([e[0], e[1]])),
                        [[MODEL_1, ECHELON_1], [MODEL_2, ECHELON_2]]);
       assert.equal(big(registered), 0n);
       await w.send(chain.deployer, "advanceEpoch");
       for (let i = 1; i < 5; ++i) {
         await w.send(wallets[i], "registerNode", [`10.0.0.${i}:7000`, ech([[MODEL_1, ECHELON_1]])]);
       }
       assert.equal(big((await w.ledger.getNode(wallets[3].address))[2]), 1n);
       const listed = lower(await w.ledger.listNodes());
       assert.deepEqual(listed, sortAddrs(wallets.map((x) => x.address)));
     });

  it("refuses a second registration with ALREADY_EXISTS", async () => {
    const a = await w.walletFor("reg-dup");
    await w.send(a, "registerNode", ["127.0.0.1:1", ech([[MODEL_1, ECHELON_1]])]);
    await expectRevert(() => w.send(a, "registerNode", ["127.0.0.1:2", ech([[MODEL_1, ECHELON_1]])]),
                       "ALREADY_EXISTS");
    assert.equal((await w.ledger.getNode(a.address))[0], "127.0.0.1:1");
  });

  it("updates endpoint and echelons (NodeUpdated); NOT_FOUND for unknown nodes", async () => {
    const a = await w.walletFor("reg-upd");
    const stranger = await w.walletFor("reg-stranger");
    await w.send(a, "registerNode", ["127.0.0.1:1", ech([[MODEL_1, ECHELON_1]])]);
    const r = await w.send(a, "updateNode", ["[::1]:9000", ech([[MODEL_2, ECHELON_2]])]);
    const ev = w.events(r, "NodeUpdated");
    assert.equal(ev.length, 1);
    assert.equal(ev[0].args[1], "[::1]:9000");
    const [endpoint, echelons] = await w.ledger.getNode(a.address);
    assert.equal(endpoint, "[::1]:9000");
    assert.deepEqual(echelons.map((e) => lower([e[0], e[1]])), [[MODEL_2, ECHELON_2]]);
    await expectRevert(() => w.send(stranger, "updateNode", ["127.0.0.1:1", []]), "NOT_FOUND");
    await expectRevert(() => w.ledger.getNode(stranger.address), "NOT_FOUND");
  });

  it("refuses an empty or over-long endpoint with INVALID_ARGUMENT (255 bytes is fine)",
     async () => {
       const a = await w.walletFor("reg-ep");
       const one = ech([[MODEL_1, ECHELON_1]]);
       await expectRevert(() => w.send(a, "registerNode", ["", one]), "INVALID_ARGUMENT");
       await expectRevert(() => w.send(a, "registerNode", ["a".repeat(250) + ".x:123", one]),
                          "INVALID_ARGUMENT");
       const longest = "h".repeat(250) + ":1234";
       assert.equal(longest.length, 255);
       await w.send(a, "registerNode", [longest, one]);
       await expectRevert(() => w.send(a, "updateNode", ["", one]), "INVALID_ARGUMENT");
       await expectRevert(() => w.send(a, "updateNode", [longest + "5", one]), "INVALID_ARGUMENT");
       assert.equal((await w.ledger.getNode(a.address))[0], longest);
     });

  it("refuses more than 64 echelons and two echelons of one model with INVALID_ARGUMENT",
     async () => {
       const a = await w.walletFor("reg-ech");
       const many = (count) => Array.from({ length: count }, (_, i) =>
         ({ modelDigest: randomHash(`m${i}`), echelonId: randomHash(`e${i}`) }));
       await expectRevert(() => w.send(a, "registerNode", ["127.0.0.1:1", many(65)]),
                          "INVALID_ARGUMENT");
       await expectRevert(() => w.send(a, "registerNode", ["127.0.0.1:1",
         ech([[MODEL_1, ECHELON_1], [MODEL_1, ECHELON_2]])]), "INVALID_ARGUMENT");
       await w.send(a, "registerNode", ["127.0.0.1:1", many(64)]);
       assert.equal((await w.ledger.getNode(a.address))[1].length, 64);
       await expectRevert(() => w.send(a, "updateNode", ["127.0.0.1:1", many(65)]),
                          "INVALID_ARGUMENT");
     });
});

// ---- stake --------------------------------------------------------------------------------------
describe("stake, unstake, unbonding, withdraw", () => {
  before(ensureChain);
  it("needs a registered node and a positive amount", async () => {
    const w = await World.deploy(chain);
    const a = await w.walletFor("st-a");
    // NOT_FOUND, the code of the embedded backend for this rule (docs/ledger_evm.md "Errors":
    // the prefix is the embedded backend's code), although the doc's function table says
    // FAILED_PRECONDITION.
    await expectRevert(() => w.send(a, "stake", [], { value: 10n }), "NOT_FOUND");
    await w.send(a, "registerNode", ["127.0.0.1:1", [{ modelDigest: MODEL_1,
                                                       echelonId: ECHELON_1 }]]);
    await expectRevert(() => w.send(a, "stake", [], { value: 0n }), "INVALID_ARGUMENT");
    await w.send(a, "stake", [], { value: 10n });
    await expectRevert(() => w.send(a, "unstake", [0n]), "INVALID_ARGUMENT");
    await expectRevert(() => w.send(a, "withdrawStake", [0n]), "INVALID_ARGUMENT");
  });

  // docs/ledger_evm.md: stake() is INVALID_ARGUMENT "when the ledger would then hold more than
  // 2^96 - 1 wei". The ledger's balance includes client escrow, which anyone can deposit (see the
  // report: on a chain whose coin has that much supply, escrow can block staking).
  it("refuses stake that would make the ledger hold more than 2^96 - 1 wei", async () => {
    const w = await World.deploy(chain);
    const [node] = await w.addNodes(1, { prefix: "cap-", stake: () => 10n ** 18n });
    const whale = await w.walletFor("cap-whale");
    await chain.fund(whale.address, 2n ** 97n);
    const held = await chain.provider.getBalance(w.address);
    await w.send(whale, "depositEscrow", [], { value: 2n ** 96n - 1n - held - 5n });
    await w.send(w.walletOf(node), "stake", [], { value: 5n });  // exactly 2^96 - 1 now
    assert.equal(await chain.provider.getBalance(w.address), 2n ** 96n - 1n);
    await expectRevert(() => w.send(w.walletOf(node), "stake", [], { value: 1n }),
                       "INVALID_ARGUMENT");
    assert.equal(big((await w.ledger.getStake(node))[0]), 10n ** 18n + 5n);
  });

  it("bonds, unbonds for unbondingEpochs, releases and pays out", async () => {
    const w = await World.deploy(chain);  // unbondingEpochs = 2
    const [node] = await w.addNodes(1, { prefix: "st-node-", stake: () => 0n });
    const wallet = w.walletOf(node);
    const balance = async () => chain.provider.getBalance(w.address);
    const before = await balance();
    const r = await w.send(wallet, "stake", [], { value: 100n });
    assert.deepEqual(w.events(r, "Staked").map((e) => [e.args[0].toLowerCase(), big(e.args[1])]),
                     [[node, 100n]]);
    assert.equal(await balance(), before + 100n);
    const stakeOf = async () => {
      const [bonded, unbonding, withdrawable] = await w.ledger.getStake(node);
      return { bonded: big(bonded), unbonding: unbonding.map((u) => [big(u[0]), big(u[1])]),
               withdrawable: big(withdrawable) };
    };
    assert.deepEqual(await stakeOf(), { bonded: 100n, unbonding: [], withdrawable: 0n });

    await expectRevert(() => w.send(wallet, "unstake", [101n]), "FAILED_PRECONDITION");
    const u = await w.send(wallet, "unstake", [30n]);  // epoch 0 -> released at 2
    assert.deepEqual(w.events(u, "Unstaked").map((e) => [big(e.args[1]), big(e.args[2])]),
                     [[30n, 2n]]);
    assert.deepEqual(await stakeOf(), { bonded: 70n, unbonding: [[30n, 2n]], withdrawable: 0n });
    await expectRevert(() => w.send(wallet, "withdrawStake", [1n]), "FAILED_PRECONDITION");

    await w.advanceEpoch();  // 1
    await w.send(wallet, "unstake", [20n]);  // released at 3
    assert.deepEqual(await stakeOf(),
                     { bonded: 50n, unbonding: [[30n, 2n], [20n, 3n]], withdrawable: 0n });
    await w.advanceEpoch();  // 2: the first entry is released
    const s2 = await stakeOf();
    assert.equal(s2.withdrawable, 30n);
    assert.deepEqual(s2.unbonding.filter(([, e]) => e > 2n), [[20n, 3n]]);
    await expectRevert(() => w.send(wallet, "withdrawStake", [31n]), "FAILED_PRECONDITION");
    const nodeBefore = await chain.provider.getBalance(node);
    const wr = await w.send(wallet, "withdrawStake", [25n]);
    assert.equal(await chain.provider.getBalance(node), nodeBefore + 25n - wr.fee);
    assert.deepEqual(w.events(wr, "StakeWithdrawn").map((e) => big(e.args[1])), [25n]);
    assert.equal((await stakeOf()).withdrawable, 5n);
    await w.advanceEpoch();  // 3: the second entry too
    const s3 = await stakeOf();
    assert.equal(s3.withdrawable, 25n);
    assert.equal(s3.bonded, 50n);
    assert.deepEqual(s3.unbonding.filter(([, e]) => e > 3n), []);
    await w.send(wallet, "withdrawStake", [25n]);
    assert.equal((await stakeOf()).withdrawable, 0n);
    assert.equal(await balance(), before + 50n);
  });
});

// ---- epochs -------------------------------------------------------------------------------------
describe("epochs", () => {
  before(ensureChain);
  it("opens epoch 0 in the constructor and chains seeds from prevrandao", async () => {
    const w = await World.deploy(chain);
    const deployBlock = await chain.provider.getBlock(w.deployReceipt.blockNumber);
    const e0 = await w.currentEpoch();
    assert.equal(e0.number, 0n);
    assert.equal(e0.seed, P.epochSeed(deployBlock.parentHash, deployBlock.prevRandao));
    assert.equal(e0.started, big(deployBlock.timestamp));
    let previous = e0.seed;
    for (let e = 1n; e <= 3n; ++e) {
      const r = await w.advanceEpoch();
      const block = await chain.provider.getBlock(r.blockNumber);
      const cur = await w.currentEpoch();
      assert.equal(cur.number, e);
      assert.equal(cur.seed, P.epochSeed(previous, block.prevRandao));
      assert.equal(cur.started, big(block.timestamp));
      const ev = w.events(r, "EpochAdvanced");
      assert.deepEqual(ev.map((x) => [big(x.args[0]), x.args[1].toLowerCase()]), [[e, cur.seed]]);
      const [n, seed, started] = await w.ledger.getEpoch(e);
      assert.deepEqual([big(n), seed.toLowerCase(), big(started)], [e, cur.seed, cur.started]);
      previous = cur.seed;
    }
    assert.notEqual(await w.seedOf(1n), await w.seedOf(2n));
    await expectRevert(() => w.ledger.getEpoch(4n), "NOT_FOUND");
  });

  it("advanceEpochFrom advances only from the current epoch", async () => {
    const w = await World.deploy(chain);
    await w.send(chain.deployer, "advanceEpochFrom", [0n]);
    assert.equal((await w.currentEpoch()).number, 1n);
    await expectRevert(() => w.send(chain.deployer, "advanceEpochFrom", [0n]),
                       "FAILED_PRECONDITION");
    await expectRevert(() => w.send(chain.deployer, "advanceEpochFrom", [2n]),
                       "FAILED_PRECONDITION");
    await w.send(chain.deployer, "advanceEpochFrom", [1n]);
    assert.equal((await w.currentEpoch()).number, 2n);
  });

  it("enforces minEpochSpacingS between advances", async () => {
    const w = await World.deploy(chain, [2n, 600n, 600n, 1n, 1000n, 1000n]);
    await expectRevert(() => w.send(chain.deployer, "advanceEpoch"), "FAILED_PRECONDITION");
    await chain.increaseTime(600);
    await w.send(chain.deployer, "advanceEpoch");
    await expectRevert(() => w.send(chain.deployer, "advanceEpoch"), "FAILED_PRECONDITION");
    await expectRevert(() => w.send(chain.deployer, "advanceEpochFrom", [1n]),
                       "FAILED_PRECONDITION");
    await chain.increaseTime(600);
    await w.send(chain.deployer, "advanceEpochFrom", [1n]);
    assert.equal((await w.currentEpoch()).number, 2n);
  });
});

// ---- snapshots ----------------------------------------------------------------------------------
describe("snapshots", () => {
  before(ensureChain);
  const snapshotOf = async (w, epoch, echelon) => {
    const [nodes, stakes] = await w.ledger.echelonSnapshot(epoch, echelon);
    return nodes.map((a, i) => ({ address: a.toLowerCase(), stake: big(stakes[i]) }));
  };

  it("freezes bonded stakes per echelon, sorted, zero stakes excluded", async () => {
    const w = await World.deploy(chain);
    await w.addNodes(8, {
      prefix: "snap-",
      echelons: (i) => (i % 3 === 0 ? [[MODEL_1, ECHELON_1], [MODEL_2, ECHELON_2]]
                                    : [[MODEL_1, ECHELON_1]]),
      stake: (i) => (i === 4 ? 0n : BigInt(i + 1) * 1000n),
    });
    assert.deepEqual(await snapshotOf(w, 0n, ECHELON_1), []);  // epoch 0: empty
    await w.advanceEpoch();
    const expected = w.expectedSnapshot();
    const s1 = await snapshotOf(w, 1n, ECHELON_1);
    assert.equal(s1.length, 7);
    assert.deepEqual(s1, expected.get(ECHELON_1));
    assert.deepEqual(await snapshotOf(w, 1n, ECHELON_2), expected.get(ECHELON_2));
    assert.deepEqual(lower(await w.ledger.snapshotEchelons(1n)), [ECHELON_1, ECHELON_2].sort());
    assert.deepEqual(await snapshotOf(w, 1n, randomHash("no such echelon")), []);
    await expectRevert(() => w.ledger.echelonSnapshot(2n, ECHELON_1), "NOT_FOUND");
    await expectRevert(() => w.ledger.snapshotEchelons(2n), "NOT_FOUND");
  });

  it("shows stake and registry changes only in the next epoch", async () => {
    const w = await World.deploy(chain);
    const nodes = await w.addNodes(4, { prefix: "frz-", stake: () => 1000n });
    await w.advanceEpoch();  // 1
    const frozen1 = await snapshotOf(w, 1n, ECHELON_1);
    assert.equal(frozen1.length, 4);
    await w.send(w.walletOf(nodes[0]), "stake", [], { value: 500n });
    w.bonded.set(nodes[0], 1500n);
    await w.send(w.walletOf(nodes[1]), "unstake", [1000n]);
    w.bonded.set(nodes[1], 0n);
    await w.send(w.walletOf(nodes[2]), "updateNode", ["127.0.0.1:3", [{ modelDigest: MODEL_2,
                                                                         echelonId: ECHELON_2 }]]);
    w.echelonsOf.set(nodes[2], [ECHELON_2]);
    await w.addNodes(1, { prefix: "frz-late-", stake: () => 700n });
    assert.deepEqual(await snapshotOf(w, 1n, ECHELON_1), frozen1);
    assert.deepEqual(await snapshotOf(w, 1n, ECHELON_2), []);
    await w.advanceEpoch();  // 2
    const s2 = await snapshotOf(w, 2n, ECHELON_1);
    assert.deepEqual(s2, w.expectedSnapshot().get(ECHELON_1));
    assert.equal(s2.length, 3);  // node 1 unstaked all, node 2 moved, one new node
    assert.deepEqual(await snapshotOf(w, 2n, ECHELON_2), [{ address: nodes[2], stake: 1000n }]);
    assert.deepEqual(await snapshotOf(w, 1n, ECHELON_1), frozen1);  // old snapshots are kept
  });
});

// ---- escrow and rewards -------------------------------------------------------------------------
describe("escrow and rewards", () => {
  before(ensureChain);
  it("deposits, withdraws in two steps (request, unlock) and refuses overdrafts", async () => {
    const w = await World.deploy(chain);  // unbondingEpochs 2: a withdrawal unlocks 2 epochs on
    const c = await w.walletFor("esc-client");
    await expectRevert(() => w.send(c, "depositEscrow", [], { value: 0n }), "INVALID_ARGUMENT");
    const r = await w.send(c, "depositEscrow", [], { value: 1000n });
    assert.deepEqual(w.events(r, "EscrowDeposited").map((e) => [e.args[0].toLowerCase(),
                                                                big(e.args[1])]),
                     [[c.address.toLowerCase(), 1000n]]);
    await w.send(c, "depositEscrow", [], { value: 1001n });
    assert.equal(big(await w.ledger.escrowBalance(c.address)), 2001n);
    const status = async () => (await w.ledger.escrowStatus(c.address)).map(big);
    assert.deepEqual(await status(), [2001n, 0n, 0n, 0n]);
    // Nothing leaves without a request, and no request exceeds the balance.
    let reason = await expectRevert(() => w.send(c, "withdrawEscrow", [1n]),
                                    "FAILED_PRECONDITION");
    assert.match(reason, /no withdrawal requested/);
    reason = await expectRevert(() => w.send(c, "requestEscrowWithdrawal", [2002n]),
                                "FAILED_PRECONDITION");
    assert.match(reason, /holds 2001/);
    await expectRevert(() => w.send(c, "requestEscrowWithdrawal", [0n]), "INVALID_ARGUMENT");
    // Requested in epoch 0: unlocks at 2, stays in the balance until paid out.
    const rq = await w.send(c, "requestEscrowWithdrawal", [300n]);
    assert.deepEqual(w.events(rq, "EscrowWithdrawalRequested").map((e) => [
      e.args[0].toLowerCase(), big(e.args[1]), big(e.args[2])]),
                     [[c.address.toLowerCase(), 300n, 2n]]);
    assert.deepEqual(await status(), [2001n, 300n, 2n, 0n]);
    reason = await expectRevert(() => w.send(c, "withdrawEscrow", [300n]), "FAILED_PRECONDITION");
    assert.match(reason, /unlocks at epoch 2 \(current epoch 0\)/);
    // A second request replaces the first and restarts the clock.
    await w.advanceEpoch();  // 1
    await w.send(c, "requestEscrowWithdrawal", [700n]);
    assert.deepEqual(await status(), [2001n, 700n, 3n, 0n]);
    await w.advanceEpoch();  // 2
    reason = await expectRevert(() => w.send(c, "withdrawEscrow", [1n]), "FAILED_PRECONDITION");
    assert.match(reason, /unlocks at epoch 3 \(current epoch 2\)/);
    await w.advanceEpoch();  // 3
    assert.deepEqual(await status(), [2001n, 700n, 3n, 700n]);
    reason = await expectRevert(() => w.send(c, "withdrawEscrow", [701n]), "FAILED_PRECONDITION");
    assert.match(reason, /has 700 unlocked since epoch 3 \(pending 700, balance 2001\)/);
    const before = await chain.provider.getBalance(c.address);
    const wr = await w.send(c, "withdrawEscrow", [500n]);
    assert.equal(await chain.provider.getBalance(c.address), before + 500n - wr.fee);
    assert.deepEqual(w.events(wr, "EscrowWithdrawn").map((e) => big(e.args[1])), [500n]);
    assert.deepEqual(await status(), [1501n, 200n, 3n, 200n]);
    await w.send(c, "withdrawEscrow", [200n]);
    assert.deepEqual(await status(), [1301n, 0n, 0n, 0n]);
    await expectRevert(() => w.send(c, "withdrawEscrow", [1n]), "FAILED_PRECONDITION");
    assert.equal(big(await w.ledger.rewardBalance(c.address)), 0n);
    await expectRevert(() => w.send(c, "withdrawRewards", [1n]), "FAILED_PRECONDITION");
    await expectRevert(() => w.send(c, "withdrawEscrow", [0n]), "INVALID_ARGUMENT");
    await expectRevert(() => w.send(c, "withdrawRewards", [0n]), "INVALID_ARGUMENT");
  });
});

// ---- committee selection ------------------------------------------------------------------------
describe("selectCommittee", () => {
  before(ensureChain);
  it("matches every vector of tests/vectors/committee.json", async () => {
    const w = await World.deploy(chain);
    const vectors = P.parseJsonBig(fs.readFileSync(
      path.join(ROOT, "tests", "vectors", "committee.json"), "utf8")).vectors;
    assert.ok(vectors.length >= 20);
    const h = (x) => "0x" + x;
    for (const v of vectors) {
      // Any order, zero stakes and duplicates as the vector gives them (docs/ledger_evm.md).
      const cands = v.candidates;
      const args = [h(v.epoch_seed), h(v.request_id), cands.map((c) => h(c.address)),
                    cands.map((c) => BigInt(c.stake)), v.n, v.backups, v.referees];
      if (v.error) {
        await expectRevert(() => w.ledger.selectCommittee(...args), v.error);
        continue;
      }
      const [committee, backups, referees] = await w.ledger.selectCommittee(...args);
      assert.deepEqual(lower(committee), v.committee.map(h), v.name);
      assert.deepEqual(lower(backups), v.backup_draws.map(h), v.name);
      assert.deepEqual(lower(referees), v.referee_draws.map(h), v.name);
    }
  });
});

// ---- the network used by settlement, equivocation and dispute tests ----------------------------
// 16 nodes: 15 staked in ECHELON_1 (enough for a committee of 3, its 3 backups and all 7
// referees), the first 4 also in ECHELON_2, node 15 registered without stake; epoch 1; one client
// with 1 ETH of escrow. Each test starts from this state (chain snapshot).
async function network() {
  const w = await World.deploy(chain);
  await w.addNodes(16, {
    echelons: (i) => (i < 4 ? [[MODEL_1, ECHELON_1], [MODEL_2, ECHELON_2]]
                            : [[MODEL_1, ECHELON_1]]),
    stake: (i) => (i === 15 ? 0n : BigInt(1000 + 37 * i) * 10n ** 15n),
  });
  await w.advanceEpoch();
  const client = await w.client("client-0", 10n ** 18n);
  const other = await w.client("client-1", 10n ** 18n);
  return { w, client, other, cp: await w.checkpoint() };
}

describe("settlement", () => {
  before(ensureChain);
  let net;
  before(async () => { net = await network(); });
  beforeEach(async () => { await net.w.rollback(net.cp); });

  async function settleOne(cert, code) {
    const { w } = net;
    const res = await w.settle([cert.item]);
    if (code === undefined) {
      assert.deepEqual(res.rejected, []);
      assert.equal(res.settled.length, 1);
    } else {
      assert.deepEqual(res.settled, []);
      assert.deepEqual(res.rejected.map((r) => r.code), [code]);
    }
    return res;
  }

  for (const [n, promptLen] of [[1, 20], [3, 20], [5, 21]]) {
    it(`settles an honest certificate at n = ${n}: fee split, escrow, events, isSettled`,
       async () => {
         const { w, client } = net;
         const cert = await w.certificate({ client, n, promptLen });
         assert.equal(cert.committee.length, n);
         const fee = w.feePerToken * BigInt(promptLen + DEFAULT_OUTPUT.token_ids.length);
         const escrow0 = big(await w.ledger.escrowBalance(client.address));
         const rewards0 = await w.rewards(cert.committee);
         const contractBalance0 = await chain.provider.getBalance(w.address);
         assert.equal(await w.ledger.isSettled(client.address, cert.request.client_nonce), false);
         const res = await settleOne(cert);
         assert.deepEqual(res.settled, [{ index: 0, requestId: cert.requestId,
                                          client: client.address.toLowerCase(),
                                          nonce: big(cert.request.client_nonce), fee }]);
         assert.equal(big(await w.ledger.escrowBalance(client.address)), escrow0 - fee);
         const rewards1 = await w.rewards(cert.committee);
         assert.deepEqual(rewards1.map((r, i) => r - rewards0[i]), shares(fee, n));
         assert.equal(await w.ledger.isSettled(client.address, cert.request.client_nonce), true);
         assert.equal(await w.ledger.isSettled(client.address, cert.request.client_nonce + 1n),
                      false);
         assert.equal(await chain.provider.getBalance(w.address), contractBalance0);
       });
  }

  it("pays rewards out with withdrawRewards (RewardsWithdrawn), refusing overdrafts", async () => {
    const { w, client } = net;
    const cert = await w.certificate({ client, n: 3 });
    await settleOne(cert);
    const m = cert.committee[0];
    const wallet = w.walletOf(m);
    const reward = big(await w.ledger.rewardBalance(m));
    assert.equal(reward, 14n);
    await expectRevert(() => w.send(wallet, "withdrawRewards", [15n]), "FAILED_PRECONDITION");
    const before = await chain.provider.getBalance(m);
    const r = await w.send(wallet, "withdrawRewards", [14n]);
    assert.equal(await chain.provider.getBalance(m), before + 14n - r.fee);
    assert.deepEqual(w.events(r, "RewardsWithdrawn").map((e) => big(e.args[1])), [14n]);
    assert.equal(big(await w.ledger.rewardBalance(m)), 0n);
  });

  it("rejects a bad client signature (code 3) and pays nothing", async () => {
    const { w, client, other } = net;
    const cert = await w.certificate({ client, n: 3 });
    const escrow0 = big(await w.ledger.escrowBalance(client.address));
    const forged = { ...cert.item, clientSignature: w.signRequest(other.address, cert.request) };
    let res = await w.settle([forged]);
    assert.deepEqual(res.rejected.map((r) => [r.index, r.requestId, r.code]),
                     [[0, cert.requestId, P.REJECT.BAD_CLIENT_SIGNATURE]]);
    // Signed by the client, but for another ledger (domain).
    const otherDomain = P.sign(w.keyOf(client.address),
                               P.clientRequestDigest(31337n, "0x" + "11".repeat(20), cert.requestId));
    res = await w.settle([{ ...cert.item, clientSignature: otherDomain }]);
    assert.deepEqual(res.rejected.map((r) => r.code), [P.REJECT.BAD_CLIENT_SIGNATURE]);
    assert.equal(big(await w.ledger.escrowBalance(client.address)), escrow0);
    assert.deepEqual(await w.rewards(cert.committee), [0n, 0n, 0n]);
    assert.equal(await w.ledger.isSettled(client.address, cert.request.client_nonce), false);
  });

  it("rejects a committee that is not a view of the draws (code 4)", async () => {
    const { w, client } = net;
    // Referee draws in the member slots.
    const referees = await w.certificate({ client, n: 3, committee: (d) => d.referees.slice(0, 3) });
    // A member in two slots.
    const twice = await w.certificate({ client, n: 3,
                                        committee: (d) => [d.committee[0], d.committee[0],
                                                           d.committee[2]] });
    // Members in another order (slot i must hold draw i or a backup).
    const swapped = await w.certificate({ client, n: 3,
                                          committee: (d) => [d.committee[1], d.committee[0],
                                                             d.committee[2]] });
    // The staked-nothing node 15 and an unregistered key cannot be members either.
    const outsider = await w.walletFor("outsider");
    const foreign = await w.certificate({ client, n: 3,
                                          committee: (d) => [d.committee[0], d.committee[1],
                                                             outsider.address.toLowerCase()] });
    // An attestation for another domain recovers to some other address.
    const good = await w.certificate({ client, n: 3 });
    const att1 = P.makeAttestation({ domain: { chainId: 1n, ledger: w.address },
                                     requestId: good.requestId, echelonId: ECHELON_1,
                                     epoch: good.epoch, committee: good.committee,
                                     output: DEFAULT_OUTPUT, promptTokens: 20,
                                     key: w.keyOf(good.committee[1]) });
    const otherDomain = P.settleItemFromAttestations({
      request: good.request, clientSignature: good.clientSignature,
      attestations: [good.attestations[0], att1, good.attestations[2]] });
    const res = await w.settle([referees.item, twice.item, swapped.item, foreign.item,
                                otherDomain]);
    assert.deepEqual(res.settled, []);
    assert.deepEqual(res.rejected.map((r) => [r.index, r.code]),
                     [0, 1, 2, 3, 4].map((i) => [i, P.REJECT.WRONG_COMMITTEE]));
  });

  it("accepts backups in member slots and pays the members that attested", async () => {
    const { w, client } = net;
    const cert = await w.certificate({ client, n: 3,
                                       committee: (d) => [d.backups[2], d.committee[1],
                                                          d.backups[0]] });
    await settleOne(cert);
    assert.deepEqual(await w.rewards(cert.committee), [14n, 13n, 13n]);
    assert.deepEqual(await w.rewards([cert.draws.committee[0], cert.draws.committee[2]]),
                     [0n, 0n]);
  });

  it("rejects a copied C (lazy member, code 5)", async () => {
    const { w, client } = net;
    const cert = await w.certificate({ client, n: 3 });
    const lazy = w.attest(cert.committee[1], { request: cert.request, committee: cert.committee,
                                              proofOverride: randomHash("made up p"),
                                              commitmentOverride: cert.attestations[0].commitment });
    const item = P.settleItemFromAttestations({
      request: cert.request, clientSignature: cert.clientSignature,
      attestations: [cert.attestations[0], lazy, cert.attestations[2]] });
    const res = await w.settle([item]);
    assert.deepEqual(res.rejected.map((r) => r.code), [P.REJECT.CONFLICTING_COMMITMENTS]);
  });

  it("rejects double settlement in one batch and across batches (code 6)", async () => {
    const { w, client } = net;
    const cert = await w.certificate({ client, n: 3 });
    const escrow0 = big(await w.ledger.escrowBalance(client.address));
    let res = await w.settle([cert.item, cert.item]);
    assert.deepEqual(res.settled.map((s) => s.index), [0]);
    assert.deepEqual(res.rejected.map((r) => [r.index, r.requestId, r.code]),
                     [[1, cert.requestId, P.REJECT.ALREADY_SETTLED]]);
    res = await w.settle([cert.item]);
    assert.deepEqual(res.rejected.map((r) => r.code), [P.REJECT.ALREADY_SETTLED]);
    assert.equal(big(await w.ledger.escrowBalance(client.address)), escrow0 - 40n);
    assert.deepEqual(await w.rewards(cert.committee), [14n, 13n, 13n]);
  });

  it("rejects another request with a settled (client, nonce) (code 6)", async () => {
    const { w, client, other } = net;
    const first = await w.certificate({ client, n: 3, nonce: 777n });
    const second = await w.certificate({ client, n: 3, nonce: 777n, promptLen: 7 });
    const otherClient = await w.certificate({ client: other, n: 3, nonce: 777n });
    assert.notEqual(first.requestId, second.requestId);
    const res = await w.settle([first.item, second.item, otherClient.item]);
    assert.deepEqual(res.settled.map((s) => s.index), [0, 2]);
    assert.deepEqual(res.rejected.map((r) => [r.index, r.code]), [[1, P.REJECT.ALREADY_SETTLED]]);
    // Nonces far apart use other bitmap words.
    const far = await w.certificate({ client, n: 1, nonce: 2n ** 64n - 1n });
    const near = await w.certificate({ client, n: 1, nonce: 776n });
    const res2 = await w.settle([far.item, near.item]);
    assert.equal(res2.settled.length, 2);
    assert.equal(await w.ledger.isSettled(client.address, 2n ** 64n - 1n), true);
    assert.equal(await w.ledger.isSettled(client.address, 2n ** 64n - 2n), false);
    // Both sides of a bitmap word boundary in one batch.
    const n255 = await w.certificate({ client, n: 1, nonce: 255n });
    const n256 = await w.certificate({ client, n: 1, nonce: 256n });
    const res3 = await w.settle([n255.item, n256.item, n255.item]);
    assert.deepEqual(res3.settled.map((x) => x.nonce), [255n, 256n]);
    assert.deepEqual(res3.rejected.map((r) => [r.index, r.code]), [[2, P.REJECT.ALREADY_SETTLED]]);
    assert.equal(await w.ledger.isSettled(client.address, 254n), false);
    assert.equal(await w.ledger.isSettled(client.address, 257n), false);
  });

  it("rejects a fee above max_fee (code 7) and accepts exactly max_fee", async () => {
    const { w, client } = net;
    const above = await w.certificate({ client, n: 3, maxFee: 39n });
    const exact = await w.certificate({ client, n: 3, maxFee: 40n });
    const res = await w.settle([above.item, exact.item]);
    assert.deepEqual(res.rejected.map((r) => [r.index, r.code]), [[0, P.REJECT.FEE_ABOVE_MAX]]);
    assert.deepEqual(res.settled.map((s) => [s.index, s.fee]), [[1, 40n]]);
    assert.equal(await w.ledger.isSettled(client.address, above.request.client_nonce), false);
  });

  it("debits a pending escrow withdrawal, which is capped at what settlement left", async () => {
    const { w } = net;
    const client = await w.client("client-leaving", 50n);
    // The client asks for everything back, then a request it made before settles.
    await w.send(client, "requestEscrowWithdrawal", [50n]);
    const cert = await w.certificate({ client, n: 1, promptLen: 0 });  // fee 20
    await settleOne(cert);
    const status = async () => (await w.ledger.escrowStatus(client.address)).map(big);
    assert.deepEqual(await status(), [30n, 50n, 3n, 0n]);  // requested in epoch 1
    await w.advanceEpoch();
    await w.advanceEpoch();
    assert.deepEqual(await status(), [30n, 50n, 3n, 30n]);
    const reason = await expectRevert(() => w.send(client, "withdrawEscrow", [31n]),
                                      "FAILED_PRECONDITION");
    assert.match(reason, /has 30 unlocked since epoch 3 \(pending 50, balance 30\)/);
    await w.send(client, "withdrawEscrow", [30n]);
    // What settlement took from the pending amount is dropped with the payout.
    assert.deepEqual(await status(), [0n, 0n, 0n, 0n]);
  });

  it("rejects items the escrow no longer covers, counting earlier items (code 8)", async () => {
    const { w } = net;
    const poor = await w.client("client-poor", 90n);
    const a = await w.certificate({ client: poor, n: 3 });
    const b = await w.certificate({ client: poor, n: 3 });
    const c = await w.certificate({ client: poor, n: 1, promptLen: 0 });  // fee 20 > 10 left
    const res = await w.settle([a.item, b.item, c.item]);
    assert.deepEqual(res.settled.map((s) => s.index), [0, 1]);
    assert.deepEqual(res.rejected.map((r) => [r.index, r.code]), [[2, P.REJECT.ESCROW_SHORT]]);
    assert.equal(big(await w.ledger.escrowBalance(poor.address)), 10n);
    assert.equal(await w.ledger.isSettled(poor.address, c.request.client_nonce), false);
    // After a top-up the rejected one settles.
    await w.send(poor, "depositEscrow", [], { value: 10n });
    const again = await w.settle([c.item]);
    assert.deepEqual(again.settled.map((s) => s.fee), [20n]);
    assert.equal(big(await w.ledger.escrowBalance(poor.address)), 0n);
  });

  it("rejects a request whose epoch has not started (code 2)", async () => {
    const { w, client } = net;
    const cert = await futureCertificate(w, client);
    const res = await w.settle([cert.item]);
    assert.deepEqual(res.rejected.map((r) => r.code), [P.REJECT.EPOCH_NOT_STARTED]);
  });

  it("refuses high-s twins and v outside {27, 28} (codes 3 and 4)", async () => {
    const { w, client } = net;
    // (r, n - s, v ^ 1) is the same key's signature of the same digest: ecrecover takes it, the
    // protocol does not (low s only).
    const twin = (sig) => {
      const b = P.bytesOf(sig, 65);
      return P.hex(P.cat([b.slice(0, 32), P.u256(P.SECP256K1_N - P.readUint(b.slice(32, 64))),
                          new Uint8Array([b[64] === 27 ? 28 : 27])]));
    };
    const vMinus27 = (sig) => {
      const b = P.bytesOf(sig, 65);
      return P.hex(P.cat([b.slice(0, 64), new Uint8Array([b[64] - 27])]));
    };
    const a = await w.certificate({ client, n: 3 });
    const b = await w.certificate({ client, n: 3 });
    const c = await w.certificate({ client, n: 3 });
    const d = await w.certificate({ client, n: 3 });
    const slot1 = (cert, f) => ({ ...cert.item, slots: cert.item.slots.map(
      (x, i) => (i === 1 ? { ...x, signature: f(x.signature) } : x)) });
    const res = await w.settle([{ ...a.item, clientSignature: twin(a.clientSignature) },
                                { ...b.item, clientSignature: vMinus27(b.clientSignature) },
                                slot1(c, twin), slot1(d, vMinus27), a.item]);
    assert.deepEqual(res.rejected.map((r) => [r.index, r.code]),
                     [[0, P.REJECT.BAD_CLIENT_SIGNATURE], [1, P.REJECT.BAD_CLIENT_SIGNATURE],
                      [2, P.REJECT.WRONG_COMMITTEE], [3, P.REJECT.WRONG_COMMITTEE]]);
    assert.deepEqual(res.settled.map((x) => x.index), [4]);
  });

  it("settles a certificate of an earlier epoch with that epoch's seed and snapshot", async () => {
    const { w, client } = net;
    const cert = await w.certificate({ client, n: 3 });
    // Its first member leaves and two epochs pass: the request's epoch still decides.
    const leaver = cert.committee[0];
    await w.send(w.walletOf(leaver), "unstake", [w.bonded.get(leaver)]);
    w.bonded.set(leaver, 0n);
    await w.advanceEpoch();
    await w.advanceEpoch();
    assert.ok(!w.candidates((await w.currentEpoch()).number).some((c) => c.address === leaver));
    const res = await settleOne(cert);
    assert.equal(res.settled[0].requestId, cert.requestId);
    assert.deepEqual(await w.rewards(cert.committee), [14n, 13n, 13n]);
  });

  it("rejects attestations naming another echelon than the committee's (code 4)", async () => {
    const { w, client } = net;
    const cert = await w.certificate({ client, n: 3 });
    const atts = cert.committee.map((m) => w.attest(m, { request: cert.request,
                                                         committee: cert.committee,
                                                         echelon: ECHELON_2 }));
    const item = P.settleItemFromAttestations({ request: cert.request,
                                                clientSignature: cert.clientSignature,
                                                attestations: atts });
    const res = await w.settle([item]);
    assert.deepEqual(res.rejected.map((r) => r.code), [P.REJECT.WRONG_COMMITTEE]);
  });

  it("rejects a malformed item and settles the good ones around it (code 1)", async () => {
    const { w, client } = net;
    const good1 = await w.certificate({ client, n: 3 });
    const good2 = await w.certificate({ client, n: 1 });
    // A sampling certificate sent as kind 2 (kind does not match the request's security).
    const wrongKind = await w.certificate({ client, n: 1 });
    const asKind2 = { ...wrongKind.item, kind: 2, salt: null, validators: [] };
    // A request encoding with a trailing byte (its length still frames the item).
    const trailing = await w.certificate({ client, n: 3 });
    const withTrailing = { ...trailing.item,
                           requestBytes: P.cat([P.encodeRequest(trailing.request),
                                                new Uint8Array([0])]) };
    const good3 = await w.certificate({ client, n: 5 });
    // An unknown kind (read with kind 1's layout).
    const kind3 = await w.certificate({ client, n: 3 });
    const res = await w.settle([good1.item, asKind2, good2.item, withTrailing, good3.item,
                                { ...kind3.item, kind: 3 }]);
    assert.deepEqual(res.settled.map((s) => s.index), [0, 2, 4]);
    assert.deepEqual(res.rejected.map((r) => [r.index, r.code]),
                     [[1, P.REJECT.MALFORMED], [3, P.REJECT.MALFORMED], [5, P.REJECT.MALFORMED]]);
    assert.equal(await w.ledger.isSettled(client.address, wrongKind.request.client_nonce), false);
    assert.equal(await w.ledger.isSettled(client.address, trailing.request.client_nonce), false);
  });

  it("reverts a batch with broken framing or more than 1024 items (INVALID_ARGUMENT)",
     async () => {
       const { w, client } = net;
       const cert = await w.certificate({ client, n: 1 });
       const good = P.encodeSettleBatch([cert.item]);
       const send = (batch) => w.send(chain.deployer, "settle", [batch]);
       await expectRevert(() => send(good.slice(0, good.length - 2)), "INVALID_ARGUMENT");  // cut
       await expectRevert(() => send(good + "00"), "INVALID_ARGUMENT");  // trailing byte
       await expectRevert(() => send("0x0002" + good.slice(6)), "INVALID_ARGUMENT");  // count 2
       await expectRevert(() => send("0x00"), "INVALID_ARGUMENT");
       await expectRevert(() => send("0x0401"), "INVALID_ARGUMENT");  // 1025 items
       assert.equal(await w.ledger.isSettled(client.address, cert.request.client_nonce), false);
     });

  it("settles a mixed batch: every rejection leaves no trace, rewards sum to the debit",
     async () => {
       const { w, client, other } = net;
       const good = [];
       for (let i = 0; i < 4; ++i) good.push(await w.certificate({ client: i % 2 ? other : client,
                                                                   n: 1 + 2 * (i % 3) }));
       const bad = await w.certificate({ client, n: 3, maxFee: 1n });
       const items = [good[0].item, bad.item, good[1].item, good[2].item, good[0].item,
                      good[3].item];
       const escrows0 = [big(await w.ledger.escrowBalance(client.address)),
                         big(await w.ledger.escrowBalance(other.address))];
       const members = [...new Set(good.flatMap((g) => g.committee))];
       const rewards0 = await w.rewards(members);
       const res = await w.settle(items);
       assert.deepEqual(res.settled.map((s) => s.index), [0, 2, 3, 5]);
       assert.deepEqual(res.rejected.map((r) => [r.index, r.code]),
                        [[1, P.REJECT.FEE_ABOVE_MAX], [4, P.REJECT.ALREADY_SETTLED]]);
       const escrows1 = [big(await w.ledger.escrowBalance(client.address)),
                         big(await w.ledger.escrowBalance(other.address))];
       const debit = escrows0[0] - escrows1[0] + escrows0[1] - escrows1[1];
       assert.equal(debit, res.settled.reduce((s, x) => s + x.fee, 0n));
       const rewards1 = await w.rewards(members);
       assert.equal(rewards1.reduce((s, r) => s + r, 0n) - rewards0.reduce((s, r) => s + r, 0n),
                    debit);
     });
});

// ---- co-signed batches (docs/ledger_evm.md "Co-signed batches") -------------------------------
describe("co-signed settlement", () => {
  before(ensureChain);
  let net;
  before(async () => { net = await network(); });
  beforeEach(async () => { await net.w.rollback(net.cp); });

  // What a batch changed: the events, every node's reward balance, both clients' escrow and the
  // settled bits of `certs`.
  async function effects(res, certs) {
    const { w, client, other } = net;
    return {
      settled: res.settled,
      rejected: res.rejected,
      rewards: await w.rewards(w.nodes),
      escrow: [big(await w.ledger.escrowBalance(client.address)),
               big(await w.ledger.escrowBalance(other.address))],
      bits: await Promise.all(certs.map((c) => w.ledger.isSettled(c.request.client,
                                                                  c.request.client_nonce))),
    };
  }
  async function unchanged(certs) {
    const { w } = net;
    return effects({ settled: [], rejected: [] }, certs).then((e) => {
      assert.ok(e.bits.every((b) => b === false));
      assert.ok(e.rewards.every((r) => r === 0n));
      return e;
    });
  }

  async function honestBatch() {
    const { w, client, other } = net;
    const certs = [];
    for (let i = 0; i < 7; ++i) {
      certs.push(await w.certificate({ client: i < 4 ? client : other, n: [3, 1, 5, 3][i % 4] }));
    }
    return certs;
  }

  it("settles an honest batch with overlapping members exactly as settle does", async () => {
    const { w } = net;
    const certs = await honestBatch();
    const items = certs.map((c) => c.item);
    const slotsOf = new Map();
    for (const c of certs) for (const m of c.committee) slotsOf.set(m, (slotsOf.get(m) ?? 0) + 1);
    assert.ok([...slotsOf.values()].some((k) => k > 1), "some member serves two certificates");
    const viaSettle = await effects(await w.settle(items), certs);
    assert.equal(viaSettle.settled.length, certs.length);
    await w.rollback(net.cp);
    const res = await w.settleCosigned(items);
    const viaCosigned = await effects(res, certs);
    assert.deepEqual(viaCosigned, viaSettle);
    // One table entry per distinct member, each over its own slots in batch order.
    const chains = P.cosignChains(w.domain, items);
    assert.equal(chains.size, slotsOf.size);
    for (const [m, c] of chains) assert.equal(c.count, slotsOf.get(m));
    assert.equal(P.bytesOf(res.batch).length,
                 P.bytesOf(P.encodeSettleBatch(items)).length + 1 + 85 * slotsOf.size -
                   64 * [...slotsOf.values()].reduce((a, b) => a + b, 0));
  });

  it("reverts the whole batch (PERMISSION_DENIED) for a bad co-signature, a member signing "
     + "another list, an index outside the table or a member with no slot", async () => {
    const { w } = net;
    const certs = await honestBatch();
    const items = certs.map((c) => c.item);
    const chains = P.cosignChains(w.domain, items);
    const members = [...chains.keys()];
    // A member with several slots (one exists: checked by the test above).
    const victim = members.find((m) => chains.get(m).count > 1);
    const send = (options) => w.send(chain.deployer, "settleCosigned",
                                     [w.cosignedBatch(items, options)]);
    // Signed by another key.
    const stranger = P.testKey("stranger");
    await expectRevert(() => send({ signature: (m, i, d) => (m === victim ? P.sign(stranger, d)
                                                                          : undefined) }),
                       "PERMISSION_DENIED", /co-signature/);
    // The victim co-signs only its first slot's digest: another list than the batch's.
    const first = chains.get(victim).digests[0];
    const short = P.cosignDigest(w.domain, P.cosignStep("0x" + "00".repeat(32), first), 1);
    await expectRevert(() => send({ signature: (m) => (m === victim
      ? P.sign(w.keyOf(victim), short) : undefined) }), "PERMISSION_DENIED");
    // The same list in another order.
    const ds = [...chains.get(victim).digests].reverse();
    const reordered = P.cosignDigest(w.domain,
                                     ds.reduce((h, d) => P.cosignStep(h, d), "0x" + "00".repeat(32)),
                                     ds.length);
    await expectRevert(() => send({ signature: (m) => (m === victim
      ? P.sign(w.keyOf(victim), reordered) : undefined) }), "PERMISSION_DENIED");
    // A co-signature for another ledger.
    const otherDomain = P.cosignDigest({ chainId: w.domain.chainId, ledger: "0x" + "11".repeat(20) },
                                       chains.get(victim).chain, chains.get(victim).count);
    await expectRevert(() => send({ signature: (m) => (m === victim
      ? P.sign(w.keyOf(victim), otherDomain) : undefined) }), "PERMISSION_DENIED");
    // A slot pointing past the table.
    await expectRevert(() => send({ index: (s) => (s.member === victim ? members.length
                                                                       : members.indexOf(s.member)) }),
                       "PERMISSION_DENIED", /index/);
    // A slot pointing at another (existing) member of the table.
    const other = members.find((m) => m !== victim);
    await expectRevert(() => send({ index: (s) => members.indexOf(s.member === victim ? other
                                                                                      : s.member) }),
                       "PERMISSION_DENIED");
    // A table member with no slot (it co-signs the empty list).
    const idle = w.nodes.find((m) => !chains.has(m));
    await expectRevert(() => send({ members: [...members, idle] }), "PERMISSION_DENIED", /no slot/);
    await unchanged(certs);
    // Broken framing is INVALID_ARGUMENT, as for settle.
    const good = w.cosignedBatch(items);
    await expectRevert(() => w.send(chain.deployer, "settleCosigned", ["0x0001"]),
                       "INVALID_ARGUMENT");
    await expectRevert(() => w.send(chain.deployer, "settleCosigned", [good.slice(0, 200)]),
                       "INVALID_ARGUMENT");
    await expectRevert(() => w.send(chain.deployer, "settleCosigned", [good + "00"]),
                       "INVALID_ARGUMENT");
    await unchanged(certs);
    // And the honest batch goes through.
    assert.equal((await w.settleCosigned(items)).settled.length, certs.length);
  });

  it("rejects only the bad items: client signature, committee, double settlement, fee",
     async () => {
       const { w, client, other } = net;
       const [a, b, c] = [await w.certificate({ client, n: 3 }),
                          await w.certificate({ client, n: 3 }),
                          await w.certificate({ client: other, n: 1 })];
       const forged = { ...b.item, clientSignature: w.signRequest(other.address, b.request) };
       const referees = await w.certificate({ client, n: 3,
                                              committee: (d) => d.referees.slice(0, 3) });
       const dearer = await w.certificate({ client: other, n: 3, maxFee: 1n });
       const items = [a.item, forged, referees.item, c.item, a.item, dearer.item];
       const viaSettle = await effects(await w.settle(items), [a, b, c, referees, dearer]);
       assert.deepEqual(viaSettle.settled.map((s) => s.index), [0, 3]);
       assert.deepEqual(viaSettle.rejected.map((r) => [r.index, r.code]),
                        [[1, P.REJECT.BAD_CLIENT_SIGNATURE], [2, P.REJECT.WRONG_COMMITTEE],
                         [4, P.REJECT.ALREADY_SETTLED], [5, P.REJECT.FEE_ABOVE_MAX]]);
       await w.rollback(net.cp);
       const viaCosigned = await effects(await w.settleCosigned(items),
                                         [a, b, c, referees, dearer]);
       assert.deepEqual(viaCosigned, viaSettle);
       // A certificate settled through settle is ALREADY_EXISTS through settleCosigned.
       const again = await w.settleCosigned([c.item]);
       assert.deepEqual(again.rejected.map((r) => r.code), [P.REJECT.ALREADY_SETTLED]);
     });

  it("judges committee views as settle does: draws in order, backups, a member twice, swapped "
     + "members, a referee and an outsider, members named by several items", async () => {
    // The co-signed path checks "slot i holds draw i" from each table member's snapshot index,
    // kept across the batch's items, and falls back to the draws for backups; both must agree
    // with settle's recovered-signer path item by item.
    const { w, client, other } = net;
    const outsider = (await w.walletFor("outsider")).address.toLowerCase();
    const shapes = [
      null,
      (d) => [d.backups[2], d.committee[1], d.backups[0]],
      (d) => [d.committee[0], d.committee[0], d.committee[2]],
      (d) => [d.committee[1], d.committee[0], d.committee[2]],
      (d) => [d.committee[0], d.referees[0], d.committee[2]],
      (d) => [d.committee[0], d.committee[1], outsider],
      null,
      (d) => [d.committee[0], d.backups[1], d.committee[2]],
      null,
    ];
    const certs = [];
    for (let i = 0; i < shapes.length; ++i) {
      certs.push(await w.certificate({ client: i % 2 ? other : client, n: 3,
                                       ...(shapes[i] ? { committee: shapes[i] } : {}) }));
    }
    const items = certs.map((c) => c.item);
    const viaSettle = await effects(await w.settle(items), certs);
    assert.deepEqual(viaSettle.settled.map((s) => s.index), [0, 1, 6, 7, 8]);
    assert.deepEqual(viaSettle.rejected.map((r) => [r.index, r.code]),
                     [2, 3, 4, 5].map((i) => [i, P.REJECT.WRONG_COMMITTEE]));
    await w.rollback(net.cp);
    assert.deepEqual(await effects(await w.settleCosigned(items), certs), viaSettle);
  });

  it("rejects a copied C (code 5) and settles a malformed item's neighbours (code 1)",
     async () => {
       const { w, client } = net;
       const cert = await w.certificate({ client, n: 3 });
       const lazy = w.attest(cert.committee[1], { request: cert.request, committee: cert.committee,
                                                 proofOverride: randomHash("made up p"),
                                                 commitmentOverride: cert.attestations[0].commitment });
       const copied = P.settleItemFromAttestations({
         request: cert.request, clientSignature: cert.clientSignature,
         attestations: [cert.attestations[0], lazy, cert.attestations[2]] });
       const good = await w.certificate({ client, n: 1 });
       const wrongKind = await w.certificate({ client, n: 1 });
       // Rejected as malformed: its slots are in no member's list.
       const asKind2 = { ...wrongKind.item, kind: 2, salt: null, validators: [], unchained: true };
       const res = await w.settleCosigned([copied, asKind2, good.item]);
       assert.deepEqual(res.settled.map((s) => s.index), [2]);
       assert.deepEqual(res.rejected.map((r) => [r.index, r.code]),
                        [[0, P.REJECT.CONFLICTING_COMMITMENTS], [1, P.REJECT.MALFORMED]]);
     });
});

// ---- cross-validation certificates --------------------------------------------------------------
describe("cross-validation settlement", () => {
  before(ensureChain);
  let net;
  before(async () => { net = await network(); });
  beforeEach(async () => { await net.w.rollback(net.cp); });

  // Searches salts until the coin over the honest executor's attestation is (not) drawn.
  async function xvCertificate({ drawn, p = 500000, k = 2, label = "x", model = MODEL_1,
                                 echelon = ECHELON_1, client = net.client }) {
    const { w } = net;
    const cur = await w.currentEpoch();
    for (let i = 0; i < 200; ++i) {
      const salt = randomHash(`salt-${label}-${i}`);
      const security = { mode: "cross_validation", p_micro: p, k, salt_hash: P.xvSaltHash(salt) };
      const request = w.request({ client: client.address, epoch: cur.number, security, model,
                                  nonce: w.nextNonce });
      const draws = w.draws(cur.number, cur.seed, request, echelon);
      const executor = draws.committee[0];
      const execAtt = w.attest(executor, { request, committee: [executor], echelon });
      const coin = P.xvCoin(salt, execAtt);
      if ((coin < BigInt(p)) !== drawn) continue;
      w.nextNonce++;
      const validators = draws.referees.slice(0, k);
      const validatorAtts = validators.map((v) => w.attest(v, { request, committee: [executor],
                                                                echelon }));
      const clientSignature = w.signRequest(client.address, request);
      const item = (over = {}) => P.settleItemFromAttestations({
        request, clientSignature, attestations: [execAtt], kind: 2, salt, ...over });
      return { request, requestId: P.requestId(request), salt, draws, executor, execAtt,
               validators, validatorAtts, item, coin };
    }
    throw new Error("no salt found");
  }

  it("settles an unrevealed certificate and pays the executor", async () => {
    const { w } = net;
    const x = await xvCertificate({ drawn: true, label: "unrevealed" });
    const res = await w.settle([x.item({ salt: null })]);
    assert.deepEqual(res.rejected, []);
    assert.deepEqual(res.settled.map((s) => s.fee), [40n]);
    assert.deepEqual(await w.rewards([x.executor, ...x.validators]), [40n, 0n, 0n]);
  });

  it("settles a revealed certificate whose coin was not drawn", async () => {
    const { w } = net;
    const x = await xvCertificate({ drawn: false, label: "not-drawn" });
    assert.ok(x.coin >= 500000n);
    const res = await w.settle([x.item()]);
    assert.deepEqual(res.rejected, []);
    assert.deepEqual(await w.rewards([x.executor]), [40n]);
  });

  it("settles a drawn certificate with its validators and splits the fee", async () => {
    const { w } = net;
    const x = await xvCertificate({ drawn: true, label: "drawn" });
    assert.ok(x.coin < 500000n);
    const res = await w.settle([x.item({ validators: x.validatorAtts })]);
    assert.deepEqual(res.rejected, []);
    assert.deepEqual(await w.rewards([x.executor, ...x.validators]), [14n, 13n, 13n]);
    assert.equal(await w.ledger.isSettled(x.request.client, x.request.client_nonce), true);
  });

  it("settles drawn and undrawn certificates co-signed, validators included", async () => {
    const { w } = net;
    const x = await xvCertificate({ drawn: true, label: "cosigned-drawn" });
    const y = await xvCertificate({ drawn: false, label: "cosigned-undrawn" });
    const z = await xvCertificate({ drawn: true, label: "cosigned-missing" });
    const items = [x.item({ validators: x.validatorAtts }), y.item(),
                   z.item({ validators: [z.validatorAtts[1], z.validatorAtts[0]] })];
    const res = await w.settleCosigned(items);
    assert.deepEqual(res.settled.map((s) => s.index), [0, 1]);
    assert.deepEqual(res.rejected.map((r) => [r.index, r.code]),
                     [[2, P.REJECT.MISSING_VALIDATORS]]);
    // x: 14 to its executor, 13 to each validator; y: 40 to its executor (who may be any of them).
    const expected = new Map();
    const credit = (a, v) => expected.set(a, (expected.get(a) ?? 0n) + v);
    credit(x.executor, 14n);
    for (const v of x.validators) credit(v, 13n);
    credit(y.executor, 40n);
    const paid = [...expected.keys()];
    assert.deepEqual(await w.rewards(paid), paid.map((a) => expected.get(a)));
    // A validator entry pointing past the table reverts the batch.
    await expectRevert(() => w.send(chain.deployer, "settleCosigned", [w.cosignedBatch(
      [x.item({ validators: x.validatorAtts })],
      { index: (s) => (s.member === x.validators[1] ? 7 : [x.executor, ...x.validators]
        .indexOf(s.member)) })]), "PERMISSION_DENIED");
  });

  it("rejects missing or misplaced validators (code 10) and a bad salt (code 9)", async () => {
    const { w } = net;
    const x = await xvCertificate({ drawn: true, label: "missing" });
    const y = await xvCertificate({ drawn: true, label: "swapped" });
    const z = await xvCertificate({ drawn: false, label: "badsalt" });
    // A validator draw that is not a validator: the first dispute referee.
    const notValidator = w.attest(y.draws.referees[2], { request: y.request,
                                                         committee: [y.executor] });
    const res = await w.settle([
      x.item({ validators: x.validatorAtts.slice(0, 1) }),
      x.item({ validators: [] }),
      y.item({ validators: [y.validatorAtts[1], y.validatorAtts[0]] }),
      y.item({ validators: [y.validatorAtts[0], notValidator] }),
      z.item({ salt: randomHash("not the salt") }),
    ]);
    assert.deepEqual(res.settled, []);
    assert.deepEqual(res.rejected.map((r) => [r.index, r.code]),
                     [[0, P.REJECT.MISSING_VALIDATORS], [1, P.REJECT.MISSING_VALIDATORS],
                      [2, P.REJECT.MISSING_VALIDATORS], [3, P.REJECT.MISSING_VALIDATORS],
                      [4, P.REJECT.BAD_SALT]]);
    // The same requests still settle correctly afterwards.
    const ok = await w.settle([x.item({ validators: x.validatorAtts }),
                               y.item({ validators: y.validatorAtts }), z.item()]);
    assert.equal(ok.settled.length, 3);
  });

  // VerifyXvCertificate (consensus/xv.h) and the embedded ledger: "fewer [than k], or an echelon
  // too small to draw k: kMissingValidators". docs/ledger_evm.md's code 10 reads "fewer than
  // min(k, available)" instead; this pins the protocol's rule (see the report to the lead).
  it("rejects a drawn certificate when the echelon cannot supply k validators (code 10)",
     async () => {
       const { w } = net;
       // ECHELON_2 has 4 staked nodes: executor, backup and 2 validators for k = 3.
       const x = await xvCertificate({ drawn: true, k: 3, label: "small", model: MODEL_2,
                                       echelon: ECHELON_2 });
       assert.equal(x.validators.length, 2);
       const res = await w.settle([x.item({ validators: x.validatorAtts })]);
       assert.deepEqual(res.rejected.map((r) => r.code), [P.REJECT.MISSING_VALIDATORS]);
     });

  it("slashes a lying executor on dispute; validators and majority referees share", async () => {
    const { w, client } = net;
    const x = await xvCertificate({ drawn: true, label: "xv-dispute" });
    const wrong = { token_ids: [8, 8, 8], finish_reason: 1 };
    const liar = w.attest(x.executor, { request: x.request, committee: [x.executor],
                                        output: wrong });
    const referees = x.draws.referees.slice(2);  // after the k = 2 validators
    assert.equal(referees.length, 3);
    const votes = [referees[0], referees[2]].map((r) =>
      w.attest(r, { request: x.request, committee: [x.executor] }));
    const slashed = (await locked(w, x.executor)) * 1000n / 10000n;
    const escrow0 = big(await w.ledger.escrowBalance(client.address));
    const r = await w.send(chain.deployer, "settleDispute", [P.encodeDisputeEvidence({
      request: x.request, clientSignature: x.item().clientSignature, committee: [x.executor],
      memberAttestations: [liar, x.validatorAtts[1], x.validatorAtts[0]],
      refereeAttestations: votes, output: DEFAULT_OUTPUT })]);
    const ds = w.events(r, "DisputeSettled")[0];
    const rewarded = [...x.validators, referees[0], referees[2]];
    assert.deepEqual(lower(ds.args[5]), [x.executor]);
    assert.deepEqual(lower(ds.args[6]), rewarded);  // validators in draw order
    assert.equal(big(ds.args[3]), 40n);
    assert.deepEqual(await w.rewards(rewarded), shares(slashed + 40n, 4));
    assert.equal(big(await w.ledger.escrowBalance(client.address)), escrow0 - 40n);
    assert.equal(await w.ledger.isSettled(client.address, x.request.client_nonce), true);
    const again = await w.settle([x.item({ validators: x.validatorAtts })]);
    assert.deepEqual(again.rejected.map((e) => e.code), [P.REJECT.ALREADY_SETTLED]);
  });

  it("rejects a cross-validation request sent as kind 1 (code 1)", async () => {
    const { w } = net;
    const x = await xvCertificate({ drawn: false, label: "kind1" });
    const asKind1 = { ...x.item(), kind: 1 };
    delete asKind1.salt;
    delete asKind1.validators;
    const good = await w.certificate({ client: net.client, n: 1 });
    const res = await w.settle([asKind1, good.item]);
    assert.deepEqual(res.rejected.map((r) => [r.index, r.code]), [[0, P.REJECT.MALFORMED]]);
    assert.deepEqual(res.settled.map((s) => s.index), [1]);
  });
});

// ---- equivocation -------------------------------------------------------------------------------
describe("equivocation", () => {
  before(ensureChain);
  let net;
  before(async () => { net = await network(); });
  beforeEach(async () => { await net.w.rollback(net.cp); });
  const body = (a) => P.hex(P.encodeAttestationBody(a));
  const otherOutput = { token_ids: [5, 6, 7], finish_reason: 1 };

  async function pair() {
    const { w, client } = net;
    const cert = await w.certificate({ client, n: 3 });
    const m = cert.committee[1];
    const a = cert.attestations[1];
    const b = w.attest(m, { request: cert.request, committee: cert.committee,
                            output: otherOutput });
    return { cert, m, a, b };
  }

  it("slashes slashBps of the locked stake, pays the reporter its share, burns the rest",
     async () => {
       const { w } = net;
       const { cert, m, a, b } = await pair();
       // Part of the offender's stake is unbonding: it is still locked and still slashable.
       await w.send(w.walletOf(m), "unstake", [10n ** 17n]);
       const [bonded0, unbonding0] = await w.ledger.getStake(m);
       const locked = big(bonded0) + unbonding0.reduce((s, u) => s + big(u[0]), 0n);
       const slashed = locked * 1000n / 10000n;
       const reward = slashed * 2500n / 10000n;
       const reporter = w.walletOf(cert.committee[0]);
       const burned0 = big(await w.ledger.burned());
       const r = await w.send(reporter, "reportEquivocation", [body(a), body(b)]);
       const ev = w.events(r, "Slashed");
       assert.equal(ev.length, 1);
       const da = P.attestationDigest(a);
       const db = P.attestationDigest(b);
       const [lo, hi] = da < db ? [da, db] : [db, da];
       const evidence = P.hex(P.taggedHash("atoma/equivocation", P.cat([P.hash32(lo),
                                                                         P.hash32(hi)])));
       assert.deepEqual([ev[0].args[0].toLowerCase(), ev[0].args[1].toLowerCase(),
                         ev[0].args[2].toLowerCase(), Number(ev[0].args[3]),
                         ev[0].args[4].toLowerCase(), big(ev[0].args[5]), big(ev[0].args[6])],
                        [m, cert.requestId, evidence, 1, reporter.address.toLowerCase(), slashed,
                         reward]);
       const [bonded1] = await w.ledger.getStake(m);
       assert.equal(big(bonded1), big(bonded0) - slashed);  // taken from bonded first
       assert.equal(big(await w.ledger.rewardBalance(reporter.address)), reward);
       assert.equal(big(await w.ledger.burned()), burned0 + slashed - reward);
     });

  it("slashes one offence once: a second report is ALREADY_EXISTS", async () => {
    const { w, client } = net;
    const { cert, m, a, b } = await pair();
    const reporter = w.walletOf(cert.committee[0]);
    await w.send(reporter, "reportEquivocation", [body(a), body(b)]);
    await expectRevert(() => w.send(reporter, "reportEquivocation", [body(b), body(a)]),
                       "ALREADY_EXISTS");
    const c = w.attest(m, { request: cert.request, committee: cert.committee,
                            output: { token_ids: [9], finish_reason: 0 } });
    await expectRevert(() => w.send(client, "reportEquivocation", [body(a), body(c)]),
                       "ALREADY_EXISTS");
  });

  it("refuses a view update (same output, another C) and other non-evidence", async () => {
    const { w, client } = net;
    const { cert, m, a, b } = await pair();
    const reporter = w.walletOf(cert.committee[0]);
    // View update: a backup replaced member 2, member 1 re-attests the same output.
    const view = [cert.committee[0], m, cert.draws.backups[0]];
    const update = w.attest(m, { request: cert.request, committee: view });
    assert.notEqual(update.commitment, a.commitment);
    assert.equal(update.proof, a.proof);
    await expectRevert(() => w.send(reporter, "reportEquivocation", [body(a), body(update)]),
                       "INVALID_ARGUMENT");
    // The same attestation twice, and two signatures of one digest.
    await expectRevert(() => w.send(reporter, "reportEquivocation", [body(a), body(a)]),
                       "INVALID_ARGUMENT");
    // Two different members.
    await expectRevert(() => w.send(reporter, "reportEquivocation",
                                    [body(a), body(cert.attestations[2])]), "INVALID_ARGUMENT");
    // Two requests.
    const other = await w.certificate({ client, n: 3 });
    const m2 = other.committee[0];
    const x = other.attestations[0];
    const y = w.attest(m2, { request: cert.request, committee: cert.committee,
                             output: otherOutput });
    await expectRevert(() => w.send(reporter, "reportEquivocation", [body(x), body(y)]),
                       "INVALID_ARGUMENT");
    // Wrong sizes.
    await expectRevert(() => w.send(reporter, "reportEquivocation", [body(a).slice(0, -2),
                                                                     body(b)]),
                       "INVALID_ARGUMENT");
    const [bonded] = await w.ledger.getStake(m);
    assert.equal(big(bonded), w.bonded.get(m));
  });

  it("refuses bad signatures and other domains (PERMISSION_DENIED), unregistered signers "
     + "(NOT_FOUND)", async () => {
    const { w } = net;
    const { cert, m, a, b } = await pair();
    const reporter = w.walletOf(cert.committee[0]);
    // b's signature over a's content does not recover to m.
    const forged = { ...a, proof: randomHash("forged p"), signature: b.signature };
    await expectRevert(() => w.send(reporter, "reportEquivocation", [body(a), body(forged)]),
                       "PERMISSION_DENIED");
    const otherDomain = P.resign({ ...b, chainId: 1n }, w.keyOf(m), {});
    await expectRevert(() => w.send(reporter, "reportEquivocation", [body(a), body(otherDomain)]),
                       "PERMISSION_DENIED");
    const strangerKey = P.testKey("never registered");
    const s1 = P.resign(a, strangerKey, {});
    const s2 = P.resign(b, strangerKey, {});
    await expectRevert(() => w.send(reporter, "reportEquivocation", [body(s1), body(s2)]),
                       "NOT_FOUND");
  });
});

// ---- disputes -----------------------------------------------------------------------------------
describe("disputes", () => {
  before(ensureChain);
  let net;
  before(async () => { net = await network(); });
  beforeEach(async () => { await net.w.rollback(net.cp); });
  const wrongOutput = { token_ids: [1, 2, 3, 4], finish_reason: 1 };

  // A dispute on an n = 3 request: member `liar` computed `wrongOutput` (or, with `lazy`, copied C
  // without computing); `votes[i]` is referee draw i's vote ("honest", "wrong" or null = silent).
  async function dispute({ liar = 2, lazy = false, votes, client = net.client }) {
    const { w } = net;
    const cert = await w.certificate({ client, n: 3 });
    const { request, committee } = cert;
    const members = committee.map((m, i) => {
      if (i !== liar) return cert.attestations[i];
      if (lazy) {
        return w.attest(m, { request, committee, proofOverride: randomHash("lazy p"),
                             commitmentOverride: cert.attestations[0].commitment });
      }
      return w.attest(m, { request, committee, output: wrongOutput });
    });
    const referees = cert.draws.referees;
    assert.equal(referees.length, 7);
    const refAtts = [];
    votes.forEach((v, i) => {
      if (v === null) return;
      refAtts.push(w.attest(referees[i], { request, committee,
                                            output: v === "honest" ? DEFAULT_OUTPUT
                                                                   : wrongOutput }));
    });
    const evidence = (over = {}) => P.encodeDisputeEvidence({
      request, clientSignature: cert.clientSignature, committee,
      memberAttestations: members, refereeAttestations: [...refAtts].reverse(),
      output: DEFAULT_OUTPUT, ...over });
    return { cert, members, referees, refAtts, evidence };
  }

  it("slashes a dishonest member and rewards honest members and majority referees", async () => {
    const { w, client } = net;
    const votes = ["honest", "wrong", "honest", null, "honest", "honest", null];
    const d = await dispute({ liar: 2, votes });
    const liar = d.cert.committee[2];
    const slashed = (await locked(w, liar)) * 1000n / 10000n;
    const fee = 40n;
    const majority = d.referees.filter((_, i) => votes[i] === "honest");  // draw order
    const rewarded = [d.cert.committee[0], d.cert.committee[1], ...majority];
    const everyone = [...d.cert.committee, ...d.referees];
    const rewards0 = await w.rewards(everyone);
    const escrow0 = big(await w.ledger.escrowBalance(client.address));
    const burned0 = big(await w.ledger.burned());
    const r = await w.send(chain.deployer, "settleDispute", [d.evidence()]);
    const commitment = d.cert.attestations[0].commitment;
    const slashedEv = w.events(r, "Slashed");
    assert.deepEqual(slashedEv.map((e) => [e.args[0].toLowerCase(), e.args[1].toLowerCase(),
                                           e.args[2].toLowerCase(), Number(e.args[3]),
                                           big(e.args[5]), big(e.args[6])]),
                     [[liar, d.cert.requestId,
                       P.hex(P.taggedHash("atoma/dispute", P.cat([P.hash32(d.cert.requestId),
                                                                  P.hash32(commitment)]))),
                       2, slashed, 0n]]);
    const ds = w.events(r, "DisputeSettled");
    assert.equal(ds.length, 1);
    assert.equal(ds[0].args[0].toLowerCase(), d.cert.requestId);
    assert.equal(ds[0].args[1].toLowerCase(), commitment);
    assert.equal(big(ds[0].args[2]), slashed);
    assert.equal(big(ds[0].args[3]), fee);
    assert.deepEqual(lower(ds[0].args[5]), [liar]);
    assert.deepEqual(lower(ds[0].args[6]), rewarded);
    const rewards1 = await w.rewards(everyone);
    const expected = new Map(shares(slashed + fee, rewarded.length).map((s, i) => [rewarded[i], s]));
    everyone.forEach((a, i) => assert.equal(rewards1[i] - rewards0[i], expected.get(a) ?? 0n, a));
    assert.equal(big(await w.ledger.escrowBalance(client.address)), escrow0 - fee);
    assert.equal(big(await w.ledger.burned()), burned0);
    const [bondedAfter] = await w.ledger.getStake(liar);
    assert.equal(big(bondedAfter), w.bonded.get(liar) - slashed);
    assert.equal(await w.ledger.isSettled(client.address, d.cert.request.client_nonce), true);
    // Closed for good: a second dispute and the certificate are refused.
    await expectRevert(() => w.send(chain.deployer, "settleDispute", [d.evidence()]),
                       "ALREADY_EXISTS");
    const again = await w.settle([d.cert.item]);
    assert.deepEqual(again.rejected.map((x) => x.code), [P.REJECT.ALREADY_SETTLED]);
  });

  it("finds a lazy member only with the output", async () => {
    const { w } = net;
    const votes = ["honest", "honest", "honest", "honest", "honest", "honest", "honest"];
    const d = await dispute({ liar: 1, lazy: true, votes });
    await expectRevert(() => w.send(chain.deployer, "settleDispute",
                                    [d.evidence({ output: null })]), "FAILED_PRECONDITION");
    const lazy = d.cert.committee[1];
    const slashed = (await locked(w, lazy)) * 1000n / 10000n;
    const r = await w.send(chain.deployer, "settleDispute", [d.evidence()]);
    const ds = w.events(r, "DisputeSettled")[0];
    assert.deepEqual(lower(ds.args[5]), [lazy]);
    assert.deepEqual(lower(ds.args[6]), [d.cert.committee[0], d.cert.committee[2], ...d.referees]);
    const pool = slashed + 40n;
    assert.deepEqual(await w.rewards([d.cert.committee[0], d.cert.committee[2], lazy]),
                     [...shares(pool, 9).slice(0, 2), 0n]);
  });

  it("slashes without a fee when the escrow is short (the note says why)", async () => {
    const { w } = net;
    const poor = await w.client("dispute-poor", 10n);
    const votes = ["honest", "honest", "honest", "honest", null, null, null];
    const d = await dispute({ votes, client: poor });
    const liar = d.cert.committee[2];
    const slashed = (await locked(w, liar)) * 1000n / 10000n;
    const r = await w.send(chain.deployer, "settleDispute", [d.evidence()]);
    const ds = w.events(r, "DisputeSettled")[0];
    assert.equal(big(ds.args[2]), slashed);
    assert.equal(big(ds.args[3]), 0n);
    assert.ok(ds.args[4].length > 0, "fee note");
    assert.equal(big(await w.ledger.escrowBalance(poor.address)), 10n);
    const rewarded = [d.cert.committee[0], d.cert.committee[1], ...d.referees.slice(0, 4)];
    assert.deepEqual(await w.rewards(rewarded), shares(slashed, 6));
  });

  it("refuses evidence without a strict majority of all referees (FAILED_PRECONDITION)",
     async () => {
       const { w, client } = net;
       const d = await dispute({ votes: ["honest", "wrong", "honest", "wrong", "honest", "wrong",
                                         null] });
       const escrow0 = big(await w.ledger.escrowBalance(client.address));
       await expectRevert(() => w.send(chain.deployer, "settleDispute", [d.evidence()]),
                          "FAILED_PRECONDITION");
       // 3 of 7 alone is no majority either.
       const e = await dispute({ votes: ["honest", null, "honest", null, "honest", null, null] });
       await expectRevert(() => w.send(chain.deployer, "settleDispute", [e.evidence()]),
                          "FAILED_PRECONDITION");
       assert.equal(big(await w.ledger.escrowBalance(client.address)), escrow0);
       assert.equal(await w.ledger.isSettled(client.address, d.cert.request.client_nonce), false);
     });

  it("refuses a dispute for a request already settled by certificate (ALREADY_EXISTS)",
     async () => {
       const { w } = net;
       const d = await dispute({ votes: ["honest", "honest", "honest", "honest", null, null,
                                         null] });
       const res = await w.settle([d.cert.item]);
       assert.equal(res.settled.length, 1);
       await expectRevert(() => w.send(chain.deployer, "settleDispute", [d.evidence()]),
                          "ALREADY_EXISTS");
     });

  it("checks the client signature, the committee and the epoch", async () => {
    const { w, other } = net;
    const d = await dispute({ votes: ["honest", "honest", "honest", "honest", null, null, null] });
    const forged = w.signRequest(other.address, d.cert.request);
    await expectRevert(() => w.send(chain.deployer, "settleDispute",
                                    [d.evidence({ clientSignature: forged })]),
                       "PERMISSION_DENIED");
    const swapped = [d.cert.committee[1], d.cert.committee[0], d.cert.committee[2]];
    await expectRevert(() => w.send(chain.deployer, "settleDispute",
                                    [d.evidence({ committee: swapped })]), "PERMISSION_DENIED");
    // A member's vote counted as a referee's.
    await expectRevert(() => w.send(chain.deployer, "settleDispute", [d.evidence({
      refereeAttestations: [...d.refAtts.slice(0, 3), d.members[0]] })]), "PERMISSION_DENIED");
    const future = await futureCertificate(w, net.client);
    await expectRevert(() => w.send(chain.deployer, "settleDispute", [P.encodeDisputeEvidence({
      request: future.request, clientSignature: future.clientSignature,
      committee: future.committee, memberAttestations: future.attestations,
      refereeAttestations: [], output: null })]), "NOT_FOUND");
  });
});

// ---- revert reasons -----------------------------------------------------------------------------
describe("revert reasons", () => {
  before(ensureChain);
  it("start with the status code and name the amounts involved", async () => {
    const w = await World.deploy(chain);
    const [node] = await w.addNodes(1, { prefix: "rr-", stake: () => 5n });
    const reason = await expectRevert(() => w.send(w.walletOf(node), "unstake", [10n]),
                                      "FAILED_PRECONDITION");
    assert.match(reason, /\b5\b/);
    assert.match(reason, /\b10\b/);
    const r2 = await expectRevert(() => w.send(w.walletOf(node), "withdrawRewards", [3n]),
                                  "FAILED_PRECONDITION");
    assert.match(r2, /\b3\b/);
  });
});

// ---- epoch liveness -----------------------------------------------------------------------------
// Registering is open to anyone, a node may serve 64 echelons and stake 1 wei, and advanceEpoch
// loops over every (staked node, echelon) pair and writes one snapshot per distinct echelon. If
// its cost can be pushed past a block's gas, no epoch can ever open again (the registrants cannot
// be removed by anyone else). docs/ledger_evm.md puts the limit at ~2,000 pairs per 30M block
// and names it a concern for large networks; this shows that 28 registrations do it.
describe("epoch liveness", () => {
  before(ensureChain);

  it("keeps advanceEpoch within a 30M-gas block whatever anyone registers", async () => {
    const w = await World.deploy(chain);
    const echelons = Array.from({ length: 64 }, (_, j) => [randomHash(`dos-m${j}`),
                                                          randomHash(`dos-e${j}`)]);
    await w.addNodes(28, { prefix: "dos-", stake: () => 1n, echelons: () => echelons });
    const limit = 30_000_000n;
    let gas;
    try {
      gas = await w.ledger.connect(chain.deployer).advanceEpoch.estimateGas();
    } catch (e) {
      assert.fail(`advanceEpoch cannot run in a ${limit}-gas block after 28 registrations of ` +
                  `64 echelons and 1 wei each: ${e.shortMessage ?? e.message}`);
    }
    assert.ok(gas <= limit, `advanceEpoch needs ${gas} gas`);
  });
});

// ---- registry size limit (last: 257 registrations) ----------------------------------------------
describe("registry limit", () => {
  before(ensureChain);
  it("refuses a 257th node with FAILED_PRECONDITION", async () => {
    const w = await World.deploy(chain);
    await w.addNodes(256, { prefix: "many-", stake: () => 0n });
    assert.equal((await w.ledger.listNodes()).length, 256);
    const extra = await w.walletFor("many-extra");
    await expectRevert(() => w.send(extra, "registerNode", ["127.0.0.1:1", [
      { modelDigest: MODEL_1, echelonId: ECHELON_1 }]]), "FAILED_PRECONDITION");
  });
});
