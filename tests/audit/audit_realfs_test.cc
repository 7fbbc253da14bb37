// Real failures, not injected ones: a read-only segment file, a read-only folder, and a
// full file system (a 64 KiB tmpfs). Each must give audit_unavailable and leave a log
// that verifies.
#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "agent/audit/audit_verifier.h"
#include "agent/audit/audit_writer.h"
#include "tests/audit/audit_test_util.h"

namespace sk::audit {
namespace {

using Durability = AuditWriter::Durability;
using test::Record;

// Root ignores file modes (CAP_DAC_OVERRIDE). This drops the capabilities that let it,
// from the effective set only, for the scope; they come back from the permitted set.
class ScopedObeyFileModes {
 public:
  ScopedObeyFileModes() {
    if (::geteuid() != 0) return;
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    if (::syscall(SYS_capget, &hdr, data_) != 0) return;
    saved_[0] = data_[0];
    saved_[1] = data_[1];
    for (int cap : {CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER}) {
      data_[cap / 32].effective &= ~(1U << (cap % 32));
    }
    active_ = ::syscall(SYS_capset, &hdr, data_) == 0;
  }
  ~ScopedObeyFileModes() {
    if (!active_) return;
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    ::syscall(SYS_capset, &hdr, saved_);
  }
  ScopedObeyFileModes(const ScopedObeyFileModes&) = delete;
  ScopedObeyFileModes& operator=(const ScopedObeyFileModes&) = delete;
  bool ok() const { return active_ || ::geteuid() != 0; }

 private:
  __user_cap_data_struct data_[2]{};
  __user_cap_data_struct saved_[2]{};
  bool active_ = false;
};

class AuditRealFsTest : public ::testing::Test {
 protected:
  Result<std::unique_ptr<AuditWriter>> Open(std::uint64_t max_segment = kDefaultMaxSegmentBytes) {
    AuditWriterOptions o;
    o.dir = dir_;
    o.max_segment_bytes = max_segment;
    return AuditWriter::Open(o, key_);
  }
  AuditVerifyReport Verify() {
    Result<AuditVerifyReport> r = VerifyAuditLog(dir_, key_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : AuditVerifyReport{};
  }
  static void ExpectUnavailable(const Status& st) {
    EXPECT_EQ(st.code(), Code::kUnavailable) << st.ToString();
    EXPECT_EQ(st.reason(), "audit_unavailable") << st.ToString();
  }

  testing::TempDir tmp_{"audit-fs"};
  std::string dir_ = tmp_.Join("audit");
  SecretBytes key_ = test::TestKey();
};

TEST_F(AuditRealFsTest, AReadOnlySegmentFileCannotBeOpened) {
  {
    auto w = Open();
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append(Record(1), Durability::kSync).ok());
    ASSERT_TRUE((*w)->Close().ok());
  }
  ASSERT_EQ(::chmod(test::SegmentPath(dir_, 1).c_str(), 0444), 0);
  {
    ScopedObeyFileModes obey;
    ASSERT_TRUE(obey.ok());
    auto w = Open();
    ASSERT_FALSE(w.ok());
    ExpectUnavailable(w.status());
    EXPECT_NE(std::string(w.status().message()).find("Permission denied"), std::string::npos)
        << w.status().ToString();
  }
  ::chmod(test::SegmentPath(dir_, 1).c_str(), 0600);
  EXPECT_TRUE(Verify().ok());
}

TEST_F(AuditRealFsTest, AReadOnlyFolderFailsTheRotationThatNeedsIt) {
  auto opened = Open(4096);
  ASSERT_TRUE(opened.ok());
  AuditWriter& w = **opened;
  int i = 0;
  Status st;
  {
    ASSERT_EQ(::chmod(dir_.c_str(), 0555), 0);
    ScopedObeyFileModes obey;
    ASSERT_TRUE(obey.ok());
    // Appends to the open segment still work; the one that must rotate cannot.
    for (int n = 0; n < 50 && st.ok(); ++n) st = w.Append(Record(++i), Durability::kSync);
  }
  ::chmod(dir_.c_str(), 0700);
  ExpectUnavailable(st);
  EXPECT_TRUE(w.failed());
  EXPECT_EQ(w.Head().segment, 1U);
  ASSERT_TRUE(w.Append(Record(++i), Durability::kSync).ok());  // retry once writable again
  ASSERT_TRUE(w.Close().ok());
  AuditVerifyReport r = Verify();
  EXPECT_TRUE(r.ok()) << r.problem->ToString();
  EXPECT_EQ(r.records, static_cast<std::uint64_t>(i - 1));
  EXPECT_EQ(r.segments, 2U);
}

TEST_F(AuditRealFsTest, AFullDiskFailsClosedAndRecoversWhenSpaceReturns) {
  const std::string mnt = tmp_.Join("tmpfs");
  ASSERT_EQ(::mkdir(mnt.c_str(), 0700), 0);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k,mode=0700") != 0) {
    FAIL() << "mount -t tmpfs refused (" << std::strerror(errno)
           << "): the full-disk case needs root and mount rights (the suite runs as root)";
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};
  dir_ = mnt + "/audit";
  // Leave room for the log's start, then fill the rest with a file we can delete.
  const std::string filler = mnt + "/filler";
  testing::WriteFile(filler, std::string(40 * 1024, 'f'));

  auto opened = Open();
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  AuditWriter& w = **opened;
  int written = 0;
  Status st;
  while (written < 5000) {
    st = w.Append(Record(written + 1), Durability::kSync);
    if (!st.ok()) break;
    ++written;
  }
  ExpectUnavailable(st);
  EXPECT_NE(std::string(st.message()).find("No space left on device"), std::string::npos) << st.ToString();
  EXPECT_GT(written, 0);
  EXPECT_TRUE(w.failed());
  ExpectUnavailable(w.Append(Record(0), Durability::kSync));  // still full
  // Nothing half-written: the log verifies as it stands (no checkpoint past the end).
  AuditVerifyReport r = Verify();
  EXPECT_TRUE(r.ok()) << r.problem->ToString();
  EXPECT_EQ(r.records, static_cast<std::uint64_t>(written));
  EXPECT_EQ(r.torn_tail_bytes, 0U);

  std::filesystem::remove(filler);
  ASSERT_TRUE(w.Append(Record(written + 1), Durability::kSync).ok());
  ASSERT_TRUE(w.Close().ok());
  r = Verify();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.records, static_cast<std::uint64_t>(written + 1));
}

}  // namespace
}  // namespace sk::audit
