#include "tests/agent/service_fixture.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

#include "agent/journal/journal_format.h"

namespace sk::testing {

std::string Text(const SecretBytes& b) { return std::string(AsChars(b.Expose())); }

ServiceHarness::ServiceHarness(const std::string& tag) : dir_(tag) {
  token_ = std::make_unique<SoftHsmToken>(dir_.path());
  options.store_path = dir_.Join("store.db");
  options.verify_threads = 2;
}

Status ServiceHarness::Open() {
  service_.reset();
  if (!backend_) {
    SK_ASSIGN_OR_RETURN(auto b, token_->Open());
    backend_ = std::move(b);
  }
  SK_ASSIGN_OR_RETURN(service_, secrets::SecretService::Open(backend_, options));
  return OkStatus();
}

Status ServiceHarness::Restart() {
  CloseBackend();
  return Open();
}

std::uint64_t ServiceHarness::PutText(const std::string& path, const std::string& text) {
  auto r = secrets::Put(*service_, path, AsBytes(text), actor);
  EXPECT_TRUE(r.ok()) << "put " << path << ": " << r.status().ToString();
  return r.ok() && !r->results.empty() ? r->results[0].version : 0;
}

Result<std::string> ServiceHarness::GetText(const std::string& path, std::optional<std::uint64_t> version) {
  SK_ASSIGN_OR_RETURN(auto v, service_->Get(path, version));
  return Text(v.value);
}

namespace {

struct RawDb {
  explicit RawDb(const std::string& path) { EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK); }
  ~RawDb() { sqlite3_close(db); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;
  sqlite3* db = nullptr;
};

}  // namespace

void ServiceHarness::Sql(const std::string& sql) {
  ASSERT_FALSE(is_open()) << "close the service before editing its store";
  RawDb raw(store_path());
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(raw.db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
      << (err ? err : "") << " in " << sql;
}

Bytes ServiceHarness::Blob(const std::string& sql) {
  RawDb raw(store_path());
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(raw.db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
  Bytes out;
  if (sqlite3_step(st) == SQLITE_ROW) {
    auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(st, 0));
    out.assign(p, p + sqlite3_column_bytes(st, 0));
  } else {
    ADD_FAILURE() << "no row for " << sql;
  }
  sqlite3_finalize(st);
  return out;
}

void ServiceHarness::SetBlob(const std::string& sql, ByteView value) {
  ASSERT_FALSE(is_open()) << "close the service before editing its store";
  RawDb raw(store_path());
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(raw.db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
  sqlite3_bind_blob(st, 1, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  EXPECT_EQ(sqlite3_step(st), SQLITE_DONE);
  EXPECT_EQ(sqlite3_changes(raw.db), 1) << sql;
  sqlite3_finalize(st);
}

std::uint64_t ServiceHarness::EntrySeqOf(const std::string& path, std::uint64_t version) {
  RawDb raw(store_path());
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(raw.db, "SELECT seq, entry FROM journal WHERE path = ?1 ORDER BY seq", -1, &st,
                               nullptr),
            SQLITE_OK);
  sqlite3_bind_text(st, 1, path.c_str(), -1, SQLITE_TRANSIENT);
  std::uint64_t found = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(st, 1));
    auto e = journal::DecodeEntry(ByteView(p, static_cast<std::size_t>(sqlite3_column_bytes(st, 1))));
    if (e.ok() && e->version == version && journal::WritesVersion(e->kind)) {
      found = static_cast<std::uint64_t>(sqlite3_column_int64(st, 0));
    }
  }
  sqlite3_finalize(st);
  EXPECT_NE(found, 0u) << "no entry wrote " << path << " version " << version;
  return found;
}

void ServiceHarness::SaveStoreCopy(const std::string& name) {
  namespace fs = std::filesystem;
  ASSERT_FALSE(is_open());
  fs::create_directories(dir_.Join(name));
  for (const char* suffix : {"", "-wal", "-shm"}) {
    fs::path src = store_path() + suffix;
    fs::path dst = dir_.Join(name) + "/store.db" + suffix;
    fs::remove(dst);
    if (fs::exists(src)) fs::copy_file(src, dst);
  }
}

void ServiceHarness::RestoreStoreCopy(const std::string& name) {
  namespace fs = std::filesystem;
  ASSERT_FALSE(is_open());
  for (const char* suffix : {"", "-wal", "-shm"}) {
    fs::remove(store_path() + suffix);
    fs::path src = dir_.Join(name) + "/store.db" + suffix;
    if (fs::exists(src)) fs::copy_file(src, store_path() + suffix);
  }
}

secrets::Op PutOp(const std::string& path, const std::string& value) {
  secrets::Op op;
  op.type = secrets::Op::Type::kPut;
  op.path = path;
  op.value = SecretBytes::CopyFrom(AsBytes(value));
  return op;
}

}  // namespace sk::testing
