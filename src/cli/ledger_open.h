// How atoma-cli names and opens a ledger (issue 4): every command that reads or changes a ledger
// takes either
//   --db FILE (also spelt --ledger-db)          an embedded (SQLite) ledger file, or
//   --rpc-url URL --contract ADDRESS             the AtomaLedger contract on an EVM chain,
//     [--chain-id N] [--confirmations N] [--tx-journal FILE]
// and opens it here, so the flags, their checks and their messages are the same everywhere
// (`ledger ...`, `generate`, `verify`, `status`, `peers`, `stake`, `unstake`, `withdraw`,
// `claim`).
//
// Actors: on an EVM ledger a mutation is a transaction sent (and paid for) by the actor, so the
// command needs the actor's key (`--key FILE`), which becomes an EvmLedgerOptions signer. On an
// embedded ledger the dev mutations act without any signature and a key only names the actor.
//
// Error contract: the Check/Resolve functions return INVALID_ARGUMENT with a message that names
// the flags (both --db and --rpc-url, --contract missing, ...); OpenLedger returns the backend's
// errors annotated with the ledger's name (NOT_FOUND for a missing embedded file, UNAVAILABLE for
// an unreachable chain, FAILED_PRECONDITION for a chain id mismatch, ...). Nothing here throws;
// the commands turn a bad status into Fail (commands.h).
//
// Thread-compatible: plain functions over the flags; the returned LedgerClient has its own
// thread-safety (ledger.h).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "atoma/common/uint256.h"
#include "atoma/crypto/keys.h"
#include "atoma/ledger/ledger.h"

namespace atoma::cli {

// The ledger flags of one command, as parsed.
struct LedgerFlags {
  std::string db;                         // --db / --ledger-db
  std::string rpc_url;                    // --rpc-url
  std::string contract;                   // --contract
  std::optional<uint64_t> chain_id;       // --chain-id (default: eth_chainId of the chain)
  std::optional<uint64_t> confirmations;  // --confirmations (default 0: read `latest`)
  std::string tx_journal;                 // --tx-journal (default: in memory)
};

enum class LedgerKind { kNone, kEmbedded, kEvm };

// Registers the ledger flags on `cmd` in option group `group`. `file_names` is the CLI11 name
// list of the file option, its usual spelling first ("--db,--ledger-db" or "--ledger-db,--db"),
// so the commands keep the name they had and accept the other one too. --tx-journal only where
// the command may sign transactions (`signs`).
void AddLedgerFlags(CLI::App* cmd, LedgerFlags* flags, const std::string& file_names,
                    bool signs = false,
                    const std::string& group = "Ledger (an embedded file or an EVM contract)");

// Which ledger the flags name. INVALID_ARGUMENT for both --db and --rpc-url, --rpc-url without
// --contract, and EVM-only flags (--contract, --chain-id, --confirmations, --tx-journal) without
// --rpc-url. kNone when no ledger is named (a command that needs one says so itself).
absl::StatusOr<LedgerKind> CheckLedgerFlags(const LedgerFlags& flags);

// As CheckLedgerFlags, but kNone is INVALID_ARGUMENT "`what` needs a ledger: ...".
absl::StatusOr<LedgerKind> RequireLedger(const LedgerFlags& flags, const std::string& what);

// Opens the ledger the flags name (RequireLedger first). Embedded: the file must exist (NOT_FOUND
// naming `atoma-cli ledger --db FILE init` otherwise). EVM: the chain id is --chain-id or the
// chain's own, the contract must hold code, `signers` are the actors this client may sign as;
// the transaction journal is --tx-journal or in memory (fine for a command-line client that
// waits for its receipts; pass a running node's data_dir/evm_transactions.db when acting with
// that node's key, so the two never number one account's transactions twice).
// `signers` are ignored by the embedded backend (its dev mutations need no signature).
absl::StatusOr<std::unique_ptr<ledger::LedgerClient>> OpenLedger(
    const LedgerFlags& flags, std::vector<crypto::PrivateKey> signers = {});

// For messages and hints: "FILE (embedded)" / "contract ADDRESS on URL (evm)".
std::string LedgerName(const LedgerFlags& flags);
// The flags that name this ledger again, for a command line a message suggests:
// "--db FILE" / "--rpc-url URL --contract ADDRESS".
std::string LedgerArgs(const LedgerFlags& flags);

// The chain id the RPC endpoint reports (eth_chainId), or `given` when set.
absl::StatusOr<uint64_t> ResolveChainId(const std::string& rpc_url,
                                        std::optional<uint64_t> given = std::nullopt);

// Reads each key file (atoma-cli keygen). INVALID_ARGUMENT for two files with one address.
absl::StatusOr<std::vector<crypto::PrivateKey>> ReadKeys(const std::vector<std::string>& paths);

// The actor of a mutation: `address_text` (--node / --client) when given, else the address of
// the only key. On an EVM ledger the actor must be one of `keys` (it signs its transaction).
// `option` names the address option in messages ("--node").
absl::StatusOr<ledger::Address> ResolveActor(LedgerKind kind, const std::string& address_text,
                                             const std::vector<crypto::PrivateKey>& keys,
                                             const std::string& option);

// Dev chains only: sets `address`'s native balance to `wei` with anvil_setBalance (Anvil), or
// hardhat_setBalance where the node does not know the anvil_ method (Hardhat). UNIMPLEMENTED
// with a clear message on a chain that has neither (any real network).
absl::Status SetDevBalance(const std::string& rpc_url, const crypto::Address& address,
                           const Uint256& wei);
// eth_getBalance at `latest`.
absl::StatusOr<Uint256> GetBalance(const std::string& rpc_url, const crypto::Address& address);

}  // namespace atoma::cli
