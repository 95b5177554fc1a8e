#include "ledger_open.h"

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"
#include "atoma/evm/hex.h"
#include "atoma/evm/rpc.h"
#include "atoma/ledger/evm_ledger.h"

namespace atoma::cli {
namespace {

constexpr char kHowToName[] =
    "--db FILE (an embedded ledger) or --rpc-url URL --contract ADDRESS (an EVM ledger)";

absl::Status Annotated(const absl::Status& status, const std::string& what) {
  return absl::Status(status.code(), absl::StrCat(what, ": ", status.message()));
}

absl::StatusOr<std::shared_ptr<evm::RpcClient>> Rpc(const std::string& rpc_url) {
  evm::RpcOptions options;
  options.url = rpc_url;
  ASSIGN_OR_RETURN(std::unique_ptr<evm::RpcClient> client,
                   evm::RpcClient::MakeHttp(std::move(options)));
  return std::shared_ptr<evm::RpcClient>(std::move(client));
}

}  // namespace

void AddLedgerFlags(CLI::App* cmd, LedgerFlags* flags, const std::string& file_names, bool signs,
                    const std::string& group) {
  cmd->add_option(file_names, flags->db, "embedded ledger: the SQLite ledger file")->group(group);
  cmd->add_option("--rpc-url", flags->rpc_url,
                  "EVM ledger: the chain's JSON-RPC URL (http:// or https://), with --contract")
      ->group(group);
  cmd->add_option("--contract", flags->contract,
                  "EVM ledger: the AtomaLedger contract's address (as `atoma-cli ledger deploy` "
                  "printed it)")
      ->group(group);
  cmd->add_option("--chain-id", flags->chain_id,
                  "EVM ledger: the chain id the signatures are for; must be the chain's "
                  "(default: ask the chain, eth_chainId)")
      ->group(group);
  cmd->add_option("--confirmations", flags->confirmations,
                  "EVM ledger: read views at block latest - N (default 0: latest)")
      ->group(group);
  if (!signs) return;
  cmd->add_option("--tx-journal", flags->tx_journal,
                  "EVM ledger: SQLite journal of the transactions this command signs (default: "
                  "in memory). Give a running node's DATA_DIR/evm_transactions.db when acting "
                  "with that node's key")
      ->group(group);
}

absl::StatusOr<LedgerKind> CheckLedgerFlags(const LedgerFlags& flags) {
  const bool file = !flags.db.empty();
  const bool evm = !flags.rpc_url.empty();
  if (file && evm) {
    return absl::InvalidArgumentError(absl::StrCat(
        "give either --db FILE (an embedded ledger) or --rpc-url URL --contract ADDRESS (an EVM "
        "ledger), not both"));
  }
  if (!evm) {
    for (const auto& [given, name] : {std::pair{!flags.contract.empty(), "--contract"},
                                      std::pair{flags.chain_id.has_value(), "--chain-id"},
                                      std::pair{flags.confirmations.has_value(), "--confirmations"},
                                      std::pair{!flags.tx_journal.empty(), "--tx-journal"}}) {
      if (given) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, " is for an EVM ledger and needs --rpc-url URL --contract ADDRESS",
                         file ? " (--db names an embedded ledger)" : ""));
      }
    }
    return file ? LedgerKind::kEmbedded : LedgerKind::kNone;
  }
  if (flags.contract.empty()) {
    return absl::InvalidArgumentError(
        "--rpc-url needs --contract ADDRESS, the AtomaLedger contract (`atoma-cli ledger "
        "--rpc-url URL deploy --key DEPLOYER.key` deploys one and prints its address)");
  }
  if (!crypto::ParseAddress(flags.contract).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--contract '", flags.contract, "' is not an address (0x + 40 hex digits)"));
  }
  if (flags.chain_id.has_value() && *flags.chain_id == 0) {
    return absl::InvalidArgumentError("--chain-id must be positive");
  }
  return LedgerKind::kEvm;
}

absl::StatusOr<LedgerKind> RequireLedger(const LedgerFlags& flags, const std::string& what) {
  ASSIGN_OR_RETURN(LedgerKind kind, CheckLedgerFlags(flags));
  if (kind == LedgerKind::kNone) {
    return absl::InvalidArgumentError(absl::StrCat(what, " needs a ledger: ", kHowToName));
  }
  return kind;
}

absl::StatusOr<std::unique_ptr<ledger::LedgerClient>> OpenLedger(
    const LedgerFlags& flags, std::vector<crypto::PrivateKey> signers) {
  ASSIGN_OR_RETURN(LedgerKind kind, RequireLedger(flags, "this command"));
  if (kind == LedgerKind::kEmbedded) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(flags.db, ec)) {
      return absl::NotFoundError(absl::StrCat("no ledger file at ", flags.db,
                                              " (create one with `atoma-cli ledger --db ", flags.db,
                                              " init`)"));
    }
    auto ledger = ledger::OpenEmbeddedLedger(flags.db);
    if (!ledger.ok()) return Annotated(ledger.status(), flags.db);
    return ledger;
  }
  ledger::EvmLedgerOptions options;
  options.rpc_url = flags.rpc_url;
  options.contract = *crypto::ParseAddress(flags.contract);  // checked by CheckLedgerFlags
  options.confirmations = flags.confirmations.value_or(0);
  options.signers = std::move(signers);
  options.journal_path = flags.tx_journal;
  auto chain_id = ResolveChainId(flags.rpc_url, flags.chain_id);
  if (!chain_id.ok()) return chain_id.status();
  options.chain_id = *chain_id;
  auto ledger = ledger::OpenEvmLedger(options);
  if (!ledger.ok()) return Annotated(ledger.status(), LedgerName(flags));
  return ledger;
}

