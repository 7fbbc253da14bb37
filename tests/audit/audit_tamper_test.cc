// Every way of changing a written log — deleting, editing, reordering or truncating any
// record, deleting a segment, forging the checkpoint — is caught at the right record.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "agent/audit/audit_verifier.h"
#include "agent/audit/audit_writer.h"
#include "tests/audit/audit_test_util.h"

namespace sk::audit {
namespace {

using Kind = AuditProblem::Kind;
namespace fs = std::filesystem;

constexpr int kRecords = 30;

struct Where {
  std::uint64_t segment;
  std::size_t index;  // line index in the segment (0 = header)
};

class AuditTamperTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pristine_ = new testing::TempDir("audit-pristine");
    SecretBytes key = test::TestKey();
    AuditWriterOptions o;
    o.dir = pristine_->Join("audit");
    o.max_segment_bytes = 4096;
    auto w = AuditWriter::Open(o, key);
    ASSERT_TRUE(w.ok());
    for (int i = 1; i <= kRecords; ++i)
      ASSERT_TRUE((*w)->Append(test::Record(i), AuditWriter::Durability::kSync).ok());
    ASSERT_TRUE((*w)->Close().ok());
    // Where each record landed.
    where_ = new std::map<std::uint64_t, Where>();
    for (std::uint64_t s = 1;; ++s) {
      const std::string path = test::SegmentPath(o.dir, s);
      if (!fs::exists(path)) {
        segments_ = s - 1;
        break;
      }
      std::vector<std::string> lines = test::SplitLines(testing::ReadFile(path));
      for (std::size_t i = 1; i < lines.size(); ++i) {
        std::string l = lines[i];
        l.pop_back();
        Result<ParsedLine> p = ParseLine(l);
        ASSERT_TRUE(p.ok());
        (*where_)[p->seq] = {s, i};
      }
    }
    ASSERT_GE(segments_, 3U);
  }
  static void TearDownTestSuite() {
    delete pristine_;
    delete where_;
  }

  void SetUp() override { fs::copy(pristine_->Join("audit"), dir_, fs::copy_options::recursive); }

  AuditVerifyReport Verify() {
    Result<AuditVerifyReport> r = VerifyAuditLog(dir_, key_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : AuditVerifyReport{};
  }

  // Expects the first problem to be `kind` at record `seq`, on the line where it was.
  void ExpectAt(Kind kind, std::uint64_t seq, const std::string& what) {
    AuditVerifyReport r = Verify();
    ASSERT_FALSE(r.ok()) << what << ": not detected";
    EXPECT_EQ(r.problem->kind, kind) << what << ": " << r.problem->ToString();
    EXPECT_EQ(r.problem->seq, seq) << what << ": " << r.problem->ToString();
    Where w = where_->at(seq);
    EXPECT_EQ(r.problem->file, SegmentFileName(w.segment)) << what;
    EXPECT_EQ(r.problem->line, w.index + 1) << what;
    EXPECT_EQ(r.records, seq - 1) << what;  // everything before it verified
  }

  static bool IsLastInSegment(std::uint64_t seq) {
    return seq == kRecords || where_->at(seq + 1).segment != where_->at(seq).segment;
  }

  static testing::TempDir* pristine_;
  static std::map<std::uint64_t, Where>* where_;
  static std::uint64_t segments_;
  testing::TempDir tmp_{"audit-tamper"};
  std::string dir_ = tmp_.Join("audit");
  SecretBytes key_ = test::TestKey();
};

testing::TempDir* AuditTamperTest::pristine_ = nullptr;
std::map<std::uint64_t, Where>* AuditTamperTest::where_ = nullptr;
std::uint64_t AuditTamperTest::segments_ = 0;

TEST_F(AuditTamperTest, ThePristineLogVerifies) {
  AuditVerifyReport r = Verify();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.records, static_cast<std::uint64_t>(kRecords));
  EXPECT_EQ(r.segments, segments_);
}

class EachRecordTest : public AuditTamperTest, public ::testing::WithParamInterface<int> {};

