// Vault's KV v2 HTTP API on sealkeep's socket, so Vault clients (hvac, node-vault...) work
// unchanged (docs/vault-compat.md). A facade over the same service, policy, journal and
// audit as the native routes; it adds no state of its own.
//
// Routes, under /v1/ and the mount of the config (`[agent] kv_mount`, "secret" by default,
// one path segment; "" turns the facade off and its targets answer 404 no_route):
//   GET    {mount}/data/{path}[?version=n]   kKvRead       (read)
//   POST   {mount}/data/{path}  (PUT too)    kKvWrite      (write) {"data":{...},"options":{"cas":n}}
//   DELETE {mount}/data/{path}               kKvDelete     (delete) the latest version
//   POST   {mount}/delete/{path}             kKvDelete     (delete) {"versions":[...]}
//   POST   {mount}/undelete/{path}           kKvUndelete   (delete) {"versions":[...]}
//   POST   {mount}/destroy/{path}            kKvDestroy    (destroy) {"versions":[...]}
//   GET    {mount}/metadata/{path}           kKvMetadata   (read)
//   POST   {mount}/metadata/{path}  (PUT too) kKvMetadata   (write) only settings sealkeep has: 204
//   LIST   {mount}/metadata/{path}           kKvList       (list, per path), also GET ?list=true
//   DELETE {mount}/metadata/{path}           kKvDestroyAll (destroy) every version
//   GET    {mount}/config, /v1/sys/health, /v1/sys/mounts   kKvInfo (no policy check)
//   anything else under {mount}/data|metadata|delete|undelete|destroy|config|subkeys:
//                                            kKvUnsupported (405 or 404 in Vault's shape)
//
// Data: a write stores the `data` object as compact JSON text (request_body.h: it goes from
// the socket to locked memory whole) labelled kKvFormatLabel=kKvFormatJson, the path's
// other labels kept; a read gives such a version back as the object, and any other value
// as {"value": text} ({"value_b64": base64} when it is not UTF-8). Answers use Vault's
// envelope and errors ({"errors":[...]}, 404 {"errors":[]} for what is missing); a path
// whose every version is destroyed (what DELETE metadata leaves: sealkeep keeps the sealed
// history) is missing to KV clients. Identity is the kernel's: X-Vault-Token is ignored
// (noted in the audit record's route), never an authentication.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "agent/api/router.h"

namespace sk::api {

struct ApiResponse;
struct Context;
struct Reply;

inline constexpr std::string_view kKvFormatLabel = "sealkeep.format";
inline constexpr std::string_view kKvFormatJson = "kv2-json";

// The KV shapes of a target for which MatchRoute found no native route: `path` is the
// target's path (no query), `query` its decoded query. nullopt: not a KV target. The match
// carries the mount the target names (checked against the config by KvMountServed) and,
// as its path, the secret path (a listing's prefix without its trailing '/'; for kKvInfo
// and kKvUnsupported the Vault path after /v1/). Pure.
std::optional<RouteResult> MatchKvRoute(std::string_view method, std::string_view path,
                                        std::map<std::string, std::string> query);

bool IsKvRoute(Route r);
// Whether the facade serves `m`: it is on (`mount` not empty) and, unless `m` is one of
// /v1/sys/health and /v1/sys/mounts, `m` names that mount.
bool KvMountServed(const RouteMatch& m, std::string_view mount);

// Runs a KV route (Api::Dispatch): its own policy checks (the same capabilities, labels and
// OpGuards as the native routes), the change record before a change, then the service.
Reply HandleKv(Context& ctx);
// The HTTP answer to a KV route's Reply (Api's ToHttp for KV routes): the answer as built,
// or Vault's error body for `error` (with `error_extra`, when set, as the `data` of a
// Vault envelope sent with the error's status: a deleted version's metadata).
ApiResponse KvToHttp(const Context& ctx, Reply reply);

}  // namespace sk::api
