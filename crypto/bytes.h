// Byte views, hex, and a checked big-endian writer/reader for sealkeep's binary formats.
//
// ByteWriter appends fixed-width big-endian integers and length-prefixed fields.
// ByteReader reads them back and never reads past its span: every getter returns
// false (and poisons the reader) on a short input, so a parser checks ok() once at
// the end. Neither holds secrets; they are for public, authenticated encodings.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sk {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline ByteView AsBytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view AsChars(ByteView b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }
inline Bytes ToBytes(std::string_view s) {
  ByteView v = AsBytes(s);
  return {v.begin(), v.end()};
}

std::string HexEncode(ByteView bytes);
// Lower- or upper-case hex, even length; nullopt otherwise.
std::optional<Bytes> HexDecode(std::string_view hex);

std::string Base64Encode(ByteView bytes);
// Standard alphabet with padding; nullopt on any invalid character or length.
std::optional<Bytes> Base64Decode(std::string_view text);

class ByteWriter {
 public:
  void U8(std::uint8_t v) { out_.push_back(v); }
  void U16(std::uint16_t v);
  void U32(std::uint32_t v);
  void U64(std::uint64_t v);
  void Raw(ByteView b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void Raw(std::string_view s) { Raw(AsBytes(s)); }
  // A u16 length followed by the bytes; the caller has checked size <= 65535.
  void Var16(ByteView b);
  void Var16(std::string_view s) { Var16(AsBytes(s)); }
  // A u32 length followed by the bytes.
  void Var32(ByteView b);

  const Bytes& bytes() const& { return out_; }
  Bytes&& Take() && { return std::move(out_); }

 private:
  Bytes out_;
};

class ByteReader {
 public:
  explicit ByteReader(ByteView in) : in_(in) {}
  bool U8(std::uint8_t& v);
  bool U16(std::uint16_t& v);
  bool U32(std::uint32_t& v);
  bool U64(std::uint64_t& v);
  // Exactly n bytes.
  bool Raw(std::size_t n, ByteView& v);
  template <std::size_t N>
  bool Fixed(std::array<std::uint8_t, N>& v) {
    ByteView b;
    if (!Raw(N, b)) return false;
    std::copy(b.begin(), b.end(), v.begin());
    return true;
  }
  // u16/u32 length then bytes; fails when the length exceeds `cap` or the input.
  bool Var16(ByteView& v, std::size_t cap = 0xFFFF);
  bool Var32(ByteView& v, std::size_t cap);
  bool Var16(std::string& s, std::size_t cap = 0xFFFF);

  bool ok() const { return ok_; }
  std::size_t remaining() const { return ok_ ? in_.size() - pos_ : 0; }
  bool AtEnd() const { return ok_ && pos_ == in_.size(); }

 private:
  bool Fail() {
    ok_ = false;
    return false;
  }
  ByteView in_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace sk
