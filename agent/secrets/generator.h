// Generators: new secret values made inside the agent from its random source (crypto/
// random.h), for a rotation that is not given its value (docs/rotation.md). The value goes
// straight into locked memory; nothing here logs or returns it in any other form.
//
//   password  `length` characters (8..1024) drawn uniformly from the union of the chosen
//             classes (lower, upper, digit, symbol: the 32 ASCII punctuation characters;
//             default all four) minus `exclude`, with at least one character of each chosen
//             class (draws are repeated until that holds: unbiased, and quick, since a
//             class's share of the alphabet is at least 1/94).
//   bytes     `length` random bytes (1..4096), written as lower-case hex or standard base64.
#pragma once

#include <cstddef>
#include <string>

#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk::secrets {

struct GeneratorSpec {
  enum class Type { kPassword, kBytes };
  enum class Encoding { kHex, kBase64 };
  Type type = Type::kPassword;
  std::size_t length = 32;
  bool lower = true, upper = true, digit = true, symbol = true;  // password
  std::string exclude;                                           // password: never these characters
  Encoding encoding = Encoding::kHex;                            // bytes
};

// Checks the spec (bad_generator, kInvalidArgument, naming what is wrong).
Status ValidateGenerator(const GeneratorSpec& spec);
Result<SecretBytes> Generate(const GeneratorSpec& spec);

}  // namespace sk::secrets
