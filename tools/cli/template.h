// Templates of `sealkeep run --template SRC:DST` (docs/cli.md, "run"): text where
//   {{ secret "PATH" }}             is replaced by the value of PATH (text, as it is), and
//   {{ secret "PATH" "KEY.KEY2" }}  by a field of PATH's value read as a JSON object (dots
//                                   select nested objects; a string field as it is, any
//                                   other JSON value as compact JSON).
// Nothing else is special. Inside {{ }} only `secret` with one or two double-quoted
// arguments is accepted (no escapes in them); an unknown function, a missing quote, or a
// "{{" without its "}}" is an error naming the line (from 1). A "}}" outside an action is
// text (a JSON file ends objects that way).
//
// ParseTemplate is a pure function over the template's bytes (no values in it); Render
// fills it from values the caller fetched and returns the text in locked memory. A
// template is at most kMaxTemplateBytes.
//
// Thread-safety: plain functions and values.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk::cli {

inline constexpr std::size_t kMaxTemplateBytes = 1024 * 1024;

struct TemplatePart {
  std::string literal;   // copied as it is when path is empty
  std::string path;      // a secret's path
  std::string json_key;  // "" for the whole value
  std::size_t line = 0;  // where the action starts
};

struct Template {
  std::vector<TemplatePart> parts;
  std::vector<std::string> Paths() const;  // each path once, in order of first use
};

// Errors: bad_template (kInvalidArgument), "line N: ...".
Result<Template> ParseTemplate(std::string_view text);

// `value_of(path)` gives a value the caller holds (Paths() all fetched). Errors:
// bad_template "line N: ..." when a value is not text where text is needed, is not a
// JSON object with the key, or is missing.
using ValueLookup = std::function<const SecretBytes*(const std::string& path)>;
Result<SecretBytes> RenderTemplate(const Template& t, const ValueLookup& value_of);

}  // namespace sk::cli
