// A deployed AtomaLedger with registered, staked nodes, a funded client and helpers that build
// honest (or deliberately broken) certificates, attestations and dispute evidence from the
// protocol of protocol.mjs. Shared by tests/functional/contract_test.mjs and
// bench/contract_gas.mjs.
//
// Keys are deterministic (protocol.testKey); the expected snapshot of each epoch is tracked here
// from what the world staked, so certificates are built from our own model of the ledger and a
// contract whose snapshot differs rejects them visibly.
// Errors: contract calls reject with ethers errors (anvil.revertReason gives the reason).
// Not thread-safe: one World per chain, one call at a time.
import * as P from "./protocol.mjs";
import { send } from "./anvil.mjs";

const { ethers } = P;

// The parameters the tests use unless they say otherwise:
// [unbondingEpochs, epochLengthS, minEpochSpacingS, feePerToken, slashBps, reporterShareBps].
export const DEFAULT_PARAMS = [2n, 3600n, 0n, 1n, 1000n, 2500n];

export const MODEL_1 = P.hex(P.sha256(new TextEncoder().encode("model-1")));
export const MODEL_2 = P.hex(P.sha256(new TextEncoder().encode("model-2")));
export const ECHELON_1 = P.hex(P.taggedHash("atoma/echelon", P.cat([P.hash32(MODEL_1),
  P.sha256(new TextEncoder().encode("fingerprint-1"))])));
export const ECHELON_2 = P.hex(P.taggedHash("atoma/echelon", P.cat([P.hash32(MODEL_2),
  P.sha256(new TextEncoder().encode("fingerprint-2"))])));

export const DEFAULT_OUTPUT = {
  token_ids: Array.from({ length: 20 }, (_, i) => 1000 + 7 * i),
  finish_reason: 0,
};

export class World {
  constructor(chain, contract, params) {
    this.chain = chain;
    this.ledger = contract;
    this.params = params;
    this.address = contract.target.toLowerCase();
    this.domain = { chainId: BigInt(chain.chainId), ledger: this.address };
    this.keys = new Map();     // address -> private key
    this.wallets = new Map();  // address -> ethers Wallet
    this.nodes = [];           // node addresses in registration order
    this.bonded = new Map();   // address -> bonded stake (our model)
    this.echelonsOf = new Map();  // address -> [echelon ids]
    this.frozen = new Map();   // epoch -> Map(echelon -> [{address, stake}] sorted)
    this.nextNonce = 1n;
  }

  static async deploy(chain, params = DEFAULT_PARAMS) {
    const { contract, receipt } = await chain.deploy(params);
    const w = new World(chain, contract, params);
    w.deployReceipt = receipt;
    return w;
  }

  get feePerToken() { return BigInt(this.params[3]); }

  // The wallet of the deterministic key `label`, funded when its balance is low (a chain
  // rollback may have taken its funds away).
  async walletFor(label) {
    const key = P.testKey(label);
    const address = P.addressOf(key);
    if (!this.wallets.has(address)) {
      this.keys.set(address, key);
      this.wallets.set(address, await this.chain.wallet(key, { fund: false }));
    }
    if (await this.chain.provider.getBalance(address) < 10n ** 21n) await this.chain.fund(address);
    return this.wallets.get(address);
  }

  // A chain snapshot plus a copy of this model; rollback() returns to it (and takes a new one,
  // since Anvil consumes a snapshot when it reverts to it).
  async checkpoint() {
    return {
      id: await this.chain.snapshot(),
      model: {
        nodes: [...this.nodes],
        bonded: new Map(this.bonded),
        echelonsOf: new Map(this.echelonsOf),
        frozen: new Map(this.frozen),
      },
    };
  }
  async rollback(cp) {
    await this.chain.revert(cp.id);
    this.nodes = [...cp.model.nodes];
    this.bonded = new Map(cp.model.bonded);
    this.echelonsOf = new Map(cp.model.echelonsOf);
    this.frozen = new Map(cp.model.frozen);
    cp.id = await this.chain.snapshot();
  }
  keyOf(address) { return this.keys.get(address.toLowerCase()); }
  walletOf(address) { return this.wallets.get(address.toLowerCase()); }

