# Every dependency comes from Debian 12's archive (tools/dev installs them).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

# mbedTLS 2.28 ships no pkg-config file or CMake package in Debian: find it by hand.
find_path(MBEDTLS_INCLUDE_DIR mbedtls/gcm.h REQUIRED)
find_library(MBEDCRYPTO_LIBRARY mbedcrypto REQUIRED)
add_library(sk_mbedcrypto INTERFACE)
target_include_directories(sk_mbedcrypto SYSTEM INTERFACE ${MBEDTLS_INCLUDE_DIR})
target_link_libraries(sk_mbedcrypto INTERFACE ${MBEDCRYPTO_LIBRARY})

pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
pkg_check_modules(TSS2 REQUIRED IMPORTED_TARGET tss2-esys tss2-tctildr tss2-mu tss2-rc)
pkg_check_modules(TOMLPP REQUIRED tomlplusplus)
# toml++ is compiled header-only (Debian's headers, TOML_HEADER_ONLY=1), not linked to
# libtomlplusplus.so: that library drags libstdc++.so and libgcc_s into the light CLI,
# which links them statically to start faster (tools/CMakeLists.txt). Three files parse TOML.
add_library(sk_toml INTERFACE)
target_include_directories(sk_toml SYSTEM INTERFACE ${TOMLPP_INCLUDE_DIRS})
target_compile_definitions(sk_toml INTERFACE TOML_HEADER_ONLY=1)
pkg_check_modules(P11KIT REQUIRED IMPORTED_TARGET p11-kit-1)
# libpq: the fleet library (agent/fleet) and the PostgreSQL test fixture link it; the CLI's
# rotation target dlopens it instead.
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET GLOBAL libpq)
find_package(Boost 1.74 REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
if(SK_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(SK_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
