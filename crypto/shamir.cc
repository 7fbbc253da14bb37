#include "crypto/shamir.h"

#include "crypto/random.h"

namespace sk {
namespace {

// Multiplication in GF(2^8) mod 0x11b, without branches or tables on the operands.
std::uint8_t Mul(std::uint8_t a, std::uint8_t b) {
  std::uint8_t p = 0;
  for (int i = 0; i < 8; ++i) {
    p = static_cast<std::uint8_t>(p ^ (a & static_cast<std::uint8_t>(-(b & 1))));
    const std::uint8_t carry = static_cast<std::uint8_t>(-((a >> 7) & 1));
    a = static_cast<std::uint8_t>((a << 1) ^ (0x1b & carry));
    b = static_cast<std::uint8_t>(b >> 1);
  }
  return p;
}

// a^254 = a^-1 (0 for 0).
std::uint8_t Inverse(std::uint8_t a) {
  std::uint8_t result = 1, base = a;
  for (int e = 254; e > 0; e >>= 1) {
    if (e & 1) result = Mul(result, base);
    base = Mul(base, base);
  }
  return result;
}

}  // namespace

Result<std::vector<ShamirShare>> ShamirSplit(const SecretBytes& secret, int threshold, int shares) {
  if (secret.empty()) return InvalidArgument("nothing to split");
  if (threshold < 2 || shares < threshold || shares > 255) {
    return InvalidArgument(
        "shares must be at least the threshold, the threshold at least 2, and shares at most 255");
  }
  const std::size_t len = secret.size();
  // coefficients[k * len + j]: coefficient k (1..threshold-1) of byte j's polynomial.
  SK_ASSIGN_OR_RETURN(SecretBytes coefficients, RandomSecret(len * static_cast<std::size_t>(threshold - 1)));
  std::vector<ShamirShare> out;
  out.reserve(static_cast<std::size_t>(shares));
  for (int i = 1; i <= shares; ++i) {
    ShamirShare s;
    s.index = static_cast<std::uint8_t>(i);
    s.y = SecretBytes(len);
    for (std::size_t j = 0; j < len; ++j) {
      // Horner: f(x) = s + x(a1 + x(a2 + ...)).
      std::uint8_t acc = 0;
      for (int k = threshold - 1; k >= 1; --k) {
        acc = static_cast<std::uint8_t>(Mul(acc, s.index) ^
                                        coefficients.Expose()[static_cast<std::size_t>(k - 1) * len + j]);
      }
      s.y.Expose()[j] = static_cast<std::uint8_t>(Mul(acc, s.index) ^ secret.Expose()[j]);
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<SecretBytes> ShamirCombine(const std::vector<ShamirShare>& shares) {
  if (shares.empty()) return InvalidArgument("no shares");
  const std::size_t len = shares[0].y.size();
  for (std::size_t a = 0; a < shares.size(); ++a) {
    if (shares[a].index == 0) return InvalidArgument("a share has index 0");
    if (shares[a].y.size() != len) return InvalidArgument("the shares differ in length");
    for (std::size_t b = 0; b < a; ++b) {
      if (shares[a].index == shares[b].index) return InvalidArgument("the same share was given twice");
    }
  }
  // Lagrange basis at 0: l_j = prod_{m != j} x_m / (x_m - x_j); subtraction is xor.
  std::vector<std::uint8_t> basis(shares.size());
  for (std::size_t j = 0; j < shares.size(); ++j) {
    std::uint8_t num = 1, den = 1;
    for (std::size_t m = 0; m < shares.size(); ++m) {
      if (m == j) continue;
      num = Mul(num, shares[m].index);
      den = Mul(den, static_cast<std::uint8_t>(shares[m].index ^ shares[j].index));
    }
    basis[j] = Mul(num, Inverse(den));
  }
  SecretBytes out(len);
  for (std::size_t i = 0; i < len; ++i) {
    std::uint8_t acc = 0;
    for (std::size_t j = 0; j < shares.size(); ++j) acc ^= Mul(basis[j], shares[j].y.Expose()[i]);
    out.Expose()[i] = acc;
  }
  return out;
}

}  // namespace sk