  send(signer, method, args = [], overrides = {}) {
    return send(this.ledger, signer, method, args, overrides);
  }

  // Registers `count` nodes labelled `${prefix}${i}` at endpoint 127.0.0.1:(20000 + i), each
  // serving `echelons(i)` (default ECHELON_1), and stakes `stake(i)` (0 = none).
  async addNodes(count, { prefix = "node-", echelons = () => [[MODEL_1, ECHELON_1]],
                          stake = (i) => BigInt(1000 + 37 * i) * 10n ** 15n,
                          receipts } = {}) {
    const added = [];
    for (let i = 0; i < count; ++i) {
      const wallet = await this.walletFor(`${prefix}${i}`);
      const address = wallet.address.toLowerCase();
      const ech = echelons(i);
      const r1 = await this.send(wallet, "registerNode",
        [`127.0.0.1:${20000 + (i % 40000)}`, ech.map(([m, e]) => ({ modelDigest: m, echelonId: e }))]);
      this.nodes.push(address);
      this.echelonsOf.set(address, ech.map(([, e]) => e.toLowerCase()));
      this.bonded.set(address, 0n);
      const amount = stake(i);
      let r2 = null;
      if (amount > 0n) {
        r2 = await this.send(wallet, "stake", [], { value: amount });
        this.bonded.set(address, amount);
      }
      if (receipts) receipts.push({ register: r1, stake: r2 });
      added.push(address);
    }
    return added;
  }

  // The snapshot our model expects for the epoch opened next: every registered node's bonded
  // stake for each echelon it serves, zero stakes excluded, sorted by address.
  expectedSnapshot() {
    const snap = new Map();
    for (const a of this.nodes) {
      const s = this.bonded.get(a);
      if (s === 0n) continue;
      for (const e of this.echelonsOf.get(a)) {
        if (!snap.has(e)) snap.set(e, []);
        snap.get(e).push({ address: a, stake: s });
      }
    }
    for (const list of snap.values()) list.sort((x, y) => P.compareAddresses(x.address, y.address));
    return snap;
  }

  async advanceEpoch(signer = this.chain.deployer) {
    const expected = this.expectedSnapshot();
    const receipt = await this.send(signer, "advanceEpoch");
    const [number] = await this.ledger.currentEpoch();
    this.frozen.set(BigInt(number), expected);
    return receipt;
  }

  async currentEpoch() {
    const [number, seed, started] = await this.ledger.currentEpoch();
    return { number: BigInt(number), seed: seed.toLowerCase(), started: BigInt(started) };
  }
  async seedOf(epoch) {
    const [, seed] = await this.ledger.getEpoch(epoch);
    return seed.toLowerCase();
  }
  candidates(epoch, echelon = ECHELON_1) {
    return this.frozen.get(BigInt(epoch))?.get(echelon.toLowerCase()) ?? [];
  }

  // A client wallet with `escrow` deposited.
  async client(label = "client-0", escrow = 10n ** 18n) {
    const w = await this.walletFor(label);
    if (escrow > 0n) await this.send(w, "depositEscrow", [], { value: escrow });
    return w;
  }

  // A request in the vector format of protocol.mjs.
  // `prompt` (token ids) overrides `promptLen` (ids 1..promptLen).
  request({ client, epoch, n = 3, security, nonce, promptLen = 20, prompt, maxFee = 10n ** 18n,
            model = MODEL_1, maxTokens = 64, seed = 7 }) {
    return {
      model_digest: model,
      prompt_token_ids: prompt ?? Array.from({ length: promptLen }, (_, i) => i + 1),
      temperature_micro: 0, top_p_micro: 1000000, top_k: 0, ignore_eos: false,
      max_tokens: maxTokens, stop_strings: [], stop_token_ids: [], seed,
      security: security ?? { mode: "sampling", n },
      max_fee: maxFee,
      client: client.toLowerCase(),
      client_nonce: nonce ?? this.nextNonce++,
      epoch,
    };
  }

  signRequest(clientAddress, request) {
    return P.signRequest(this.keyOf(clientAddress), this.domain.chainId, this.address, request);
  }

