// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

// The storage layout, parameters, events and protocol primitives shared by AtomaLedger and its
// dispute module AtomaDisputes (which runs by DELEGATECALL on the ledger's storage, so both must
// inherit exactly this layout and declare no state of their own).
//
// Primitives (docs/protocol.md, bit for bit with src/consensus/):
//   H(tag, ...) = SHA-256(tag ‖ 0x00 ‖ fields) through the precompile at 0x02;
//   signatures are 65 bytes r ‖ s ‖ v over our SHA-256 digests (no Ethereum message prefix),
//   v 27/28, low s, never the zero address;
//   enc(request) is read from calldata with every bound of consensus::DecodeRequest;
//   committee selection (DESIGN §4.4) draws by binary search over a snapshot of sorted
//   addresses and prefix sums of stake: without replacement, the smallest index j with
//   prefix(j) − removed(≤ j) > u is the draw (never a removed index, whose value equals its
//   predecessor's).
// Snapshots live in data contracts (code = 0x00 ‖ data; 200 gas a byte to write instead of 22,100
// a storage slot, and one EXTCODECOPY to read). advanceEpoch freezes one per epoch: every staked
// node's address, bonded stake and echelon set (an immutable set id, so the cost is per node
// whatever the nodes serve). The snapshot of one echelon in an epoch (sorted addresses ‖ uint96
// prefix sums) is derived from it the first time a settlement or dispute needs it, and kept.
//
// Errors: every revert is Error(string) "<absl status code name>: <reason>" (docs/ledger_evm.md).
abstract contract AtomaLedgerBase {
    // ---------------------------------------------------------------------------------------------
    // Types of the external interface
    struct Echelon {
        bytes32 modelDigest;
        bytes32 echelonId;
    }

    struct Unbonding {
        uint256 amount;
        uint64 releaseEpoch;
    }

    // ---------------------------------------------------------------------------------------------
    // Events (docs/ledger_evm.md)
    event NodeRegistered(address indexed node, string endpoint);
    event NodeUpdated(address indexed node, string endpoint);
    event Staked(address indexed node, uint256 amount);
    event Unstaked(address indexed node, uint256 amount, uint64 releaseEpoch);
    event StakeWithdrawn(address indexed node, uint256 amount);
    event EpochAdvanced(uint64 indexed number, bytes32 seed);
    event EscrowDeposited(address indexed client, uint256 amount);
    event EscrowWithdrawn(address indexed client, uint256 amount);
    event EscrowWithdrawalRequested(address indexed client, uint256 amount, uint64 unlockEpoch);
    event RewardsWithdrawn(address indexed node, uint256 amount);
    event Settled(
        uint16 index, bytes32 indexed requestId, address indexed client, uint64 nonce, uint256 fee
    );
    event SettlementRejected(uint16 index, bytes32 indexed requestId, uint8 code);
    event Slashed(
        address indexed offender,
        bytes32 indexed requestId,
        bytes32 evidenceHash,
        uint8 kind,
        address reporter,
        uint256 amount,
        uint256 reporterReward
    );
    event DisputeSettled(
        bytes32 indexed requestId,
        bytes32 commitment,
        uint256 slashedTotal,
        uint256 fee,
        string feeNote,
        address[] slashed,
        address[] rewarded
    );

    // ---------------------------------------------------------------------------------------------
    // Storage (shared with the dispute module: never reorder)
    struct NodeRecord {
        // Stake fits 96 bits: stake() keeps the ledger's whole balance below 2^96 (the snapshot's
        // prefix sums are uint96).
        uint96 bonded;
        uint64 registeredEpoch;
        uint64 echelonSet; // the echelons it serves: an immutable set (0: none)
        bool registered;
        // Entries before the head were withdrawn; slashing pops emptied entries off the end.
        uint64 unbondingHead;
        string endpoint;
        uint256[] unbonding; // amount << 64 | releaseEpoch, release epochs non-decreasing
    }

    struct EpochRecord {
        bytes32 seed;
        int64 startedUnixS;
        // Data contract of the staked nodes frozen when the epoch opened: N entries address ‖
        // uint96 bonded, sorted by address, then N u64 echelon set ids (absent: none).
        address nodes;
    }

    mapping(address => NodeRecord) internal _nodes;
    address[] internal _nodeList; // registration order
    uint64 internal _currentEpoch;
    mapping(uint64 => EpochRecord) internal _epochs;
    // keccak256(epoch, echelonId) → data contract of that echelon's snapshot, once derived
    // (address(1), which has no code, when it is empty; absent: not derived yet).
    mapping(bytes32 => address) internal _snapshotData;
    // Echelon sets: the echelons of a registerNode / updateNode, sorted by id, never changed.
    mapping(uint256 => Echelon[]) internal _echelonSets;
    mapping(uint256 => mapping(bytes32 => bool)) internal _inSet;
    uint64 internal _setCount;
    mapping(address => uint256) internal _escrow;
    mapping(address => uint256) internal _rewards;
    // One bit per (client, nonce): word nonce >> 8, bit nonce & 255 (docs/ledger_evm.md).
    mapping(address => mapping(uint256 => uint256)) internal _settledBits;
    // keccak256(offender, requestId) of equivocations slashed (one offence is slashed once).
    mapping(bytes32 => bool) internal _equivocationSlashed;
    uint256 internal _burned;
    // The pending escrow withdrawal of each client: amount << 64 | unlockEpoch (0: none). The
    // amount stays in _escrow (settlement still debits it) until withdrawEscrow pays it out.
    mapping(address => uint256) internal _escrowWithdrawal;

    // ---------------------------------------------------------------------------------------------
    // Parameters
    uint64 internal immutable UNBONDING_EPOCHS;
    uint64 internal immutable EPOCH_LENGTH_S;
    uint64 internal immutable MIN_EPOCH_SPACING_S;
    uint256 internal immutable FEE_PER_TOKEN;
    uint64 internal immutable SLASH_BPS;
    uint64 internal immutable REPORTER_SHARE_BPS;

    uint256 internal constant BASIS_POINTS = 10_000;
    uint256 internal constant MAX_NODES = 256;
    uint256 internal constant MAX_ECHELONS = 64;
    uint256 internal constant MAX_ENDPOINT = 255;
    uint256 internal constant MAX_BATCH = 1024;
    uint256 internal constant MAX_COMMITTEE = 64;
    uint256 internal constant MAX_PROMPT = 1 << 20;
    uint256 internal constant MAX_OUTPUT = 1 << 20;
    uint256 internal constant COIN_SCALE = 1_000_000;
    // secp256k1 n / 2: signatures with a larger s are the malleable twin and are refused.
    uint256 internal constant HALF_N =
        0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    // The high 32 bits of four packed u64 token ids: a token id must fit 32 bits.
    uint256 internal constant TOKEN_HIGH_MASK =
        0xFFFFFFFF00000000FFFFFFFF00000000FFFFFFFF00000000FFFFFFFF00000000;

    string internal constant INVALID_ARGUMENT = "INVALID_ARGUMENT";
    string internal constant NOT_FOUND = "NOT_FOUND";
    string internal constant ALREADY_EXISTS = "ALREADY_EXISTS";
    string internal constant FAILED_PRECONDITION = "FAILED_PRECONDITION";
    string internal constant PERMISSION_DENIED = "PERMISSION_DENIED";
    string internal constant OUT_OF_RANGE = "OUT_OF_RANGE";

    constructor(
        uint64 unbondingEpochs,
        uint64 epochLengthS,
        uint64 minEpochSpacingS,
        uint256 feePerToken,
        uint64 slashBps,
        uint64 reporterShareBps
    ) {
        // The embedded ledger's ranges: zero unbonding would let a node leave inside the epoch
        // its stake is frozen in, escaping any slashing for work done in it.
        if (unbondingEpochs == 0 || unbondingEpochs > 1_000_000) {
            _fail(INVALID_ARGUMENT, "unbondingEpochs must be in 1..1000000");
        }
        if (epochLengthS == 0) _fail(INVALID_ARGUMENT, "epochLengthS must be positive");
        if (slashBps > BASIS_POINTS || reporterShareBps > BASIS_POINTS) {
            _fail(INVALID_ARGUMENT, "slashBps and reporterShareBps must be at most 10000");
        }
        UNBONDING_EPOCHS = unbondingEpochs;
        EPOCH_LENGTH_S = epochLengthS;
        MIN_EPOCH_SPACING_S = minEpochSpacingS;
        FEE_PER_TOKEN = feePerToken;
        SLASH_BPS = slashBps;
        REPORTER_SHARE_BPS = reporterShareBps;
    }

    // ---------------------------------------------------------------------------------------------
    // Errors and formatting

    function _fail(string memory code, string memory reason) internal pure {
        revert(string.concat(code, ": ", reason));
    }

    function _dec(uint256 v) internal pure returns (string memory s) {
        if (v == 0) return "0";
        uint256 len;
        for (uint256 t = v; t != 0; t /= 10) ++len;
        bytes memory b = new bytes(len);
        for (; v != 0; v /= 10) b[--len] = bytes1(uint8(48 + (v % 10)));
        return string(b);
    }

    function _hex(uint256 v, uint256 digits) internal pure returns (string memory) {
        bytes memory b = new bytes(2 + digits);
        b[0] = "0";
        b[1] = "x";
        for (uint256 i = digits; i != 0; --i) {
            b[1 + i] = bytes1(uint8(bytes16("0123456789abcdef")[v & 15]));
            v >>= 4;
        }
        return string(b);
    }

    function _addr(address a) internal pure returns (string memory) {
        return _hex(uint160(a), 40);
    }

    function _h256(bytes32 h) internal pure returns (string memory) {
        return _hex(uint256(h), 64);
    }

    // ---------------------------------------------------------------------------------------------
    // Hashing and signatures. Buffers are built at the free memory pointer without allocating it
    // (nothing else runs in between), so the hot path does not grow memory item after item.

    // SHA-256 of memory [ptr, ptr + len).
    function _sha(uint256 ptr, uint256 len) internal view returns (bytes32 h) {
        assembly ("memory-safe") {
            if iszero(staticcall(gas(), 2, ptr, len, 0, 32)) { revert(0, 0) }
            h := mload(0)
        }
    }

    // H("atoma/request", enc(request)) over calldata [start, start + len).
    function _requestId(uint256 start, uint256 len) internal view returns (bytes32 h) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, "atoma/request")
            calldatacopy(add(ptr, 14), start, len)
            if iszero(staticcall(gas(), 2, ptr, add(14, len), 0, 32)) { revert(0, 0) }
            h := mload(0)
        }
    }

    // H("atoma/client-request", chain_id u64, ledger address, request_id).
    function _clientDigest(bytes32 rid) internal view returns (bytes32 h) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, "atoma/client-request")
            mstore(add(ptr, 21), shl(192, chainid()))
            mstore(add(ptr, 29), shl(96, address()))
            mstore(add(ptr, 49), rid)
            if iszero(staticcall(gas(), 2, ptr, 81, 0, 32)) { revert(0, 0) }
            h := mload(0)
        }
    }

    // H(tag, a, b) for a tag of `tagLen` bytes (without its 0x00) and two 32-byte fields.
    function _hash2(bytes32 tag, uint256 tagLen, bytes32 a, bytes32 b)
        internal
        view
        returns (bytes32 h)
    {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, tag)
            mstore(add(ptr, add(tagLen, 1)), a)
            mstore(add(ptr, add(tagLen, 33)), b)
            if iszero(staticcall(gas(), 2, ptr, add(tagLen, 65), 0, 32)) { revert(0, 0) }
            h := mload(0)
        }
    }

    // H(tag, a) for one 32-byte field.
    function _hash1(bytes32 tag, uint256 tagLen, bytes32 a) internal view returns (bytes32 h) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, tag)
            mstore(add(ptr, add(tagLen, 1)), a)
            if iszero(staticcall(gas(), 2, ptr, add(tagLen, 33), 0, 32)) { revert(0, 0) }
            h := mload(0)
        }
    }

    // The signer of `digest` from the 65-byte r ‖ s ‖ v at calldata offset `sig`; address(0) when
    // v is not 27/28, s is high or recovery fails.
    function _recover(bytes32 digest, uint256 sig) internal view returns (address signer) {
        assembly ("memory-safe") {
            let s := calldataload(add(sig, 32))
            let v := byte(0, calldataload(add(sig, 64)))
            if and(or(eq(v, 27), eq(v, 28)), iszero(gt(s, HALF_N))) {
                let ptr := mload(0x40)
                mstore(ptr, digest)
                mstore(add(ptr, 32), v)
                mstore(add(ptr, 64), calldataload(sig))
                mstore(add(ptr, 96), s)
                mstore(0, 0)
                pop(staticcall(gas(), 1, ptr, 128, 0, 32))
                signer := mload(0)
            }
        }
    }

    // AttestationDigest of a 297-byte attestation body at calldata `body` (its first 212 bytes are
    // the signed fields in digest order).
    function _bodyDigest(uint256 body) internal view returns (bytes32 h) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, "atoma/attestation")
            calldatacopy(add(ptr, 18), body, 212)
            if iszero(staticcall(gas(), 2, ptr, 230, 0, 32)) { revert(0, 0) }
            h := mload(0)
        }
    }

    // ---------------------------------------------------------------------------------------------
    // enc(request) from calldata

    // What settlement and disputes need of a request; filled in place (no allocation per item).
    struct Req {
        uint256 start; // calldata offset of enc(request)
        uint256 len;
        uint256 promptLen;
        uint256 mode; // 0 none, 1 sampling, 2 cross_validation
        uint256 n; // sampling: committee size as encoded (checked 1..64 only when status 0)
        uint256 pMicro;
        uint256 k;
        bytes32 saltHash;
        uint256 maxFee;
        address client;
        uint64 nonce;
        uint64 epoch;
    }

    // Reads enc(request) in calldata [p, end) into `r`, with the bounds of DecodeRequest: prompt
    // ≤ 2^20 tokens, ≤ 64 stop strings of ≤ 1024 bytes, ≤ 1024 stop ids, token ids < 2^32,
    // ignore_eos 0/1, a known security mode, 1 ≤ n ≤ 64, p ≤ 10^6, k ≤ 64, no trailing bytes.
    // Returns 0 when well-formed; 1 when malformed but the security field was read (so a settle
    // item's extent is known: CommitteeSize = n for sampling, else 1); 2 when the bytes ran out
    // before it. It never reads outside [p, end).
    function _parseRequest(Req memory r, uint256 p, uint256 end) internal pure returns (uint256 status) {
        assembly ("memory-safe") {
            mstore(r, p)
            mstore(add(r, 0x20), sub(end, p))
            mstore(add(r, 0x80), 0)
            // True when `count` u64 token ids at `q` all fit 32 bits (4 per word; the last
            // word's bytes past the list are masked off).
            function tokensOk(q, count) -> ok {
                let acc := 0
                let last := add(q, shl(5, shr(2, count)))
                for {} lt(q, last) { q := add(q, 32) } { acc := or(acc, calldataload(q)) }
                let rest := and(count, 3)
                if rest { acc := or(acc, and(calldataload(q), not(sub(shl(sub(256, shl(6, rest)), 1), 1)))) }
                ok := iszero(and(acc, TOKEN_HIGH_MASK))
            }
            // Reads past `end` only ever read other calldata (or zeros), and every value read is
            // used only once the position is known to be inside [p, end); loops are bounded by
            // `end` before they run. One pass; `break` leaves with the status so far.
            status := 2
            for {} 1 {} {
                // model digest, prompt token ids
                let c := shr(224, calldataload(add(p, 32)))
                p := add(p, 36)
                if gt(add(p, shl(3, c)), end) { break }
                let bad := or(gt(c, 0x100000), iszero(tokensOk(p, c)))
                mstore(add(r, 0x40), c)
                p := add(p, shl(3, c))
                // temperature, top_p, top_k, ignore_eos (0/1), max_tokens
                bad := or(bad, gt(shr(192, calldataload(add(p, 24))), 1))
                p := add(p, 40)
                // stop strings: ≤ 64 of ≤ 1024 bytes
                c := shr(224, calldataload(p))
                p := add(p, 4)
                bad := or(bad, gt(c, 64))
                for {} c { c := sub(c, 1) } {
                    if gt(add(p, 4), end) { break }
                    let l := shr(224, calldataload(p))
                    bad := or(bad, gt(l, 1024))
                    p := add(add(p, 4), l)
                }
                if gt(add(p, 4), end) { break }
                // stop token ids
                c := shr(224, calldataload(p))
                p := add(p, 4)
                if gt(add(p, shl(3, c)), end) { break }
                bad := or(bad, or(gt(c, 1024), iszero(tokensOk(p, c))))
                p := add(p, shl(3, c))
                // seed, security mode and its fields
                let mode := shr(192, calldataload(add(p, 8)))
                p := add(p, 16)
                mstore(add(r, 0x60), mode)
                switch mode
                case 0 {}
                case 1 {
                    let n := shr(192, calldataload(p))
                    mstore(add(r, 0x80), n)
                    bad := or(bad, or(iszero(n), gt(n, MAX_COMMITTEE)))
                    p := add(p, 8)
                }
                case 2 {
                    let pm := shr(192, calldataload(p))
                    let k := shr(192, calldataload(add(p, 8)))
                    mstore(add(r, 0xa0), pm)
                    mstore(add(r, 0xc0), k)
                    mstore(add(r, 0xe0), calldataload(add(p, 16)))
                    bad := or(bad, or(gt(pm, COIN_SCALE), gt(k, MAX_COMMITTEE)))
                    p := add(p, 48)
                }
                default {
                    // An unknown mode's fields are unknown: the rest cannot be read.
                    bad := 1
                    p := end
                }
                if gt(p, end) { break }
                status := 1
                // max_fee, client, nonce, epoch
                mstore(add(r, 0x100), calldataload(p))
                mstore(add(r, 0x120), shr(96, calldataload(add(p, 32))))
                mstore(add(r, 0x140), shr(192, calldataload(add(p, 52))))
                mstore(add(r, 0x160), shr(192, calldataload(add(p, 60))))
                if and(iszero(bad), eq(add(p, 68), end)) { status := 0 }
                break
            }
        }
    }

    // CommitteeSize(security): sampling → n, none and cross_validation → 1.
    function _committeeSize(Req memory r) internal pure returns (uint256) {
        return r.mode == 1 ? r.n : 1;
    }

    // ---------------------------------------------------------------------------------------------
    // Snapshots and committee selection

    // One echelon's candidates in an epoch: addresses ascending, prefix[j] = stake_0 + .. + stake_j.
    struct Snap {
        uint256 count;
        uint256[] addrs;
        uint256[] prefix;
        bytes32 seed;
        uint64 epoch;
        bytes32 echelon;
        uint256[] credit; // settlement: payouts of this batch by snapshot index
    }

    // Draws of one request: draw i is the candidate at snapshot index drawn[i] (settlement credits
    // payouts by snapshot index); the removed snapshot indices are kept ascending with their
    // stakes, so each draw is one pass over them plus a binary search.
    struct Draws {
        uint256 made;
        uint256[] drawn;
        uint256[] removed; // (snapshot index, stake) pairs of the draws so far, index ascending
        uint256 removedTotal;
        uint256 buf; // memory of the draw hash input: "atoma/committee" 0x00 ‖ seed ‖ rid ‖ u64 k
    }

    function _snapshotKey(uint64 epoch, bytes32 echelonId) internal pure returns (bytes32 key) {
        assembly ("memory-safe") {
            mstore(0, epoch)
            mstore(32, echelonId)
            key := keccak256(0, 64)
        }
    }

    // The snapshot of (epoch, echelon) in memory (the epoch exists): the derived one when it was
    // kept, else derived now from the epoch's frozen nodes (`fresh`: the caller may keep it with
    // _keepSnap). View, so that the read-only functions share it.
    function _loadSnap(uint64 epoch, bytes32 echelonId) internal view returns (Snap memory s, bool fresh) {
        s.epoch = epoch;
        s.echelon = echelonId;
        EpochRecord storage e = _epochs[epoch];
        s.seed = e.seed;
        address data = _snapshotData[_snapshotKey(epoch, echelonId)];
        fresh = data == address(0);
        if (fresh) data = e.nodes;
        uint256 size;
        assembly ("memory-safe") {
            size := extcodesize(data)
        }
        // Kept: 32-byte entries; the epoch's nodes: 40 bytes a node.
        uint256 count = size == 0 ? 0 : (size - 1) / (fresh ? 40 : 32);
        uint256[] memory addrs = new uint256[](count);
        uint256[] memory prefix = new uint256[](count);
        s.addrs = addrs;
        s.prefix = prefix;
        if (count == 0) return (s, fresh);
        // The entries land in `prefix` and are split in place.
        assembly ("memory-safe") {
            extcodecopy(data, add(prefix, 32), 1, shl(5, count))
        }
        if (!fresh) {
            assembly ("memory-safe") {
                let a := add(addrs, 32)
                let q := add(prefix, 32)
                for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                    let w := mload(add(q, shl(5, i)))
                    mstore(add(a, shl(5, i)), shr(96, w))
                    mstore(add(q, shl(5, i)), and(w, 0xffffffffffffffffffffffff))
                }
            }
            s.count = count;
            return (s, fresh);
        }
        // Derive: the nodes whose echelon set holds the echelon, with running sums of stake.
        uint256[] memory sets = _snapshotSetIds(data, count);
        uint256 kept;
        uint256 total;
        for (uint256 i; i < count; ++i) {
            uint256 w = prefix[i];
            if (!_inSet[sets[i]][echelonId]) continue;
            total += w & type(uint96).max;
            addrs[kept] = w >> 96;
            prefix[kept++] = total;
        }
        s.count = kept;
        assembly ("memory-safe") {
            mstore(addrs, kept)
            mstore(prefix, kept)
        }
    }

    // Keeps a snapshot _loadSnap derived, so the epoch's later settlements read it in one piece.
    function _keepSnap(Snap memory s) internal {
        uint256 count = s.count;
        address data = address(1);
        if (count != 0) {
            bytes memory blob = new bytes(count << 5);
            uint256[] memory addrs = s.addrs;
            uint256[] memory prefix = s.prefix;
            assembly ("memory-safe") {
                for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                    let at := shl(5, add(i, 1))
                    mstore(add(blob, at), or(shl(96, mload(add(addrs, at))), mload(add(prefix, at))))
                }
            }
            data = _writeData(blob);
        }
        _snapshotData[_snapshotKey(s.epoch, s.echelon)] = data;
    }

    // Deploys a contract whose code is 0x00 ‖ data (the STOP byte makes it uncallable).
    function _writeData(bytes memory data) internal returns (address a) {
        bytes memory init = abi.encodePacked(hex"61", uint16(data.length + 1), hex"80600a3d393df300", data);
        assembly ("memory-safe") {
            a := create(0, add(init, 32), mload(init))
        }
        if (a == address(0)) _fail(FAILED_PRECONDITION, "could not store a snapshot");
    }

    // Workspace for the draws of up to `cap` draws (reused request after request).
    function _newDraws(uint256 cap) internal pure returns (Draws memory d) {
        d.drawn = new uint256[](cap);
        d.removed = new uint256[](2 * cap);
        bytes memory buf = new bytes(88);
        uint256 b;
        assembly ("memory-safe") {
            b := add(buf, 32)
            mstore(b, "atoma/committee")
        }
        d.buf = b;
    }

    // Starts the draws of request `rid` with epoch seed `seed`.
    function _resetDraws(Draws memory d, bytes32 seed, bytes32 rid) internal pure {
        d.made = 0;
        d.removedTotal = 0;
        uint256 b = d.buf;
        assembly ("memory-safe") {
            mstore(add(b, 16), seed)
            mstore(add(b, 48), rid)
        }
    }

    // Makes draws until `want` are made or the snapshot runs out; returns the number made. The
    // caller sized the workspace for `want` draws. (Assembly over the structs' memory layout:
    // Snap = count, addrs, prefix, ...; Draws = made, drawn, removed, removedTotal, buf.)
    function _drawUpTo(Snap memory s, Draws memory d, uint256 want) internal view returns (uint256 made) {
        assembly ("memory-safe") {
            let count := mload(s)
            if gt(want, count) { want := count }
            made := mload(d)
            if lt(made, want) {
                let pre := add(mload(add(s, 0x40)), 32)
                let rm := add(mload(add(d, 0x40)), 32)
                // R: the stake of the candidates not drawn yet
                let remaining := sub(mload(add(pre, shl(5, sub(count, 1)))), mload(add(d, 0x60)))
                for {} lt(made, want) { made := add(made, 1) } {
                    // u = uint256(H("atoma/committee", seed, rid, k)) mod R
                    let buf := mload(add(d, 0x80))
                    mstore(add(buf, 80), shl(192, made))
                    if iszero(staticcall(gas(), 2, buf, 88, 0, 32)) { revert(0, 0) }
                    let u := mod(mload(0), remaining)
                    // The smallest j with prefix(j) − removed(≤ j) > u: find the segment between
                    // removed indices that holds it; `at` ends where j goes in the removed list.
                    let lo := 0
                    let hi := count
                    let at := add(rm, shl(6, made))
                    for { let e := rm } lt(e, at) { e := add(e, 64) } {
                        let r := mload(e)
                        // prefix(r) − removed(≤ r) > u: the draw lies in [lo, r)
                        if gt(sub(mload(add(pre, shl(5, r))), mload(add(e, 32))), u) {
                            hi := r
                            at := e
                            break
                        }
                        u := add(u, mload(add(e, 32)))
                        lo := add(r, 1)
                    }
                    // u now counts the stake removed below lo; no removed index lies in
                    // [lo, hi), so the draw is the smallest j there with prefix(j) > u: binary
                    // search down to 8 candidates, then a linear scan.
                    for {} gt(sub(hi, lo), 8) {} {
                        let mid := shr(1, add(lo, hi))
                        if gt(mload(add(pre, shl(5, mid))), u) {
                            hi := mid
                            continue
                        }
                        lo := add(mid, 1)
                    }
                    let p := add(pre, shl(5, lo))
                    for {} iszero(gt(mload(p), u)) {} { p := add(p, 32) }
                    let stake := mload(p)
                    if gt(p, pre) { stake := sub(stake, mload(sub(p, 32))) }
                    let j := shr(5, sub(p, pre))
                    // Insert (j, stake) at `at`.
                    for { let e := add(rm, shl(6, made)) } gt(e, at) { e := sub(e, 64) } {
                        mstore(e, mload(sub(e, 64)))
                        mstore(add(e, 32), mload(sub(e, 32)))
                    }
                    mstore(at, j)
                    mstore(add(at, 32), stake)
                    remaining := sub(remaining, stake)
                    mstore(add(add(mload(add(d, 0x20)), 32), shl(5, made)), j)
                }
                mstore(d, made)
                mstore(add(d, 0x60), sub(mload(add(pre, shl(5, sub(count, 1)))), remaining))
            }
        }
    }

    // Replaces the first `made` draws' snapshot indices by the candidates' addresses.
    function _drawnToAddresses(Snap memory s, Draws memory d) internal pure {
        uint256[] memory drawn = d.drawn;
        uint256[] memory addrs = s.addrs;
        uint256 made = d.made;
        assembly ("memory-safe") {
            for { let i := 0 } lt(i, made) { i := add(i, 1) } {
                let at := add(add(drawn, 32), shl(5, i))
                mstore(at, mload(add(add(addrs, 32), shl(5, mload(at)))))
            }
        }
    }

    // True when address `a` is one of the draws [from, to) (after _drawnToAddresses).
    function _drawnIn(Draws memory d, uint256 from, uint256 to, uint256 a) internal pure returns (bool found) {
        uint256[] memory drawn = d.drawn;
        assembly ("memory-safe") {
            let base := add(drawn, 32)
            for { let i := from } lt(i, to) { i := add(i, 1) } {
                if eq(mload(add(base, shl(5, i))), a) {
                    found := 1
                    break
                }
            }
        }
    }

    // In-place ascending sort: quicksort with a three-way partition (many equal keys — one
    // echelon served by every node — stay linear) and a middle pivot.
    function _sort(uint256[] memory a) internal pure {
        _quicksort(a, 0, a.length);
    }

    // Sorts a[lo .. hi).
    function _quicksort(uint256[] memory a, uint256 lo, uint256 hi) internal pure {
        while (hi - lo > 1) {
            uint256 pivot = a[(lo + hi) >> 1];
            uint256 lt = lo;
            uint256 i = lo;
            uint256 gt = hi;
            // [lo, lt) < pivot, [lt, i) == pivot, [gt, hi) > pivot
            while (i < gt) {
                uint256 x = a[i];
                if (x < pivot) {
                    (a[lt], a[i]) = (x, a[lt]);
                    ++lt;
                    ++i;
                } else if (x > pivot) {
                    --gt;
                    (a[i], a[gt]) = (a[gt], x);
                } else {
                    ++i;
                }
            }
            // Recurse into the smaller side, loop on the larger (bounded depth).
            if (lt - lo < hi - gt) {
                _quicksort(a, lo, lt);
                lo = gt;
            } else {
                _quicksort(a, gt, hi);
                hi = lt;
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Slashing (shared by the dispute module's two paths)

    // Takes SLASH_BPS of the node's still-locked stake (bonded plus unbonding entries not yet
    // released): from bonded first, then from the unbonding entries released last. Released
    // entries are the owner's already. As LedgerClient's SlashStake.
    function _slashStake(address node, uint64 current) internal returns (uint256 slash) {
        NodeRecord storage rec = _nodes[node];
        uint256 bonded = rec.bonded;
        uint256[] storage ub = rec.unbonding;
        uint256 head = rec.unbondingHead;
        uint256 locked = bonded;
        for (uint256 i = ub.length; i > head; --i) {
            uint256 e = ub[i - 1];
            if (uint64(e) <= current) break;
            locked += e >> 64;
        }
        slash = (locked * SLASH_BPS) / BASIS_POINTS;
        uint256 left = slash;
        uint256 fromBonded = left < bonded ? left : bonded;
        rec.bonded = uint96(bonded - fromBonded);
        left -= fromBonded;
        while (left != 0) {
            // locked ≥ slash, so the locked entries cover what is left.
            uint256 e = ub[ub.length - 1];
            uint256 amount = e >> 64;
            if (amount <= left) {
                left -= amount;
                ub.pop();
            } else {
                ub[ub.length - 1] = ((amount - left) << 64) | uint64(e);
                left = 0;
            }
        }
    }

    // The echelon-set ids of an epoch's node snapshot (data contract `data`: 0x00 ‖ `count`
    // 32-byte entries ‖ `count` u64 set ids), spread to one word each.
    function _snapshotSetIds(address data, uint256 count)
        internal
        view
        returns (uint256[] memory sets)
    {
        sets = new uint256[](count);
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            extcodecopy(data, ptr, add(1, shl(5, count)), shl(3, count))
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                mstore(add(add(sets, 32), shl(5, i)), shr(192, mload(add(ptr, shl(3, i)))))
            }
        }
    }
}
