// Helpers shared by the PKCS#11 tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "crypto/random.h"
#include "crypto/status.h"
#include "hsm/key_backend.h"
#include "tests/fixtures/softhsm.h"

namespace sk::hsm {

inline SecretBytes NewKey(std::size_t n = 32) { return std::move(RandomSecret(n).value()); }

// Opens the token's backend or fails the test.
inline std::unique_ptr<KeyBackend> OpenOrDie(const sk::testing::SoftHsmToken& token) {
  auto b = token.Open();
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  if (!b.ok()) return nullptr;
  return std::move(b).value();
}

}  // namespace sk::hsm
