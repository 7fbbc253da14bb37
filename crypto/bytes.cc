#include "crypto/bytes.h"

#include <algorithm>

namespace sk {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int B64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::string HexEncode(ByteView bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::uint8_t b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xF]);
  }
  return out;
}

std::optional<Bytes> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  Bytes out(hex.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = HexValue(hex[2 * i]);
    int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<std::uint8_t>((hi << 4) | lo);
  }
  return out;
}

std::string Base64Encode(ByteView bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    std::uint32_t v = (std::uint32_t{bytes[i]} << 16) | (std::uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(kB64[(v >> 6) & 63]);
    out.push_back(kB64[v & 63]);
  }
  std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t v = std::uint32_t{bytes[i]} << 16;
    if (rest == 2) v |= std::uint32_t{bytes[i + 1]} << 8;
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kB64[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::optional<Bytes> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  Bytes out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    int pad = 0;
    std::uint32_t v = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      char c = text[i + j];
      int d;
      if (c == '=' && last && j >= 2) {
        d = 0;
        ++pad;
      } else {
        if (pad > 0) return std::nullopt;  // data after padding
        d = B64Value(c);
        if (d < 0) return std::nullopt;
      }
      v = (v << 6) | static_cast<std::uint32_t>(d);
    }
    out.push_back(static_cast<std::uint8_t>(v >> 16));
    if (pad < 2) out.push_back(static_cast<std::uint8_t>(v >> 8));
    if (pad < 1) out.push_back(static_cast<std::uint8_t>(v));
  }
  return out;
}

void ByteWriter::U16(std::uint16_t v) {
  out_.push_back(static_cast<std::uint8_t>(v >> 8));
  out_.push_back(static_cast<std::uint8_t>(v));
}
void ByteWriter::U32(std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out_.push_back(static_cast<std::uint8_t>(v >> s));
}
void ByteWriter::U64(std::uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) out_.push_back(static_cast<std::uint8_t>(v >> s));
}
void ByteWriter::Var16(ByteView b) {
  U16(static_cast<std::uint16_t>(b.size()));
  Raw(b);
}
void ByteWriter::Var32(ByteView b) {
  U32(static_cast<std::uint32_t>(b.size()));
  Raw(b);
}

bool ByteReader::Raw(std::size_t n, ByteView& v) {
  if (!ok_ || in_.size() - pos_ < n) return Fail();
  v = in_.subspan(pos_, n);
  pos_ += n;
  return true;
}
bool ByteReader::U8(std::uint8_t& v) {
  ByteView b;
  if (!Raw(1, b)) return false;
  v = b[0];
  return true;
}
bool ByteReader::U16(std::uint16_t& v) {
  ByteView b;
  if (!Raw(2, b)) return false;
  v = static_cast<std::uint16_t>((b[0] << 8) | b[1]);
  return true;
}
bool ByteReader::U32(std::uint32_t& v) {
  ByteView b;
  if (!Raw(4, b)) return false;
  v = 0;
  for (std::uint8_t x : b) v = (v << 8) | x;
  return true;
}
bool ByteReader::U64(std::uint64_t& v) {
  ByteView b;
  if (!Raw(8, b)) return false;
  v = 0;
  for (std::uint8_t x : b) v = (v << 8) | x;
  return true;
}
bool ByteReader::Var16(ByteView& v, std::size_t cap) {
  std::uint16_t n = 0;
  if (!U16(n)) return false;
  if (n > cap) return Fail();
  return Raw(n, v);
}
bool ByteReader::Var32(ByteView& v, std::size_t cap) {
  std::uint32_t n = 0;
  if (!U32(n)) return false;
  if (n > cap) return Fail();
  return Raw(n, v);
}
bool ByteReader::Var16(std::string& s, std::size_t cap) {
  ByteView v;
  if (!Var16(v, cap)) return false;
  s.assign(AsChars(v));
  return true;
}

}  // namespace sk