std::string LedgerName(const LedgerFlags& flags) {
  if (!flags.rpc_url.empty()) {
    return absl::StrCat("contract ", flags.contract, " on ", flags.rpc_url, " (evm)");
  }
  return absl::StrCat(flags.db, " (embedded)");
}

std::string LedgerArgs(const LedgerFlags& flags) {
  if (!flags.rpc_url.empty()) {
    std::string args = absl::StrCat("--rpc-url ", flags.rpc_url, " --contract ", flags.contract);
    if (flags.confirmations.value_or(0) != 0) {
      absl::StrAppend(&args, " --confirmations ", *flags.confirmations);
    }
    return args;
  }
  return absl::StrCat("--db ", flags.db);
}

absl::StatusOr<uint64_t> ResolveChainId(const std::string& rpc_url, std::optional<uint64_t> given) {
  if (given.has_value()) return *given;
  ASSIGN_OR_RETURN(std::shared_ptr<evm::RpcClient> rpc, Rpc(rpc_url));
  evm::EthClient eth(rpc);
  auto id = eth.ChainId();
  if (!id.ok())
    return Annotated(id.status(), absl::StrCat("asking ", rpc_url, " for its chain id"));
  return *id;
}

absl::StatusOr<std::vector<crypto::PrivateKey>> ReadKeys(const std::vector<std::string>& paths) {
  std::vector<crypto::PrivateKey> keys;
  std::set<crypto::Address> seen;
  for (const std::string& path : paths) {
    auto key = crypto::ReadKeyFile(path);
    if (!key.ok()) return Annotated(key.status(), absl::StrCat("--key ", path));
    if (!seen.insert(key->address()).second) {
      return absl::InvalidArgumentError(absl::StrCat("--key ", path,
                                                     ": another --key has the same "
                                                     "address ",
                                                     crypto::AddressToString(key->address())));
    }
    keys.push_back(*std::move(key));
  }
  return keys;
}

absl::StatusOr<ledger::Address> ResolveActor(LedgerKind kind, const std::string& address_text,
                                             const std::vector<crypto::PrivateKey>& keys,
                                             const std::string& option) {
  ledger::Address actor{};
  if (!address_text.empty()) {
    auto parsed = crypto::ParseAddress(address_text);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("bad address '", address_text, "' for ",
                                                     option, ": ", parsed.status().message()));
    }
    actor = *parsed;
  } else if (keys.size() == 1) {
    return keys[0].address();
  } else {
    return absl::InvalidArgumentError(
        keys.empty()
            ? absl::StrCat("name the actor: ", option, " ADDRESS or --key FILE")
            : absl::StrCat("several --key files: say which one acts with ", option, " ADDRESS"));
  }
  if (kind == LedgerKind::kEvm) {
    bool held = false;
    for (const crypto::PrivateKey& k : keys) held = held || k.address() == actor;
    if (!held) {
      return absl::InvalidArgumentError(
          absl::StrCat("on an EVM ledger ", crypto::AddressToString(actor),
                       " acts by signing its own transaction: give its key with --key FILE"));
    }
  }
  return actor;
}

absl::Status SetDevBalance(const std::string& rpc_url, const crypto::Address& address,
                           const Uint256& wei) {
  ASSIGN_OR_RETURN(std::shared_ptr<evm::RpcClient> rpc, Rpc(rpc_url));
  const nlohmann::json params = {evm::AddressHex(address), evm::QuantityHex(wei)};
  auto done = rpc->Call("anvil_setBalance", params);
  if (absl::IsUnimplemented(done.status())) done = rpc->Call("hardhat_setBalance", params);
  if (absl::IsUnimplemented(done.status())) {
    return absl::UnimplementedError(
        absl::StrCat(rpc_url,
                     " knows neither anvil_setBalance nor hardhat_setBalance: `ledger "
                     "fund` works only on Anvil or Hardhat development chains"));
  }
  if (!done.ok()) return Annotated(done.status(), absl::StrCat("setting a balance on ", rpc_url));
  return absl::OkStatus();
}

absl::StatusOr<Uint256> GetBalance(const std::string& rpc_url, const crypto::Address& address) {
  ASSIGN_OR_RETURN(std::shared_ptr<evm::RpcClient> rpc, Rpc(rpc_url));
  evm::EthClient eth(rpc);
  return eth.GetBalance(address);
}

}  // namespace atoma::cli
