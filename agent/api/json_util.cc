#include "agent/api/json_util.h"

#include "agent/api/request_body.h"

#include <set>
#include <vector>

#include "crypto/locked_pool.h"

namespace sk::api {
namespace {

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
  SK_ASSIGN_OR_RETURN(RequestBody parsed, ParseRequestBody(body));
  return std::move(parsed.json);
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
