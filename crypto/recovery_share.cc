#include "crypto/recovery_share.h"

#include <cctype>

#include "crypto/mac.h"
#include "crypto/recovery_wrap.h"

namespace sk {
namespace {

constexpr std::string_view kAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";  // Crockford
constexpr std::string_view kDomain = "sealkeep recovery share v1";
constexpr std::size_t kPayloadBytes = kRecoveryKeyIdSize + 32;
constexpr std::size_t kPayloadChars = kPayloadBytes * 8 / 5;  // 64
constexpr std::size_t kChecksumChars = 4;

Status Malformed(const std::string& what) {
  return InvalidArgument("not a recovery share: " + what, "share_malformed");
}

int Value(char c) {
  c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (c == 'O') c = '0';
  if (c == 'I' || c == 'L') c = '1';
  const std::size_t p = kAlphabet.find(c);
  return p == std::string_view::npos ? -1 : static_cast<int>(p);
}

// The checksum of the canonical text before it (prefix and payload, no dashes).
std::string Checksum(const std::string& canonical) {
  Bytes msg(kDomain.begin(), kDomain.end());
  msg.push_back(0);
  msg.insert(msg.end(), canonical.begin(), canonical.end());
  const Digest d = Sha256(msg);
  const std::uint32_t bits = (static_cast<std::uint32_t>(d[0]) << 12) |
                             (static_cast<std::uint32_t>(d[1]) << 4) |
                             (static_cast<std::uint32_t>(d[2]) >> 4);
  std::string out;
  for (int i = 3; i >= 0; --i) out += kAlphabet[(bits >> (5 * i)) & 31];
  return out;
}

}  // namespace

std::string EncodeRecoveryShare(const RecoveryShare& s) {
  std::string prefix = "SKR1-" + std::to_string(s.threshold) + "-" + std::to_string(s.share.index) + "-";
  std::string payload;
  std::uint32_t acc = 0;
  int nbits = 0;
  auto push = [&](std::uint8_t byte) {
    acc = (acc << 8) | byte;
    nbits += 8;
    while (nbits >= 5) {
      payload += kAlphabet[(acc >> (nbits - 5)) & 31];
      nbits -= 5;
    }
  };
  for (std::uint8_t b : s.key_id) push(b);
  for (std::uint8_t b : s.share.y.Expose()) push(b);
  std::string canonical =
      "SKR1" + std::to_string(s.threshold) + "/" + std::to_string(s.share.index) + payload;
  std::string out = prefix;
  for (std::size_t i = 0; i < payload.size(); i += 4) out += payload.substr(i, 4) + "-";
  out += Checksum(canonical);
  acc = 0;
  return out;
}

Result<RecoveryShare> ParseRecoveryShare(std::string_view text) {
  // Fields: SKR1, threshold, index, then the payload and checksum characters.
  std::string compact;
  std::vector<std::string> head;
  std::string field;
  int dashes = 0;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    if (c == '-') {
      if (dashes < 3) {
        head.push_back(field);
        field.clear();
      }
      ++dashes;
      continue;
    }
    if (dashes < 3) {
      field += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    } else {
      compact += c;
    }
  }
  if (head.size() != 3 || head[0] != "SKR1")
    return Malformed("it does not start with SKR1-<threshold>-<index>-");
  auto number = [](const std::string& f) -> int {
    if (f.empty() || f.size() > 3) return -1;
    int v = 0;
    for (char c : f) {
      if (c < '0' || c > '9') return -1;
      v = v * 10 + (c - '0');
    }
    return v;
  };
  const int threshold = number(head[1]), index = number(head[2]);
  if (threshold < 2 || threshold > 255 || index < 1 || index > 255) {
    return Malformed("its threshold or index is out of range");
  }
  if (compact.size() != kPayloadChars + kChecksumChars) {
    return Malformed("it has " + std::to_string(compact.size()) + " characters after the index, not " +
                     std::to_string(kPayloadChars + kChecksumChars) + " (a character missing or extra?)");
  }
  std::string payload;
  for (char c : compact) {
    const int v = Value(c);
    if (v < 0) return Malformed(std::string("'") + c + "' is not one of its characters");
    payload += kAlphabet[static_cast<std::size_t>(v)];
  }
  const std::string checksum = payload.substr(kPayloadChars);
  payload.resize(kPayloadChars);
  const std::string canonical = "SKR1" + std::to_string(threshold) + "/" + std::to_string(index) + payload;
  if (Checksum(canonical) != checksum) {
    return InvalidArgument("share " + std::to_string(index) + " has a typo: its checksum does not match",
                           "share_checksum");
  }
  RecoveryShare out;
  out.threshold = threshold;
  out.share.index = static_cast<std::uint8_t>(index);
  SecretBytes bytes(kPayloadBytes);
  std::uint32_t acc = 0;
  int nbits = 0;
  std::size_t n = 0;
  for (char c : payload) {
    acc = (acc << 5) | static_cast<std::uint32_t>(kAlphabet.find(c));
    nbits += 5;
    if (nbits >= 8) {
      bytes.Expose()[n++] = static_cast<std::uint8_t>(acc >> (nbits - 8));
      nbits -= 8;
    }
  }
  acc = 0;
  out.key_id.assign(bytes.Expose().begin(), bytes.Expose().begin() + kRecoveryKeyIdSize);
  out.share.y = SecretBytes::CopyFrom(bytes.Expose().subspan(kRecoveryKeyIdSize));
  return out;
}

Result<SecretBytes> CombineRecoveryShares(const std::vector<RecoveryShare>& shares) {
  if (shares.empty()) return InvalidArgument("no recovery share given", "too_few_shares");
  for (const RecoveryShare& s : shares) {
    if (s.key_id != shares[0].key_id) {
      return InvalidArgument("the shares belong to different recovery keys (" + HexEncode(shares[0].key_id) +
                                 ", " + HexEncode(s.key_id) + ")",
                             "shares_mismatch");
    }
    if (s.threshold != shares[0].threshold) {
      return InvalidArgument("the shares name different thresholds", "shares_mismatch");
    }
  }
  std::vector<ShamirShare> parts;
  for (const RecoveryShare& s : shares) {
    for (const ShamirShare& p : parts) {
      if (p.index == s.share.index) {
        return InvalidArgument("share " + std::to_string(p.index) + " was given twice", "duplicate_share");
      }
    }
    parts.push_back(ShamirShare{s.share.index, s.share.y.Clone()});
  }
  if (static_cast<int>(parts.size()) < shares[0].threshold) {
    return InvalidArgument("this recovery key needs " + std::to_string(shares[0].threshold) + " shares; " +
                               std::to_string(parts.size()) + " given",
                           "too_few_shares");
  }
  parts.resize(static_cast<std::size_t>(shares[0].threshold));
  SK_ASSIGN_OR_RETURN(SecretBytes key, ShamirCombine(parts));
  SK_ASSIGN_OR_RETURN(Bytes pub, RecoveryPublicKey(key));
  if (RecoveryKeyId(pub) != shares[0].key_id) {
    return InvalidArgument("the shares do not rebuild recovery key " + HexEncode(shares[0].key_id) +
                               " (a share mistyped past its checksum?)",
                           "wrong_shares");
  }
  return key;
}

}  // namespace sk
