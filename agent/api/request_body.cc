#include "agent/api/request_body.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <set>
#include <string>

#include "crypto/locked_pool.h"
#include "crypto/wiping_allocator.h"

namespace sk::api {
namespace {

Status BadJson(const std::string& why) { return InvalidArgument(why, "bad_json"); }
Status BadRequest(const std::string& why) { return InvalidArgument(why, "bad_request"); }

bool IsSecretKey(std::string_view key) { return key == "value" || key == "value_b64"; }

// Recursive descent over the body. Errors are kept in `problem_` and stop the walk; the
// offset reported is where the walk stopped.
class Reader {
 public:
  Reader(std::string_view text, RequestBody& out, std::string_view raw_member = {})
      : s_(text), out_(out), raw_member_(raw_member) {}

  Status ParseTop() {
    SkipSpace();
    Json top;
    if (!ParseValue(top, /*depth=*/0, /*secret=*/false)) return Failure();
    SkipSpace();
    if (at_ != s_.size()) return Malformed();
    if (!top.is_object()) return BadJson("the body must be a JSON object");
    out_.json = std::move(top);
    return OkStatus();
  }

  // The whole text as one JSON value of any type, compacted into `out` (CompactJson).
  Status CompactTop(WipingBytes& out) {
    SkipSpace();
    if (!Compact(out, /*depth=*/0)) return Failure();
    SkipSpace();
    if (at_ != s_.size()) return Malformed();
    return OkStatus();
  }

 private:
  Status Failure() const { return problem_.empty() ? Malformed() : BadJson(problem_); }
  Status Malformed() const { return BadJson("malformed JSON at byte " + std::to_string(at_)); }
  bool Fail() { return false; }
  bool Fail(const std::string& why) {
    problem_ = why;
    return false;
  }

  void SkipSpace() {
    while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\t' || s_[at_] == '\n' || s_[at_] == '\r'))
      ++at_;
  }
  bool Peek(char c) const { return at_ < s_.size() && s_[at_] == c; }
  bool Literal(std::string_view word) {
    if (s_.substr(at_, word.size()) != word) return Fail();
    at_ += word.size();
    return true;
  }

  // `secret`: this value is a "value"/"value_b64" member's.
  bool ParseValue(Json& out, int depth, bool secret) {
    if (at_ >= s_.size()) return Fail();
    switch (s_[at_]) {
      case '{':
        return ParseObject(out, depth + 1);
      case '[':
        return ParseArray(out, depth + 1);
      case '"':
        return secret ? ParseSecret(out) : ParsePlainString(out);
      case 't':
        out = true;
        return Literal("true");
      case 'f':
        out = false;
        return Literal("false");
      case 'n':
        out = nullptr;
        return Literal("null");
      default:
        return ParseNumber(out);
    }
  }

