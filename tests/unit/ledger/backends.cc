#include "backends.h"

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"
#include "atoma/common/uint256.h"
#include "atoma/ledger/evm_ledger.h"

namespace atoma::test {
namespace {

// The shared chain: nullptr until the first SharedAnvil call; holds the start error if it failed.
absl::StatusOr<std::unique_ptr<AnvilProcess>>* g_anvil = nullptr;

// Stops the shared chain when the tests end (before static destruction, so Anvil's log folder
// is removed while the process still runs normally). A crashed binary leaves no Anvil behind
// either: AnvilProcess ties the child's life to ours.
class AnvilEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    delete g_anvil;
    g_anvil = nullptr;
  }
};

[[maybe_unused]] ::testing::Environment* const kAnvilEnvironment =
    ::testing::AddGlobalTestEnvironment(new AnvilEnvironment);

absl::StatusOr<OpenedLedger> OpenEvm(const std::filesystem::path& /*path*/,
                                     const ledger::EmbeddedLedgerOptions& options,
                                     const std::vector<const crypto::PrivateKey*>& signers) {
  ASSIGN_OR_RETURN(AnvilProcess * anvil, SharedAnvil());
  const std::string url = anvil->url();
  ASSIGN_OR_RETURN(const crypto::PrivateKey deployer, crypto::PrivateKey::FromHex(kAnvilDevKey0));
  ledger::EvmDeployParams params;
  params.unbonding_epochs = options.unbonding_epochs;
  params.epoch_length_s = options.epoch_length_s;
  params.min_epoch_spacing_s = 0;  // tests advance epochs back to back
  params.fee_per_token = options.fee_per_token;
  params.slash_bps = options.slash_bps;
  params.reporter_share_bps = options.reporter_share_bps;
  ASSIGN_OR_RETURN(const ledger::Address contract,
                   ledger::DeployEvmLedger(url, kEvmChainId, deployer, params));

  // The signers' secrets (PrivateKey is move-only; each client gets its own copies), the
  // fixture's first, then the actors, each address once.
  std::vector<std::string> secrets;
  std::set<ledger::Address> seen;
  auto add = [&](const crypto::PrivateKey& key) {
    if (seen.insert(key.address()).second) secrets.push_back(key.SecretHex());
  };
  for (const crypto::PrivateKey* key : signers) add(*key);
  for (uint32_t i = 0; i < kActors; ++i) add(ActorKey(i));
  ASSIGN_OR_RETURN(const Uint256 funding, Uint256::FromDecimal(kEvmFundingWei));
  for (const std::string& secret : secrets) {
    ASSIGN_OR_RETURN(const crypto::PrivateKey key, crypto::PrivateKey::FromHex(secret));
    RETURN_IF_ERROR(AnvilProcess::SetBalance(url, key.address(), funding));
  }

  auto open = [url, contract, secrets]() -> absl::StatusOr<std::unique_ptr<ledger::LedgerClient>> {
    ledger::EvmLedgerOptions evm;
    evm.rpc_url = url;
    evm.chain_id = kEvmChainId;
    evm.contract = contract;
    // Anvil mines each transaction at once: poll its receipt often.
    evm.poll_interval = absl::Milliseconds(5);
    for (const std::string& secret : secrets) {
      ASSIGN_OR_RETURN(crypto::PrivateKey key, crypto::PrivateKey::FromHex(secret));
      evm.signers.push_back(std::move(key));
    }
    return ledger::OpenEvmLedger(evm);
  };
  ASSIGN_OR_RETURN(std::unique_ptr<ledger::LedgerClient> client, open());
  return OpenedLedger{std::move(client), std::move(open)};
}

}  // namespace

absl::StatusOr<AnvilProcess*> SharedAnvil() {
  if (g_anvil == nullptr) {
    g_anvil = new absl::StatusOr<std::unique_ptr<AnvilProcess>>(AnvilProcess::Start());
  }
  if (!g_anvil->ok()) {
    return absl::Status(
        g_anvil->status().code(),
        absl::StrCat("the shared Anvil chain did not start: ", g_anvil->status().message()));
  }
  return g_anvil->value().get();
}

LedgerOpener OpenerFor(Backend backend) {
  return backend == Backend::kEmbedded ? LedgerOpener(OpenEmbedded) : LedgerOpener(OpenEvm);
}

absl::Status WithdrawEscrowNow(ledger::LedgerClient& ledger, const ledger::Address& client,
                               const ledger::Amount& amount) {
  RETURN_IF_ERROR(ledger.RequestEscrowWithdrawal(client, amount));
  ASSIGN_OR_RETURN(const ledger::Params params, ledger.GetParams());
  for (uint64_t i = 0; i < params.unbonding_epochs; ++i) {
    RETURN_IF_ERROR(ledger.AdvanceEpoch().status());
  }
  return ledger.WithdrawEscrow(client, amount);
}

}  // namespace atoma::test
