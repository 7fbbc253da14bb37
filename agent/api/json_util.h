// Strict JSON for the API: request bodies are objects, at most 32 levels deep, valid
// UTF-8, no duplicate keys, no unknown fields; numbers that should be versions are
// non-negative integers. Parsing never throws out of this module.
//
// Secret values: ValueField() moves a "value"/"value_b64" field into SecretBytes and
// wipes the JSON string it came from; WriteSecretJson() builds a response body holding
// a value into a pre-sized string the caller wipes after sending (no reallocation leaves
// copies behind).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "crypto/bytes.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk::api {

using Json = nlohmann::json;

inline constexpr int kMaxJsonDepth = 32;

// reason bad_json (400) with what is wrong; an empty body parses as {}. The message never
// quotes the body (it may hold a value): a syntax error is "malformed JSON at byte N", N
// the offset (from 0) where parsing stopped.
Result<Json> ParseJsonObject(std::string_view body);
// Refuses fields other than `allowed` (reason bad_request, naming the field).
Status OnlyFields(const Json& obj, std::initializer_list<std::string_view> allowed);
// Optional fields of a given type; bad_request when present with the wrong type.
Result<std::optional<std::uint64_t>> U64Field(const Json& obj, std::string_view key);
Result<std::optional<std::string>> StringField(const Json& obj, std::string_view key);
// "value" (UTF-8 text) or "value_b64" (base64): exactly one must be present.
Result<SecretBytes> ValueField(Json& obj);

bool IsValidUtf8(ByteView bytes);
// Appends s as a JSON string literal (with quotes) to out.
void AppendJsonString(std::string& out, std::string_view s);

// Error body: {"error":{"code","message","request_id"}}.
std::string ErrorBody(std::string_view code, std::string_view message, std::string_view request_id,
                      const Json* extra = nullptr);

}  // namespace sk::api
