// The parser of request bodies: strict JSON (RFC 8259) into nlohmann::json, except for the
// secret values, which never sit in a std::string or a parser's buffer.
//
// Every member named "value" or "value_b64" whose value is a string (at any depth: a PUT's
// body, each op of a txn) is decoded into a buffer that is wiped whenever it is given back,
// then copied into locked memory (RequestBody::secrets), and the member holds instead a
// JSON *binary* value, empty, whose subtype is the index into `secrets`: a marker that no
// JSON text can produce, so a caller cannot forge a reference to another op's value.
// ValueField() takes the value out. No other string is treated as secret.
//
// Rules (the same as ever for clients): the body is valid UTF-8; an empty (or blank) body is
// {}; the top level is an object; at most kMaxJsonDepth levels of nesting; no duplicate key
// in an object; strings have no raw control characters and only the escapes of RFC 8259
// (\u escapes of surrogates must pair); numbers follow the JSON grammar: an integer without
// a sign that fits 64 bits is unsigned, a negative one that fits is signed, anything else
// is a double (out of range: malformed). Errors are reason bad_json with a message that
// names a byte offset (from 0) or the rule, never a byte of the body.
//
// A caller may name one top-level member as a raw member (KV v2's "data" object, kv2.h):
// its value, whatever its type, is checked by the same rules and kept whole as JSON text
// in `secrets`, behind the same marker; none of its bytes reaches a std::string. The text
// is written compactly (CompactJson below); RawJsonField() takes it out.
//
// Pure (no I/O, no globals): the fuzzer (tests/fuzz/fuzz_api_request.cc) calls it on any bytes.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "agent/api/json_util.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk::api {

struct RequestBody {
  Json json;
  std::vector<SecretBytes> secrets;  // the "value"/"value_b64" strings and the raw member, in body order
};

// `raw_member`: the name of a top-level member taken whole as JSON text ("" = none).
Result<RequestBody> ParseRequestBody(std::string_view body, std::string_view raw_member = {});

// The value an op carries: "value" (UTF-8 text, as is) or "value_b64" (base64, decoded):
// exactly one of them must be present, as a string. bad_request otherwise.
Result<SecretBytes> ValueField(RequestBody& body, const Json& obj);

// The raw member `key` of `obj` (ParseRequestBody's raw_member) as compact JSON text;
// nullopt when `obj` has no such member. bad_request when it holds anything but the marker.
Result<std::optional<SecretBytes>> RawJsonField(RequestBody& body, const Json& obj, std::string_view key);

// The compact form of one JSON value (ParseRequestBody's rules, any type at the top), into
// locked memory: no whitespace between tokens; strings re-escaped with only what JSON
// requires (\" \\ and control characters: \b \f \n \r \t, else \u00XX; everything else,
// non-ASCII included, as UTF-8); object members in the order given; numbers as written.
// Compacting its own output gives it back unchanged. bad_json as ParseRequestBody.
Result<SecretBytes> CompactJson(ByteView text);

}  // namespace sk::api
