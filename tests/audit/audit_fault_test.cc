// The fault seam: failing writes, short writes, failing syncs, truncates, creates,
// renames and folder syncs. Each must fail the call with audit_unavailable, leave no
// half-written line behind (now or after a reopen), and recover on a good retry.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "agent/audit/audit_env.h"
#include "agent/audit/audit_verifier.h"
#include "agent/audit/audit_writer.h"
#include "tests/audit/audit_test_util.h"

namespace sk::audit {
namespace {

using Durability = AuditWriter::Durability;
using test::Record;

struct Faults {
  bool fail_write = false;
  std::size_t short_write = 0;  // with fail_write: write this many bytes first
  bool fail_sync = false;
  bool fail_truncate = false;
  bool fail_create = false;
  bool fail_rename = false;
  bool fail_dir_sync = false;
  int writes = 0;
  int syncs = 0;
};

Status Injected(const char* what) {
  return Unavailable(std::string("injected ") + what, "audit_unavailable");
}

class FaultFile final : public AuditFile {
 public:
  FaultFile(std::unique_ptr<AuditFile> real, Faults& f) : real_(std::move(real)), f_(f) {}
  Result<std::size_t> Write(ByteView data) override {
    ++f_.writes;
    if (f_.fail_write) {
      if (f_.short_write > 0 && !short_done_) {
        short_done_ = true;
        return real_->Write(data.first(std::min(f_.short_write, data.size())));
      }
      return Injected("write failure (ENOSPC)");
    }
    return real_->Write(data);
  }
  Status Sync() override {
    ++f_.syncs;
    return f_.fail_sync ? Injected("fdatasync failure (EIO)") : real_->Sync();
  }
  Status Truncate(std::uint64_t size) override {
    return f_.fail_truncate ? Injected("ftruncate failure") : real_->Truncate(size);
  }

 private:
  std::unique_ptr<AuditFile> real_;
  Faults& f_;
  bool short_done_ = false;
};

class FaultEnv final : public AuditEnv {
 public:
  explicit FaultEnv(Faults& f) : f_(f) {}
  Result<std::unique_ptr<AuditFile>> OpenAppend(const std::string& path) override {
    SK_ASSIGN_OR_RETURN(auto file, real_.OpenAppend(path));
    return std::unique_ptr<AuditFile>(std::make_unique<FaultFile>(std::move(file), f_));
  }
  Result<std::unique_ptr<AuditFile>> Create(const std::string& path) override {
    if (f_.fail_create) return Injected("create failure");
    SK_ASSIGN_OR_RETURN(auto file, real_.Create(path));
    return std::unique_ptr<AuditFile>(std::make_unique<FaultFile>(std::move(file), f_));
  }
  Result<std::string> ReadFile(const std::string& path) override { return real_.ReadFile(path); }
  Result<std::vector<std::string>> ListDir(const std::string& dir) override { return real_.ListDir(dir); }
  bool IsDirectory(const std::string& path) override { return real_.IsDirectory(path); }
  Status CreateDir(const std::string& dir) override { return real_.CreateDir(dir); }
  Status Rename(const std::string& from, const std::string& to) override {
    return f_.fail_rename ? Injected("rename failure") : real_.Rename(from, to);
  }
  Status Remove(const std::string& path) override { return real_.Remove(path); }
  Status SyncDir(const std::string& dir) override {
    return f_.fail_dir_sync ? Injected("directory fsync failure") : real_.SyncDir(dir);
  }

