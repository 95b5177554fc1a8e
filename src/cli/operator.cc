// atoma-cli operator commands (issue 5): `status`, `peers`, `drain` (gRPC clients of a running
// node's atoma.v1.Admin service and of grpc.health.v1 on its peers) and `stake`, `unstake`,
// `withdraw`, `claim` (the node's own stake and rewards on a ledger: an embedded file or an EVM
// contract, ledger_open.h).
//
// Text by default; `--json` prints one JSON object. Errors print "atoma-cli: ..." and exit 1
// (Fail in commands.h). On an embedded ledger the stake commands act WITHOUT any signature: the
// embedded ledger trusts its caller (ledger.h), the key file only names the actor, so they are for
// devnets like the `ledger` dev operations. On an EVM ledger they are transactions signed and paid
// for by the node's key (stake sends the amount with it; withdraw and claim pay out to the node's
// account).
//
// Peer health is one grpc.health.v1.Health/Check (service "", the node's overall status) per
// endpoint with a 1 s deadline; any RPC failure reads as UNREACHABLE, so a dead or hung peer
// costs the command at most a second.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "atoma/consensus/request.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"
#include "atoma/ledger/ledger.h"
#include "atoma/v1/admin.grpc.pb.h"
#include "commands.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "ledger_open.h"
#include "nlohmann/json.hpp"
#include "node_rpc.h"

namespace atoma::cli {

namespace {

using nlohmann::json;

constexpr auto kAdminDeadline = std::chrono::seconds(10);
constexpr auto kHealthDeadline = std::chrono::seconds(1);

std::string HashHex(const ledger::Hash256& h) { return "0x" + crypto::ToHex(h); }
std::string Addr(const ledger::Address& a) { return crypto::AddressToString(a); }

void Print(bool as_json, const json& j, const std::string& human) {
  if (as_json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s", human.c_str());
  }
}

// Parses 64 hex digits (optional 0x) into a hash; nullopt for anything else (an empty
// fingerprint means "joins no echelon").
std::optional<ledger::Hash256> ParseHash(std::string_view text) {
  auto bytes = crypto::ParseHex(text);
  if (!bytes.ok() || bytes->size() != 32) return std::nullopt;
  ledger::Hash256 h;
  std::copy(bytes->begin(), bytes->end(), h.begin());
  return h;
}

[[noreturn]] void FailRpc(const std::string& what, const std::string& addr,
                          const grpc::Status& status) {
  Fail(absl::StrCat(
      what, " on ", addr, " failed: ",
      absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message())
          .ToString()));
}

// SERVING / NOT_SERVING / UNREACHABLE (or the other enum names) of one endpoint.
std::string ProbeHealth(const std::string& endpoint) {
  auto stub = grpc::health::v1::Health::NewStub(Connect(endpoint));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kHealthDeadline);
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  if (!stub->Check(&context, request, &response).ok()) return "UNREACHABLE";
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
}

json StakeJson(const ledger::StakeInfo& s) {
  json unbonding = json::array();
  for (const ledger::UnbondingEntry& u : s.unbonding) {
    unbonding.push_back({{"amount", u.amount.ToDecimal()}, {"release_epoch", u.release_epoch}});
  }
  return {{"bonded", s.bonded.ToDecimal()},
          {"unbonding", unbonding},
          {"withdrawable", s.withdrawable.ToDecimal()}};
}

std::string StakeText(const ledger::StakeInfo& s) {
  std::string out = absl::StrCat("bonded ", s.bonded.ToDecimal(), ", withdrawable ",
                                 s.withdrawable.ToDecimal(), ", unbonding");
  if (s.unbonding.empty()) absl::StrAppend(&out, " none");
  for (const ledger::UnbondingEntry& u : s.unbonding) {
    absl::StrAppend(&out, " ", u.amount.ToDecimal(), " (epoch ", u.release_epoch, ")");
  }
  return out;
}

// One registered node as `peers` and `status` show it, with a fresh health probe.
json PeerJson(ledger::LedgerClient& l, const ledger::NodeInfo& n, std::string* human) {
  const ledger::StakeInfo s = OrFail(l.GetStake(n.address));
  const std::string health = ProbeHealth(n.endpoint);
  json echelons = json::array();
  for (const ledger::EchelonRef& r : n.echelons) {
    echelons.push_back(
        {{"model_digest", HashHex(r.model_digest)}, {"echelon_id", HashHex(r.echelon_id)}});
  }
  absl::StrAppend(human, "  ", Addr(n.address), " ", n.endpoint, " ", health, " bonded ",
                  s.bonded.ToDecimal(), ", ", n.echelons.size(), " echelon(s)\n");
  return {{"address", Addr(n.address)},
          {"endpoint", n.endpoint},
          {"health", health},
          {"echelons", echelons},
          {"bonded", s.bonded.ToDecimal()}};
}

