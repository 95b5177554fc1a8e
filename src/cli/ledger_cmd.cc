// atoma-cli ledger: inspect an embedded ledger file, plus the few dev-only mutations a local demo
// needs (init, register-node, stake, advance-epoch, deposit). The mutations act WITHOUT any
// signature (the embedded ledger trusts its caller, see ledger.h), so they are for devnets only.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"
#include "atoma/ledger/ledger.h"
#include "commands.h"
#include "nlohmann/json.hpp"

namespace atoma::cli {
namespace {

using nlohmann::json;

struct LedgerFlags {
  std::string db;
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

template <typename T>
T OrFail(absl::StatusOr<T> value) {
  if (!value.ok()) Fail(value.status());
  return *std::move(value);
}
void OrFail(const absl::Status& status) {
  if (!status.ok()) Fail(status);
}

void Print(const LedgerFlags& flags, const json& j, const std::string& human) {
  if (flags.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s", human.c_str());
  }
}

json EpochJson(const ledger::Epoch& e) {
  return {{"number", e.number}, {"seed", HashHex(e.seed)}, {"started_unix_s", e.started_unix_s}};
}

}  // namespace

std::unique_ptr<ledger::LedgerClient> OpenExistingLedger(const std::string& db) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(db, ec)) {
    Fail(absl::StrCat("no ledger file at ", db, " (create one with `atoma-cli ledger --db ", db,
                      " init`)"));
  }
  return OrFail(ledger::OpenEmbeddedLedger(db));
}