 private:
  AuditEnv& real_ = *AuditEnv::Posix();
  Faults& f_;
};

class AuditFaultTest : public ::testing::Test {
 protected:
  std::unique_ptr<AuditWriter> Open(AuditEnv* env, std::uint64_t max_segment = kDefaultMaxSegmentBytes) {
    AuditWriterOptions o;
    o.dir = dir_;
    o.env = env;
    o.max_segment_bytes = max_segment;
    Result<std::unique_ptr<AuditWriter>> w = AuditWriter::Open(o, key_);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? std::move(w).value() : nullptr;
  }
  AuditVerifyReport Verify() {
    Result<AuditVerifyReport> r = VerifyAuditLog(dir_, key_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : AuditVerifyReport{};
  }
  std::string Segment(std::uint64_t n = 1) { return testing::ReadFile(test::SegmentPath(dir_, n)); }
  static void ExpectUnavailable(const Status& st) {
    EXPECT_EQ(st.code(), Code::kUnavailable) << st.ToString();
    EXPECT_EQ(st.reason(), "audit_unavailable") << st.ToString();
  }
  // Reopens with the real file system and checks the whole log.
  AuditVerifyReport ReopenAndVerify() {
    auto w = Open(nullptr);
    EXPECT_TRUE(w);
    if (w) {
      EXPECT_TRUE(w->Close().ok());
    }
    return Verify();
  }

  testing::TempDir tmp_{"audit-fault"};
  std::string dir_ = tmp_.Join("audit");
  SecretBytes key_ = test::TestKey();
  Faults faults_;
  FaultEnv env_{faults_};
};

TEST_F(AuditFaultTest, AFailingWriteFailsClosedAndARetrySucceeds) {
  auto w = Open(&env_);
  ASSERT_TRUE(w->Append(Record(1), Durability::kSync).ok());
  const std::string before = Segment();
  faults_.fail_write = true;
  ExpectUnavailable(w->Append(Record(2), Durability::kSync));
  ExpectUnavailable(w->Append(Record(2), Durability::kBuffered));
  EXPECT_TRUE(w->failed());
  EXPECT_EQ(Segment(), before);
  faults_.fail_write = false;
  ASSERT_TRUE(w->Append(Record(3), Durability::kSync).ok());  // the successful retry
  EXPECT_FALSE(w->failed());
  ASSERT_TRUE(w->Close().ok());
  AuditVerifyReport r = Verify();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.records, 2U);
}

TEST_F(AuditFaultTest, AShortWriteIsCutBackAtOnce) {
  auto w = Open(&env_);
  ASSERT_TRUE(w->Append(Record(1), Durability::kSync).ok());
  const std::string before = Segment();
  faults_.fail_write = true;
  faults_.short_write = 50;
  ExpectUnavailable(w->Append(Record(2), Durability::kSync));
  EXPECT_EQ(Segment(), before);  // the 50 bytes are gone again
  faults_.fail_write = false;
  ASSERT_TRUE(w->Append(Record(3), Durability::kSync).ok());
  ASSERT_TRUE(w->Close().ok());
  EXPECT_TRUE(Verify().ok());
}

TEST_F(AuditFaultTest, AShortWriteThatCannotBeCutIsATornTailAtReopen) {
  auto w = Open(&env_);
  ASSERT_TRUE(w->Append(Record(1), Durability::kSync).ok());
  faults_.fail_write = true;
  faults_.short_write = 50;
  faults_.fail_truncate = true;
  ExpectUnavailable(w->Append(Record(2), Durability::kSync));
  faults_.fail_write = false;
  // Still failed: the cut keeps failing, so nothing is written after the torn bytes.
  ExpectUnavailable(w->Append(Record(3), Durability::kSync));
  ExpectUnavailable(w->Sync());
  EXPECT_TRUE(w->failed());
  w.reset();  // the process dies
  AuditVerifyReport torn = Verify();
  EXPECT_TRUE(torn.ok());
  EXPECT_EQ(torn.torn_tail_bytes, 50U);
  faults_ = Faults{};
  AuditVerifyReport r = ReopenAndVerify();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.torn_tail_bytes, 0U);
  EXPECT_EQ(r.records, 2U);  // record 1 and the torn-tail event; never record 2
}

TEST_F(AuditFaultTest, AFailingSyncUndoesTheRecord) {
  auto w = Open(&env_);
  ASSERT_TRUE(w->Append(Record(1), Durability::kSync).ok());
  const std::string before = Segment();
  faults_.fail_sync = true;
  ExpectUnavailable(w->Append(Record(2), Durability::kSync));
  EXPECT_EQ(Segment(), before);
  ExpectUnavailable(w->Append(Record(2), Durability::kSync));  // recovery needs a sync too
  faults_.fail_sync = false;
  ASSERT_TRUE(w->Append(Record(3), Durability::kSync).ok());
  AuditHead head = w->Head();
  EXPECT_EQ(head.seq, 2U);
  ASSERT_TRUE(w->Close().ok());
  EXPECT_TRUE(Verify().ok());
}

TEST_F(AuditFaultTest, AFailingSyncThatCannotBeUndoneLeavesAWholeValidRecord) {
  auto w = Open(&env_);
  faults_.fail_sync = true;
  faults_.fail_truncate = true;
  ExpectUnavailable(w->Append(Record(1), Durability::kSync));
  w.reset();
  faults_ = Faults{};
  // The record reached the file whole: it verifies (the daemon answered 503 and changed
  // nothing, so the log claims an attempt, never a change that did not happen).
  AuditVerifyReport r = ReopenAndVerify();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.records, 1U);
}