bool SharesEchelon(const ledger::NodeInfo& n, const std::vector<ledger::Hash256>& echelons) {
  for (const ledger::EchelonRef& r : n.echelons) {
    for (const ledger::Hash256& e : echelons) {
      if (r.echelon_id == e) return true;
    }
  }
  return false;
}

struct StatusFlags {
  std::string addr;
  LedgerFlags ledger;  // optional: without it, no ledger part
  bool json = false;
};

void RunStatus(const StatusFlags& f) {
  auto stub = v1::Admin::NewStub(Connect(f.addr));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kAdminDeadline);
  v1::StatusResponse st;
  if (grpc::Status s = stub->Status(&context, v1::StatusRequest(), &st); !s.ok()) {
    FailRpc("Admin.Status", f.addr, s);
  }

  json j = {{"address", st.node_address()},
            {"version", st.version()},
            {"draining", st.draining()},
            {"queue",
             {{"waiting", st.waiting()},
              {"running", st.running()},
              {"active_streams", st.active_streams()}}}};
  std::string human =
      absl::StrCat("node      ", st.node_address(), " (atoma-node ", st.version(), ") on ", f.addr,
                   st.draining() ? ", DRAINING" : "", "\nqueue     ", st.waiting(), " waiting, ",
                   st.running(), " running, ", st.active_streams(), " stream(s) open\n");
  json models = json::array();
  std::vector<ledger::Hash256> own_echelons;
  for (const v1::ModelStatus& m : st.models()) {
    const v1::ModelInfo& info = m.info();
    json echelon = nullptr;
    std::string echelon_text = "none (no fingerprint)";
    const std::optional<ledger::Hash256> digest = ParseHash(info.digest_hex());
    const std::optional<ledger::Hash256> fingerprint = ParseHash(info.fingerprint_hex());
    if (digest && fingerprint) {
      const ledger::Hash256 id = consensus::EchelonId(*digest, *fingerprint);
      own_echelons.push_back(id);
      echelon = HashHex(id);
      echelon_text = HashHex(id);
    }
    models.push_back(
        {{"id", info.id()},
         {"digest", "0x" + info.digest_hex()},
         {"fingerprint",
          info.fingerprint_hex().empty() ? json(nullptr) : json("0x" + info.fingerprint_hex())},
         {"echelon_id", echelon},
         {"waiting", m.waiting()},
         {"running", m.running()},
         {"requests_finished", m.requests_finished()},
         {"tokens_generated", m.tokens_generated()},
         {"kv_bytes_used", m.kv_bytes_used()},
         {"kv_bytes_capacity", m.kv_bytes_capacity()}});
    absl::StrAppend(&human, "model     ", info.id(), "\n  digest  0x", info.digest_hex(),
                    "\n  echelon ", echelon_text, "\n  load    ", m.waiting(), " waiting, ",
                    m.running(), " running, ", m.requests_finished(), " finished, ",
                    m.tokens_generated(), " tokens, KV ", m.kv_bytes_used(), "/",
                    m.kv_bytes_capacity(), " bytes\n");
  }
  j["models"] = models;

  if (OrFail(CheckLedgerFlags(f.ledger)) != LedgerKind::kNone) {
    auto l = OrFail(OpenLedger(f.ledger));
    const ledger::Address self = OrFail(crypto::ParseAddress(st.node_address()));
    const ledger::Epoch epoch = OrFail(l->CurrentEpoch());
    j["epoch"] = epoch.number;
    absl::StrAppend(&human, "epoch     ", epoch.number, "\n");
    absl::StatusOr<ledger::NodeInfo> me = l->GetNode(self);
    if (!me.ok() && !absl::IsNotFound(me.status())) Fail(me.status());
    if (me.ok()) {
      json echelons = json::array();
      for (const ledger::EchelonRef& r : me->echelons) echelons.push_back(HashHex(r.echelon_id));
      j["registration"] = {{"endpoint", me->endpoint},
                           {"registered_epoch", me->registered_epoch},
                           {"echelons", echelons}};
      absl::StrAppend(&human, "registered endpoint ", me->endpoint, " in epoch ",
                      me->registered_epoch, ", ", me->echelons.size(), " echelon(s)\n");
    } else {
      j["registration"] = nullptr;
      absl::StrAppend(&human, "registered no (not on this ledger)\n");
    }
    const ledger::StakeInfo stake = OrFail(l->GetStake(self));
    const ledger::Amount rewards = OrFail(l->RewardBalance(self));
    j["stake"] = StakeJson(stake);
    j["rewards"] = rewards.ToDecimal();
    absl::StrAppend(&human, "stake     ", StakeText(stake), "\nrewards   ", rewards.ToDecimal(),
                    "\npeers (nodes serving one of this node's echelons):\n");
    // Peers: the registered echelons count when the node is registered (that is what clients
    // draw from), else the ones its models compute now.
    std::vector<ledger::Hash256> echelons = own_echelons;
    if (me.ok()) {
      echelons.clear();
      for (const ledger::EchelonRef& r : me->echelons) echelons.push_back(r.echelon_id);
    }
    json peers = json::array();
    std::string peers_text;
    for (const ledger::Address& a : OrFail(l->ListNodes())) {
      if (a == self) continue;
      const ledger::NodeInfo n = OrFail(l->GetNode(a));
      if (!SharesEchelon(n, echelons)) continue;
      peers.push_back(PeerJson(*l, n, &peers_text));
    }
    if (peers.empty()) peers_text = "  none\n";
    absl::StrAppend(&human, peers_text);
    j["peers"] = peers;
  }
  Print(f.json, j, human);
}

