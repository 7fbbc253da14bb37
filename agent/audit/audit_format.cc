#include "agent/audit/audit_format.h"

#include <charconv>
#include <ctime>

#include "crypto/bytes.h"

namespace sk::audit {
namespace {

constexpr std::string_view kChainDomain{"sealkeep audit v1 chain\0", 24};
constexpr std::string_view kCheckpointDomain{"sealkeep audit v1 checkpoint\0", 29};
constexpr std::string_view kMacPrefix = ",\"mac\":\"";

constexpr std::size_t kCapRequestId = 64;
constexpr std::size_t kCapUnit = 256;
constexpr std::size_t kCapExe = 4096;
constexpr std::size_t kCapRoute = 128;
constexpr std::size_t kCapPath = 512;
constexpr std::size_t kCapReason = 512;

// Length of the valid UTF-8 sequence at s[i], or 0 when it is not one (RFC 3629:
// no overlongs, no surrogates, nothing above U+10FFFF).
std::size_t Utf8Length(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  std::size_t n = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  }
  return n;
}

void AppendCapped(std::string& out, std::string_view s, std::size_t cap) {
  if (s.size() <= cap) {
    AppendJsonString(out, s);
    return;
  }
  std::string cut(s.substr(0, cap - 3));
  cut += "...";
  AppendJsonString(out, cut);
}

void AppendNumber(std::string& out, std::uint64_t v) { out += std::to_string(v); }

// Reads `literal` at the front of `s`.
bool Eat(std::string_view& s, std::string_view literal) {
  if (s.substr(0, literal.size()) != literal) return false;
  s.remove_prefix(literal.size());
  return true;
}

// A decimal u64 without sign or leading zeros, at the front of `s`.
bool EatNumber(std::string_view& s, std::uint64_t& v) {
  std::size_t n = 0;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
  if (n == 0 || n > 20 || (n > 1 && s[0] == '0')) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + n, v);
  if (ec != std::errc() || ptr != s.data() + n) return false;
  s.remove_prefix(n);
  return true;
}

bool EatHexDigest(std::string_view& s, Digest& d) {
  if (s.size() < 2 * kDigestSize) return false;
  std::string_view hex = s.substr(0, 2 * kDigestSize);
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;  // lower case only
  }
  std::optional<Bytes> bytes = HexDecode(hex);
  if (!bytes || bytes->size() != kDigestSize) return false;
  std::copy(bytes->begin(), bytes->end(), d.begin());
  s.remove_prefix(2 * kDigestSize);
  return true;
}

Status Malformed(std::string what) { return Corruption(std::move(what), "audit_malformed"); }

}  // namespace

std::string_view AuditOutcomeName(AuditOutcome outcome) {
  switch (outcome) {
    case AuditOutcome::kAllowed:
      return "allowed";
    case AuditOutcome::kDenied:
      return "denied";
    case AuditOutcome::kFailed:
      return "failed";
    case AuditOutcome::kEvent:
      return "event";
  }
  return "unknown";
}

Digest ChainMac(Hmac& hmac, const Digest& prev, std::string_view body) {
  hmac.Begin();
  hmac.Update(AsBytes(kChainDomain));
  hmac.Update(prev);
  hmac.Update(AsBytes(body));
  return hmac.End();
}

Digest CheckpointMac(Hmac& hmac, std::string_view body) {
  hmac.Begin();
  hmac.Update(AsBytes(kCheckpointDomain));
  hmac.Update(AsBytes(body));
  return hmac.End();
}

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      std::size_t n = Utf8Length(s, i);
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}

