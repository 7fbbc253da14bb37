#include "agent/secrets/generator.h"

#include <string_view>
#include <vector>

#include "crypto/random.h"

namespace sk::secrets {
namespace {

constexpr std::string_view kLower = "abcdefghijklmnopqrstuvwxyz";
constexpr std::string_view kUpper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
constexpr std::string_view kDigit = "0123456789";
constexpr std::string_view kSymbol = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

Status Bad(const std::string& why) { return InvalidArgument(why, "bad_generator"); }

// The chosen classes, each without the excluded characters.
std::vector<std::string> Classes(const GeneratorSpec& spec) {
  std::vector<std::string> out;
  auto add = [&](bool on, std::string_view chars) {
    if (!on) return;
    std::string kept;
    for (char c : chars) {
      if (spec.exclude.find(c) == std::string::npos) kept += c;
    }
    out.push_back(std::move(kept));
  };
  add(spec.lower, kLower);
  add(spec.upper, kUpper);
  add(spec.digit, kDigit);
  add(spec.symbol, kSymbol);
  return out;
}

// A uniform index below n (n <= 256) from random bytes (kept in locked memory), by rejection.
class Draw {
 public:
  Result<std::size_t> Below(std::size_t n) {
    const std::size_t limit = 256 - 256 % n;
    for (;;) {
      if (pos_ == pool_.size()) {
        SK_RETURN_IF_ERROR(FillRandom(pool_.Expose()));
        pos_ = 0;
      }
      std::size_t b = pool_.Expose()[pos_++];
      if (b < limit) return b % n;
    }
  }

 private:
  SecretBytes pool_{256};
  std::size_t pos_ = 256;
};

constexpr char kHex[] = "0123456789abcdef";
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

Status ValidateGenerator(const GeneratorSpec& spec) {
  if (spec.type == GeneratorSpec::Type::kBytes) {
    if (spec.length < 1 || spec.length > 4096) return Bad("a bytes generator makes 1 to 4096 bytes");
    return OkStatus();
  }
  if (spec.length < 8 || spec.length > 1024) return Bad("a password generator makes 8 to 1024 characters");
  for (char c : spec.exclude) {
    if (c < 0x20 || c > 0x7e) return Bad("'exclude' holds printable ASCII characters only");
  }
  std::vector<std::string> classes = Classes(spec);
  if (classes.empty()) return Bad("a password generator needs at least one character class");
  for (const std::string& c : classes) {
    if (c.empty()) return Bad("'exclude' leaves a chosen character class empty");
  }
  if (classes.size() > spec.length) return Bad("the password is shorter than its number of classes");
  return OkStatus();
}

Result<SecretBytes> Generate(const GeneratorSpec& spec) {
  SK_RETURN_IF_ERROR(ValidateGenerator(spec));
  if (spec.type == GeneratorSpec::Type::kBytes) {
    SecretBytes raw(spec.length);
    SK_RETURN_IF_ERROR(FillRandom(raw.Expose()));
    auto in = raw.Expose();
    if (spec.encoding == GeneratorSpec::Encoding::kHex) {
      SecretBytes out(spec.length * 2);
      auto o = out.Expose();
      for (std::size_t i = 0; i < in.size(); ++i) {
        o[2 * i] = static_cast<std::uint8_t>(kHex[in[i] >> 4]);
        o[2 * i + 1] = static_cast<std::uint8_t>(kHex[in[i] & 0xf]);
      }
      return out;
    }
    SecretBytes out((spec.length + 2) / 3 * 4);
    auto o = out.Expose();
    std::size_t j = 0;
    for (std::size_t i = 0; i < in.size(); i += 3) {
      std::uint32_t n = static_cast<std::uint32_t>(in[i]) << 16;
      if (i + 1 < in.size()) n |= static_cast<std::uint32_t>(in[i + 1]) << 8;
      if (i + 2 < in.size()) n |= in[i + 2];
      o[j++] = static_cast<std::uint8_t>(kB64[(n >> 18) & 63]);
      o[j++] = static_cast<std::uint8_t>(kB64[(n >> 12) & 63]);
      o[j++] = i + 1 < in.size() ? static_cast<std::uint8_t>(kB64[(n >> 6) & 63]) : std::uint8_t{'='};
      o[j++] = i + 2 < in.size() ? static_cast<std::uint8_t>(kB64[n & 63]) : std::uint8_t{'='};
    }
    return out;
  }
  std::vector<std::string> classes = Classes(spec);
  std::string alphabet;
  for (const std::string& c : classes) alphabet += c;
  SecretBytes out(spec.length);
  Draw draw;
  auto o = out.Expose();
  for (;;) {
    for (std::uint8_t& c : o) {
      SK_ASSIGN_OR_RETURN(std::size_t i, draw.Below(alphabet.size()));
      c = static_cast<std::uint8_t>(alphabet[i]);
    }
    bool every_class = true;
    for (const std::string& cls : classes) {
      bool seen = false;
      for (std::uint8_t c : o) seen = seen || cls.find(static_cast<char>(c)) != std::string::npos;
      every_class = every_class && seen;
    }
    if (every_class) return out;
  }
}

}  // namespace sk::secrets