struct StakeFlags {
  LedgerFlags ledger;
  std::string key;
  std::string amount;
  bool json = false;
};

// stake / unstake / withdraw / claim on the node's own account; prints the new balances.
void RunStakeAction(const std::string& action, const StakeFlags& f) {
  OrFail(RequireLedger(f.ledger, action));
  crypto::PrivateKey key = OrFail(crypto::ReadKeyFile(f.key));
  const ledger::Address self = key.address();
  std::optional<ledger::Amount> amount;
  if (!f.amount.empty()) {
    auto parsed = ledger::Amount::FromDecimal(f.amount);
    if (!parsed.ok()) {
      Fail(absl::StrCat("bad amount '", f.amount, "': ", parsed.status().message()));
    }
    amount = *parsed;
  }
  std::vector<crypto::PrivateKey> signers;
  signers.push_back(std::move(key));  // EVM: the node signs; embedded: ignored
  auto l = OrFail(OpenLedger(f.ledger, std::move(signers)));
  if (action == "stake") {
    OrFail(l->Stake(self, *amount));
  } else if (action == "unstake") {
    OrFail(l->Unstake(self, *amount));
  } else if (action == "withdraw") {
    OrFail(l->WithdrawStake(self, *amount));
  } else {  // claim: the whole reward balance unless --amount says less
    if (!amount) amount = OrFail(l->RewardBalance(self));
    if (!amount->IsZero()) OrFail(l->WithdrawRewards(self, *amount));
  }
  const ledger::StakeInfo stake = OrFail(l->GetStake(self));
  const ledger::Amount rewards = OrFail(l->RewardBalance(self));
  json j = StakeJson(stake);
  j["node"] = Addr(self);
  j["action"] = action;
  j["amount"] = amount->ToDecimal();
  j["rewards"] = rewards.ToDecimal();
  Print(f.json, j,
        absl::StrCat(Addr(self), ": ", action, " ", amount->ToDecimal(), " done\n", "stake   ",
                     StakeText(stake), "\nrewards ", rewards.ToDecimal(), "\n"));
}

}  // namespace

