// Test-only: the backends of the ledger conformance suite (atoma_ledger_tests). Every ledger test
// that does not depend on how a backend stores its state is a value-parameterized test over
// test::Backend, instantiated as
//
//   INSTANTIATE_TEST_SUITE_P(Backends, FooTest, ::testing::ValuesIn(test::AllBackends()),
//                            test::BackendParamName);
//
// so its names end in /Embedded or /Evm (ctest runs the */Evm ones as the "integration" entry
// atoma_ledger_tests_evm). Tests that are inherently embedded (test seams for randomness and the
// clock, schema migrations, the file itself) are plain TEST_Fs of a *EmbeddedTest fixture.
//
// The EVM backend runs on one Anvil chain per test binary, started by the first test that needs it
// (SharedAnvil) and stopped when the tests end; every OpenerFor(kEvm) call deploys a fresh
// AtomaLedger contract (cheap on Anvil), so tests stay independent.
//
// Errors: openers return the failing step's status (Anvil missing or not starting, the deploy,
// funding, OpenEvmLedger); tests ASSERT on it and fail, never skip.
// Thread-safety: none; call from the test thread.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "testing/anvil.h"
#include "testing/ledger_fixture.h"

namespace atoma::test {

// Chain id of the shared Anvil chain (Anvil's default, which is also the embedded ledger's
// default domain chain id).
inline constexpr uint64_t kEvmChainId = 31337;

// What every signer and actor is funded with on the chain: 10^24 wei, far more than any stake,
// escrow and gas a test spends.
inline constexpr std::string_view kEvmFundingWei = "1000000000000000000000000";

// The shared Anvil chain of this test binary, started on first use. A start failure is remembered
// and returned to every later caller (one 20 s timeout, not one per test).
absl::StatusOr<AnvilProcess*> SharedAnvil();

// The opener of `backend` (LedgerOpener in testing/ledger_fixture.h):
//   kEmbedded: OpenEmbedded (the file at `path`, `options` as given);
//   kEvm: DeployEvmLedger on SharedAnvil() with EvmDeployParams from `options`
//     (unbonding_epochs, epoch_length_s, fee_per_token, slash_bps, reporter_share_bps; no
//     minimum epoch spacing; randomness and clock seams, chain_id and ledger_address do not
//     apply), every signer and Actor(0..kActors-1) funded with kEvmFundingWei, then
//     OpenEvmLedger with all of them as signers (journal in memory). Reopen connects another
//     client to the same contract.
LedgerOpener OpenerFor(Backend backend);

// Takes `amount` out of `client`'s escrow the only way a ledger allows (ledger.h): requests the
// withdrawal, advances the `unbonding_epochs` epochs it waits for, withdraws. For tests that need
// a short escrow after setup; the current epoch moves on (requests of earlier epochs still
// settle). Returns the first failing call's status.
absl::Status WithdrawEscrowNow(ledger::LedgerClient& ledger, const ledger::Address& client,
                               const ledger::Amount& amount);

// Both backends, for ::testing::ValuesIn.
inline std::vector<Backend> AllBackends() { return {Backend::kEmbedded, Backend::kEvm}; }
// Names the parameter "Embedded" / "Evm".
inline std::string BackendParamName(const ::testing::TestParamInfo<Backend>& info) {
  return BackendName(info.param);
}

}  // namespace atoma::test