  bool Deeper(int depth) {
    if (depth > kMaxJsonDepth)
      return Fail("JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    return true;
  }

  bool ParseObject(Json& out, int depth) {
    if (!Deeper(depth)) return false;
    ++at_;  // '{'
    out = Json::object();
    std::set<std::string, std::less<>> keys;
    SkipSpace();
    if (Peek('}')) {
      ++at_;
      return true;
    }
    for (;;) {
      SkipSpace();
      if (!Peek('"')) return Fail();
      WipingBytes raw;
      if (!DecodeString(raw)) return false;
      std::string key(raw.begin(), raw.end());
      if (!keys.insert(key).second) return Fail("duplicate key '" + key.substr(0, 64) + "'");
      SkipSpace();
      if (!Peek(':')) return Fail();
      ++at_;
      SkipSpace();
      Json member;
      const bool whole = depth == 1 && !raw_member_.empty() && key == raw_member_;
      if (!(whole ? ParseRaw(member, depth) : ParseValue(member, depth, IsSecretKey(key)))) return false;
      out[key] = std::move(member);
      SkipSpace();
      if (Peek(',')) {
        ++at_;
        continue;
      }
      if (Peek('}')) {
        ++at_;
        return true;
      }
      return Fail();
    }
  }

  bool ParseArray(Json& out, int depth) {
    if (!Deeper(depth)) return false;
    ++at_;  // '['
    out = Json::array();
    SkipSpace();
    if (Peek(']')) {
      ++at_;
      return true;
    }
    for (;;) {
      SkipSpace();
      Json element;
      if (!ParseValue(element, depth, false)) return false;
      out.push_back(std::move(element));
      SkipSpace();
      if (Peek(',')) {
        ++at_;
        continue;
      }
      if (Peek(']')) {
        ++at_;
        return true;
      }
      return Fail();
    }
  }

  bool ParsePlainString(Json& out) {
    WipingBytes raw;
    if (!DecodeString(raw)) return false;
    out = std::string(raw.begin(), raw.end());
    return true;
  }

  // The string goes to locked memory; the member holds the marker.
  bool ParseSecret(Json& out) {
    WipingBytes raw;
    if (!DecodeString(raw)) return false;
    Keep(raw, out);
    return true;
  }

  // The raw member: its value compacted into locked memory; the member holds the marker.
  bool ParseRaw(Json& out, int depth) {
    WipingBytes text;
    if (!Compact(text, depth)) return false;
    Keep(text, out);
    return true;
  }

  // `bytes` go to locked memory; the member `out` holds a marker naming them.
  void Keep(const WipingBytes& bytes, Json& out) {
    out_.secrets.push_back(SecretBytes::CopyFrom(bytes));
    out = Json::binary(Json::binary_t::container_type{}, static_cast<std::uint64_t>(out_.secrets.size() - 1));
  }

  // One value at at_, written compactly to `out`. Nothing of it goes anywhere else: keys
  // and strings are decoded into wiping buffers, and errors never quote them.
  bool Compact(WipingBytes& out, int depth) {
    if (at_ >= s_.size()) return Fail();
    switch (s_[at_]) {
      case '{':
        return CompactObject(out, depth + 1);
      case '[':
        return CompactArray(out, depth + 1);
      case '"': {
        WipingBytes text;
        if (!DecodeString(text)) return false;
        AppendQuoted(out, text);
        return true;
      }
      case 't':
        return Emit(out, "true");
      case 'f':
        return Emit(out, "false");
      case 'n':
        return Emit(out, "null");
      default: {
        std::string_view token;
        if (!ScanNumber(token)) return false;
        out.insert(out.end(), token.begin(), token.end());
        return true;
      }
    }
  }

  bool Emit(WipingBytes& out, std::string_view word) {
    if (!Literal(word)) return false;
    out.insert(out.end(), word.begin(), word.end());
    return true;
  }

  // Consumes `c` and copies it to `out` when it comes next.
  bool Copy(char c, WipingBytes& out) {
    if (!Peek(c)) return false;
    ++at_;
    out.push_back(static_cast<std::uint8_t>(c));
    return true;
  }

  bool CompactObject(WipingBytes& out, int depth) {
    if (!Deeper(depth)) return false;
    Copy('{', out);
    std::set<WipingBytes> keys;
    SkipSpace();
    if (Copy('}', out)) return true;
    for (;;) {
      SkipSpace();
      if (!Peek('"')) return Fail();
      const std::size_t key_at = at_;
      WipingBytes key;
      if (!DecodeString(key)) return false;
      AppendQuoted(out, key);
      // The key may be part of a secret: the message names only where it is.
      if (!keys.insert(std::move(key)).second) return Fail("duplicate key at byte " + std::to_string(key_at));
      SkipSpace();
      if (!Copy(':', out)) return Fail();
      SkipSpace();
      if (!Compact(out, depth)) return false;
      SkipSpace();
      if (Copy(',', out)) continue;
      if (Copy('}', out)) return true;
      return Fail();
    }
  }

  bool CompactArray(WipingBytes& out, int depth) {
    if (!Deeper(depth)) return false;
    Copy('[', out);
    SkipSpace();
    if (Copy(']', out)) return true;
    for (;;) {
      SkipSpace();
      if (!Compact(out, depth)) return false;
      SkipSpace();
      if (Copy(',', out)) continue;
      if (Copy(']', out)) return true;
      return Fail();
    }
  }

  // `text` (decoded UTF-8) as a JSON string literal with only the escapes JSON requires.
  static void AppendQuoted(WipingBytes& out, const WipingBytes& text) {
    static constexpr char kHex[] = "0123456789abcdef";
    out.push_back('"');
    for (std::uint8_t c : text) {
      switch (c) {
        case '"':
        case '\\':
          out.push_back('\\');
          out.push_back(c);
          break;
        case '\b':
          out.push_back('\\');
          out.push_back('b');
          break;
        case '\f':
          out.push_back('\\');
          out.push_back('f');
          break;
        case '\n':
          out.push_back('\\');
          out.push_back('n');
          break;
        case '\r':
          out.push_back('\\');
          out.push_back('r');
          break;
        case '\t':
          out.push_back('\\');
          out.push_back('t');
          break;
        default:
          if (c < 0x20) {
            for (char e : {'\\', 'u', '0', '0'}) out.push_back(static_cast<std::uint8_t>(e));
            out.push_back(static_cast<std::uint8_t>(kHex[c >> 4]));
            out.push_back(static_cast<std::uint8_t>(kHex[c & 0xF]));
          } else {
            out.push_back(c);
          }
      }
    }
    out.push_back('"');
  }

  static void AppendUtf8(WipingBytes& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<std::uint8_t>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<std::uint8_t>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<std::uint8_t>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<std::uint8_t>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<std::uint8_t>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<std::uint8_t>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<std::uint8_t>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<std::uint8_t>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<std::uint8_t>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<std::uint8_t>(0x80 | (cp & 0x3F)));
    }
  }