TEST_P(EachRecordTest, EditingAnyByteOfARecordIsABadMacThere) {
  const auto seq = static_cast<std::uint64_t>(GetParam());
  Where w = where_->at(seq);
  test::EditSegment(dir_, w.segment, [&](std::vector<std::string>& l) {
    std::size_t at = l[w.index].find("apps/web/key");
    l[w.index][at + 9] = 'X';  // "apps/web/Xey...": same length, different content
  });
  ExpectAt(Kind::kBadMac, seq, "edit path");
}

TEST_P(EachRecordTest, EditingARecordsMacIsABadMacThere) {
  const auto seq = static_cast<std::uint64_t>(GetParam());
  Where w = where_->at(seq);
  test::EditSegment(dir_, w.segment, [&](std::vector<std::string>& l) {
    char& c = l[w.index][l[w.index].size() - 5];
    c = c == '0' ? '1' : '0';
  });
  ExpectAt(Kind::kBadMac, seq, "edit mac");
}

TEST_P(EachRecordTest, FlippingTheOutcomeIsABadMacThere) {
  const auto seq = static_cast<std::uint64_t>(GetParam());
  Where w = where_->at(seq);
  test::EditSegment(dir_, w.segment, [&](std::vector<std::string>& l) {
    std::size_t at = l[w.index].find("\"outcome\":\"allowed\"");
    l[w.index].replace(at, 19, "\"outcome\":\"denied\"");
  });
  ExpectAt(Kind::kBadMac, seq, "flip outcome");
}

TEST_P(EachRecordTest, DeletingARecordIsCaughtThere) {
  const auto seq = static_cast<std::uint64_t>(GetParam());
  Where w = where_->at(seq);
  test::EditSegment(dir_, w.segment,
                    [&](std::vector<std::string>& l) { l.erase(l.begin() + static_cast<long>(w.index)); });
  AuditVerifyReport r = Verify();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->seq, seq) << r.problem->ToString();
  EXPECT_EQ(r.records, seq - 1);
  if (seq == kRecords) {
    EXPECT_EQ(r.problem->kind, Kind::kTruncated) << r.problem->ToString();  // via the checkpoint
  } else if (IsLastInSegment(seq)) {
    EXPECT_EQ(r.problem->kind, Kind::kTruncated) << r.problem->ToString();  // the next header disagrees
    EXPECT_EQ(r.problem->file, SegmentFileName(w.segment + 1));
  } else {
    EXPECT_EQ(r.problem->kind, Kind::kSequenceGap) << r.problem->ToString();
    EXPECT_EQ(r.problem->file, SegmentFileName(w.segment));
    EXPECT_EQ(r.problem->line, w.index + 1);
  }
}

TEST_P(EachRecordTest, SwappingARecordWithTheNextIsReorderedThere) {
  const auto seq = static_cast<std::uint64_t>(GetParam());
  if (IsLastInSegment(seq)) return;  // no next record in its segment (a cross-segment swap is an edit)
  Where w = where_->at(seq);
  test::EditSegment(dir_, w.segment,
                    [&](std::vector<std::string>& l) { std::swap(l[w.index], l[w.index + 1]); });
  ExpectAt(Kind::kReordered, seq, "swap");
}

TEST_P(EachRecordTest, TruncatingTheLogAtARecordIsCaught) {
  const auto seq = static_cast<std::uint64_t>(GetParam());
  Where w = where_->at(seq);
  // Cut the segment at `seq`, and drop every later segment, as an attacker hiding tracks would.
  test::EditSegment(dir_, w.segment, [&](std::vector<std::string>& l) { l.resize(w.index); });
  for (std::uint64_t s = w.segment + 1; s <= segments_; ++s) fs::remove(test::SegmentPath(dir_, s));
  AuditVerifyReport r = Verify();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.records, seq - 1);
  EXPECT_EQ(r.problem->seq, seq) << r.problem->ToString();
  EXPECT_EQ(r.problem->kind, w.segment == segments_ ? Kind::kTruncated : Kind::kDeletedSegment)
      << r.problem->ToString();
}

TEST_P(EachRecordTest, CuttingARecordInHalfInsideTheLogIsCaught) {
  const auto seq = static_cast<std::uint64_t>(GetParam());
  Where w = where_->at(seq);
  test::EditSegment(dir_, w.segment, [&](std::vector<std::string>& l) {
    l[w.index] = l[w.index].substr(0, l[w.index].size() / 2) + "\n";
  });
  ExpectAt(Kind::kMalformed, seq, "half a record");
}

