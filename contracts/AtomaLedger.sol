// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AtomaLedgerBase} from "./AtomaLedgerBase.sol";
import {AtomaDisputes} from "./AtomaDisputes.sol";

// The Atoma ledger on an EVM chain: the LedgerClient semantics of include/atoma/ledger/ledger.h
// (node registry, stake with unbonding, epochs and their seeds, stakes frozen per epoch, client
// escrow, node rewards, batched settlement of sampling and cross-validation certificates, and,
// through its dispute module, dispute and equivocation slashing). The interface — functions,
// calldata formats, events, reason codes — is docs/ledger_evm.md; every hash and encoding is
// docs/protocol.md's, so certificates made for the embedded ledger's rules verify here bit for bit.
//
// Actors: the actor of a call is msg.sender. Money: the chain's native coin, in wei.
// Errors: reverts are Error(string) "<absl status code name>: <reason>"; settle() judges each item
// on its own and reports rejections as SettlementRejected events instead of reverting, and so does
// settleCosigned() (one co-signature per member and batch), which reverts the whole batch with
// PERMISSION_DENIED when a co-signature or a member index is wrong.
// Thread-safety: transactions are serialized by the chain. Withdrawals follow
// checks-effects-interactions behind a reentrancy guard.
//
// advanceEpoch, advanceEpochFrom, settleDispute and reportEquivocation run in AtomaDisputes
// (created by the constructor, called by DELEGATECALL on this contract's storage) so that each
// contract stays under the 24,576-byte limit; settlement, the hot path, stays here.
contract AtomaLedger is AtomaLedgerBase {
    address private immutable DISPUTES;
    bool private transient _locked;

    constructor(
        uint64 unbondingEpochs,
        uint64 epochLengthS,
        uint64 minEpochSpacingS,
        uint256 feePerToken,
        uint64 slashBps,
        uint64 reporterShareBps
    ) AtomaLedgerBase(unbondingEpochs, epochLengthS, minEpochSpacingS, feePerToken, slashBps, reporterShareBps) {
        DISPUTES = address(
            new AtomaDisputes(
                unbondingEpochs, epochLengthS, minEpochSpacingS, feePerToken, slashBps, reporterShareBps
            )
        );
        bytes32 seed = _hash2(
            "atoma/epoch-seed", 16, blockhash(block.number - 1), bytes32(block.prevrandao)
        );
        _epochs[0] = EpochRecord(seed, int64(int256(block.timestamp)), address(0));
        emit EpochAdvanced(0, seed);
    }

    modifier nonReentrant() {
        if (_locked) _fail(FAILED_PRECONDITION, "reentrant call");
        _locked = true;
        _;
        _locked = false;
    }

    function getParams()
        external
        view
        returns (
            uint64 unbondingEpochs,
            uint64 epochLengthS,
            uint64 minEpochSpacingS,
            uint256 feePerToken,
            uint64 slashBps,
            uint64 reporterShareBps,
            uint64 chainId
        )
    {
        return (
            UNBONDING_EPOCHS,
            EPOCH_LENGTH_S,
            MIN_EPOCH_SPACING_S,
            FEE_PER_TOKEN,
            SLASH_BPS,
            REPORTER_SHARE_BPS,
            uint64(block.chainid)
        );
    }

    // =============================================================================================
    // Registry

    function registerNode(string calldata endpoint, Echelon[] calldata echelons) external {
        Echelon[] memory sorted = _validateNode(endpoint, echelons);
        NodeRecord storage rec = _nodes[msg.sender];
        if (rec.registered) {
            _fail(
                ALREADY_EXISTS,
                string.concat("node ", _addr(msg.sender), " is already registered (use updateNode)")
            );
        }
        if (_nodeList.length >= MAX_NODES) {
            _fail(FAILED_PRECONDITION, "the ledger holds 256 nodes, its maximum");
        }
        rec.registered = true;
        rec.registeredEpoch = _currentEpoch;
        rec.echelonSet = _newSet(sorted);
        rec.endpoint = endpoint;
        _nodeList.push(msg.sender);
        emit NodeRegistered(msg.sender, endpoint);
    }

    function updateNode(string calldata endpoint, Echelon[] calldata echelons) external {
        Echelon[] memory sorted = _validateNode(endpoint, echelons);
        NodeRecord storage rec = _requireNode(msg.sender);
        rec.endpoint = endpoint;
        // A new set: the current epoch's snapshot still names the old one.
        rec.echelonSet = _newSet(sorted);
        emit NodeUpdated(msg.sender, endpoint);
    }

    function getNode(address node)
        external
        view
        returns (string memory endpoint, Echelon[] memory echelons, uint64 registeredEpoch)
    {
        NodeRecord storage rec = _requireNode(node);
        return (rec.endpoint, _echelonSets[rec.echelonSet], rec.registeredEpoch);
    }

    // Stores `sorted` as a new echelon set and returns its id (0 for none).
    function _newSet(Echelon[] memory sorted) private returns (uint64 id) {
        if (sorted.length == 0) return 0;
        id = ++_setCount;
        Echelon[] storage set = _echelonSets[id];
        mapping(bytes32 => bool) storage inSet = _inSet[id];
        for (uint256 i; i < sorted.length; ++i) {
            set.push(sorted[i]);
            inSet[sorted[i].echelonId] = true;
        }
    }

    function listNodes() external view returns (address[] memory nodes) {
        nodes = _nodeList;
        uint256[] memory words;
        assembly ("memory-safe") {
            words := nodes
        }
        _sort(words);
    }

    // The endpoint's length (the C++ client runs ValidateEndpoint first) and the echelon rules;
    // returns the echelons sorted by id.
    function _validateNode(string calldata endpoint, Echelon[] calldata echelons)
        private
        pure
        returns (Echelon[] memory sorted)
    {
        if (bytes(endpoint).length == 0 || bytes(endpoint).length > MAX_ENDPOINT) {
            _fail(INVALID_ARGUMENT, "endpoint must be 1..255 bytes");
        }
        uint256 m = echelons.length;
        if (m > MAX_ECHELONS) {
            _fail(INVALID_ARGUMENT, string.concat("at most 64 echelons per node, got ", _dec(m)));
        }
        sorted = echelons;
        for (uint256 i = 1; i < m; ++i) {
            Echelon memory e = sorted[i];
            uint256 j = i;
            for (; j > 0 && sorted[j - 1].echelonId > e.echelonId; --j) sorted[j] = sorted[j - 1];
            sorted[j] = e;
        }
        for (uint256 i; i < m; ++i) {
            if (i > 0 && sorted[i].echelonId == sorted[i - 1].echelonId) {
                _fail(
                    INVALID_ARGUMENT,
                    string.concat("echelon ", _h256(sorted[i].echelonId), " is listed twice")
                );
            }
            for (uint256 j; j < i; ++j) {
                if (sorted[i].modelDigest == sorted[j].modelDigest) {
                    _fail(
                        INVALID_ARGUMENT,
                        string.concat(
                            "one echelon per model: model ", _h256(sorted[i].modelDigest), " is listed twice"
                        )
                    );
                }
            }
        }
    }

    function _requireNode(address node) private view returns (NodeRecord storage rec) {
        rec = _nodes[node];
        if (!rec.registered) _fail(NOT_FOUND, string.concat("node ", _addr(node), " is not registered"));
    }

    // =============================================================================================
    // Stake

    function stake() external payable {
        _requirePositive(msg.value);
        NodeRecord storage rec = _requireNode(msg.sender);
        // Bounds every stake, unbonding entry and snapshot prefix sum to 96 bits (no real chain
        // has that much coin: 2^96 wei is 79 billion ether).
        if (address(this).balance > type(uint96).max) {
            _fail(INVALID_ARGUMENT, "the ledger would hold more than 2^96-1 wei");
        }
        rec.bonded += uint96(msg.value);
        emit Staked(msg.sender, msg.value);
    }

    function unstake(uint256 amount) external {
        _requirePositive(amount);
        NodeRecord storage rec = _requireNode(msg.sender);
        uint256 bonded = rec.bonded;
        if (bonded < amount) {
            _fail(
                FAILED_PRECONDITION,
                string.concat(
                    "cannot unstake ", _dec(amount), ": node ", _addr(msg.sender), " has only ", _dec(bonded), " bonded"
                )
            );
        }
        rec.bonded = uint96(bonded - amount);
        uint64 release = _currentEpoch + UNBONDING_EPOCHS;
        rec.unbonding.push((amount << 64) | release);
        emit Unstaked(msg.sender, amount, release);
    }

    function getStake(address node)
        external
        view
        returns (uint256 bonded, Unbonding[] memory unbonding, uint256 withdrawable)
    {
        NodeRecord storage rec = _requireNode(node);
        bonded = rec.bonded;
        uint64 current = _currentEpoch;
        uint256[] storage ub = rec.unbonding;
        uint256 head = rec.unbondingHead;
        uint256 locked;
        for (uint256 i = head; i < ub.length; ++i) {
            if (uint64(ub[i]) > current) ++locked;
        }
        unbonding = new Unbonding[](locked);
        uint256 o;
        for (uint256 i = head; i < ub.length; ++i) {
            uint256 e = ub[i];
            if (uint64(e) > current) unbonding[o++] = Unbonding(e >> 64, uint64(e));
            else withdrawable += e >> 64;
        }
    }

    function withdrawStake(uint256 amount) external nonReentrant {
        _requirePositive(amount);
        NodeRecord storage rec = _requireNode(msg.sender);
        uint64 current = _currentEpoch;
        uint256[] storage ub = rec.unbonding;
        uint256 head = rec.unbondingHead;
        uint256 available;
        for (uint256 i = head; i < ub.length && uint64(ub[i]) <= current; ++i) available += ub[i] >> 64;
        if (available < amount) {
            _fail(
                FAILED_PRECONDITION,
                string.concat(
                    "cannot withdraw ",
                    _dec(amount),
                    " of stake: node ",
                    _addr(msg.sender),
                    " has ",
                    _dec(available),
                    " released (unbonding lasts ",
                    _dec(UNBONDING_EPOCHS),
                    " epochs; current epoch ",
                    _dec(current),
                    ")"
                )
            );
        }
        // Released entries oldest first.
        uint256 left = amount;
        while (left != 0) {
            uint256 e = ub[head];
            uint256 a = e >> 64;
            if (a <= left) {
                left -= a;
                delete ub[head];
                ++head;
            } else {
                ub[head] = ((a - left) << 64) | uint64(e);
                left = 0;
            }
        }
        rec.unbondingHead = uint64(head);
        emit StakeWithdrawn(msg.sender, amount);
        _pay(msg.sender, amount);
    }

    // =============================================================================================
    // Epochs

    function currentEpoch() external view returns (uint64 number, bytes32 seed, int64 startedUnixS) {
        number = _currentEpoch;
        EpochRecord storage e = _epochs[number];
        return (number, e.seed, e.startedUnixS);
    }

    function getEpoch(uint64 number) external view returns (uint64, bytes32 seed, int64 startedUnixS) {
        _requireEpoch(number);
        EpochRecord storage e = _epochs[number];
        return (number, e.seed, e.startedUnixS);
    }

    function advanceEpoch() external returns (uint64 number, bytes32 seed, int64 startedUnixS) {
        number;
        seed;
        startedUnixS;
        _delegate();
    }

    function advanceEpochFrom(uint64 current) external returns (uint64 number, bytes32 seed, int64 startedUnixS) {
        (current, number, seed, startedUnixS);
        _delegate();
    }

    function echelonSnapshot(uint64 epoch, bytes32 echelonId)
        external
        view
        returns (address[] memory nodes, uint256[] memory stakes)
    {
        _requireEpoch(epoch);
        (Snap memory s,) = _loadSnap(epoch, echelonId);
        nodes = new address[](s.count);
        stakes = new uint256[](s.count);
        uint256 below;
        for (uint256 i; i < s.count; ++i) {
            nodes[i] = address(uint160(s.addrs[i]));
            stakes[i] = s.prefix[i] - below;
            below = s.prefix[i];
        }
    }

    function snapshotEchelons(uint64 epoch) external view returns (bytes32[] memory ids) {
        _requireEpoch(epoch);
        // The echelons of the sets of the epoch's staked nodes, distinct and ascending.
        address data = _epochs[epoch].nodes;
        uint256 size;
        assembly ("memory-safe") {
            size := extcodesize(data)
        }
        uint256 count = size == 0 ? 0 : (size - 1) / 40;
        uint256[] memory sets = _snapshotSetIds(data, count);
        _sort(sets);
        uint256 total;
        for (uint256 i; i < count; ++i) {
            if (i == 0 || sets[i] != sets[i - 1]) total += _echelonSets[sets[i]].length;
        }
        uint256[] memory all = new uint256[](total);
        uint256 q;
        for (uint256 i; i < count; ++i) {
            if (i > 0 && sets[i] == sets[i - 1]) continue;
            Echelon[] storage set = _echelonSets[sets[i]];
            for (uint256 j; j < set.length; ++j) all[q++] = uint256(set[j].echelonId);
        }
        _sort(all);
        ids = new bytes32[](total);
        q = 0;
        for (uint256 i; i < total; ++i) {
            if (i == 0 || all[i] != all[i - 1]) ids[q++] = bytes32(all[i]);
        }
        assembly ("memory-safe") {
            mstore(ids, q)
        }
    }

    function _requireEpoch(uint64 number) private view {
        if (number > _currentEpoch) {
            _fail(NOT_FOUND, string.concat("epoch ", _dec(number), " has not started"));
        }
    }

    // =============================================================================================
    // Escrow and rewards

    function depositEscrow() external payable {
        _requirePositive(msg.value);
        _escrow[msg.sender] += msg.value;
        emit EscrowDeposited(msg.sender, msg.value);
    }

    function escrowBalance(address client) external view returns (uint256) {
        return _escrow[client];
    }

    // Balance, pending withdrawal, its unlock epoch (0: none) and what withdrawEscrow would pay now.
    function escrowStatus(address client)
        external
        view
        returns (uint256 balance, uint256 pending, uint64 unlockEpoch, uint256 withdrawable)
    {
        balance = _escrow[client];
        uint256 w = _escrowWithdrawal[client];
        pending = w >> 64;
        unlockEpoch = uint64(w);
        if (pending != 0 && unlockEpoch <= _currentEpoch) withdrawable = pending < balance ? pending : balance;
    }

    // Escrow leaves in two steps (docs/ledger_evm.md "Escrow"): the request unlocks UNBONDING_EPOCHS
    // epochs after the current one and replaces an earlier request; the amount stays in the
    // balance, so settlements of requests served before it can still debit it.
    function requestEscrowWithdrawal(uint256 amount) external {
        _requirePositive(amount);
        uint256 balance = _escrow[msg.sender];
        if (balance < amount) {
            _fail(
                FAILED_PRECONDITION,
                string.concat(
                    "cannot request a withdrawal of ",
                    _dec(amount),
                    ": the escrow of ",
                    _addr(msg.sender),
                    " holds ",
                    _dec(balance)
                )
            );
        }
        // amount <= balance < 2^256, but the slot keeps 192 bits of it.
        if (amount >> 192 != 0) _fail(INVALID_ARGUMENT, "amount must be below 2^192");
        uint64 unlock = _currentEpoch + UNBONDING_EPOCHS;
        _escrowWithdrawal[msg.sender] = (amount << 64) | unlock;
        emit EscrowWithdrawalRequested(msg.sender, amount, unlock);
    }

    function withdrawEscrow(uint256 amount) external nonReentrant {
        _requirePositive(amount);
        uint256 w = _escrowWithdrawal[msg.sender];
        uint256 pending = w >> 64;
        uint64 unlock = uint64(w);
        uint64 current = _currentEpoch;
        uint256 balance = _escrow[msg.sender];
        if (pending == 0) {
            _withdrawEscrowFail(
                amount,
                string.concat(
                    _addr(msg.sender),
                    " has no withdrawal requested (request one first; it unlocks ",
                    _dec(UNBONDING_EPOCHS),
                    " epochs later)"
                )
            );
        }
        if (current < unlock) {
            _withdrawEscrowFail(
                amount,
                string.concat(
                    "the withdrawal of ",
                    _dec(pending),
                    " requested by ",
                    _addr(msg.sender),
                    " unlocks at epoch ",
                    _dec(unlock),
                    " (current epoch ",
                    _dec(current),
                    ")"
                )
            );
        }
        uint256 unlocked = pending < balance ? pending : balance;
        if (unlocked < amount) {
            _withdrawEscrowFail(
                amount,
                string.concat(
                    _addr(msg.sender),
                    " has ",
                    _dec(unlocked),
                    " unlocked since epoch ",
                    _dec(unlock),
                    " (pending ",
                    _dec(pending),
                    ", balance ",
                    _dec(balance),
                    ")"
                )
            );
        }
        _escrow[msg.sender] = balance - amount;
        // What settlement took from the pending amount is dropped with what is paid out now.
        uint256 left = unlocked - amount;
        _escrowWithdrawal[msg.sender] = left == 0 ? 0 : (left << 64) | unlock;
        emit EscrowWithdrawn(msg.sender, amount);
        _pay(msg.sender, amount);
    }

    // The refusals of withdrawEscrow, built only when one happens (a successful call pays for no
    // string).
    function _withdrawEscrowFail(uint256 amount, string memory why) private pure {
        _fail(
            FAILED_PRECONDITION, string.concat("cannot withdraw ", _dec(amount), " of escrow: ", why)
        );
    }

    function rewardBalance(address node) external view returns (uint256) {
        return _rewards[node];
    }

    function withdrawRewards(uint256 amount) external nonReentrant {
        _requirePositive(amount);
        uint256 balance = _rewards[msg.sender];
        if (balance < amount) _insufficient("reward balance", balance, amount);
        _rewards[msg.sender] = balance - amount;
        emit RewardsWithdrawn(msg.sender, amount);
        _pay(msg.sender, amount);
    }

    function burned() external view returns (uint256) {
        return _burned;
    }

    function _insufficient(string memory what, uint256 balance, uint256 amount) private view {
        _fail(
            FAILED_PRECONDITION,
            string.concat("insufficient ", what, " of ", _addr(msg.sender), ": ", _dec(balance), " < ", _dec(amount))
        );
    }

    function _requirePositive(uint256 amount) private pure {
        if (amount == 0) _fail(INVALID_ARGUMENT, "amount must be positive");
    }

    // The last step of a withdrawal (balances already debited).
    function _pay(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) _fail(FAILED_PRECONDITION, string.concat("transfer of ", _dec(amount), " to ", _addr(to), " failed"));
    }

    // =============================================================================================
    // Disputes and equivocation (AtomaDisputes, on this contract's storage; so are the epoch
    // functions above)

    function settleDispute(bytes calldata evidence) external {
        evidence;
        _delegate();
    }

    function reportEquivocation(bytes calldata a, bytes calldata b) external {
        (a, b);
        _delegate();
    }

    function _delegate() private {
        address target = DISPUTES;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, 0, calldatasize())
            let ok := delegatecall(gas(), target, ptr, calldatasize(), 0, 0)
            returndatacopy(ptr, 0, returndatasize())
            if iszero(ok) { revert(ptr, returndatasize()) }
            return(ptr, returndatasize())
        }
    }

    // =============================================================================================
    // Double settlement

    function isSettled(address client, uint64 nonce) external view returns (bool) {
        return (_settledBits[client][nonce >> 8] >> (nonce & 255)) & 1 == 1;
    }

    // =============================================================================================
    // Committee selection on a given list (DESIGN §4.4, tests/vectors/committee.json)

    function selectCommittee(
        bytes32 seed,
        bytes32 requestId,
        address[] calldata nodes,
        uint256[] calldata stakes,
        uint256 n,
        uint256 backups,
        uint256 referees
    ) external pure returns (address[] memory committee, address[] memory backupDraws, address[] memory refereeDraws) {
        // The draws hash through the SHA-256 precompile, which the compiler counts as a read of the
        // environment; it reads nothing, so the view implementation is called as pure.
        return _asPure(_selectCommittee)(seed, requestId, nodes, stakes, n, backups, referees);
    }

    function _asPure(
        function(bytes32, bytes32, address[] memory, uint256[] memory, uint256, uint256, uint256)
            internal
            view
            returns (address[] memory, address[] memory, address[] memory) f
    )
        private
        pure
        returns (
            function(bytes32, bytes32, address[] memory, uint256[] memory, uint256, uint256, uint256)
                internal
                pure
                returns (address[] memory, address[] memory, address[] memory) g
        )
    {
        assembly ("memory-safe") {
            g := f
        }
    }

    function _selectCommittee(
        bytes32 seed,
        bytes32 requestId,
        address[] memory nodes,
        uint256[] memory stakes,
        uint256 n,
        uint256 backups,
        uint256 referees
    ) private view returns (address[] memory committee, address[] memory backupDraws, address[] memory refereeDraws) {
        if (nodes.length != stakes.length) {
            _fail(INVALID_ARGUMENT, "nodes and stakes differ in length");
        }
        if (n == 0) _fail(INVALID_ARGUMENT, "committee size must be at least 1");
        Snap memory s = _candidates(nodes, stakes);
        if (s.count < n) _fail(FAILED_PRECONDITION, "fewer candidates with stake than the committee size");
        s.seed = seed;
        return _drawRoles(s, requestId, n, backups, referees);
    }

    // Committee, backups, referees; backups and referees stop early, without error, when the
    // echelon runs out.
    function _drawRoles(Snap memory s, bytes32 requestId, uint256 n, uint256 backups, uint256 referees)
        private
        view
        returns (address[] memory committee, address[] memory backupDraws, address[] memory refereeDraws)
    {
        uint256 left = s.count - n;
        uint256 nb = backups < left ? backups : left;
        uint256 nr = referees < left - nb ? referees : left - nb;
        Draws memory d = _newDraws(n + nb + nr);
        _resetDraws(d, s.seed, requestId);
        _drawUpTo(s, d, n + nb + nr);
        _drawnToAddresses(s, d);
        committee = _slice(d.drawn, 0, n);
        backupDraws = _slice(d.drawn, n, nb);
        refereeDraws = _slice(d.drawn, n + nb, nr);
    }

    // The staked candidates sorted by address with their prefix sums.
    function _candidates(address[] memory nodes, uint256[] memory stakes) private pure returns (Snap memory s) {
        // Words address << 96 | input index sort by address.
        uint256[] memory order = new uint256[](nodes.length);
        uint256 count;
        for (uint256 i; i < nodes.length; ++i) {
            if (stakes[i] != 0) order[count++] = (uint256(uint160(nodes[i])) << 96) | i;
        }
        assembly ("memory-safe") {
            mstore(order, count)
        }
        _sort(order);
        s.count = count;
        s.addrs = new uint256[](count);
        s.prefix = new uint256[](count);
        uint256 total;
        bool overflow;
        for (uint256 i; i < count; ++i) {
            uint256 a = order[i] >> 96;
            if (i > 0 && a == s.addrs[i - 1]) {
                _fail(INVALID_ARGUMENT, "a candidate address appears twice in the registry");
            }
            uint256 st = stakes[order[i] & type(uint96).max];
            unchecked {
                if (total + st < total) overflow = true;
                total += st;
            }
            s.addrs[i] = a;
            s.prefix[i] = total;
        }
        if (overflow) _fail(OUT_OF_RANGE, "total candidate stake exceeds 2^256 - 1");
    }

    function _slice(uint256[] memory words, uint256 from, uint256 len) private pure returns (address[] memory out) {
        out = new address[](len);
        for (uint256 i; i < len; ++i) out[i] = address(uint160(words[from + i]));
    }

    // =============================================================================================
    // Settlement (docs/ledger_evm.md "settle(bytes batch)")
    //
    // The hot path: per certificate the client's and the n members' signatures (ecrecover), a
    // handful of SHA-256 hashes, n draws by binary search over the snapshot loaded once per batch,
    // and no storage write. Payouts accumulate per snapshot index in memory and are written once
    // per member at the end; the escrow balance and the settled-bitmap word of the client being
    // settled are held in memory and written when the batch moves to another client (once per
    // client for a batch grouped by client). Loops over memory are assembly: the bounds are the
    // workspace's, sized when the batch starts.

    struct Batch {
        uint64 current;
        uint256 snapCount;
        Snap[] snaps;
        Snap cur; // the current item's snapshot
        Req r;
        Draws d;
        Item it;
        // The client whose escrow and bitmap word are held (0: none yet).
        uint256 client;
        uint256 escrow; // its escrow balance when first seen
        uint256 debit; // debited by this batch, not yet written
        uint256 wordAt; // the bitmap word held: nonce >> 8
        uint256 wordLoaded;
        uint256 word;
        uint256 att; // memory of the attestation digest input (230 bytes)
        uint256 commit; // memory of the commitment input (13 + 64 × 32 bytes)
        uint256[] members; // the slots' recovered signers (co-signed: their table addresses)
        uint256[] payees; // snapshot indices of the payees (the members; xv: executor, validators)
        // settleCosigned only (table 0: settle): the member table's calldata offset and size, and
        // the memory of the members' running hashes over their slots' attestation digests (one
        // word each), followed by their slot counts.
        uint256 slotSize; // 97 (p ‖ signature), co-signed 33 (p ‖ member index)
        uint256 table;
        uint256 tableCount;
        uint256 chains;
    }

    // Where one item's parts lie in calldata, and what judging it found (filled in place).
    struct Item {
        uint256 kind;
        uint256 status; // of _parseRequest
        uint256 reqStart;
        uint256 reqEnd; // then the client signature, echelon, C, completion tokens, Merkle root
        uint256 slots; // the n slots (32 p ‖ 65 signature)
        uint256 n;
        uint256 saltAt; // 0: no salt
        uint256 vCount;
        uint256 vAt;
        bytes32 rid;
        uint256 fee;
        uint256 payees; // how many of b.payees
        bytes32 executorDigest; // slot 0's attestation digest (the cross-validation coin's input)
        bool commitOk; // C = H(p's)
    }

    // Reason codes of SettlementRejected.
    uint8 private constant R_MALFORMED = 1;
    uint8 private constant R_EPOCH = 2;
    uint8 private constant R_CLIENT_SIGNATURE = 3;
    uint8 private constant R_COMMITTEE = 4;
    uint8 private constant R_COMMITMENT = 5;
    uint8 private constant R_SETTLED = 6;
    uint8 private constant R_FEE = 7;
    uint8 private constant R_ESCROW = 8;
    uint8 private constant R_SALT = 9;
    uint8 private constant R_VALIDATORS = 10;

    function settle(bytes calldata batch) external {
        _settle(batch, false);
    }

    // docs/ledger_evm.md "Co-signed batches": the member table after the item count, slots of
    // p ‖ member index, one co-signature per member over its slots' digests, checked at the end.
    function settleCosigned(bytes calldata batch) external {
        _settle(batch, true);
    }

    function _settle(bytes calldata batch, bool cosigned) private {
        uint256 p;
        uint256 end;
        assembly ("memory-safe") {
            p := batch.offset
            end := add(p, batch.length)
        }
        if (batch.length < 2) _fail(INVALID_ARGUMENT, "settle batch: no item count");
        uint256 count = _cd(p, 2);
        if (count > MAX_BATCH) {
            _fail(INVALID_ARGUMENT, string.concat("at most 1024 certificates per batch, got ", _dec(count)));
        }
        p += 2;
        Batch memory b = _newBatch(count);
        if (cosigned) p = _table(b, p);
        Item memory it = b.it;
        for (uint256 i; i < count;) {
            p = _frame(b.r, it, p, end, b.slotSize);
            if (p == 0) _framing(i);
            _emitJudged(i, it, b.r, _judge(b, it));
            unchecked {
                ++i;
            }
        }
        if (p != end) _fail(INVALID_ARGUMENT, "settle batch: trailing bytes after the last item");
        if (cosigned) _checkCosigners(b);
        _flushClient(b);
        _payOut(b);
    }

    function _newBatch(uint256 count) private view returns (Batch memory b) {
        b.current = _currentEpoch;
        // Pointers only, filled as snapshots load (new Snap[](count) would build count empty
        // structs that are never read).
        Snap[] memory snaps;
        assembly ("memory-safe") {
            snaps := mload(0x40)
            mstore(snaps, count)
            mstore(0x40, add(snaps, shl(5, add(count, 1))))
        }
        b.snaps = snaps;
        b.d = _newDraws(2 * MAX_COMMITTEE);
        b.members = new uint256[](MAX_COMMITTEE);
        b.payees = new uint256[](MAX_COMMITTEE + 1);
        bytes memory att = new bytes(230);
        bytes memory commit = new bytes(13 + 32 * MAX_COMMITTEE);
        uint256 a;
        uint256 c;
        assembly ("memory-safe") {
            a := add(att, 32)
            c := add(commit, 32)
            mstore(a, "atoma/attestation")
            mstore(add(a, 18), shl(192, chainid()))
            mstore(add(a, 26), shl(96, address()))
            mstore(c, "atoma/commit")
        }
        b.att = a;
        b.commit = c;
        b.slotSize = 97;
    }

    // The member table of a co-signed batch at p: u8 count, then per member address ‖ signature.
    // A table running past the batch is caught by the framing (the first item, or the trailing
    // bytes check of an empty batch, finds p past the end) before any entry is read.
    function _table(Batch memory b, uint256 p) private pure returns (uint256 next) {
        uint256 m;
        uint256 mem;
        assembly ("memory-safe") {
            m := shr(248, calldataload(p))
            next := add(add(p, 1), mul(m, 85))
            // zeroed (copied from past the calldata): per member a chain, a count and its index
            // and stake in the current snapshot (_asDrawn)
            mem := mload(0x40)
            calldatacopy(mem, calldatasize(), mul(m, 96))
            mstore(0x40, add(mem, mul(m, 96)))
        }
        b.slotSize = 33;
        b.table = p + 1;
        b.tableCount = m;
        b.chains = mem;
    }

    // Co-signed: every slot, then every validator entry, of a well-formed item joins its member's
    // chain whatever the item's fate, so the list a member signs follows from the batch's bytes
    // alone: its attestation digest (the item's header is in b.att) d gives
    // h = H("atoma/cosign-chain", h, d) and the member's count + 1. Fills b.members with the
    // slots' table addresses and the item's commitment check; an index outside the table reverts
    // the batch. One assembly loop: it runs for every slot of every item.
    function _chain(Batch memory b, Item memory it) private view {
        _attestationHeader(b, it);
        uint256 n = it.n;
        bool bad;
        // Fields by offset (stack depth): Batch att 0x1a0, commit 0x1c0, members 0x1e0, table
        // 0x240, tableCount 0x260, chains 0x280; Item slots 0x80, vCount 0xe0, vAt 0x100,
        // executorDigest 0x180.
        assembly ("memory-safe") {
            // the chain step's input: tag ‖ 0x00 ‖ h ‖ d, the digest written in place
            let buf := mload(0x40)
            mstore(buf, "atoma/cosign-chain")
            let total := add(n, mload(add(it, 0xe0)))
            for { let i := 0 } lt(i, total) { i := add(i, 1) } {
                let at := add(mload(add(it, 0x80)), mul(i, 33))
                if iszero(lt(i, n)) { at := add(mload(add(it, 0x100)), mul(sub(i, n), 33)) }
                let p := calldataload(at)
                let att := mload(add(b, 0x1a0))
                mstore(add(att, 142), p)
                if iszero(staticcall(gas(), 2, att, 230, add(buf, 51), 32)) { revert(0, 0) }
                let idx := byte(0, calldataload(add(at, 32)))
                let m := mload(add(b, 0x260))
                if iszero(lt(idx, m)) {
                    bad := 1
                    break
                }
                let h := add(mload(add(b, 0x280)), shl(5, idx))
                mstore(add(buf, 19), mload(h))
                if lt(i, n) {
                    if iszero(i) { mstore(add(it, 0x180), mload(add(buf, 51))) }
                    let member := shr(96, calldataload(add(mload(add(b, 0x240)), mul(idx, 85))))
                    mstore(add(mload(add(b, 0x1e0)), shl(5, add(i, 1))), member)
                    mstore(add(add(mload(add(b, 0x1c0)), 13), shl(5, i)), p)
                }
                if iszero(staticcall(gas(), 2, buf, 83, h, 32)) { revert(0, 0) }
                let count := add(h, shl(5, m))
                mstore(count, add(mload(count), 1))
            }
        }
        if (bad) _denied();
        it.commitOk = _sha(b.commit, 13 + 32 * n) == bytes32(_cd(it.reqEnd + 97, 32));
    }

    // Each table member has a slot and signed H("atoma/cosign", chain id u64, ledger, its chain,
    // u32 its slot count); else the whole batch reverts.
    function _checkCosigners(Batch memory b) private view {
        uint256 m = b.tableCount;
        uint256 mem = b.chains;
        for (uint256 i; i < m; ++i) {
            uint256 entry = b.table + i * 85;
            uint256 count;
            bytes32 digest;
            assembly ("memory-safe") {
                count := mload(add(mem, shl(5, add(m, i))))
                let ptr := mload(0x40)
                mstore(ptr, "atoma/cosign")
                mstore(add(ptr, 13), shl(192, chainid()))
                mstore(add(ptr, 21), shl(96, address()))
                mstore(add(ptr, 41), mload(add(mem, shl(5, i))))
                mstore(add(ptr, 73), shl(224, count))
                if iszero(staticcall(gas(), 2, ptr, 77, 0, 32)) { revert(0, 0) }
                digest := mload(0)
            }
            address signer = _recover(digest, entry + 20);
            if (count == 0 || signer == address(0) || uint160(signer) != _cd(entry, 20)) {
                _denied();
            }
        }
    }

    function _denied() private pure {
        _fail(PERMISSION_DENIED, "cosigned batch: a member index outside the table, or a member with no slot or a bad co-signature");
    }

    function _framing(uint256 index) private pure {
        _fail(
            INVALID_ARGUMENT,
            string.concat("settle batch: item ", _dec(index), " runs past the end or its length cannot be read")
        );
    }

    // Reads calldata [p, p + bytes) as a big-endian integer (bytes ≤ 32).
    function _cd(uint256 p, uint256 bytes_) private pure returns (uint256 v) {
        assembly ("memory-safe") {
            v := shr(sub(256, shl(3, bytes_)), calldataload(p))
        }
    }

    // The item at p: its extent, and its request parsed into r. Returns where the next item
    // starts, or 0 when the framing is broken (an extent that cannot be read or runs past end).
    function _frame(Req memory r, Item memory it, uint256 p, uint256 end, uint256 slotSize)
        private
        pure
        returns (uint256 next)
    {
        unchecked {
            if (p + 5 > end) return 0;
            uint256 reqStart = p + 5;
            uint256 reqEnd = reqStart + _cd(p + 1, 4);
            if (reqEnd > end) return 0;
            uint256 status = _parseRequest(r, reqStart, reqEnd);
            if (status == 2) return 0;
            uint256 kind = _cd(p, 1);
            uint256 n = _committeeSize(r);
            it.kind = kind;
            it.status = status;
            it.reqStart = reqStart;
            it.reqEnd = reqEnd;
            it.n = n;
            it.saltAt = 0;
            it.vCount = 0;
            it.rid = 0;
            it.fee = 0;
            // client signature (65), echelon, C, completion tokens (8), Merkle root, then the slots
            uint256 slots = reqEnd + 169;
            it.slots = slots;
            if (slots > end || n > (end - slots) / slotSize) return 0;
            next = slots + n * slotSize;
            if (kind == 2) {
                if (next >= end) return 0;
                uint256 flag = _cd(next, 1);
                if (flag > 1) return 0;
                next += 1;
                if (flag == 1) {
                    it.saltAt = next;
                    next += 32;
                }
                if (next >= end) return 0;
                uint256 vCount = _cd(next, 1);
                it.vCount = vCount;
                it.vAt = next + 1;
                next = next + 1 + vCount * slotSize;
                if (next > end) return 0;
            }
        }
    }

    // Settled(index, rid, client, nonce, fee) or SettlementRejected(index, rid, code).
    function _emitJudged(uint256 index, Item memory it, Req memory r, uint256 code) private {
        bytes32 rid = it.rid;
        if (code == 0) {
            bytes32 topic = Settled.selector;
            uint256 client = uint160(r.client);
            uint256 nonce = r.nonce;
            uint256 fee = it.fee;
            assembly ("memory-safe") {
                let ptr := mload(0x40)
                mstore(ptr, index)
                mstore(add(ptr, 32), nonce)
                mstore(add(ptr, 64), fee)
                log3(ptr, 96, topic, rid, client)
            }
        } else {
            bytes32 topic = SettlementRejected.selector;
            assembly ("memory-safe") {
                let ptr := mload(0x40)
                mstore(ptr, index)
                mstore(add(ptr, 32), code)
                log2(ptr, 64, topic, rid)
            }
        }
    }

    // The checks in VerifyCertificate / VerifyXvCertificate order, then the ledger rules; returns
    // the reason code (0: settled, its effects held in the batch).
    function _judge(Batch memory b, Item memory it) private returns (uint256) {
        unchecked {
            Req memory r = b.r;
            // 1: structure (kind 1 = sampling, kind 2 = cross-validation)
            if (it.status != 0) return R_MALFORMED;
            it.rid = _requestId(it.reqStart, it.reqEnd - it.reqStart);
            if (it.kind == 1 ? r.mode != 1 : (it.kind != 2 || r.mode != 2)) return R_MALFORMED;
            if (b.table != 0) _chain(b, it);
            // 2: the request's epoch has started
            if (r.epoch > b.current) return R_EPOCH;
            // 3: the client authorized the request
            address signer = _recover(_clientDigest(it.rid), it.reqEnd);
            if (signer == address(0) || signer != r.client) return R_CLIENT_SIGNATURE;
            // 4: the signers form a view of the draws
            _snap(b, r.epoch, bytes32(_cd(it.reqEnd + 65, 32)));
            Snap memory s = b.cur;
            uint256 code = _checkMembers(b, s, it);
            if (code != 0) return code;
            // 9, 10: cross-validation (after its base, as VerifyXvCertificate)
            if (it.kind == 2) {
                code = _checkXv(b, s, it);
                if (code != 0) return code;
            }
            // 6, 7, 8 and the effects
            return _charge(b, s, it);
        }
    }

    // Makes b.cur the snapshot of (epoch, echelon), loaded once per batch (with its payout array)
    // and kept for the epoch's later batches when this is the first to need it. (No struct is
    // returned: a memory struct return value would be allocated per call.)
    function _snap(Batch memory b, uint64 epoch, bytes32 echelon) private {
        uint256 count = b.snapCount;
        // Consecutive items mostly share one.
        if (count != 0 && b.cur.epoch == epoch && b.cur.echelon == echelon) return;
        Snap[] memory snaps = b.snaps;
        for (uint256 i; i < count; ++i) {
            Snap memory t = snaps[i];
            if (t.epoch == epoch && t.echelon == echelon) {
                b.cur = t;
                return;
            }
        }
        (Snap memory loaded, bool fresh) = _loadSnap(epoch, echelon);
        if (fresh) _keepSnap(loaded);
        loaded.credit = new uint256[](loaded.count);
        snaps[count] = loaded;
        b.snapCount = count + 1;
        b.cur = loaded;
    }

    // Checks 4 and 5 over the slots. Each slot's signer is recovered over AttestationDigest with
    // the item's shared fields (prompt tokens = the request's prompt length, epoch = the
    // request's epoch) and its p_i (nobody for an invalid signature); slot 0's digest is kept
    // (the cross-validation coin's input). 4: CheckCommitteeView — slot i holds draw i or one of
    // the n backups (drawn only when some slot is not its own draw), nobody twice; b.payees gets
    // the slots' snapshot indices. 5: C = H("atoma/commit", p_0 .. p_{n-1}).
    function _checkMembers(Batch memory b, Snap memory s, Item memory it) private view returns (uint256) {
        uint256 n = it.n;
        uint256 members;
        uint256 payees;
        {
            uint256[] memory m = b.members;
            uint256[] memory py = b.payees;
            assembly ("memory-safe") {
                members := add(m, 32)
                payees := add(py, 32)
            }
        }
        if (b.table == 0) {
            _attestationHeader(b, it);
            (it.executorDigest, it.commitOk) =
                _recoverSlots(b.att, b.commit, it.slots, n, members, it.reqEnd + 97);
        }
        if (!_checkView(b, s, it, n, members, payees)) return R_COMMITTEE;
        if (!it.commitOk) return R_COMMITMENT;
        it.payees = n;
        return 0;
    }

    // The item's shared fields in the attestation digest input (chain id and ledger were written
    // once): request id, echelon, C, (p), prompt tokens, completion tokens, Merkle root, epoch.
    function _attestationHeader(Batch memory b, Item memory it) private pure {
        uint256 att = b.att;
        uint256 prompt = b.r.promptLen;
        uint256 epoch = b.r.epoch;
        bytes32 rid = it.rid;
        uint256 shared = it.reqEnd + 65;
        assembly ("memory-safe") {
            mstore(add(att, 46), rid)
            calldatacopy(add(att, 78), shared, 64)
            mstore(add(att, 174), shl(192, prompt))
            calldatacopy(add(att, 182), add(shared, 64), 8)
            calldatacopy(add(att, 190), add(shared, 72), 32)
            mstore(add(att, 222), shl(192, epoch))
        }
    }

    // Recovers each slot's signer into members[] (0: nobody), and whether H(p's) is the item's C
    // (at calldata cAt); returns slot 0's digest too.
    function _recoverSlots(uint256 att, uint256 c, uint256 slots, uint256 n, uint256 members, uint256 cAt)
        private
        view
        returns (bytes32 first, bool commitOk)
    {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            let ps := add(c, 13)
            let end := add(slots, mul(n, 97))
            for { let slot := slots } lt(slot, end) { slot := add(slot, 97) } {
                let p := calldataload(slot)
                mstore(add(att, 142), p)
                mstore(ps, p)
                ps := add(ps, 32)
                if iszero(staticcall(gas(), 2, att, 230, ptr, 32)) { revert(0, 0) }
                // ecrecover: v 27/28, low s, else nobody
                let signer := 0
                let sv := calldataload(add(slot, 64))
                let v := byte(0, calldataload(add(slot, 96)))
                if and(or(eq(v, 27), eq(v, 28)), iszero(gt(sv, HALF_N))) {
                    mstore(add(ptr, 32), v)
                    mstore(add(ptr, 64), calldataload(add(slot, 32)))
                    mstore(add(ptr, 96), sv)
                    mstore(0, 0)
                    pop(staticcall(gas(), 1, ptr, 128, 0, 32))
                    signer := mload(0)
                }
                if eq(slot, slots) { first := mload(ptr) }
                mstore(members, signer)
                members := add(members, 32)
            }
            if iszero(staticcall(gas(), 2, c, add(13, shl(5, n)), 0, 32)) { revert(0, 0) }
            commitOk := eq(mload(0), calldataload(cAt))
        }
    }

    // Whether slot i holds draw i for every i (the common case), checked without searching the
    // draws: with j_i the snapshot index of slot i's member and F(j) the stake of the candidates
    // not drawn before, up to j (DESIGN §4.4: draw i is the smallest j with F(j) > u_i, u_i =
    // H("atoma/committee", seed, rid, i) mod the stake not drawn before), draw i is j_i iff
    // F(j_i) − stake(j_i) ≤ u_i < F(j_i), j_i not drawn before. A member's index and stake come
    // from a binary search of its address, kept per table member and snapshot when co-signed.
    // Fills payees[0 .. n) when true (the caller wrote seed ‖ rid into b.d's hash input).
    function _asDrawn(Batch memory b, Snap memory s, Item memory it, uint256 n, uint256 members, uint256 payees)
        private
        view
        returns (bool ok)
    {
        // (Batch: d 0xa0, table 0x240, tableCount 0x260, chains 0x280; Draws: buf 0x80; Snap:
        // count 0x00, addrs 0x20, prefix 0x40; Item: slots 0x80.)
        assembly ("memory-safe") {
            // s << 128 | stake << 16 | index of address `a` (stake 0: not a candidate)
            function find(snap, a) -> w {
                let addrs := add(mload(add(snap, 0x20)), 32)
                let count := mload(snap)
                let j := 0
                let hi := count
                for {} lt(j, hi) {} {
                    let mid := shr(1, add(j, hi))
                    switch lt(mload(add(addrs, shl(5, mid))), a)
                    case 1 { j := add(mid, 1) }
                    default { hi := mid }
                }
                w := shl(128, snap)
                if lt(j, count) {
                    if eq(mload(add(addrs, shl(5, j))), a) {
                        let pre := add(mload(add(snap, 0x40)), 32)
                        let st := mload(add(pre, shl(5, j)))
                        if j { st := sub(st, mload(add(pre, shl(5, sub(j, 1))))) }
                        w := or(w, or(shl(16, st), j))
                    }
                }
            }
            // The member of slot i: find()'s word, kept per table member when co-signed.
            function member(batch, item, snap, addr, i) -> w {
                let cached := 0
                if mload(add(batch, 0x240)) {
                    let idx := byte(0, calldataload(add(add(mload(add(item, 0x80)), mul(i, 33)), 32)))
                    cached := add(mload(add(batch, 0x280)), shl(5, add(shl(1, mload(add(batch, 0x260))), idx)))
                    w := mload(cached)
                }
                if iszero(eq(shr(128, w), snap)) {
                    w := find(snap, addr)
                    if cached { mstore(cached, w) }
                }
                w := and(w, 0xffffffffffffffffffffffffffff)
            }
            let pre := add(mload(add(s, 0x40)), 32)
            let remaining := mload(add(pre, shl(5, sub(mload(s), 1))))
            ok := 1
            // payees[k] holds stake << 16 | index until the end
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                let w := member(b, it, s, mload(add(members, shl(5, i))), i)
                // F(j) = prefix(j) − the stake drawn before below j
                let f := mload(add(pre, shl(5, and(w, 0xffff))))
                for { let k := 0 } lt(k, i) { k := add(k, 1) } {
                    let e := mload(add(payees, shl(5, k)))
                    if eq(and(e, 0xffff), and(w, 0xffff)) { ok := 0 }
                    if lt(and(e, 0xffff), and(w, 0xffff)) { f := sub(f, shr(16, e)) }
                }
                mstore(add(payees, shl(5, i)), w)
                let buf := mload(add(mload(add(b, 0xa0)), 0x80))
                mstore(add(buf, 80), shl(192, i))
                if iszero(staticcall(gas(), 2, buf, 88, 0, 32)) { revert(0, 0) }
                let u := mod(mload(0), remaining)
                if or(or(iszero(ok), iszero(shr(16, w))), or(iszero(lt(u, f)), lt(add(u, shr(16, w)), f))) {
                    ok := 0
                    break
                }
                remaining := sub(remaining, shr(16, w))
            }
            if ok {
                for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                    let at := add(payees, shl(5, i))
                    mstore(at, and(mload(at), 0xffff))
                }
            }
        }
    }

    function _checkView(Batch memory b, Snap memory s, Item memory it, uint256 n, uint256 members, uint256 payees)
        private
        view
        returns (bool ok)
    {
        if (s.count < n) return false; // SelectCommittee fails: fewer candidates than n
        Draws memory d = b.d;
        _resetDraws(d, s.seed, it.rid);
        // Co-signed, the members' snapshot indices are known (kept per table member): slot i is
        // checked against draw i without a search. (With recovered signers, finding each index
        // costs about what a draw does.)
        if (b.table != 0 && _asDrawn(b, s, it, n, members, payees)) return true;
        _drawUpTo(s, d, n);
        uint256 drawn;
        uint256 addrs;
        {
            uint256[] memory dr = d.drawn;
            uint256[] memory ad = s.addrs;
            assembly ("memory-safe") {
                drawn := add(dr, 32)
                addrs := add(ad, 32)
            }
        }
        assembly ("memory-safe") {
            ok := 1
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                let j := mload(add(drawn, shl(5, i)))
                if iszero(eq(mload(add(members, shl(5, i))), mload(add(addrs, shl(5, j))))) {
                    ok := 0
                    break
                }
                mstore(add(payees, shl(5, i)), j)
            }
        }
        if (ok) return true;
        uint256 made = _drawUpTo(s, d, 2 * n);
        assembly ("memory-safe") {
            ok := 1
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                let m := mload(add(members, shl(5, i)))
                // draw i, else one of the backups n .. made
                let j := mload(add(drawn, shl(5, i)))
                if iszero(eq(m, mload(add(addrs, shl(5, j))))) {
                    j := not(0)
                    for { let k := n } lt(k, made) { k := add(k, 1) } {
                        let x := mload(add(drawn, shl(5, k)))
                        if eq(m, mload(add(addrs, shl(5, x)))) {
                            j := x
                            break
                        }
                    }
                }
                if eq(j, not(0)) {
                    ok := 0
                    break
                }
                // nobody twice
                for { let k := 0 } lt(k, i) { k := add(k, 1) } {
                    if eq(mload(add(payees, shl(5, k))), j) { ok := 0 }
                }
                if iszero(ok) { break }
                mstore(add(payees, shl(5, i)), j)
            }
        }
    }

    // The cross-validation part of VerifyXvCertificate; returns a reason code (0: valid) and
    // adds the validators to the payees after the executor.
    function _checkXv(Batch memory b, Snap memory s, Item memory it) private view returns (uint256) {
        uint256 vCount = it.vCount;
        if (it.saltAt == 0) {
            // Unrevealed: no coin was computed, so no validator can have attested.
            return vCount == 0 ? 0 : R_MALFORMED;
        }
        {
            bytes32 salt = bytes32(_cd(it.saltAt, 32));
            if (_hash1("atoma/xv-salt", 13, salt) != b.r.saltHash) return R_SALT;
            uint256 coin = uint256(_hash2("atoma/xv", 8, salt, it.executorDigest)) % COIN_SCALE;
            if (coin >= b.r.pMicro) return vCount == 0 ? 0 : R_MALFORMED;
        }
        uint256 k = b.r.k;
        // Draws 2 .. k+1 (after the executor's draw and its backup) are the validators; an
        // echelon too small to supply k of them fails the check (k = 0 needs none).
        if (k != 0 && _drawUpTo(s, b.d, 2 + k) < 2 + k) return R_VALIDATORS;
        if (vCount < k) return R_VALIDATORS;
        if (vCount > k) return R_MALFORMED;
        uint256 vAt = it.vAt;
        uint256[] memory drawn = b.d.drawn;
        uint256[] memory addrs = s.addrs;
        uint256[] memory payees = b.payees;
        for (uint256 i; i < k; ++i) {
            uint256 j = drawn[2 + i];
            if (_signer(b, vAt + i * b.slotSize) != addrs[j]) return R_VALIDATORS;
            payees[1 + i] = j;
        }
        it.payees = 1 + k;
        return 0;
    }

    // Who vouches for the validator entry at `at` (p, then its signature or, co-signed, its member
    // index): the signer of its attestation digest (the item's header is in b.att), or the member.
    function _signer(Batch memory b, uint256 at) private view returns (uint256) {
        if (b.table != 0) return _cd(b.table + _cd(at + 32, 1) * 85, 20);
        uint256 att = b.att;
        bytes32 digest;
        assembly ("memory-safe") {
            calldatacopy(add(att, 142), at, 32)
            if iszero(staticcall(gas(), 2, att, 230, 0, 32)) { revert(0, 0) }
            digest := mload(0)
        }
        return uint160(_recover(digest, at + 32));
    }

    // The ledger rules of a verified item (6 settled, 7 fee, 8 escrow) and, when they pass, its
    // effects: the client's bit and escrow debit (held in b), the payees' shares (s.credit).
    function _charge(Batch memory b, Snap memory s, Item memory it) private returns (uint256 code) {
        {
            Req memory r = b.r;
            uint256 client = uint160(r.client);
            uint256 nonce = r.nonce;
            if (b.client != client || b.wordAt != nonce >> 8) _hold(b, client, nonce >> 8);
        }
        uint256 feePerToken = FEE_PER_TOKEN;
        // (Batch: r 0x80, escrow 0x100, debit 0x120, word 0x180, payees 0x200; Req: promptLen
        // 0x40, maxFee 0x100, nonce 0x140; Item: reqEnd 0x60, fee 0x140, payees 0x160; Snap:
        // credit 0xc0.)
        assembly ("memory-safe") {
            let r := mload(add(b, 0x80))
            let bit := shl(and(mload(add(r, 0x140)), 255), 1)
            let word := mload(add(b, 0x180))
            for {} 1 {} {
                // 6: one bit per (client, nonce), earlier items of this batch included.
                if and(word, bit) {
                    code := R_SETTLED
                    break
                }
                // 7: fee = feePerToken × (prompt + completion), rejected (never capped) above
                // max_fee (and when the product overflows).
                let tokens := add(mload(add(r, 0x40)), shr(192, calldataload(add(mload(add(it, 0x60)), 129))))
                let fee := mul(feePerToken, tokens)
                if or(gt(fee, mload(add(r, 0x100))), and(iszero(iszero(tokens)), iszero(eq(div(fee, tokens), feePerToken)))) {
                    code := R_FEE
                    break
                }
                // 8: the escrow covers it, counting this batch's earlier debits.
                let debit := mload(add(b, 0x120))
                if lt(sub(mload(add(b, 0x100)), debit), fee) {
                    code := R_ESCROW
                    break
                }
                mstore(add(b, 0x180), or(word, bit))
                mstore(add(it, 0x140), fee)
                if iszero(fee) { break }
                mstore(add(b, 0x120), add(debit, fee))
                // Equal shares, the remainder to the first payee.
                let payees := mload(add(it, 0x160))
                let share := div(fee, payees)
                let c := add(mload(add(s, 0xc0)), 32)
                let l := add(mload(add(b, 0x200)), 32)
                let at := add(c, shl(5, mload(l)))
                mstore(at, add(mload(at), add(share, mod(fee, payees))))
                for { let end := add(l, shl(5, payees)) } lt(add(l, 32), end) {} {
                    l := add(l, 32)
                    at := add(c, shl(5, mload(l)))
                    mstore(at, add(mload(at), share))
                }
                break
            }
        }
    }

    // Holds `client`'s escrow and bitmap word `wordAt` in b, writing back what was held.
    function _hold(Batch memory b, uint256 client, uint256 wordAt) private {
        if (b.client != client) {
            _flushEscrow(b);
            b.client = client;
            b.escrow = _escrow[address(uint160(client))];
            b.debit = 0;
        } else {
            _flushWord(b);
        }
        uint256 w = _settledBits[address(uint160(client))][wordAt];
        b.wordAt = wordAt;
        b.wordLoaded = w;
        b.word = w;
    }

    // Writes the held client's escrow debit and bitmap word.
    function _flushEscrow(Batch memory b) private {
        if (b.client == 0) return;
        _flushWord(b);
        if (b.debit != 0) _escrow[address(uint160(b.client))] = b.escrow - b.debit;
    }

    function _flushWord(Batch memory b) private {
        if (b.client != 0 && b.word != b.wordLoaded) _settledBits[address(uint160(b.client))][b.wordAt] = b.word;
        b.wordLoaded = b.word;
    }

    function _flushClient(Batch memory b) private {
        _flushEscrow(b);
        b.debit = 0;
    }

    // One reward write per member credited by the batch.
    function _payOut(Batch memory b) private {
        Snap[] memory snaps = b.snaps;
        uint256 count = b.snapCount;
        // (Snap: count 0x00, addrs 0x20, credit 0xc0.) Unchecked: every balance is less than the
        // coin the contract holds.
        assembly ("memory-safe") {
            mstore(0x20, _rewards.slot)
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                let s := mload(add(add(snaps, 32), shl(5, i)))
                let addrs := add(mload(add(s, 0x20)), 32)
                let credit := add(mload(add(s, 0xc0)), 32)
                for { let j := 0 } lt(j, mload(s)) { j := add(j, 1) } {
                    let c := mload(add(credit, shl(5, j)))
                    if c {
                        mstore(0, mload(add(addrs, shl(5, j))))
                        let k := keccak256(0, 64)
                        sstore(k, add(sload(k), c))
                    }
                }
            }
        }
    }
}