void AddLedgerCommand(CLI::App& app) {
  auto flags = std::make_shared<LedgerFlags>();
  CLI::App* cmd = app.add_subcommand(
      "ledger",
      "Inspect an embedded (SQLite) ledger file. The init/register-node/stake/advance-epoch/"
      "deposit subcommands are dev operations on an embedded ledger: they act without any "
      "signature and are meant for local networks and demos only.");
  cmd->add_option("--db", flags->db, "embedded ledger file")->required();
  cmd->add_flag("--json", flags->json, "print JSON instead of text");
  cmd->require_subcommand(1);
  cmd->fallthrough();  // --json / --db may also follow the subcommand

  // --- init (dev) ---
  CLI::App* init = cmd->add_subcommand("init", "[dev] Create a new embedded ledger file.");
  auto opts = std::make_shared<ledger::EmbeddedLedgerOptions>();
  auto fee = std::make_shared<std::string>("1");
  init->add_option("--unbonding-epochs", opts->unbonding_epochs,
                   "epochs before unbonded stake "
                   "is withdrawable")
      ->capture_default_str();
  init->add_option("--epoch-length-s", opts->epoch_length_s, "epoch length for node timers")
      ->capture_default_str();
  init->add_option("--chain-id", opts->chain_id, "chain id of the signing domain")
      ->capture_default_str();
  init->add_option("--fee-per-token", *fee, "settlement fee per token, base units")
      ->capture_default_str();
  init->callback([flags, opts, fee] {
    if (std::filesystem::exists(flags->db)) Fail(absl::StrCat(flags->db, " exists already"));
    ledger::EmbeddedLedgerOptions o = *opts;
    o.fee_per_token = ParseAmountOrFail(*fee);
    auto l = OrFail(ledger::OpenEmbeddedLedger(flags->db, o));
    const ledger::Epoch e = OrFail(l->CurrentEpoch());
    Print(*flags, {{"created", flags->db}, {"epoch", EpochJson(e)}},
          absl::StrCat("created embedded ledger ", flags->db, " (epoch ", e.number, ", seed ",
                       HashHex(e.seed), ")\n"));
  });

  // --- info ---
  CLI::App* info = cmd->add_subcommand("info", "Ledger parameters, current epoch and seed.");
  info->callback([flags] {
    auto l = OpenExistingLedger(flags->db);
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
          absl::StrCat("ledger           ", flags->db, " (embedded)\n", "chain id         ",
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
    auto l = OpenExistingLedger(flags->db);
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
    auto l = OpenExistingLedger(flags->db);
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

  // --- escrow ADDRESS ---
  CLI::App* escrow = cmd->add_subcommand("escrow", "A client's escrow balance.");
  auto escrow_addr = std::make_shared<std::string>();
  escrow->add_option("ADDRESS", *escrow_addr, "client address")->required();
  escrow->callback([flags, escrow_addr] {
    const ledger::Address a = ParseAddressOrFail(*escrow_addr);
    auto l = OpenExistingLedger(flags->db);
    const ledger::Amount b = OrFail(l->EscrowBalance(a));
    Print(*flags, {{"client", Addr(a)}, {"escrow", b.ToDecimal()}},
          absl::StrCat(Addr(a), " escrow ", b.ToDecimal(), "\n"));
  });

  // --- settlements / slashings ---
  auto limit = std::make_shared<size_t>(0);
  CLI::App* settlements = cmd->add_subcommand("settlements", "Settled certificates.");
  settlements->add_option("--limit", *limit, "only the last N (0 = all)")->capture_default_str();
  settlements->callback([flags, limit] {
    auto l = OpenExistingLedger(flags->db);
    json arr = json::array();
    std::string human;
    for (const ledger::SettlementRecord& r : OrFail(l->ListSettlements(*limit))) {
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
    auto l = OpenExistingLedger(flags->db);
    json arr = json::array();
    std::string human;
    for (const ledger::SlashRecord& r : OrFail(l->ListSlashings(*limit))) {
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

  // --- register-node / stake (dev) ---
  CLI::App* reg = cmd->add_subcommand(
      "register-node", "[dev] Register a node (no signature: embedded ledger only).");
  auto reg_addr = std::make_shared<std::string>();
  auto reg_endpoint = std::make_shared<std::string>();
  auto reg_echelons = std::make_shared<std::vector<std::string>>();
  reg->add_option("--node", *reg_addr, "node address")->required();
  reg->add_option("--endpoint", *reg_endpoint, "Peer endpoint host:port")->required();
  reg->add_option("--echelon", *reg_echelons, "MODEL_DIGEST:ECHELON_ID (hex), repeatable");
  reg->callback([flags, reg_addr, reg_endpoint, reg_echelons] {
    const ledger::Address a = ParseAddressOrFail(*reg_addr);
    std::vector<ledger::EchelonRef> refs;
    for (const std::string& text : *reg_echelons) {
      std::vector<std::string> parts = absl::StrSplit(text, ':');
      if (parts.size() != 2) Fail(absl::StrCat("--echelon wants MODEL:ECHELON, got '", text, "'"));
      refs.push_back({ParseHashOrFail(parts[0]), ParseHashOrFail(parts[1])});
    }
    auto l = OpenExistingLedger(flags->db);
    OrFail(l->RegisterNode(a, *reg_endpoint, refs));
    Print(*flags, {{"registered", Addr(a)}}, absl::StrCat("registered ", Addr(a), "\n"));
  });
  CLI::App* stake = cmd->add_subcommand(
      "stake", "[dev] Bond stake for a node (no signature: embedded ledger only).");
  auto stake_addr = std::make_shared<std::string>();
  auto stake_amount = std::make_shared<std::string>();
  stake->add_option("--node", *stake_addr, "node address")->required();
  stake->add_option("--amount", *stake_amount, "base units")->required();
  stake->callback([flags, stake_addr, stake_amount] {
    const ledger::Address a = ParseAddressOrFail(*stake_addr);
    const ledger::Amount amount = ParseAmountOrFail(*stake_amount);
    auto l = OpenExistingLedger(flags->db);
    OrFail(l->Stake(a, amount));
    const ledger::StakeInfo s = OrFail(l->GetStake(a));
    Print(
        *flags, {{"node", Addr(a)}, {"bonded", s.bonded.ToDecimal()}},
        absl::StrCat(Addr(a), " bonded ", s.bonded.ToDecimal(), " (counts from the next epoch)\n"));
  });

  // --- advance-epoch (dev) ---
  CLI::App* advance = cmd->add_subcommand(
      "advance-epoch", "[dev] Open the next epoch (new seed, freeze the stakes).");
  advance->callback([flags] {
    auto l = OpenExistingLedger(flags->db);
    const ledger::Epoch e = OrFail(l->AdvanceEpoch());
    Print(*flags, EpochJson(e),
          absl::StrCat("epoch ", e.number, " opened, seed ", HashHex(e.seed), "\n"));
  });

  // --- deposit (dev) ---
  CLI::App* deposit = cmd->add_subcommand(
      "deposit", "[dev] Credit a client's escrow (no payment, no signature: embedded only).");
  auto dep_client = std::make_shared<std::string>();
  auto dep_amount = std::make_shared<std::string>();
  deposit->add_option("--client", *dep_client, "client address")->required();
  deposit->add_option("--amount", *dep_amount, "base units")->required();
  deposit->callback([flags, dep_client, dep_amount] {
    const ledger::Address a = ParseAddressOrFail(*dep_client);
    const ledger::Amount amount = ParseAmountOrFail(*dep_amount);
    auto l = OpenExistingLedger(flags->db);
    OrFail(l->DepositEscrow(a, amount));
    const ledger::Amount b = OrFail(l->EscrowBalance(a));
    Print(*flags, {{"client", Addr(a)}, {"escrow", b.ToDecimal()}},
          absl::StrCat(Addr(a), " escrow ", b.ToDecimal(), "\n"));
  });
}

}  // namespace atoma::cli