TEST_F(AuditFaultTest, PendingReadsThatCannotBeWrittenAreDroppedAndTheChainStaysWhole) {
  auto w = Open(&env_);
  ASSERT_TRUE(w->Append(Record(1), Durability::kSync).ok());
  const std::string before = Segment();
  // One pending read: it waits (the age limit is checked when a later record comes).
  ASSERT_TRUE(w->Append(Record(2), Durability::kBuffered).ok());
  EXPECT_EQ(Segment(), before) << "reads wait to be written together";
  EXPECT_EQ(w->Head().seq, 2U);
  faults_.fail_write = true;
  ExpectUnavailable(w->Sync());
  EXPECT_TRUE(w->failed());
  EXPECT_EQ(w->Head().seq, 1U) << "the head is back at the last record in the file";
  EXPECT_EQ(Segment(), before);
  faults_.fail_write = false;
  ASSERT_TRUE(w->Append(Record(3), Durability::kSync).ok());
  ASSERT_TRUE(w->Close().ok());
  AuditVerifyReport r = ReopenAndVerify();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.records, 2U);
}

TEST_F(AuditFaultTest, PendingReadsAreWrittenOnceTheyFill16KiB) {
  auto w = Open(&env_);
  const std::string before = Segment();
  int i = 0;
  while (Segment() == before && i < 1000) ASSERT_TRUE(w->Append(Record(++i), Durability::kBuffered).ok());
  EXPECT_GT(i, 1) << "the first read is not written alone";
  EXPECT_LT(i, 1000) << "at most 16 KiB of reads wait, even with no sync";
}

TEST_F(AuditFaultTest, BufferedRecordsSurviveALaterSyncFailure) {
  auto w = Open(&env_);
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(w->Append(Record(i), Durability::kBuffered).ok());
  faults_.fail_sync = true;
  ExpectUnavailable(w->Sync());
  faults_.fail_sync = false;
  ASSERT_TRUE(w->Sync().ok());
  ASSERT_TRUE(w->Close().ok());
  AuditVerifyReport r = Verify();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.records, 3U);
}

TEST_F(AuditFaultTest, RotationFailuresFailClosedAndRecover) {
  for (int which = 0; which < 4; ++which) {
    std::filesystem::remove_all(dir_);
    faults_ = Faults{};
    auto w = Open(&env_, 4096);
    int i = 0;
    while (w->Head().segment == 1) ASSERT_TRUE(w->Append(Record(++i), Durability::kSync).ok());
    // The log just rotated into segment 2; fill it up to the next rotation point.
    const std::uint64_t seg2_first = w->Head().seq;
    while (std::filesystem::file_size(test::SegmentPath(dir_, 2)) + 400 < 4096) {
      ASSERT_TRUE(w->Append(Record(++i), Durability::kSync).ok());
    }
    (void)seg2_first;
    switch (which) {
      case 0:
        faults_.fail_create = true;
        break;
      case 1:
        faults_.fail_rename = true;
        break;
      case 2:
        faults_.fail_dir_sync = true;
        break;
      case 3:
        faults_.fail_sync = true;
        break;  // syncing the old segment first
    }
    ExpectUnavailable(w->Append(Record(++i), Durability::kSync));
    EXPECT_TRUE(w->failed()) << which;
    faults_ = Faults{};
    ASSERT_TRUE(w->Append(Record(++i), Durability::kSync).ok()) << which;
    ASSERT_TRUE(w->Close().ok());
    AuditVerifyReport r = Verify();
    EXPECT_TRUE(r.ok()) << which << ": " << r.problem->ToString();
    EXPECT_EQ(r.records, static_cast<std::uint64_t>(i - 1)) << which;
    EXPECT_FALSE(std::filesystem::exists(test::SegmentPath(dir_, 3) + ".tmp")) << which;
  }
}

TEST_F(AuditFaultTest, OpenFailsClosedWhenItCannotWrite) {
  faults_.fail_create = true;
  AuditWriterOptions o;
  o.dir = dir_;
  o.env = &env_;
  Result<std::unique_ptr<AuditWriter>> w = AuditWriter::Open(o, key_);
  ASSERT_FALSE(w.ok());
  ExpectUnavailable(w.status());
}

}  // namespace
}  // namespace sk::audit