void AddOperatorCommands(CLI::App& app) {
  // --- status ---
  auto status = std::make_shared<StatusFlags>();
  CLI::App* status_cmd = app.add_subcommand(
      "status",
      "A running node's state (Admin.Status): models with echelons, load and queue; with a "
      "ledger (--ledger-db FILE, or --rpc-url URL --contract ADDRESS) also its epoch, "
      "registration, stake, rewards and peers with their health.");
  status_cmd->add_option("--addr", status->addr, "node API address host:port")->required();
  AddLedgerFlags(status_cmd, &status->ledger, "--ledger-db,--db");
  status_cmd->add_flag("--json", status->json, "print one JSON object");
  status_cmd->callback([status] { RunStatus(*status); });

  // --- peers ---
  auto peers_ledger = std::make_shared<LedgerFlags>();
  auto peers_echelon = std::make_shared<std::string>();
  auto peers_json = std::make_shared<bool>(false);
  CLI::App* peers_cmd = app.add_subcommand(
      "peers", "Registered nodes on a ledger with endpoint, echelons, bonded stake and health.");
  AddLedgerFlags(peers_cmd, peers_ledger.get(), "--ledger-db,--db");
  peers_cmd->add_option("--echelon", *peers_echelon, "only nodes of this echelon id (hex)");
  peers_cmd->add_flag("--json", *peers_json, "print one JSON object");
  peers_cmd->callback([peers_ledger, peers_echelon, peers_json] {
    std::vector<ledger::Hash256> filter;
    if (!peers_echelon->empty()) {
      const std::optional<ledger::Hash256> id = ParseHash(*peers_echelon);
      if (!id) Fail(absl::StrCat("bad 32-byte hex echelon id '", *peers_echelon, "'"));
      filter.push_back(*id);
    }
    auto l = OrFail(OpenLedger(*peers_ledger));
    const ledger::Epoch epoch = OrFail(l->CurrentEpoch());
    json peers = json::array();
    std::string human;
    for (const ledger::Address& a : OrFail(l->ListNodes())) {
      const ledger::NodeInfo n = OrFail(l->GetNode(a));
      if (!filter.empty() && !SharesEchelon(n, filter)) continue;
      peers.push_back(PeerJson(*l, n, &human));
    }
    if (peers.empty()) human = "  none\n";
    Print(*peers_json, {{"epoch", epoch.number}, {"peers", peers}},
          absl::StrCat("epoch ", epoch.number, ", registered nodes:\n", human));
  });

  // --- drain ---
  auto drain_addr = std::make_shared<std::string>();
  auto drain_json = std::make_shared<bool>(false);
  CLI::App* drain_cmd = app.add_subcommand(
      "drain",
      "Admin.Drain: the node refuses new generations (UNAVAILABLE, health NOT_SERVING) while "
      "running ones finish. There is no un-drain: restart the node.");
  auto drain_token = std::make_shared<std::string>();
  drain_cmd->add_option("--addr", *drain_addr, "node API address host:port")->required();
  drain_cmd
      ->add_option("--admin-token-file", *drain_token,
                   "file (mode 600) with the node's admin token (its api.admin_token_file); "
                   "without it only a node on this machine with no admin token accepts")
      ->check(CLI::ExistingFile);
  drain_cmd->add_flag("--json", *drain_json, "print one JSON object");
  drain_cmd->callback([drain_addr, drain_json, drain_token] {
    auto stub = v1::Admin::NewStub(Connect(*drain_addr));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kAdminDeadline);
    if (!drain_token->empty()) {
      std::string token = OrFail(crypto::ReadOwnerOnlyFile(*drain_token, "admin token file", 4096));
      context.AddMetadata("authorization",
                          absl::StrCat("Bearer ", absl::StripAsciiWhitespace(token)));
    }
    v1::DrainResponse r;
    if (grpc::Status s = stub->Drain(&context, v1::DrainRequest(), &r); !s.ok()) {
      FailRpc("Admin.Drain", *drain_addr, s);
    }
    Print(*drain_json, {{"draining", r.draining()}, {"active_streams", r.active_streams()}},
          absl::StrCat(*drain_addr, " draining, ", r.active_streams(),
                       " stream(s) were open when it began\n"));
  });

  // --- stake / unstake / withdraw / claim ---
  struct Action {
    const char* name;
    const char* help;
    bool amount_required;
  };
  for (const Action& a :
       {Action{"stake",
               "Bond stake for this node; it counts from the next epoch. Embedded: [dev] no "
               "signature, no payment. EVM: the node's --key sends --amount wei with the "
               "transaction.",
               true},
        Action{"unstake",
               "Unbond stake: withdrawable after the ledger's unbonding epochs. Embedded: [dev] "
               "no signature. EVM: signed by the node's --key.",
               true},
        Action{"withdraw",
               "Withdraw released (unbonded) stake. Embedded: [dev] no signature. EVM: signed by "
               "the node's --key; the coin goes to the node's account.",
               true},
        Action{"claim",
               "Withdraw rewards (default: the whole balance). Embedded: [dev] no signature. EVM: "
               "signed by the node's --key; the coin goes to the node's account.",
               false}}) {
    auto flags = std::make_shared<StakeFlags>();
    CLI::App* cmd = app.add_subcommand(a.name, a.help);
    AddLedgerFlags(cmd, &flags->ledger, "--ledger-db,--db", /*signs=*/true);
    cmd->add_option("--key", flags->key,
                    "the node's key file (embedded: names the account; EVM: signs the "
                    "transaction)")
        ->required();
    CLI::Option* amount = cmd->add_option("--amount", flags->amount, "base units (EVM: wei)");
    if (a.amount_required) amount->required();
    cmd->add_flag("--json", flags->json, "print one JSON object");
    const std::string action = a.name;
    cmd->callback([action, flags] { RunStakeAction(action, *flags); });
  }
}

}  // namespace atoma::cli