std::string FormatTime(std::chrono::system_clock::time_point t) {
  using std::chrono::duration_cast;
  using std::chrono::microseconds;
  auto us = duration_cast<microseconds>(t.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(us / 1000000);
  auto frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  // The "YYYY-MM-DDThh:mm:ss" part changes once a second: each thread keeps the last one
  // (every record is stamped, so this is on the path of every request).
  thread_local std::time_t cached_secs = -1;
  thread_local std::string cached_prefix;
  if (secs != cached_secs) {
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[96];  // ample for any int fields, so the format never truncates
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached_prefix = buf;
    cached_secs = secs;
  }
  std::string out;
  out.reserve(cached_prefix.size() + 8);
  out += cached_prefix;
  out += '.';
  char digits[6];
  for (int i = 5; i >= 0; --i) {
    digits[i] = static_cast<char>('0' + frac % 10);
    frac /= 10;
  }
  out.append(digits, sizeof digits);
  out += 'Z';
  return out;
}

std::string EncodeHeaderBody(const SegmentHeader& h, std::chrono::system_clock::time_point time) {
  std::string out = "{\"sealkeep_audit\":1,\"segment\":";
  AppendNumber(out, h.segment);
  out += ",\"first_seq\":";
  AppendNumber(out, h.first_seq);
  out += ",\"prev_mac\":\"" + HexEncode(h.prev_mac) + "\",\"time\":\"" + FormatTime(time) + "\"";
  return out;
}

std::string EncodeRecordBody(std::uint64_t seq, const AuditRecord& r) {
  std::string out;
  out.reserve(256 + r.path.size() + r.peer.exe.size() + r.reason.size());
  out += "{\"seq\":";
  AppendNumber(out, seq);
  out += ",\"time\":\"" + FormatTime(r.time) + "\",\"request_id\":";
  AppendCapped(out, r.request_id, kCapRequestId);
  out += ",\"uid\":";
  AppendNumber(out, r.peer.uid);
  out += ",\"gid\":";
  AppendNumber(out, r.peer.gid);
  out += ",\"pid\":";
  AppendNumber(out, r.peer.pid > 0 ? static_cast<std::uint64_t>(r.peer.pid) : 0);
  out += ",\"unit\":";
  AppendCapped(out, r.peer.unit, kCapUnit);
  out += ",\"exe\":";
  AppendCapped(out, r.peer.exe, kCapExe);
  out += ",\"route\":";
  AppendCapped(out, r.route, kCapRoute);
  out += ",\"path\":";
  AppendCapped(out, r.path, kCapPath);
  out += ",\"outcome\":\"";
  out += AuditOutcomeName(r.outcome);
  out += "\",\"reason\":";
  AppendCapped(out, r.reason, kCapReason);
  return out;
}

std::string EncodeCheckpointBody(const Checkpoint& c, std::chrono::system_clock::time_point time) {
  std::string out = "{\"sealkeep_audit_checkpoint\":1,\"segment\":";
  AppendNumber(out, c.segment);
  out += ",\"last_seq\":";
  AppendNumber(out, c.last_seq);
  out += ",\"head_mac\":\"" + HexEncode(c.head_mac) + "\",\"time\":\"" + FormatTime(time) + "\"";
  return out;
}

std::string SealLine(std::string_view body, const Digest& mac) {
  std::string line;
  line.reserve(body.size() + kMacSuffixBytes + 1);
  line.append(body);
  line.append(kMacPrefix);
  line.append(HexEncode(mac));
  line.append("\"}\n");
  return line;
}

std::optional<SealedLine> SplitSealedLine(std::string_view line) {
  if (line.size() > kMaxLineBytes || line.size() < kMacSuffixBytes + 2) return std::nullopt;
  std::string_view suffix = line.substr(line.size() - kMacSuffixBytes);
  SealedLine out;
  out.body = line.substr(0, line.size() - kMacSuffixBytes);
  if (out.body.front() != '{') return std::nullopt;
  if (!Eat(suffix, kMacPrefix) || !EatHexDigest(suffix, out.mac) || suffix != "\"}") return std::nullopt;
  return out;
}

Result<ParsedLine> ParseLine(std::string_view line) {
  std::optional<SealedLine> sealed = SplitSealedLine(line);
  if (!sealed) return Malformed("not a sealed audit line");
  ParsedLine out;
  out.sealed = *sealed;
  std::string_view s = sealed->body;
  if (Eat(s, "{\"seq\":")) {
    if (!EatNumber(s, out.seq) || out.seq == 0 || !Eat(s, ",\"time\":\""))
      return Malformed("malformed record");
    return out;
  }
  if (Eat(s, "{\"sealkeep_audit\":")) {
    SegmentHeader& h = out.header;
    if (!Eat(s, "1,\"segment\":")) return Malformed("unsupported audit format version");
    if (!EatNumber(s, h.segment) || !Eat(s, ",\"first_seq\":") || !EatNumber(s, h.first_seq) ||
        !Eat(s, ",\"prev_mac\":\"") || !EatHexDigest(s, h.prev_mac) || !Eat(s, "\",\"time\":\"") ||
        h.segment == 0 || h.first_seq == 0) {
      return Malformed("malformed segment header");
    }
    out.is_header = true;
    return out;
  }
  return Malformed("neither a record nor a segment header");
}

Result<ParsedCheckpoint> ParseCheckpoint(std::string_view text) {
  if (text.empty() || text.back() != '\n' || text.find('\n') != text.size() - 1) {
    return Malformed("checkpoint is not exactly one line");
  }
  std::optional<SealedLine> sealed = SplitSealedLine(text.substr(0, text.size() - 1));
  if (!sealed) return Malformed("checkpoint is not a sealed line");
  ParsedCheckpoint out;
  out.sealed = *sealed;
  std::string_view s = sealed->body;
  Checkpoint& c = out.checkpoint;
  if (!Eat(s, "{\"sealkeep_audit_checkpoint\":1,\"segment\":") || !EatNumber(s, c.segment) ||
      !Eat(s, ",\"last_seq\":") || !EatNumber(s, c.last_seq) || !Eat(s, ",\"head_mac\":\"") ||
      !EatHexDigest(s, c.head_mac) || !Eat(s, "\",\"time\":\"") || c.segment == 0) {
    return Malformed("malformed checkpoint");
  }
  return out;
}

std::string SegmentFileName(std::uint64_t segment) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "audit-%08llu.log", static_cast<unsigned long long>(segment));
  return buf;
}

std::optional<std::uint64_t> ParseSegmentFileName(std::string_view name) {
  std::string_view s = name;
  if (!Eat(s, "audit-") || s.size() < 4 + 8 || s.substr(s.size() - 4) != ".log") return std::nullopt;
  s.remove_suffix(4);
  if (s.size() < 8) return std::nullopt;
  std::uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || ptr != s.data() + s.size() || n == 0) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  // One spelling per number: exactly 8 digits, or more without leading zeros.
  if (SegmentFileName(n) != name) return std::nullopt;
  return n;
}

}  // namespace sk::audit
