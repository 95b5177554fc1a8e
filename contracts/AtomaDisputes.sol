// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AtomaLedgerBase} from "./AtomaLedgerBase.sol";

// AtomaLedger's module for what is rare and large: advanceEpoch / advanceEpochFrom (the seed hash
// chain and the per-echelon snapshots), settleDispute and reportEquivocation, exactly as
// LedgerClient::AdvanceEpoch, ::SettleDispute and ::ReportEquivocation
// (include/atoma/ledger/ledger.h), with the calldata formats of docs/ledger_evm.md. AtomaLedger
// creates it in its constructor and forwards these functions to it by DELEGATECALL, so it runs on
// the ledger's storage, address, balance and events; it has no state of its own and refuses to be
// called directly.
//
// Errors: Error(string) "<absl status code name>: <reason>", the codes the embedded ledger
// returns for the same rule, checked in the same order.
// Thread-safety: transactions are serialized by the chain.
contract AtomaDisputes is AtomaLedgerBase {
    address private immutable LEDGER;

    constructor(
        uint64 unbondingEpochs,
        uint64 epochLengthS,
        uint64 minEpochSpacingS,
        uint256 feePerToken,
        uint64 slashBps,
        uint64 reporterShareBps
    ) AtomaLedgerBase(unbondingEpochs, epochLengthS, minEpochSpacingS, feePerToken, slashBps, reporterShareBps) {
        LEDGER = msg.sender;
    }

    modifier onlyLedger() {
        if (address(this) != LEDGER) _fail(PERMISSION_DENIED, "call the ledger, not its dispute module");
        _;
    }

    // Offsets inside a 297-byte attestation body.
    uint256 private constant A_LEDGER = 8;
    uint256 private constant A_REQUEST = 28;
    uint256 private constant A_ECHELON = 60;
    uint256 private constant A_C = 92;
    uint256 private constant A_P = 124;
    uint256 private constant A_PROMPT = 156;
    uint256 private constant A_COMPLETION = 164;
    uint256 private constant A_EPOCH = 204;
    uint256 private constant A_MEMBER = 212;
    uint256 private constant A_SIGNATURE = 232;
    uint256 private constant BODY = 297;

    function _word(uint256 at) private pure returns (bytes32 v) {
        assembly ("memory-safe") {
            v := calldataload(at)
        }
    }

    function _u64(uint256 at) private pure returns (uint64) {
        return uint64(uint256(_word(at)) >> 192);
    }

    function _member(uint256 body) private pure returns (address) {
        return address(uint160(uint256(_word(body + A_MEMBER)) >> 96));
    }

    // VerifyAttestation: this chain and ledger, `epoch`, a signature by the claimed member.
    // PERMISSION_DENIED with `who` and the failed check.
    function _verifyAttestation(uint256 body, uint64 epoch, string memory who) private view {
        if (
            _u64(body) != block.chainid
                || address(uint160(uint256(_word(body + A_LEDGER)) >> 96)) != address(this)
        ) {
            _fail(PERMISSION_DENIED, string.concat(who, "attestation is for another chain or ledger"));
        }
        uint64 e = _u64(body + A_EPOCH);
        if (e != epoch) {
            _fail(PERMISSION_DENIED, string.concat(who, "attestation is for epoch ", _dec(e), ", not ", _dec(epoch)));
        }
        address signer = _recover(_bodyDigest(body), body + A_SIGNATURE);
        if (signer == address(0)) _fail(PERMISSION_DENIED, string.concat(who, "attestation signature is invalid"));
        address member = _member(body);
        if (signer != member) {
            _fail(
                PERMISSION_DENIED,
                string.concat(who, "attestation is signed by ", _addr(signer), ", not by ", _addr(member))
            );
        }
    }

    // =============================================================================================
    // Epochs

    function advanceEpoch() external onlyLedger returns (uint64 number, bytes32 seed, int64 startedUnixS) {
        return _advance();
    }

    function advanceEpochFrom(uint64 current)
        external
        onlyLedger
        returns (uint64 number, bytes32 seed, int64 startedUnixS)
    {
        if (current != _currentEpoch) {
            _fail(
                FAILED_PRECONDITION,
                string.concat("epoch is ", _dec(_currentEpoch), ", not ", _dec(current), " (another node advanced it)")
            );
        }
        return _advance();
    }

    // Opens the next epoch: seed = H("atoma/epoch-seed", previous seed, prevrandao), and freezes
    // every registered node's bonded stake for each echelon it serves (sorted node list and
    // prefix sums per echelon, one data contract each).
    function _advance() private returns (uint64 number, bytes32 seed, int64 startedUnixS) {
        uint64 previous = _currentEpoch;
        EpochRecord storage prev = _epochs[previous];
        if (block.timestamp < uint256(int256(prev.startedUnixS)) + MIN_EPOCH_SPACING_S) {
            _fail(
                FAILED_PRECONDITION,
                string.concat(
                    "epoch ", _dec(previous), " opened less than ", _dec(MIN_EPOCH_SPACING_S), " s ago"
                )
            );
        }
        number = previous + 1;
        seed = _hash2("atoma/epoch-seed", 16, prev.seed, bytes32(block.prevrandao));
        startedUnixS = int64(int256(block.timestamp));
        _currentEpoch = number;
        _epochs[number] = EpochRecord(seed, startedUnixS, address(0));
        _freeze(number);
        emit EpochAdvanced(number, seed);
    }

    // The staked nodes (bonded > 0, serving some echelon) sorted by address, as the epoch's data
    // contract: N entries address ‖ uint96 bonded, then N u64 echelon set ids. Per node: two
    // storage reads and 40 bytes of code, whatever the nodes serve.
    function _freeze(uint64 epoch) private {
        uint256 total = _nodeList.length;
        uint256[] memory order = new uint256[](total); // address << 96 | index, sorted
        uint256[] memory words = new uint256[](total); // address << 96 | bonded
        uint256[] memory sets = new uint256[](total);
        uint256 count;
        for (uint256 i; i < total; ++i) {
            address a = _nodeList[i];
            NodeRecord storage rec = _nodes[a];
            uint256 bonded = rec.bonded;
            uint256 set = rec.echelonSet;
            if (bonded == 0 || set == 0) continue;
            order[count] = (uint256(uint160(a)) << 96) | count;
            words[count] = (uint256(uint160(a)) << 96) | bonded;
            sets[count++] = set;
        }
        if (count == 0) return;
        assembly ("memory-safe") {
            mstore(order, count)
        }
        _sort(order);
        // 24 spare bytes at the end: each set id is written as a whole word
        bytes memory blob = new bytes(40 * count + 24);
        assembly ("memory-safe") {
            mstore(blob, mul(40, count))
            let o := add(order, 32)
            let out := add(blob, 32)
            let ids := add(out, shl(5, count))
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                let j := and(mload(add(o, shl(5, i))), 0xffffffffffffffffffffffff)
                mstore(add(out, shl(5, i)), mload(add(add(words, 32), shl(5, j))))
                // the set ids are written in order, each over the previous one's spare bytes
                mstore(add(ids, shl(3, i)), shl(192, mload(add(add(sets, 32), shl(5, j)))))
            }
        }
        _epochs[epoch].nodes = _writeData(blob);
    }

    // =============================================================================================
    // Equivocation

    function reportEquivocation(bytes calldata a, bytes calldata b) external onlyLedger {
        if (a.length != BODY || b.length != BODY) {
            _fail(INVALID_ARGUMENT, "an attestation body is 297 bytes");
        }
        uint256 pa;
        uint256 pb;
        assembly ("memory-safe") {
            pa := a.offset
            pb := b.offset
        }
        address member = _member(pa);
        if (member != _member(pb)) {
            _fail(
                INVALID_ARGUMENT,
                string.concat("not equivocation: attestations by ", _addr(member), " and ", _addr(_member(pb)))
            );
        }
        bytes32 rid = _word(pa + A_REQUEST);
        if (rid != _word(pb + A_REQUEST)) {
            _fail(
                INVALID_ARGUMENT,
                string.concat(
                    "not equivocation: attestations for requests ", _h256(rid), " and ", _h256(_word(pb + A_REQUEST))
                )
            );
        }
        bytes32 da = _bodyDigest(pa);
        bytes32 db = _bodyDigest(pb);
        if (da == db) _fail(INVALID_ARGUMENT, "not equivocation: both attestations sign the same content");
        // SameOutputClaim: equal but for C and the signature is an honest re-attestation.
        if (_claimHash(pa) == _claimHash(pb)) {
            _fail(INVALID_ARGUMENT, "not equivocation: a view update (same output, another committee)");
        }
        // For evidence any epoch the node signed counts: each is checked against its own.
        _verifyAttestation(pa, _u64(pa + A_EPOCH), "");
        _verifyAttestation(pb, _u64(pb + A_EPOCH), "");
        // Order-independent, so the swapped pair is the same evidence.
        (bytes32 lo, bytes32 hi) = da < db ? (da, db) : (db, da);
        bytes32 evidence = _hash2("atoma/equivocation", 18, lo, hi);
        if (!_nodes[member].registered) {
            _fail(NOT_FOUND, string.concat("node ", _addr(member), " is not registered"));
        }
        bytes32 key = keccak256(abi.encode(member, rid));
        if (_equivocationSlashed[key]) {
            _fail(
                ALREADY_EXISTS,
                string.concat("node ", _addr(member), " was already slashed for equivocating on request ", _h256(rid))
            );
        }
        _equivocationSlashed[key] = true;
        uint256 slashed = _slashStake(member, _currentEpoch);
        uint256 reward = (slashed * REPORTER_SHARE_BPS) / BASIS_POINTS;
        if (reward != 0) _rewards[msg.sender] += reward;
        _burned += slashed - reward;
        emit Slashed(member, rid, evidence, 1, msg.sender, slashed, reward);
    }

    // Hash of the fields of the output claim: all but C (92..124) and the signature (232..297).
    function _claimHash(uint256 body) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, body, A_C)
            calldatacopy(add(ptr, A_C), add(body, A_P), sub(A_SIGNATURE, A_P))
            h := keccak256(ptr, sub(A_SIGNATURE, 32))
        }
    }

    // =============================================================================================
    // Disputes

    struct Dispute {
        Req r;
        bytes32 id;
        bool xv;
        uint256 n;
        uint256 k;
        uint256 sigAt;
        uint256 committeeAt;
        uint256 committeeCount;
        uint256 membersAt;
        uint256 memberCount;
        uint256 refereesAt;
        uint256 refereeCount;
        bool hasOutput;
        uint256 outputAt; // enc(O) in calldata
        uint256 outputLen; // its bytes
        uint256 outputTokens;
        bytes32 echelon;
        Snap s;
        Draws d;
        uint256 backupsEnd; // draw index where the backups end
        uint256 validatorsEnd; // ... the validators (cross-validation) end; then the referees
        uint256[] judged; // calldata offsets: committee order, then validators in draw order
        uint256 judgedCount;
        uint256[] byReferee; // calldata offset of each referee draw's attestation (0: silent)
        bytes32 winner;
    }

    function settleDispute(bytes calldata evidence) external onlyLedger {
        Dispute memory v;
        _parseEvidence(v, evidence);
        // 1. The epoch has started; its seed and the snapshot of the echelon the members name.
        Req memory r = v.r;
        if (r.epoch > _currentEpoch) _fail(NOT_FOUND, string.concat("epoch ", _dec(r.epoch), " has not started"));
        v.echelon = _word(v.membersAt + A_ECHELON);
        bool fresh;
        (v.s, fresh) = _loadSnap(r.epoch, v.echelon);
        if (fresh) _keepSnap(v.s);
        // 2. The client authorized the request (else anyone could charge it a dispute).
        v.id = _requestId(r.start, r.len);
        address signer = _recover(_clientDigest(v.id), v.sigAt);
        if (signer == address(0)) _fail(PERMISSION_DENIED, "client signature is invalid");
        if (signer != r.client) {
            _fail(
                PERMISSION_DENIED,
                string.concat(
                    "client signature recovers to ",
                    _addr(signer),
                    ", not to the request's client ",
                    _addr(r.client),
                    " (forged, or signed for another request or ledger)"
                )
            );
        }
        // 3. The draws and the committee view.
        _draw(v);
        // 4. Every attestation.
        _checkMembers(v);
        _checkReferees(v);
        // 5. A strict majority of all drawn referees.
        _majority(v);
        // 6, 7. Losers, winners, effects.
        _settle(v);
    }

    function _parseEvidence(Dispute memory v, bytes calldata evidence) private pure {
        uint256 p;
        uint256 end;
        assembly ("memory-safe") {
            p := evidence.offset
            end := add(p, evidence.length)
        }
        if (p + 4 > end) _malformed("no request");
        uint256 reqStart = p + 4;
        uint256 reqEnd = reqStart + (uint256(_word(p)) >> 224);
        if (reqEnd > end) _malformed("the request runs past the end");
        Req memory r = v.r;
        if (_parseRequest(r, reqStart, reqEnd) != 0) _malformed("the request is malformed");
        v.sigAt = reqEnd;
        p = reqEnd + 65;
        (v.committeeAt, v.committeeCount, p) = _list(p, end, 20, "committee");
        (v.membersAt, v.memberCount, p) = _list(p, end, BODY, "member attestations");
        (v.refereesAt, v.refereeCount, p) = _list(p, end, BODY, "referee attestations");
        if (p + 1 > end) _malformed("no output flag");
        uint256 has = uint256(_word(p)) >> 248;
        p += 1;
        if (has > 1) _malformed("the output flag is not 0 or 1");
        if (has == 1) {
            if (p + 4 > end) _malformed("truncated output");
            uint256 count = uint256(_word(p)) >> 224;
            if (count > MAX_OUTPUT) _malformed("the output has more than 2^20 tokens");
            uint256 len = 4 + count * 8 + 8;
            if (p + len > end) _malformed("truncated output");
            for (uint256 i; i < count; ++i) {
                if (_u64(p + 4 + i * 8) > type(uint32).max) _malformed("an output token id is above 2^32 - 1");
            }
            if (_u64(p + 4 + count * 8) > 1) _malformed("unknown finish reason");
            v.hasOutput = true;
            v.outputAt = p;
            v.outputLen = len;
            v.outputTokens = count;
            p += len;
        }
        if (p != end) _malformed("trailing bytes");
        // The embedded ledger's structural rules, in its order.
        v.xv = r.mode == 2;
        v.k = v.xv ? r.k : 0;
        v.n = _committeeSize(r);
        if (v.memberCount == 0) _fail(INVALID_ARGUMENT, "dispute evidence has no member attestations");
        if (
            v.committeeCount > MAX_COMMITTEE || v.memberCount < v.committeeCount
                || v.memberCount > v.committeeCount + v.k
        ) {
            _fail(
                INVALID_ARGUMENT,
                string.concat(
                    "dispute evidence has ",
                    _dec(v.committeeCount),
                    " members and ",
                    _dec(v.memberCount),
                    v.xv
                        ? " member attestations (the executor's, then at most k validators')"
                        : " member attestations (one per member)"
                )
            );
        }
        if (v.refereeCount > 2 * MAX_COMMITTEE + 1) {
            _fail(
                INVALID_ARGUMENT,
                string.concat("dispute evidence has ", _dec(v.refereeCount), " referee attestations; at most 129")
            );
        }
    }

    function _malformed(string memory why) private pure {
        _fail(INVALID_ARGUMENT, string.concat("malformed dispute evidence: ", why));
    }

    // u8 count ‖ count × size bytes at p; returns (first element, count, next).
    function _list(uint256 p, uint256 end, uint256 size, string memory what)
        private
        pure
        returns (uint256 at, uint256 count, uint256 next)
    {
        if (p + 1 > end) _malformed(string.concat("no ", what));
        count = uint256(_word(p)) >> 248;
        at = p + 1;
        next = at + count * size;
        if (next > end) _malformed(string.concat("truncated ", what));
    }

    function _committeeMember(Dispute memory v, uint256 i) private pure returns (address) {
        return address(uint160(uint256(_word(v.committeeAt + i * 20)) >> 96));
    }

    // Draws = SelectCommittee(seed, id, snapshot, n, BackupCount(n), RefereeCount(n) or, for
    // cross-validation, XvRefereeDraws(k)); the committee must be a view of them.
    function _draw(Dispute memory v) private view {
        uint256 n = v.n;
        Snap memory s = v.s;
        if (s.count < n) {
            _fail(
                PERMISSION_DENIED,
                string.concat(
                    "cannot draw a committee of ",
                    _dec(n),
                    " from epoch ",
                    _dec(v.r.epoch),
                    "'s snapshot of echelon ",
                    _h256(v.echelon),
                    ": fewer candidates with stake than the committee size"
                )
            );
        }
        uint256 want = 2 * n + (v.xv ? v.k + 3 : 2 * n + 1);
        v.d = _newDraws(want);
        _resetDraws(v.d, s.seed, v.id);
        uint256 made = _drawUpTo(s, v.d, want);
        _drawnToAddresses(s, v.d);
        v.backupsEnd = made < 2 * n ? made : 2 * n;
        uint256 validators = made - v.backupsEnd;
        if (validators > v.k) validators = v.k;
        v.validatorsEnd = v.backupsEnd + validators;
        // CheckCommitteeView
        if (v.committeeCount != n) {
            _fail(
                PERMISSION_DENIED,
                string.concat(
                    "not the committee of this request: the committee has ",
                    _dec(v.committeeCount),
                    " members; the draw has ",
                    _dec(n)
                )
            );
        }
        uint256[] memory drawn = v.d.drawn;
        for (uint256 i; i < n; ++i) {
            address m = _committeeMember(v, i);
            if (uint160(m) != drawn[i] && !_drawnIn(v.d, n, v.backupsEnd, uint160(m))) {
                _fail(
                    PERMISSION_DENIED,
                    string.concat(
                        "not the committee of this request: member ",
                        _dec(i),
                        " is ",
                        _addr(m),
                        ": neither the draw (",
                        _addr(address(uint160(drawn[i]))),
                        ") nor a backup"
                    )
                );
            }
            for (uint256 j; j < i; ++j) {
                if (_committeeMember(v, j) == m) {
                    _fail(
                        PERMISSION_DENIED,
                        string.concat(
                            "not the committee of this request: member ",
                            _dec(i),
                            " is ",
                            _addr(m),
                            ", who already holds an earlier slot"
                        )
                    );
                }
            }
        }
    }

    // The right request, echelon, domain, epoch and signer.
    function _check(Dispute memory v, uint256 body, string memory who) private view {
        if (_word(body + A_REQUEST) != v.id) _fail(PERMISSION_DENIED, string.concat(who, "attests another request"));
        if (_word(body + A_ECHELON) != v.echelon) {
            _fail(PERMISSION_DENIED, string.concat(who, "names another echelon"));
        }
        _verifyAttestation(body, v.r.epoch, who);
    }

    // Members in committee order, then (cross-validation) validators, each a validator draw once;
    // `judged` lists them committee order first, then validators in draw order.
    function _checkMembers(Dispute memory v) private view {
        uint256 n = v.n;
        v.judged = new uint256[](v.memberCount);
        for (uint256 i; i < n; ++i) {
            uint256 body = v.membersAt + i * BODY;
            address m = _committeeMember(v, i);
            string memory who =
                string.concat(v.xv ? "executor (" : string.concat("member ", _dec(i), " ("), _addr(m), "): ");
            if (_member(body) != m) {
                _fail(PERMISSION_DENIED, string.concat(who, "the attestation is by ", _addr(_member(body))));
            }
            _check(v, body, who);
            v.judged[i] = body;
        }
        uint256 from = v.backupsEnd;
        uint256 to = v.validatorsEnd;
        uint256[] memory byValidator = new uint256[](to - from);
        uint256[] memory drawn = v.d.drawn;
        for (uint256 i = n; i < v.memberCount; ++i) {
            uint256 body = v.membersAt + i * BODY;
            address m = _member(body);
            string memory who = string.concat("validator ", _addr(m), ": ");
            uint256 slot = type(uint256).max;
            for (uint256 j = from; j < to; ++j) {
                if (drawn[j] == uint160(m)) {
                    slot = j - from;
                    break;
                }
            }
            if (slot == type(uint256).max) {
                _fail(PERMISSION_DENIED, string.concat(who, "not drawn as a validator of this request"));
            }
            if (byValidator[slot] != 0) _fail(PERMISSION_DENIED, string.concat(who, "attests twice"));
            _check(v, body, who);
            byValidator[slot] = body;
        }
        uint256 q = n;
        for (uint256 i; i < byValidator.length; ++i) {
            if (byValidator[i] != 0) v.judged[q++] = byValidator[i];
        }
        v.judgedCount = q;
    }

    // Referee attestations: each by a referee draw (after the backups and validators), once.
    function _checkReferees(Dispute memory v) private view {
        uint256 from = v.validatorsEnd;
        uint256 to = v.d.made;
        v.byReferee = new uint256[](to - from);
        uint256[] memory drawn = v.d.drawn;
        for (uint256 i; i < v.refereeCount; ++i) {
            uint256 body = v.refereesAt + i * BODY;
            address m = _member(body);
            string memory who = string.concat("referee ", _addr(m), ": ");
            uint256 slot = type(uint256).max;
            for (uint256 j = from; j < to; ++j) {
                if (drawn[j] == uint160(m)) {
                    slot = j - from;
                    break;
                }
            }
            if (slot == type(uint256).max) {
                _fail(PERMISSION_DENIED, string.concat(who, "not drawn as a referee of this request"));
            }
            if (v.byReferee[slot] != 0) _fail(PERMISSION_DENIED, string.concat(who, "attests twice"));
            _check(v, body, who);
            v.byReferee[slot] = body;
        }
    }

    // The C with a strict majority of ALL drawn referees (silent ones count against every C).
    function _majority(Dispute memory v) private pure {
        uint256[] memory by = v.byReferee;
        uint256 m = by.length;
        uint256 best;
        for (uint256 i; i < m; ++i) {
            if (by[i] == 0) continue;
            bytes32 c = _word(by[i] + A_C);
            uint256 votes;
            for (uint256 j; j < m; ++j) {
                if (by[j] != 0 && _word(by[j] + A_C) == c) ++votes;
            }
            if (votes > best) {
                best = votes;
                if (2 * votes > m) v.winner = c;
            }
        }
        if (2 * best <= m) {
            _fail(
                FAILED_PRECONDITION,
                string.concat("no strict majority: the best C has ", _dec(best), " of ", _dec(m), " referees")
            );
        }
    }

    // Memory of "atoma/proof" 0x00 ‖ request id ‖ enc(O) ‖ (address), for OutputProof.
    function _proofBuffer(Dispute memory v) private pure returns (uint256 buf) {
        // 32 bytes for the address: _proof writes a whole word there.
        bytes memory b = new bytes(12 + 32 + v.outputLen + 32);
        uint256 at = v.outputAt;
        uint256 len = v.outputLen;
        bytes32 id = v.id;
        assembly ("memory-safe") {
            buf := add(b, 32)
            mstore(buf, "atoma/proof")
            mstore(add(buf, 12), id)
            calldatacopy(add(buf, 44), at, len)
        }
    }

    function _proof(uint256 buf, uint256 len, address a) private view returns (bytes32 h) {
        assembly ("memory-safe") {
            mstore(add(buf, add(44, len)), shl(96, a))
            if iszero(staticcall(gas(), 2, buf, add(64, len), 0, 32)) { revert(0, 0) }
            h := mload(0)
        }
    }

    // Losers (another C, or with the output a p that is not the output's for the signer), then
    // the rewarded: winning members, then the majority referees in draw order. Returns the first
    // majority referee's attestation too (its token counts price the fee without an output).
    function _judge(Dispute memory v)
        private
        view
        returns (address[] memory slashed, address[] memory rewarded, uint256 firstMajority)
    {
        bytes32 winner = v.winner;
        uint256 judged = v.judgedCount;
        slashed = new address[](judged);
        rewarded = new address[](judged + v.byReferee.length);
        uint256 ns;
        uint256 nr;
        uint256 buf;
        if (v.hasOutput) {
            buf = _proofBuffer(v);
            _checkOutputCommitment(v, buf);
        }
        for (uint256 i; i < judged; ++i) {
            uint256 body = v.judged[i];
            address m = _member(body);
            bool lazy = v.hasOutput && _word(body + A_P) != _proof(buf, v.outputLen, m);
            if (_word(body + A_C) != winner || lazy) slashed[ns++] = m;
            else rewarded[nr++] = m;
        }
        if (ns == 0) {
            _fail(
                FAILED_PRECONDITION,
                v.hasOutput
                    ? "nothing to slash: every member attested the majority's C with its own proof"
                    : string.concat(
                        "nothing to slash: every member attested the majority's C",
                        " (with the output, a member that copied C can be found)"
                    )
            );
        }
        for (uint256 i; i < v.byReferee.length; ++i) {
            uint256 body = v.byReferee[i];
            if (body == 0 || _word(body + A_C) != winner) continue;
            if (firstMajority == 0) firstMajority = body;
            rewarded[nr++] = _member(body);
        }
        assembly ("memory-safe") {
            mstore(slashed, ns)
            mstore(rewarded, nr)
        }
    }

    // The output's commitment for the committee must be the majority's C.
    function _checkOutputCommitment(Dispute memory v, uint256 buf) private view {
        uint256 n = v.n;
        bytes memory commit = new bytes(13 + 32 * n);
        uint256 c;
        assembly ("memory-safe") {
            c := add(commit, 32)
            mstore(c, "atoma/commit")
        }
        for (uint256 i; i < n; ++i) {
            bytes32 p = _proof(buf, v.outputLen, _committeeMember(v, i));
            assembly ("memory-safe") {
                mstore(add(add(c, 13), shl(5, i)), p)
            }
        }
        if (_sha(c, 13 + 32 * n) != v.winner) {
            _fail(INVALID_ARGUMENT, "the output's commitment for this committee is not the referees' majority C");
        }
    }

    function _settle(Dispute memory v) private {
        (address[] memory slashed, address[] memory rewarded, uint256 firstMajority) = _judge(v);
        _markSettled(v);
        uint256 slashedTotal = _slashAll(v.id, v.winner, slashed);
        // The fee on the output's token counts, else on the first majority referee's (draw order,
        // so the submitter's ordering cannot pick).
        bool haveTokens = true;
        uint256 tokens;
        if (v.hasOutput) {
            tokens = v.r.promptLen + v.outputTokens;
        } else {
            tokens = uint256(_u64(firstMajority + A_PROMPT)) + _u64(firstMajority + A_COMPLETION);
            haveTokens = tokens <= type(uint64).max;
        }
        (uint256 fee, string memory note) = _chargeFee(v.r, haveTokens, tokens);
        _share(slashedTotal + fee, rewarded);
        emit DisputeSettled(v.id, v.winner, slashedTotal, fee, note, slashed, rewarded);
    }

    // The request counts as settled from now on (no certificate can settle it later).
    function _markSettled(Dispute memory v) private {
        Req memory r = v.r;
        mapping(uint256 => uint256) storage bits = _settledBits[r.client];
        uint256 bit = 1 << (r.nonce & 255);
        if (bits[r.nonce >> 8] & bit != 0) {
            _fail(
                ALREADY_EXISTS,
                string.concat(
                    "request ",
                    _h256(v.id),
                    " (client ",
                    _addr(r.client),
                    ", nonce ",
                    _dec(r.nonce),
                    ") was already settled"
                )
            );
        }
        bits[r.nonce >> 8] |= bit;
    }

    // The pool (slashed stake + fee) in equal shares, the remainder to the first.
    function _share(uint256 pool, address[] memory who) private {
        uint256 count = who.length;
        if (pool == 0 || count == 0) return;
        uint256 share = pool / count;
        _rewards[who[0]] += share + pool % count;
        for (uint256 i = 1; i < count; ++i) _rewards[who[i]] += share;
    }

    // Slashes each loser (one Slashed event each, evidence H("atoma/dispute", id, C)).
    function _slashAll(bytes32 id, bytes32 winner, address[] memory slashed) private returns (uint256 total) {
        bytes32 evidence = _hash2("atoma/dispute", 13, id, winner);
        uint64 current = _currentEpoch;
        for (uint256 i; i < slashed.length; ++i) {
            uint256 amount = _slashStake(slashed[i], current);
            total += amount;
            emit Slashed(slashed[i], id, evidence, 2, msg.sender, amount, 0);
        }
    }

    // ChargeDisputeFee: debits feePerToken × tokens when it is at most max_fee and the escrow
    // covers it; otherwise the fee is zero and the note says why.
    function _chargeFee(Req memory r, bool haveTokens, uint256 tokens)
        private
        returns (uint256 fee, string memory note)
    {
        if (!haveTokens) return (0, "fee not charged: token count above 2^64-1");
        uint256 due;
        unchecked {
            due = FEE_PER_TOKEN * tokens;
            if (tokens != 0 && due / tokens != FEE_PER_TOKEN) {
                return (
                    0,
                    string.concat(
                        "fee not charged: ", _dec(tokens), " tokens at ", _dec(FEE_PER_TOKEN), " is above 2^256-1"
                    )
                );
            }
        }
        if (due > r.maxFee) {
            return (
                0,
                string.concat(
                    "fee not charged: fee ",
                    _dec(due),
                    " (",
                    _dec(tokens),
                    " tokens at ",
                    _dec(FEE_PER_TOKEN),
                    ") exceeds max_fee ",
                    _dec(r.maxFee)
                )
            );
        }
        uint256 escrow = _escrow[r.client];
        if (escrow < due) {
            return (
                0,
                string.concat(
                    "fee not charged: escrow of ", _addr(r.client), " holds ", _dec(escrow), " < fee ", _dec(due)
                )
            );
        }
        if (due != 0) _escrow[r.client] = escrow - due;
        return (due, "");
    }
}
