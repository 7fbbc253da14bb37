#include "agent/api/json_util.h"

#include <set>
#include <vector>

#include "crypto/locked_pool.h"

namespace sk::api {
namespace {

Status BadJson(const std::string& why) { return InvalidArgument(why, "bad_json"); }
Status BadRequest(const std::string& why) { return InvalidArgument(why, "bad_request"); }

}  // namespace

bool IsValidUtf8(ByteView b) {
  std::size_t i = 0;
  while (i < b.size()) {
    std::uint8_t c = b[i];
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= b.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      if ((b[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b[i + k] & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;  // overlong, out of range, or a surrogate
    }
    i += n + 1;
  }
  return true;
}

Result<Json> ParseJsonObject(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return Json::object();
  if (!IsValidUtf8(AsBytes(body))) return BadJson("the body is not valid UTF-8");
  // Depth and duplicate keys are checked while parsing, so a hostile body never builds a
  // deep tree: the callback aborts at the first violation.
  std::vector<std::set<std::string>> keys;
  std::string problem;
  auto cb = [&](int depth, Json::parse_event_t ev, Json& parsed) -> bool {
    if (!problem.empty()) return false;
    if (depth > kMaxJsonDepth) {
      problem = "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
      throw std::runtime_error(problem);
    }
    switch (ev) {
      case Json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        keys.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!keys.back().insert(parsed.get<std::string>()).second) {
          problem = "duplicate key '" + parsed.get<std::string>().substr(0, 64) + "'";
          throw std::runtime_error(problem);
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    Json j = Json::parse(body.begin(), body.end(), cb, /*allow_exceptions=*/true, /*ignore_comments=*/false);
    if (!j.is_object()) return BadJson("the body must be a JSON object");
    return j;
  } catch (const Json::parse_error& e) {
    if (!problem.empty()) return BadJson(problem);
    // Only the offset: nlohmann's what() quotes the token it stopped in ("last read:
    // '...'"), which for an unterminated or control-character-bearing string is the
    // secret value itself.
    // e.byte counts from 1 (and counts the end of input as a byte): report the offset,
    // from 0, of the byte the parser stopped at.
    return BadJson("malformed JSON at byte " + std::to_string(e.byte > 0 ? e.byte - 1 : 0));
  } catch (const std::exception&) {
    if (!problem.empty()) return BadJson(problem);
    return BadJson("malformed JSON");  // e.g. a number out of range; what() quotes it
  }
}

Status OnlyFields(const Json& obj, std::initializer_list<std::string_view> allowed) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool ok = false;
    for (std::string_view a : allowed) ok |= it.key() == a;
    if (!ok) return BadRequest("unknown field '" + it.key().substr(0, 64) + "'");
  }
  return OkStatus();
}

Result<std::optional<std::uint64_t>> U64Field(const Json& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<std::uint64_t>();
  if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<std::int64_t>() >= 0)) {
    return BadRequest("'" + std::string(key) + "' must be a non-negative integer");
  }
  return std::optional<std::uint64_t>(it->get<std::uint64_t>());
}

Result<std::optional<std::string>> StringField(const Json& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return BadRequest("'" + std::string(key) + "' must be a string");
  return std::optional<std::string>(it->get<std::string>());
}

Result<SecretBytes> ValueField(Json& obj) {
  auto v = obj.find("value");
  auto b = obj.find("value_b64");
  if ((v == obj.end()) == (b == obj.end())) return BadRequest("give exactly one of 'value' and 'value_b64'");
  Json& field = v != obj.end() ? *v : *b;
  if (!field.is_string()) return BadRequest("the value must be a JSON string");
  std::string& text = field.get_ref<std::string&>();
  Result<SecretBytes> out = SecretBytes();
  if (v != obj.end()) {
    out = SecretBytes::CopyFrom(AsBytes(text));
  } else {
    auto decoded = Base64Decode(text);
    if (!decoded) {
      out = BadRequest("'value_b64' is not valid base64");
    } else {
      out = SecretBytes::CopyFrom(*decoded);
      SecureWipe(decoded->data(), decoded->size());
    }
  }
  SecureWipe(text.data(), text.size());
  return out;
}

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
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
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

std::string ErrorBody(std::string_view code, std::string_view message, std::string_view request_id,
                      const Json* extra) {
  Json err = {{"code", code}, {"message", message}, {"request_id", request_id}};
  if (extra != nullptr) {
    for (auto it = extra->begin(); it != extra->end(); ++it) err[it.key()] = it.value();
  }
  return Json{{"error", err}}.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace sk::api