  bool Hex4(std::uint32_t& out) {
    if (at_ + 4 > s_.size()) {
      at_ = s_.size();
      return Fail();
    }
    out = 0;
    for (int i = 0; i < 4; ++i, ++at_) {
      char c = s_[at_];
      out <<= 4;
      if (c >= '0' && c <= '9') {
        out |= static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        out |= static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        out |= static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        return Fail();
      }
    }
    return true;
  }

  // A string literal at at_ (its opening quote), decoded into `out`.
  bool DecodeString(WipingBytes& out) {
    ++at_;  // '"'
    out.reserve(s_.find('"', at_) == std::string_view::npos ? s_.size() - at_ : s_.find('"', at_) - at_);
    while (at_ < s_.size()) {
      auto c = static_cast<unsigned char>(s_[at_]);
      if (c == '"') {
        ++at_;
        return true;
      }
      if (c < 0x20) return Fail();
      if (c != '\\') {
        out.push_back(c);
        ++at_;
        continue;
      }
      if (++at_ >= s_.size()) return Fail();
      char e = s_[at_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out.push_back(static_cast<std::uint8_t>(e));
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!Hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return Fail();  // a low surrogate alone
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t low = 0;
            if (s_.substr(at_, 2) != "\\u") return Fail();
            at_ += 2;
            if (!Hex4(low)) return false;
            if (low < 0xDC00 || low > 0xDFFF) return Fail();
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          --at_;
          return Fail();
      }
    }
    return Fail();  // no closing quote
  }

