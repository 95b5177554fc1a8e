// atoma-cli ledger: inspect a ledger (an embedded SQLite file or the AtomaLedger contract on an
// EVM chain, named as ledger_open.h says) and the few mutations a local network needs
// (register-node, stake, advance-epoch, deposit, request-withdrawal and withdraw of escrow), plus
// `init` (a new embedded file), `deploy` (a new contract) and `fund` (dev chains: set an account's
// balance).
//
// On an embedded ledger the mutations act WITHOUT any signature (the embedded ledger trusts its
// caller, see ledger.h), so they are for devnets only; a --key file there only names the actor.
// On an EVM ledger every mutation is a transaction signed by the actor's --key, which pays its gas
// and, for stake and deposit, the amount itself.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"
#include "atoma/ledger/evm_ledger.h"
#include "atoma/ledger/ledger.h"
#include "commands.h"
#include "ledger_open.h"
#include "nlohmann/json.hpp"

namespace atoma::cli {
namespace {

using nlohmann::json;

struct LedgerCmdFlags {
  LedgerFlags ledger;
  std::vector<std::string> keys;  // --key, repeatable
  bool json = false;
};

std::string HashHex(const ledger::Hash256& h) { return "0x" + crypto::ToHex(h); }
std::string Addr(const ledger::Address& a) { return crypto::AddressToString(a); }

ledger::Address ParseAddressOrFail(const std::string& text) {
  auto address = crypto::ParseAddress(text);
  if (!address.ok()) Fail(absl::StrCat("bad address '", text, "': ", address.status().message()));
  return *address;
}

ledger::Amount ParseAmountOrFail(const std::string& text) {
  auto amount = ledger::Amount::FromDecimal(text);
  if (!amount.ok()) Fail(absl::StrCat("bad amount '", text, "': ", amount.status().message()));
  return *amount;
}

ledger::Hash256 ParseHashOrFail(std::string_view text) {
  if (text.starts_with("0x")) text.remove_prefix(2);
  auto bytes = crypto::ParseHex(text);
  if (!bytes.ok() || bytes->size() != 32) {
    Fail(absl::StrCat("bad 32-byte hex hash '", std::string(text), "'"));
  }
  ledger::Hash256 h;
  std::copy(bytes->begin(), bytes->end(), h.begin());
  return h;
}

void Print(const LedgerCmdFlags& flags, const json& j, const std::string& human) {
  if (flags.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s", human.c_str());
  }
}

// `escrow` is the balance (the key older scripts read); the pending withdrawal follows.
void PrintEscrow(const LedgerCmdFlags& flags, const ledger::Address& client,
                 const ledger::EscrowInfo& e) {
  std::string human = absl::StrCat(Addr(client), " escrow ", e.balance.ToDecimal());
  if (!e.pending.IsZero()) {
    absl::StrAppend(&human, ", withdrawal of ", e.pending.ToDecimal(),
                    " pending, unlocked at epoch ", e.unlock_epoch,
                    " (withdrawable now: ", e.withdrawable.ToDecimal(), ")");
  }
  Print(flags,
        {{"client", Addr(client)},
         {"escrow", e.balance.ToDecimal()},
         {"pending", e.pending.ToDecimal()},
         {"unlock_epoch", e.unlock_epoch},
         {"withdrawable", e.withdrawable.ToDecimal()}},
        human + "\n");
}

json EpochJson(const ledger::Epoch& e) {
  return {{"number", e.number}, {"seed", HashHex(e.seed)}, {"started_unix_s", e.started_unix_s}};
}

// A read-only client of the named ledger (no signer).
std::unique_ptr<ledger::LedgerClient> OpenForReading(const LedgerCmdFlags& f,
                                                     const std::string& command) {
  OrFail(RequireLedger(f.ledger, absl::StrCat("ledger ", command)));
  return OrFail(OpenLedger(f.ledger));
}

// A mutation's status; on an EVM chain an account without coin is the usual first mistake.
void MutationOrFail(const absl::Status& status, const LedgerFlags& l,
                    const ledger::Address& actor) {
  if (status.ok()) return;
  if (!l.rpc_url.empty() &&
      absl::StrContains(absl::AsciiStrToLower(status.message()), "insufficient funds")) {
    Fail(absl::StrCat(status.message(), " (", Addr(actor),
                      " pays the gas and any amount it sends; on a dev chain: atoma-cli ledger "
                      "--rpc-url ",
                      l.rpc_url, " fund --address ", Addr(actor), " --amount WEI)"));
  }
  Fail(status);
}

// A client that may act as `actor_text` (--node / --client; default: the only --key's address).
// Returns the client and the actor.
std::pair<std::unique_ptr<ledger::LedgerClient>, ledger::Address> OpenAsActor(
    const LedgerCmdFlags& f, const std::string& actor_text, const std::string& option,
    const std::string& command) {
  const LedgerKind kind = OrFail(RequireLedger(f.ledger, absl::StrCat("ledger ", command)));
  std::vector<crypto::PrivateKey> keys = OrFail(ReadKeys(f.keys));
  const ledger::Address actor = OrFail(ResolveActor(kind, actor_text, keys, option));
  return {OrFail(OpenLedger(f.ledger, std::move(keys))), actor};
}

// `ledger settlements` / `slashings` on a backend that cannot list (the EVM one, when it keeps no
// index): say what works instead.
template <typename T>
T ListOrFail(absl::StatusOr<T> value) {
  if (absl::IsUnimplemented(value.status())) {
    Fail(absl::StrCat(value.status().message(),
                      " (ask about one request with `atoma-cli ledger ... settled REQUEST_ID`)"));
  }
  return OrFail(std::move(value));
}

void AddDeploy(CLI::App* cmd, std::shared_ptr<LedgerCmdFlags> flags) {
  CLI::App* deploy = cmd->add_subcommand(
      "deploy",
      "Deploy a new AtomaLedger contract on the EVM chain at --rpc-url, signed and paid for by "
      "the one --key (the deployer). Prints the contract's address (--json: contract, chain_id, "
      "deployer and the parameters), which nodes put in ledger.contract.");
  auto params = std::make_shared<ledger::EvmDeployParams>();
  auto fee = std::make_shared<std::string>("1");
  deploy
      ->add_option("--unbonding-epochs", params->unbonding_epochs,
                   "epochs before unbonded stake is withdrawable (1..1000000)")
      ->capture_default_str();
  deploy
      ->add_option("--epoch-length-s", params->epoch_length_s,
                   "epoch length the nodes' epoch timers use, seconds (> 0)")
      ->capture_default_str();
  deploy
      ->add_option("--min-epoch-spacing-s", params->min_epoch_spacing_s,
                   "least time between two epoch advances, seconds; a public network sets it to "
                   "the epoch length so nobody can roll epochs to grind seeds (0: no limit)")
      ->capture_default_str();
  deploy->add_option("--fee-per-token", *fee, "settlement fee per token, wei")
      ->capture_default_str();
  deploy
      ->add_option("--slash-bps", params->slash_bps,
                   "share of an offender's stake slashed, basis points (0..10000)")
      ->capture_default_str();
  deploy
      ->add_option("--reporter-share-bps", params->reporter_share_bps,
                   "equivocation reporter's share of the slashed stake, basis points (0..10000)")
      ->capture_default_str();
  deploy->callback([flags, params, fee] {
    const LedgerFlags& l = flags->ledger;
    if (!l.db.empty())
      Fail("deploy puts a new contract on an EVM chain: give --rpc-url URL, not --db");
    if (l.rpc_url.empty()) Fail("deploy needs --rpc-url URL (the chain's JSON-RPC endpoint)");
    if (!l.contract.empty()) Fail("deploy creates the contract: drop --contract");
    if (l.confirmations.has_value() || !l.tx_journal.empty()) {
      Fail("--confirmations and --tx-journal do not apply to deploy");
    }
    if (flags->keys.size() != 1) {
      Fail("deploy needs exactly one --key FILE: the deployer, which signs and pays the gas");
    }
    if (!ledger::HasEmbeddedEvmLedgerArtifact()) {
      Fail(
          "this atoma-cli was built without the contract's bytecode (contracts/build/"
          "AtomaLedger.json was missing when it was configured): run `node "
          "scripts/compile_contracts.mjs`, then configure and build again");
    }
    ledger::EvmDeployParams p = *params;
    p.fee_per_token = ParseAmountOrFail(*fee);
    std::vector<crypto::PrivateKey> keys = OrFail(ReadKeys(flags->keys));
    const uint64_t chain_id = OrFail(ResolveChainId(l.rpc_url, l.chain_id));
    const ledger::Address contract =
        OrFail(ledger::DeployEvmLedger(l.rpc_url, chain_id, keys[0], p));
    const std::string deployer = Addr(keys[0].address());
    if (flags->json) {
      Print(*flags,
            {{"contract", Addr(contract)},
             {"chain_id", chain_id},
             {"rpc_url", l.rpc_url},
             {"deployer", deployer},
             {"unbonding_epochs", p.unbonding_epochs},
             {"epoch_length_s", p.epoch_length_s},
             {"min_epoch_spacing_s", p.min_epoch_spacing_s},
             {"fee_per_token", p.fee_per_token.ToDecimal()},
             {"slash_bps", p.slash_bps},
             {"reporter_share_bps", p.reporter_share_bps}},
            "");
      return;
    }
    // The address alone on stdout, so scripts can take it as keygen's output is taken.
    std::printf("%s\n", Addr(contract).c_str());
  });
}

void AddFund(CLI::App* cmd, std::shared_ptr<LedgerCmdFlags> flags) {
  CLI::App* fund = cmd->add_subcommand(
      "fund",
      "[dev chains only] Set an account's native balance on the chain at --rpc-url to --amount "
      "wei (anvil_setBalance; hardhat_setBalance on Hardhat). Works only on Anvil or Hardhat "
      "development chains; nothing is signed and no --contract is needed.");
  auto address = std::make_shared<std::string>();
  auto amount = std::make_shared<std::string>();
  fund->add_option("--address", *address, "the account")->required();
  fund->add_option("--amount", *amount, "its new balance, wei (decimal)")->required();
  fund->callback([flags, address, amount] {
    const LedgerFlags& l = flags->ledger;
    if (!l.db.empty())
      Fail("fund sets a balance on an EVM dev chain: give --rpc-url URL, not --db");
    if (l.rpc_url.empty()) Fail("fund needs --rpc-url URL (an Anvil or Hardhat dev chain)");
    const ledger::Address a = ParseAddressOrFail(*address);
    const Uint256 wei = ParseAmountOrFail(*amount);
    OrFail(SetDevBalance(l.rpc_url, a, wei));
    const Uint256 balance = OrFail(GetBalance(l.rpc_url, a));
    Print(*flags, {{"address", Addr(a)}, {"balance", balance.ToDecimal()}},
          absl::StrCat(Addr(a), " balance ", balance.ToDecimal(), " wei\n"));
  });
}

}  // namespace

void AddLedgerCommand(CLI::App& app) {
  auto flags = std::make_shared<LedgerCmdFlags>();
  CLI::App* cmd = app.add_subcommand(
      "ledger",
      "Inspect a ledger: an embedded (SQLite) file (--db FILE) or the AtomaLedger contract on an "
      "EVM chain (--rpc-url URL --contract ADDRESS). `init` creates an embedded file, `deploy` "
      "a contract, `fund` sets a balance on a dev chain. register-node, stake, advance-epoch "
      "and deposit change the ledger: on an embedded ledger they act without any signature "
      "(local networks and demos only); on an EVM ledger they are transactions signed and paid "
      "for by the actor's --key.");
  AddLedgerFlags(cmd, &flags->ledger, "--db,--ledger-db", /*signs=*/true);
  cmd->add_option("--key", flags->keys,
                  "key file of an actor, repeatable. EVM: signs (and pays for) the transactions of "
                  "deploy, register-node, stake, advance-epoch, deposit, request-withdrawal and "
                  "withdraw. Embedded: only names "
                  "the actor when --node / --client is not given");
  cmd->add_flag("--json", flags->json, "print JSON instead of text");
  cmd->require_subcommand(1);
  cmd->fallthrough();  // the ledger flags, --key and --json may also follow the subcommand

  // --- init (embedded) ---
  CLI::App* init = cmd->add_subcommand(
      "init", "[dev] Create a new embedded ledger file (for an EVM chain see `deploy`).");
  auto opts = std::make_shared<ledger::EmbeddedLedgerOptions>();
  auto fee = std::make_shared<std::string>("1");
  init->add_option("--unbonding-epochs", opts->unbonding_epochs,
                   "epochs before unbonded stake is withdrawable")
      ->capture_default_str();
  init->add_option("--epoch-length-s", opts->epoch_length_s, "epoch length for node timers")
      ->capture_default_str();
  init->add_option("--chain-id", opts->chain_id, "chain id of the signing domain")
      ->capture_default_str();
  init->add_option("--fee-per-token", *fee, "settlement fee per token, base units")
      ->capture_default_str();
  init->callback([flags, opts, fee] {
    const LedgerKind kind = OrFail(CheckLedgerFlags(flags->ledger));
    if (kind == LedgerKind::kEvm) {
      Fail(
          "init creates an embedded ledger file; on an EVM chain deploy the contract: atoma-cli "
          "ledger --rpc-url URL deploy --key DEPLOYER.key");
    }
    if (kind == LedgerKind::kNone) Fail("init needs --db FILE, the ledger file to create");
    const std::string& db = flags->ledger.db;
    if (std::filesystem::exists(db)) Fail(absl::StrCat(db, " exists already"));
    ledger::EmbeddedLedgerOptions o = *opts;
    o.fee_per_token = ParseAmountOrFail(*fee);
    auto l = OrFail(ledger::OpenEmbeddedLedger(db, o));
    const ledger::Epoch e = OrFail(l->CurrentEpoch());
    Print(*flags, {{"created", db}, {"epoch", EpochJson(e)}},
          absl::StrCat("created embedded ledger ", db, " (epoch ", e.number, ", seed ",
                       HashHex(e.seed), ")\n"));
  });

  AddDeploy(cmd, flags);
  AddFund(cmd, flags);

  // --- info ---
  CLI::App* info = cmd->add_subcommand("info", "Ledger parameters, current epoch and seed.");
  info->callback([flags] {
    auto l = OpenForReading(*flags, "info");
    const ledger::Params p = OrFail(l->GetParams());
    const ledger::Epoch e = OrFail(l->CurrentEpoch());
    json j = {{"params",
               {{"unbonding_epochs", p.unbonding_epochs},
                {"epoch_length_s", p.epoch_length_s},
                {"chain_id", p.domain.chain_id},
                {"ledger_address", Addr(p.domain.ledger)},
                {"fee_per_token", p.fee_per_token.ToDecimal()},
                {"slash_bps", p.slash_bps},
                {"reporter_share_bps", p.reporter_share_bps}}},
              {"current_epoch", EpochJson(e)}};
    Print(*flags, j,
          absl::StrCat("ledger           ", LedgerName(flags->ledger), "\n", "chain id         ",
                       p.domain.chain_id, "\n", "ledger address   ", Addr(p.domain.ledger), "\n",
                       "unbonding epochs ", p.unbonding_epochs, "\n", "epoch length     ",
                       p.epoch_length_s, " s\n", "fee per token    ", p.fee_per_token.ToDecimal(),
                       "\n", "slash            ", p.slash_bps, " bps (reporter share ",
                       p.reporter_share_bps, " bps)\n", "current epoch    ", e.number, " (started ",
                       e.started_unix_s, ")\n", "seed             ", HashHex(e.seed), "\n"));
  });

  // --- nodes ---
  CLI::App* nodes = cmd->add_subcommand("nodes", "Registered nodes with echelons and stake.");
  nodes->callback([flags] {
    auto l = OpenForReading(*flags, "nodes");
    json arr = json::array();
    std::string human;
    for (const ledger::Address& a : OrFail(l->ListNodes())) {
      const ledger::NodeInfo n = OrFail(l->GetNode(a));
      const ledger::StakeInfo s = OrFail(l->GetStake(a));
      json echelons = json::array();
      std::string human_echelons;
      for (const ledger::EchelonRef& r : n.echelons) {
        echelons.push_back(
            {{"model_digest", HashHex(r.model_digest)}, {"echelon_id", HashHex(r.echelon_id)}});
        absl::StrAppend(&human_echelons, "  echelon ", HashHex(r.echelon_id), " model ",
                        HashHex(r.model_digest), "\n");
      }
      json unbonding = json::array();
      for (const ledger::UnbondingEntry& u : s.unbonding) {
        unbonding.push_back({{"amount", u.amount.ToDecimal()}, {"release_epoch", u.release_epoch}});
      }
      arr.push_back({{"address", Addr(a)},
                     {"endpoint", n.endpoint},
                     {"registered_epoch", n.registered_epoch},
                     {"echelons", echelons},
                     {"bonded", s.bonded.ToDecimal()},
                     {"unbonding", unbonding},
                     {"withdrawable", s.withdrawable.ToDecimal()}});
      absl::StrAppend(&human, Addr(a), " ", n.endpoint, " registered in epoch ", n.registered_epoch,
                      "\n  bonded ", s.bonded.ToDecimal(), ", unbonding ", s.unbonding.size(),
                      " entries, withdrawable ", s.withdrawable.ToDecimal(), "\n", human_echelons);
    }
    if (arr.empty()) human = "no registered nodes\n";
    Print(*flags, arr, human);
  });

  // --- epoch [N] ---
  CLI::App* epoch = cmd->add_subcommand("epoch",
                                        "An epoch's seed and frozen snapshots "
                                        "(default: the current epoch).");
  auto epoch_number = std::make_shared<std::optional<uint64_t>>();
  epoch->add_option("N", *epoch_number, "epoch number");
  epoch->callback([flags, epoch_number] {
    auto l = OpenForReading(*flags, "epoch");
    const ledger::Epoch e =
        epoch_number->has_value() ? OrFail(l->GetEpoch(**epoch_number)) : OrFail(l->CurrentEpoch());
    json snapshots = json::array();
    std::string human = absl::StrCat("epoch ", e.number, " started ", e.started_unix_s, "\nseed ",
                                     HashHex(e.seed), "\n");
    const std::vector<ledger::Hash256> echelons = OrFail(l->SnapshotEchelons(e.number));
    for (const ledger::Hash256& id : echelons) {
      json cands = json::array();
      absl::StrAppend(&human, "echelon ", HashHex(id), "\n");
      for (const ledger::Candidate& c : OrFail(l->EchelonSnapshot(e.number, id))) {
        cands.push_back({{"address", Addr(c.address)}, {"stake", c.stake.ToDecimal()}});
        absl::StrAppend(&human, "  ", Addr(c.address), " ", c.stake.ToDecimal(), "\n");
      }
      snapshots.push_back({{"echelon_id", HashHex(id)}, {"candidates", cands}});
    }
    if (echelons.empty()) absl::StrAppend(&human, "no frozen stake in this epoch\n");
    json j = EpochJson(e);
    j["snapshots"] = snapshots;
    Print(*flags, j, human);
  });

  // --- escrow ADDRESS / rewards ADDRESS ---
  CLI::App* escrow = cmd->add_subcommand(
      "escrow",
      "A client's escrow balance and pending withdrawal (--json: escrow, pending, "
      "unlock_epoch, withdrawable).");
  auto escrow_addr = std::make_shared<std::string>();
  escrow->add_option("ADDRESS", *escrow_addr, "client address")->required();
  escrow->callback([flags, escrow_addr] {
    const ledger::Address a = ParseAddressOrFail(*escrow_addr);
    auto l = OpenForReading(*flags, "escrow");
    PrintEscrow(*flags, a, OrFail(l->EscrowStatus(a)));
  });
  CLI::App* rewards =
      cmd->add_subcommand("rewards", "A node's reward balance (credited by settlements).");
  auto rewards_addr = std::make_shared<std::string>();
  rewards->add_option("ADDRESS", *rewards_addr, "node address")->required();
  rewards->callback([flags, rewards_addr] {
    const ledger::Address a = ParseAddressOrFail(*rewards_addr);
    auto l = OpenForReading(*flags, "rewards");
    const ledger::Amount b = OrFail(l->RewardBalance(a));
    Print(*flags, {{"node", Addr(a)}, {"rewards", b.ToDecimal()}},
          absl::StrCat(Addr(a), " rewards ", b.ToDecimal(), "\n"));
  });

  // --- settled REQUEST_ID ---
  CLI::App* settled = cmd->add_subcommand(
      "settled", "Whether a request id was settled (by its certificate or by a dispute).");
  auto settled_id = std::make_shared<std::string>();
  settled->add_option("REQUEST_ID", *settled_id, "request id, 32-byte hex")->required();
  settled->callback([flags, settled_id] {
    const ledger::Hash256 id = ParseHashOrFail(*settled_id);
    auto l = OpenForReading(*flags, "settled");
    const bool yes = OrFail(l->IsSettled(id));
    Print(*flags, {{"request_id", HashHex(id)}, {"settled", yes}},
          absl::StrCat(HashHex(id), yes ? " settled\n" : " not settled\n"));
  });

  // --- settlements / slashings ---
  auto limit = std::make_shared<size_t>(0);
  CLI::App* settlements = cmd->add_subcommand("settlements", "Settled certificates.");
  settlements->add_option("--limit", *limit, "only the last N (0 = all)")->capture_default_str();
  settlements->callback([flags, limit] {
    auto l = OpenForReading(*flags, "settlements");
    json arr = json::array();
    std::string human;
    for (const ledger::SettlementRecord& r : ListOrFail(l->ListSettlements(*limit))) {
      arr.push_back({{"request_id", HashHex(r.request_id)},
                     {"request_epoch", r.request_epoch},
                     {"client", Addr(r.client)},
                     {"fee", r.fee.ToDecimal()},
                     {"submitter", Addr(r.submitter)},
                     {"settled_epoch", r.settled_epoch}});
      absl::StrAppend(&human, HashHex(r.request_id), " epoch ", r.request_epoch, " client ",
                      Addr(r.client), " fee ", r.fee.ToDecimal(), " settled in epoch ",
                      r.settled_epoch, " by ", Addr(r.submitter), "\n");
    }
    if (arr.empty()) human = "no settlements\n";
    Print(*flags, arr, human);
  });
  CLI::App* slashings =
      cmd->add_subcommand("slashings", "Slashings: equivocations and lost disputes (kind).");
  slashings->add_option("--limit", *limit, "only the last N (0 = all)")->capture_default_str();
  slashings->callback([flags, limit] {
    auto l = OpenForReading(*flags, "slashings");
    json arr = json::array();
    std::string human;
    for (const ledger::SlashRecord& r : ListOrFail(l->ListSlashings(*limit))) {
      arr.push_back({{"kind", r.kind},
                     {"evidence_hash", HashHex(r.evidence_hash)},
                     {"offender", Addr(r.offender)},
                     {"request_id", HashHex(r.request_id)},
                     {"reporter", Addr(r.reporter)},
                     {"slashed", r.slashed.ToDecimal()},
                     {"reporter_reward", r.reporter_reward.ToDecimal()},
                     {"epoch", r.epoch}});
      absl::StrAppend(&human, r.kind, ": ", Addr(r.offender), " slashed ", r.slashed.ToDecimal(),
                      " in epoch ", r.epoch, " for request ", HashHex(r.request_id), "; reporter ",
                      Addr(r.reporter), " got ", r.reporter_reward.ToDecimal(), "\n");
    }
    if (arr.empty()) human = "no slashings\n";
    Print(*flags, arr, human);
  });

  // --- register-node / stake ---
  CLI::App* reg = cmd->add_subcommand(
      "register-node",
      "Register a node. Embedded: [dev] no signature; --node (or the --key) names it. EVM: a "
      "transaction signed and paid for by the node's --key.");
  auto reg_addr = std::make_shared<std::string>();
  auto reg_endpoint = std::make_shared<std::string>();
  auto reg_echelons = std::make_shared<std::vector<std::string>>();
  reg->add_option("--node", *reg_addr, "node address (default: the --key's)");
  reg->add_option("--endpoint", *reg_endpoint, "Peer endpoint host:port")->required();
  reg->add_option("--echelon", *reg_echelons, "MODEL_DIGEST:ECHELON_ID (hex), repeatable");
  reg->callback([flags, reg_addr, reg_endpoint, reg_echelons] {
    std::vector<ledger::EchelonRef> refs;
    for (const std::string& text : *reg_echelons) {
      std::vector<std::string> parts = absl::StrSplit(text, ':');
      if (parts.size() != 2) Fail(absl::StrCat("--echelon wants MODEL:ECHELON, got '", text, "'"));
      refs.push_back({ParseHashOrFail(parts[0]), ParseHashOrFail(parts[1])});
    }
    auto [l, a] = OpenAsActor(*flags, *reg_addr, "--node", "register-node");
    MutationOrFail(l->RegisterNode(a, *reg_endpoint, refs), flags->ledger, a);
    Print(*flags, {{"registered", Addr(a)}}, absl::StrCat("registered ", Addr(a), "\n"));
  });
  CLI::App* stake = cmd->add_subcommand(
      "stake",
      "Bond stake for a node; it counts from the next epoch. Embedded: [dev] no signature, no "
      "payment. EVM: the node's --key sends --amount wei with the transaction.");
  auto stake_addr = std::make_shared<std::string>();
  auto stake_amount = std::make_shared<std::string>();
  stake->add_option("--node", *stake_addr, "node address (default: the --key's)");
  stake->add_option("--amount", *stake_amount, "base units (EVM: wei)")->required();
  stake->callback([flags, stake_addr, stake_amount] {
    const ledger::Amount amount = ParseAmountOrFail(*stake_amount);
    auto [l, a] = OpenAsActor(*flags, *stake_addr, "--node", "stake");
    MutationOrFail(l->Stake(a, amount), flags->ledger, a);
    const ledger::StakeInfo s = OrFail(l->GetStake(a));
    Print(
        *flags, {{"node", Addr(a)}, {"bonded", s.bonded.ToDecimal()}},
        absl::StrCat(Addr(a), " bonded ", s.bonded.ToDecimal(), " (counts from the next epoch)\n"));
  });

  // --- advance-epoch ---
  CLI::App* advance = cmd->add_subcommand(
      "advance-epoch",
      "Open the next epoch (new seed, freeze the stakes). Embedded: [dev] no signature. EVM: a "
      "transaction sent by the (first) --key (anyone may; the contract's minimum epoch spacing "
      "applies).");
  advance->callback([flags] {
    const LedgerKind kind = OrFail(RequireLedger(flags->ledger, "ledger advance-epoch"));
    if (kind == LedgerKind::kEvm && flags->keys.empty()) {
      Fail(
          "advance-epoch on an EVM ledger is a transaction: give the key that sends it (and "
          "pays the gas) with --key FILE");
    }
    auto l = OrFail(OpenLedger(flags->ledger, OrFail(ReadKeys(flags->keys))));
    const ledger::Epoch e = OrFail(l->AdvanceEpoch());
    Print(*flags, EpochJson(e),
          absl::StrCat("epoch ", e.number, " opened, seed ", HashHex(e.seed), "\n"));
  });

  // --- request-withdrawal / withdraw (escrow) ---
  struct EscrowAction {
    const char* name;
    const char* help;
    absl::Status (ledger::LedgerClient::*call)(const ledger::Address&, const ledger::Amount&);
  };
  for (const EscrowAction& action :
       {EscrowAction{"request-withdrawal",
                     "Ask to withdraw --amount of a client's escrow. It stays in the escrow "
                     "(settlement can still debit it; entry nodes stop counting it at once) and "
                     "unlocks unbonding_epochs epochs after the current one; a new request "
                     "replaces the pending one. Embedded: [dev] no signature. EVM: a transaction "
                     "signed by the client's --key.",
                     &ledger::LedgerClient::RequestEscrowWithdrawal},
        EscrowAction{"withdraw",
                     "Pay out --amount of a client's escrow withdrawal once it is unlocked (see "
                     "request-withdrawal; at most the pending amount and the balance). Embedded: "
                     "[dev] no signature, no payment. EVM: a transaction signed by the client's "
                     "--key, which gets the wei.",
                     &ledger::LedgerClient::WithdrawEscrow}}) {
    CLI::App* sub = cmd->add_subcommand(action.name, action.help);
    auto client = std::make_shared<std::string>();
    auto amount_text = std::make_shared<std::string>();
    sub->add_option("--client", *client, "client address (default: the --key's)");
    sub->add_option("--amount", *amount_text, "base units (EVM: wei)")->required();
    sub->callback([flags, client, amount_text, action] {
      const ledger::Amount amount = ParseAmountOrFail(*amount_text);
      auto [l, a] = OpenAsActor(*flags, *client, "--client", action.name);
      MutationOrFail(((*l).*action.call)(a, amount), flags->ledger, a);
      PrintEscrow(*flags, a, OrFail(l->EscrowStatus(a)));
    });
  }

  // --- deposit ---
  CLI::App* deposit = cmd->add_subcommand(
      "deposit",
      "Credit a client's escrow. Embedded: [dev] no payment, no signature. EVM: the client's "
      "--key sends --amount wei with the transaction.");
  auto dep_client = std::make_shared<std::string>();
  auto dep_amount = std::make_shared<std::string>();
  deposit->add_option("--client", *dep_client, "client address (default: the --key's)");
  deposit->add_option("--amount", *dep_amount, "base units (EVM: wei)")->required();
  deposit->callback([flags, dep_client, dep_amount] {
    const ledger::Amount amount = ParseAmountOrFail(*dep_amount);
    auto [l, a] = OpenAsActor(*flags, *dep_client, "--client", "deposit");
    MutationOrFail(l->DepositEscrow(a, amount), flags->ledger, a);
    PrintEscrow(*flags, a, OrFail(l->EscrowStatus(a)));
  });
}

}  // namespace atoma::cli