INSTANTIATE_TEST_SUITE_P(Records, EachRecordTest, ::testing::Range(1, kRecords + 1));

TEST_F(AuditTamperTest, DeletingAnySegmentIsCaught) {
  for (std::uint64_t s = 1; s <= segments_; ++s) {
    fs::remove_all(dir_);
    fs::copy(pristine_->Join("audit"), dir_, fs::copy_options::recursive);
    fs::remove(test::SegmentPath(dir_, s));
    AuditVerifyReport r = Verify();
    ASSERT_FALSE(r.ok()) << "segment " << s;
    EXPECT_EQ(r.problem->kind, Kind::kDeletedSegment) << r.problem->ToString();
    EXPECT_EQ(r.problem->file, SegmentFileName(s));
  }
}

TEST_F(AuditTamperTest, RenumberingSegmentsIsCaught) {
  fs::rename(test::SegmentPath(dir_, 2), dir_ + "/x");
  fs::rename(test::SegmentPath(dir_, 3), test::SegmentPath(dir_, 2));
  fs::rename(dir_ + "/x", test::SegmentPath(dir_, 3));
  AuditVerifyReport r = Verify();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->kind, Kind::kBadHeader);
  EXPECT_EQ(r.problem->file, SegmentFileName(2));
  EXPECT_EQ(r.problem->line, 1U);
}

TEST_F(AuditTamperTest, EditingASegmentHeaderIsCaught) {
  test::EditSegment(dir_, 2, [](std::vector<std::string>& l) {
    std::size_t at = l[0].find("\"time\":\"") + 8;
    l[0][at] = l[0][at] == '2' ? '3' : '2';
  });
  AuditVerifyReport r = Verify();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->kind, Kind::kBadMac);
  EXPECT_EQ(r.problem->file, SegmentFileName(2));
  EXPECT_EQ(r.problem->line, 1U);
}

TEST_F(AuditTamperTest, ForgedOrMissingCheckpointIsCaught) {
  const std::string cp = dir_ + "/checkpoint";
  std::string text = testing::ReadFile(cp);
  std::size_t at = text.find("\"last_seq\":") + 11;
  text[at] = text[at] == '9' ? '8' : '9';
  testing::WriteFile(cp, text);
  AuditVerifyReport r = Verify();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->kind, Kind::kBadCheckpoint);
  fs::remove(cp);
  r = Verify();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->kind, Kind::kMissingCheckpoint);
  AuditVerifyOptions o;
  o.require_checkpoint = false;
  Result<AuditVerifyReport> lenient = VerifyAuditLog(dir_, key_, o);
  ASSERT_TRUE(lenient.ok());
  EXPECT_TRUE(lenient->ok());
  EXPECT_FALSE(lenient->notes.empty());
}

TEST_F(AuditTamperTest, ReplayingARecordIsCaught) {
  Where w = where_->at(3);
  test::EditSegment(dir_, w.segment,
                    [&](std::vector<std::string>& l) { l.insert(l.begin() + 5, l[w.index]); });
  AuditVerifyReport r = Verify();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->kind, Kind::kReordered);
  EXPECT_EQ(r.problem->line, 6U);
}

TEST_F(AuditTamperTest, OneSegmentVerifiesAloneWithANote) {
  Result<AuditVerifyReport> r = VerifyAuditLog(test::SegmentPath(dir_, 2), key_);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok());
  std::uint64_t first = 0;
  for (const auto& [seq, w] : *where_) {
    if (w.segment == 2 && first == 0) first = seq;
  }
  EXPECT_EQ(r->first_seq, first);
  EXPECT_GT(r->records, 0U);
  ASSERT_FALSE(r->notes.empty());
  EXPECT_NE(r->notes[0].find("alone"), std::string::npos);
  test::EditSegment(dir_, 2, [](std::vector<std::string>& l) { l[2][30] ^= 1; });
  r = VerifyAuditLog(test::SegmentPath(dir_, 2), key_);
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->ok());
  EXPECT_EQ(r->problem->kind, Kind::kBadMac);
  EXPECT_EQ(r->problem->line, 3U);
}

}  // namespace
}  // namespace sk::audit
