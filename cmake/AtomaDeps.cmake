# Third-party dependencies, all from Debian 12 packages (scripts/setup.sh installs them).
find_package(Threads REQUIRED)
find_package(absl REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)

# libtorch: Debian's libtorch-dev (CPU, 1.13) or a pip torch found through
# `python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'` on CMAKE_PREFIX_PATH.
find_package(Torch REQUIRED)
# Torch's exported flags add -D_GLIBCXX_USE_CXX11_ABI and friends; keep them off our other targets.

if(NOT ATOMA_ENGINE_ONLY)
  find_package(Protobuf REQUIRED)
  find_package(gRPC CONFIG QUIET)
  if(NOT gRPC_FOUND)
    # Debian 12 ships gRPC without CMake config files; use pkg-config.
    pkg_check_modules(GRPCPP REQUIRED IMPORTED_TARGET grpc++ grpc++_reflection)
    add_library(atoma_grpc INTERFACE)
    target_link_libraries(atoma_grpc INTERFACE PkgConfig::GRPCPP)
  else()
    add_library(atoma_grpc INTERFACE)
    target_link_libraries(atoma_grpc INTERFACE gRPC::grpc++ gRPC::grpc++_reflection)
  endif()
  find_program(GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
  find_package(yaml-cpp REQUIRED)
  find_package(CLI11 CONFIG REQUIRED)
  pkg_check_modules(SECP256K1 REQUIRED IMPORTED_TARGET libsecp256k1)
  find_package(SQLite3 REQUIRED)
  find_package(CURL REQUIRED)  # the EVM ledger's JSON-RPC client (src/evm)
endif()

if(ATOMA_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
if(ATOMA_BUILD_BENCH)
  find_package(benchmark QUIET)
endif()
