// Internals of the KV v2 facade (kv2.h): the handlers, split by what they do to the store
// (kv2_read.cc: reads and listings; kv2_write.cc: changes), and the pieces of Vault's
// answers they share (kv2.cc).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/api/handlers.h"
#include "agent/api/kv2.h"

namespace sk::api::kv2 {

// Vault's time format (RFC 3339, UTC, milliseconds): "2024-05-01T12:00:00.123Z"; "" for 0.
std::string Rfc3339(std::uint64_t ms);
// custom_metadata: the labels as an object, null when there are none.
Json LabelsOrNull(const secrets::Labels& labels);

// Vault's envelope as text: everything before the `data` value, and everything after it.
std::string EnvelopeHead(const std::string& request_id);
std::string EnvelopeTail(const Json& warnings);
// A 200 answer: the envelope around `data`; `warnings` null or an array of strings.
Reply Envelope(const Context& ctx, const Json& data, const Json& warnings = nullptr);
// A 204 answer with no body (Vault's answer to deletes and destroys).
Reply NoContent();

// What KV clients see as missing: 404 {"errors":[]}.
Status Missing(const std::string& what);
Status BadRequest(const std::string& why);
// A path all of whose versions are destroyed: what DELETE metadata leaves, missing to KV.
bool AllDestroyed(const std::vector<secrets::VersionReport>& versions);
// The path's head (0 when it does not exist). Not the number of versions: a rotation's
// pending version, or an aborted one, sits above the head (docs/rotation.md).
std::uint64_t HeadVersion(Context& ctx, const std::string& path);
// `path` (ValidatePath), as a KV failure.
Status CheckPath(const std::string& path);

Reply Read(Context& ctx);            // kKvRead
Reply Metadata(Context& ctx);        // kKvMetadata
Reply List(Context& ctx);            // kKvList
Reply Write(Context& ctx);           // kKvWrite
Reply ChangeVersions(Context& ctx);  // kKvDelete, kKvUndelete, kKvDestroy
Reply DestroyAll(Context& ctx);      // kKvDestroyAll
// kKvMetadata's POST: sealkeep keeps no per-path KV settings, so only the settings it
// already has are accepted (a 204 that changes nothing); any other is a 400 naming it.
Reply MetadataSettings(Context& ctx);

}  // namespace sk::api::kv2
