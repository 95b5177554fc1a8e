// Internal to the EVM ledger backend: the AtomaLedger contract's creation bytecode, embedded at
// configure time from contracts/build/AtomaLedger.json (src/ledger/evm/CMakeLists.txt generates
// the definition; CMake re-runs when the artifact changes or appears).
#pragma once

#include <string_view>

namespace atoma::ledger::evm_backend {

// Hex digits without "0x"; empty when the artifact did not exist when the build was configured.
std::string_view AtomaLedgerBytecodeHex();

}  // namespace atoma::ledger::evm_backend