  draws(epoch, seed, request, echelon = ECHELON_1) {
    const rid = P.requestId(request);
    if (request.security.mode === "cross_validation") {
      return P.selectCommittee(seed, rid, this.candidates(epoch, echelon), 1, 1,
                               P.xvRefereeDraws(Number(request.security.k)));
    }
    const n = Number(request.security.n);
    return P.selectCommittee(seed, rid, this.candidates(epoch, echelon), n, P.backupCount(n),
                             P.refereeCount(n));
  }

  attest(signer, { request, committee, output = DEFAULT_OUTPUT, echelon = ECHELON_1, ...over }) {
    return P.makeAttestation({
      domain: this.domain, requestId: P.requestId(request), echelonId: echelon,
      epoch: request.epoch, committee, output, promptTokens: request.prompt_token_ids.length,
      key: this.keyOf(signer), ...over,
    });
  }

  // An honest sampling certificate: { request, requestId, draws, committee, attestations,
  // clientSignature, item } for `client` (a wallet or address) in `epoch` (default current).
  async certificate({ client, epoch, seed, committee, output = DEFAULT_OUTPUT,
                      echelon = ECHELON_1, ...requestOptions }) {
    const clientAddress = (client.address ?? client).toLowerCase();
    if (epoch === undefined || seed === undefined) {
      const cur = await this.currentEpoch();
      epoch = epoch ?? cur.number;
      seed = seed ?? (epoch === cur.number ? cur.seed : await this.seedOf(epoch));
    }
    const request = this.request({ client: clientAddress, epoch, ...requestOptions });
    const draws = this.draws(epoch, seed, request, echelon);
    const members = committee ? committee(draws) : draws.committee;
    const attestations = members.map((m) =>
      this.attest(m, { request, committee: members, output, echelon }));
    const clientSignature = this.signRequest(clientAddress, request);
    return {
      request, requestId: P.requestId(request), draws, committee: members, attestations,
      clientSignature, output, epoch, seed,
      item: P.settleItemFromAttestations({ request, clientSignature, attestations }),
    };
  }

  // Submits a settle batch; returns { receipt, settled: [...], rejected: [...] } from the events.
  async settle(items, submitter = this.chain.deployer, overrides = {}) {
    const batch = P.encodeSettleBatch(items);
    const receipt = await this.send(submitter, "settle", [batch], overrides);
    return { receipt, batch, ...this.settlementEvents(receipt) };
  }

  // The same batch as settleCosigned (docs/ledger_evm.md "Co-signed batches"): every member
  // co-signs its slots once; `options` as P.encodeCosignedBatch's.
  cosignedBatch(items, options = {}) {
    return P.encodeCosignedBatch(this.domain, items, (m, d) => P.sign(this.keyOf(m), d), options);
  }
  async settleCosigned(items, options = {}, submitter = this.chain.deployer) {
    const batch = this.cosignedBatch(items, options);
    const receipt = await this.send(submitter, "settleCosigned", [batch]);
    return { receipt, batch, ...this.settlementEvents(receipt) };
  }

  settlementEvents(receipt) {
    const settled = [];
    const rejected = [];
    for (const e of this.events(receipt)) {
      if (e.name === "Settled") {
        settled.push({ index: Number(e.args[0]), requestId: e.args[1].toLowerCase(),
                       client: e.args[2].toLowerCase(), nonce: BigInt(e.args[3]),
                       fee: BigInt(e.args[4]) });
      } else if (e.name === "SettlementRejected") {
        rejected.push({ index: Number(e.args[0]), requestId: e.args[1].toLowerCase(),
                        code: Number(e.args[2]) });
      }
    }
    return { settled, rejected };
  }

  // Parsed logs of this contract in `receipt`.
  events(receipt, name) {
    const out = [];
    for (const log of receipt.logs) {
      if (log.address.toLowerCase() !== this.address) continue;
      const parsed = this.ledger.interface.parseLog(log);
      if (parsed && (!name || parsed.name === name)) out.push(parsed);
    }
    return out;
  }

  async rewards(addresses) {
    return Promise.all(addresses.map(async (a) => BigInt(await this.ledger.rewardBalance(a))));
  }
}
