#include "tools/cli/template.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

#include "crypto/locked_pool.h"

namespace sk::cli {
namespace {

Status Bad(std::size_t line, const std::string& why) {
  return InvalidArgument("line " + std::to_string(line) + ": " + why, "bad_template");
}

std::size_t LineAt(std::string_view text, std::size_t pos, std::size_t from_line, std::size_t from_pos) {
  return from_line +
         static_cast<std::size_t>(std::count(text.begin() + static_cast<std::ptrdiff_t>(from_pos),
                                             text.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
}

// Splits the inside of {{ }} into words: bare words and "quoted" strings.
Result<std::vector<std::pair<std::string, bool>>> Words(std::string_view s, std::size_t line) {
  std::vector<std::pair<std::string, bool>> words;  // (text, quoted)
  std::size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
    } else if (c == '"') {
      std::size_t end = s.find('"', i + 1);
      if (end == std::string_view::npos) return Bad(line, "a quoted argument has no closing '\"'");
      std::string arg(s.substr(i + 1, end - i - 1));
      if (arg.find('\\') != std::string::npos || arg.find('\n') != std::string::npos) {
        return Bad(line, "a quoted argument holds no backslash or newline");
      }
      words.emplace_back(std::move(arg), true);
      i = end + 1;
    } else {
      std::size_t end = i;
      while (end < s.size() && s[end] != ' ' && s[end] != '\t' && s[end] != '\n' && s[end] != '\r' &&
             s[end] != '"') {
        ++end;
      }
      words.emplace_back(std::string(s.substr(i, end - i)), false);
      i = end;
    }
  }
  return words;
}

Result<TemplatePart> Action(std::string_view inside, std::size_t line) {
  SK_ASSIGN_OR_RETURN(auto words, Words(inside, line));
  if (words.empty()) return Bad(line, "an empty {{ }}");
  if (words[0].second || words[0].first != "secret") {
    std::string name = words[0].first.substr(0, 40);
    return Bad(line, "unknown function '" + name + "' (the only one is: secret \"PATH\" [\"JSON.KEY\"])");
  }
  if (words.size() < 2 || words.size() > 3) {
    return Bad(line, "secret takes a path and an optional JSON key: {{ secret \"PATH\" [\"KEY\"] }}");
  }
  for (std::size_t i = 1; i < words.size(); ++i) {
    if (!words[i].second) return Bad(line, "the arguments of secret are double-quoted");
  }
  TemplatePart part;
  part.path = words[1].first;
  if (words.size() == 3) {
    part.json_key = words[2].first;
    if (part.json_key.empty()) return Bad(line, "an empty JSON key");
  }
  part.line = line;
  return part;
}

// Wipes every string in a parsed value before it is freed.
void WipeJson(nlohmann::json& j) {
  if (j.is_string()) {
    auto& s = j.get_ref<std::string&>();
    SecureWipe(s.data(), s.size());
  } else if (j.is_structured()) {
    for (auto& child : j) WipeJson(child);
  }
}

void Append(SecretBytes& out, std::size_t& used, std::string_view bytes) {
  if (used + bytes.size() > out.size()) {
    SecretBytes bigger(std::max(out.size() * 2, used + bytes.size()));
    if (used > 0) std::memcpy(bigger.Expose().data(), out.Expose().data(), used);
    out = std::move(bigger);
  }
  if (!bytes.empty()) std::memcpy(out.Expose().data() + used, bytes.data(), bytes.size());
  used += bytes.size();
}

bool IsText(std::span<const std::uint8_t> v) {
  return std::find(v.begin(), v.end(), std::uint8_t{0}) == v.end();
}

}  // namespace

std::vector<std::string> Template::Paths() const {
  std::vector<std::string> out;
  for (const TemplatePart& p : parts) {
    if (!p.path.empty() && std::find(out.begin(), out.end(), p.path) == out.end()) out.push_back(p.path);
  }
  return out;
}

Result<Template> ParseTemplate(std::string_view text) {
  if (text.size() > kMaxTemplateBytes) {
    return InvalidArgument("a template is at most " + std::to_string(kMaxTemplateBytes) + " bytes",
                           "bad_template");
  }
  Template t;
  std::size_t pos = 0, line = 1, line_pos = 0;
  while (pos < text.size()) {
    std::size_t open = text.find("{{", pos);
    if (open == std::string_view::npos) {
      t.parts.push_back({std::string(text.substr(pos)), "", "", line});
      break;
    }
    if (open > pos) t.parts.push_back({std::string(text.substr(pos, open - pos)), "", "", line});
    line = LineAt(text, open, line, line_pos);
    line_pos = open;
    std::size_t close = text.find("}}", open + 2);
    if (close == std::string_view::npos) return Bad(line, "'{{' without a closing '}}'");
    std::string_view inside = text.substr(open + 2, close - open - 2);
    if (inside.find("{{") != std::string_view::npos) return Bad(line, "'{{' inside '{{ }}'");
    SK_ASSIGN_OR_RETURN(TemplatePart part, Action(inside, line));
    t.parts.push_back(std::move(part));
    pos = close + 2;
    line = LineAt(text, pos, line, line_pos);
    line_pos = pos;
  }
  return t;
}

Result<SecretBytes> RenderTemplate(const Template& t, const ValueLookup& value_of) {
  SecretBytes out(4096);
  std::size_t used = 0;
  for (const TemplatePart& p : t.parts) {
    if (p.path.empty()) {
      Append(out, used, p.literal);
      continue;
    }
    const SecretBytes* v = value_of(p.path);
    if (v == nullptr) return Bad(p.line, "secret '" + p.path + "' was not fetched");
    std::span<const std::uint8_t> bytes = v->Expose();
    if (!IsText(bytes)) return Bad(p.line, "secret '" + p.path + "' is binary (holds a NUL byte)");
    std::string_view value(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (p.json_key.empty()) {
      Append(out, used, value);
      continue;
    }
    nlohmann::json doc = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
    const nlohmann::json* at = &doc;
    std::size_t from = 0;
    bool found = doc.is_object();
    while (found) {
      std::size_t dot = p.json_key.find('.', from);
      std::string key = p.json_key.substr(from, dot == std::string::npos ? std::string::npos : dot - from);
      auto it = at->find(key);
      if (!at->is_object() || it == at->end()) {
        found = false;
        break;
      }
      at = &*it;
      if (dot == std::string::npos) break;
      from = dot + 1;
    }
    if (found) {
      if (at->is_string()) {
        Append(out, used, at->get_ref<const std::string&>());
      } else {
        std::string dumped = at->dump();
        Append(out, used, dumped);
        SecureWipe(dumped.data(), dumped.size());
      }
    }
    const bool object = doc.is_object();
    WipeJson(doc);
    if (!found) {
      return Bad(p.line, object ? "secret '" + p.path + "' has no JSON key '" + p.json_key + "'"
                                : "secret '" + p.path + "' is not a JSON object");
    }
  }
  out.Truncate(used);
  return out;
}

}  // namespace sk::cli