  // A number's token by the JSON grammar (no conversion).
  bool ScanNumber(std::string_view& token) {
    const std::size_t start = at_;
    if (Peek('-')) ++at_;
    auto digit = [&] { return at_ < s_.size() && s_[at_] >= '0' && s_[at_] <= '9'; };
    if (!digit()) return Fail();
    if (Peek('0')) {
      ++at_;
    } else {
      while (digit()) ++at_;
    }
    if (Peek('.')) {
      ++at_;
      if (!digit()) return Fail();
      while (digit()) ++at_;
    }
    if (Peek('e') || Peek('E')) {
      ++at_;
      if (Peek('+') || Peek('-')) ++at_;
      if (!digit()) return Fail();
      while (digit()) ++at_;
    }
    token = s_.substr(start, at_ - start);
    return true;
  }

  bool ParseNumber(Json& out) {
    const std::size_t start = at_;
    std::string_view token;
    if (!ScanNumber(token)) return false;
    const bool integer = token.find_first_of(".eE") == std::string_view::npos;
    if (integer && token.front() != '-') {
      std::uint64_t u = 0;
      if (std::from_chars(token.data(), token.data() + token.size(), u).ec == std::errc()) {
        out = u;
        return true;
      }
    } else if (integer) {
      std::int64_t i = 0;
      if (std::from_chars(token.data(), token.data() + token.size(), i).ec == std::errc()) {
        out = i;
        return true;
      }
    }
    const std::string copy(token);
    errno = 0;
    char* end = nullptr;
    double d = std::strtod(copy.c_str(), &end);
    if (end != copy.c_str() + copy.size() || !std::isfinite(d)) {
      at_ = start;
      return Fail();
    }
    out = d;
    return true;
  }

  std::string_view s_;
  RequestBody& out_;
  std::string_view raw_member_;
  std::size_t at_ = 0;
  std::string problem_;
};

}  // namespace

Result<RequestBody> ParseRequestBody(std::string_view text, std::string_view raw_member) {
  RequestBody out;
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    out.json = Json::object();
    return out;
  }
  if (!IsValidUtf8(AsBytes(text))) return BadJson("the body is not valid UTF-8");
  Reader reader(text, out, raw_member);
  SK_RETURN_IF_ERROR(reader.ParseTop());
  return out;
}

Result<SecretBytes> CompactJson(ByteView text) {
  if (!IsValidUtf8(text)) return BadJson("the JSON text is not valid UTF-8");
  RequestBody unused;
  Reader reader(AsChars(text), unused);
  WipingBytes out;
  SK_RETURN_IF_ERROR(reader.CompactTop(out));
  return SecretBytes::CopyFrom(out);
}

Result<std::optional<SecretBytes>> RawJsonField(RequestBody& body, const Json& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end()) return std::optional<SecretBytes>();
  if (!it->is_binary() || !it->get_binary().has_subtype() ||
      it->get_binary().subtype() >= body.secrets.size()) {
    return BadRequest("'" + std::string(key) + "' was not read as raw JSON");
  }
  return std::optional<SecretBytes>(std::move(body.secrets[it->get_binary().subtype()]));
}

Result<SecretBytes> ValueField(RequestBody& body, const Json& obj) {
  auto v = obj.find("value");
  auto b = obj.find("value_b64");
  if ((v == obj.end()) == (b == obj.end())) return BadRequest("give exactly one of 'value' and 'value_b64'");
  const Json& field = v != obj.end() ? *v : *b;
  if (!field.is_binary()) return BadRequest("the value must be a JSON string");
  const std::uint64_t index = field.get_binary().subtype();
  if (!field.get_binary().has_subtype() || index >= body.secrets.size()) {
    return BadRequest("the value must be a JSON string");
  }
  SecretBytes& text = body.secrets[index];
  if (v != obj.end()) return std::move(text);
  auto t = text.Expose();
  auto decoded = Base64Decode(std::string_view(reinterpret_cast<const char*>(t.data()), t.size()));
  if (!decoded) return BadRequest("'value_b64' is not valid base64");
  SecretBytes out = SecretBytes::CopyFrom(*decoded);
  SecureWipe(decoded->data(), decoded->size());
  return out;
}

}  // namespace sk::api
