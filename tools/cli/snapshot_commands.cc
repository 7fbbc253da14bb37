// `sealkeep txn FILE` and `sealkeep snapshot create|show|restore`: the all-or-nothing
// operations of docs/design.md, through a running sealkeepd (docs/api.md: /v1/txn,
// /v1/snapshots).
#include <cstdio>
#include <string>
#include <vector>

#include "tools/cli/agent_client.h"
#include "tools/cli/command.h"

namespace sk::cli {
namespace {

constexpr std::chrono::milliseconds kWriteTimeout{60'000};
constexpr std::chrono::milliseconds kRestoreTimeout{600'000};  // verifies every target version

struct TxnFlags {
  std::string file;
  std::string idempotency_key;
  std::string name;
  std::string prefix;
  CLI::Option* prefix_opt = nullptr;
};

TxnFlags& Flags() {
  static TxnFlags flags;
  return flags;
}

// "  put db/pw: version 3" for each op result.
void PrintResults(const Json& answer) {
  for (const auto& r : answer.value("results", Json::array())) {
    std::printf("  %s %s: version %llu\n", Str(r, "op").c_str(), Str(r, "path").c_str(),
                static_cast<unsigned long long>(U64(r, "version")));
  }
}

void PrintVersions(const Json& versions) {
  std::vector<std::vector<std::string>> rows = {{"PATH", "VERSION"}};
  if (versions.is_object()) {
    for (const auto& [path, v] : versions.items()) {
      rows.push_back({path, v.is_number_unsigned() ? std::to_string(v.get<std::uint64_t>()) : v.dump()});
    }
  }
  PrintTable(rows);
}

void RunTxn() {
  auto& f = Flags();
  HttpRequest req{"POST", "/v1/txn", {}, kWriteTimeout};
  if (!f.idempotency_key.empty()) {
    for (char c : f.idempotency_key) {
      if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f) {
        Fail(InvalidArgument("--idempotency-key must be printable, without spaces", "bad_request"));
      }
    }
    req.headers.emplace_back("Idempotency-Key", f.idempotency_key);
  }
  // The file holds values: it stays in locked memory and is sent as it is.
  SecretBytes body = ReadSecretInput(f.file);
  req.body = std::string_view(reinterpret_cast<const char*>(body.Expose().data()), body.size());
  HttpResponse r = CallOrFail(req);
  if (Globals().json) return PrintBody(r);
  Json j = ParseBody(r);
  std::size_t ops = j.value("results", Json::array()).size();
  if (j.value("replayed", false)) {
    std::printf(
        "txn %s: replayed: the first result of this idempotency key; nothing applied now (seq %llu)\n",
        ShortTxn(j).c_str(), static_cast<unsigned long long>(U64(j, "seq")));
  } else {
    std::printf("txn %s: %zu op%s applied (seq %llu)\n", ShortTxn(j).c_str(), ops, ops == 1 ? "" : "s",
                static_cast<unsigned long long>(U64(j, "seq")));
  }
  PrintResults(j);
}

void RunCreate() {
  auto& f = Flags();
  Json body = {{"name", CheckedSnapshotName(f.name)}};
  if (f.prefix_opt->count() > 0) body["prefix"] = CheckedPrefix(f.prefix);
  std::string text = body.dump();
  HttpResponse r = CallOrFail({"POST", "/v1/snapshots", text, kWriteTimeout});
  if (Globals().json) return PrintBody(r);
  Json j = ParseBody(r);
  Json versions = j.value("versions", Json::object());
  std::printf("snapshot %s: %zu path%s (txn %s)\n", Str(j, "name").c_str(), versions.size(),
              versions.size() == 1 ? "" : "s", ShortTxn(j).c_str());
  if (!versions.empty()) PrintVersions(versions);
}

void RunShow() {
  HttpResponse r = CallOrFail({"GET", "/v1/snapshots/" + CheckedSnapshotName(Flags().name)});
  if (Globals().json) return PrintBody(r);
  Json j = ParseBody(r);
  std::string prefix = Str(j, "prefix");
  std::printf("snapshot %s: prefix %s, created %s, %s\n", Str(j, "name").c_str(),
              prefix.empty() ? "(all paths)" : prefix.c_str(), FormatTimeMs(U64(j, "created_ms")).c_str(),
              j.value("verifies", false) ? "verifies" : "DOES NOT VERIFY");
  PrintVersions(j.value("versions", Json::object()));
}

void RunRestore() {
  std::string target = "/v1/snapshots/" + CheckedSnapshotName(Flags().name) + "/restore";
  HttpResponse r = CallOrFail({"POST", target, "{}", kRestoreTimeout}, PrintRestoreRefusal);
  if (Globals().json) return PrintBody(r);
  Json j = ParseBody(r);
  std::size_t n = j.value("results", Json::array()).size();
  std::printf("snapshot %s restored: %zu path%s (txn %s)\n", Flags().name.c_str(), n, n == 1 ? "" : "s",
              ShortTxn(j).c_str());
  PrintResults(j);
}

void Add(CLI::App& app) {
  auto& f = Flags();
  auto* txn = app.add_subcommand(
      "txn",
      "Apply the ops of FILE all-or-nothing (POST /v1/txn): FILE ('-': stdin) holds {\"ops\":[...]} as in "
      "docs/api.md and is sent as it is; values belong in that file, never on the command line. A failing op "
      "changes nothing and exits with its code (4 for a conflict)");
  txn->add_option("FILE", f.file, "The transaction's JSON file, or - for stdin")->required();
  txn->add_option(
      "--idempotency-key", f.idempotency_key,
      "Sent as the Idempotency-Key header: a retry with the same key returns the first result and "
      "applies nothing twice (keys last 24 hours)");
  txn->callback(RunTxn);

  auto* snap =
      app.add_subcommand("snapshot", "Release tags: a sealed map path -> version, and its atomic restore");
  snap->require_subcommand(1);
  auto* create = snap->add_subcommand(
      "create", "Tag the current head version of every path under --prefix as NAME (POST /v1/snapshots)");
  create->add_option("NAME", f.name, "Snapshot name: 1-128 characters of [A-Za-z0-9._-]")->required();
  f.prefix_opt =
      create->add_option("--prefix", f.prefix, "Only paths under this prefix (default: every path)");
  create->callback(RunCreate);

  auto* show = snap->add_subcommand("show",
                                    "Show a snapshot's paths and versions, and whether its seal verifies "
                                    "(GET /v1/snapshots/NAME)");
  show->add_option("NAME", f.name, "Snapshot name")->required();
  show->callback(RunShow);

  auto* restore = snap->add_subcommand("restore",
                                       "Roll every path of NAME back to its tagged version in one "
                                       "transaction (POST /v1/snapshots/NAME/restore), "
                                       "only if every target version verifies; otherwise nothing changes, "
                                       "each failing path is listed with its "
                                       "reason, and the exit code is 4");
  restore->add_option("NAME", f.name, "Snapshot name")->required();
  restore->callback(RunRestore);
}

const Registrar kRegistrar(Add, 30);

}  // namespace
}  // namespace sk::cli
