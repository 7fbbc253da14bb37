#include "agent/audit/audit_writer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "agent/audit/audit_verifier.h"
#include "tests/audit/audit_test_util.h"

namespace sk::audit {
namespace {

using test::Record;
using test::TestKey;
using Durability = AuditWriter::Durability;

class AuditWriterTest : public ::testing::Test {
 protected:
  std::unique_ptr<AuditWriter> Open(std::uint64_t max_segment = kDefaultMaxSegmentBytes) {
    AuditWriterOptions o;
    o.dir = dir_;
    o.max_segment_bytes = max_segment;
    Result<std::unique_ptr<AuditWriter>> w = AuditWriter::Open(o, key_);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? std::move(w).value() : nullptr;
  }
  AuditVerifyReport Verify(const AuditVerifyOptions& options = {}) {
    Result<AuditVerifyReport> r = VerifyAuditLog(dir_, key_, options);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : AuditVerifyReport{};
  }

  testing::TempDir tmp_{"audit"};
  std::string dir_ = tmp_.Join("audit");
  SecretBytes key_ = TestKey();
};

TEST_F(AuditWriterTest, MixedWorkloadWithRotationVerifies) {
  auto w = Open(4096);
  ASSERT_TRUE(w);
  EXPECT_TRUE(w->open_report().created);
  for (int i = 1; i <= 200; ++i) {
    AuditOutcome outcome =
        i % 7 == 0 ? AuditOutcome::kDenied : (i % 11 == 0 ? AuditOutcome::kFailed : AuditOutcome::kAllowed);
    Durability d = i % 4 == 0 || outcome == AuditOutcome::kDenied ? Durability::kSync : Durability::kBuffered;
    ASSERT_TRUE(w->Append(Record(i, outcome), d).ok()) << i;
    if (i % 50 == 0) {
      ASSERT_TRUE(w->Checkpoint().ok());
    }
  }
  AuditHead head = w->Head();
  EXPECT_EQ(head.seq, 200U);
  ASSERT_TRUE(w->Close().ok());

  AuditVerifyReport r = Verify();
  EXPECT_TRUE(r.ok()) << r.problem->ToString();
  EXPECT_EQ(r.records, 200U);
  EXPECT_EQ(r.first_seq, 1U);
  EXPECT_EQ(r.last_seq, 200U);
  EXPECT_GT(r.segments, 5U);
  EXPECT_TRUE(r.checkpoint_checked);
  EXPECT_EQ(r.head_mac, head.mac);

  // Every line of every segment is one JSON object; records carry consecutive seqs.
  std::uint64_t want = 1;
  for (std::uint64_t s = 1; s <= r.segments; ++s) {
    std::string text = testing::ReadFile(test::SegmentPath(dir_, s));
    EXPECT_LE(text.size(), 4096U);
    std::vector<std::string> lines = test::SplitLines(text);
    for (std::size_t i = 0; i < lines.size(); ++i) {
      nlohmann::json j = nlohmann::json::parse(lines[i]);
      if (i == 0) {
        EXPECT_EQ(j["segment"], s);
        EXPECT_EQ(j["first_seq"], want);
      } else {
        EXPECT_EQ(j["seq"], want++);
        EXPECT_FALSE(j.contains("value"));
      }
    }
  }
  EXPECT_EQ(want, 201U);
}

// kWritten (a change's record kept in the store until the log is synced): on the file at
// once, durable only with the next sync; SyncedSeq says how far syncs have come, and the
// next open reports the last record it found (before any record of its own).
TEST_F(AuditWriterTest, WrittenRecordsAreOnTheFileAtOnceAndSyncedSeqFollowsTheSyncs) {
  auto w = Open();
  ASSERT_TRUE(w);
  EXPECT_EQ(w->SyncedSeq(), 0U);
  std::uint64_t seq = 0;
  ASSERT_TRUE(w->Append(Record(1, AuditOutcome::kAllowed), Durability::kSync, &seq).ok());
  EXPECT_EQ(seq, 1U);
  EXPECT_EQ(w->SyncedSeq(), 1U);
  ASSERT_TRUE(w->Append(Record(2, AuditOutcome::kAllowed), Durability::kWritten, &seq).ok());
  EXPECT_EQ(seq, 2U);
  EXPECT_EQ(w->SyncedSeq(), 1U) << "written, not synced";
  const std::string segment = dir_ + "/" + SegmentFileName(1);
  EXPECT_NE(testing::ReadFile(segment).find("\"seq\":2,"), std::string::npos) << "on the file already";
  ASSERT_TRUE(w->Append(Record(3, AuditOutcome::kAllowed), Durability::kBuffered, &seq).ok());
  EXPECT_EQ(seq, 3U);
  ASSERT_TRUE(w->Sync().ok());
  EXPECT_EQ(w->SyncedSeq(), 3U);
  ASSERT_TRUE(w->Append(Record(4, AuditOutcome::kAllowed), Durability::kWritten).ok());
  ASSERT_TRUE(w->Append(Record(5, AuditOutcome::kDenied), Durability::kSync).ok());
  EXPECT_EQ(w->SyncedSeq(), 5U) << "a synced record covers the written one before it";
  ASSERT_TRUE(w->Close().ok());
  auto again = Open();
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->open_report().created);
  EXPECT_EQ(again->open_report().last_seq, 5U);
  EXPECT_EQ(again->SyncedSeq(), 5U);
  ASSERT_TRUE(again->Close().ok());
  AuditVerifyReport r = Verify();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.records, 5U);
}

TEST_F(AuditWriterTest, ReopeningContinuesTheChain) {
  for (int round = 0; round < 3; ++round) {
    auto w = Open(8192);
    ASSERT_TRUE(w);
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(w->Append(Record(i), Durability::kSync).ok());
    ASSERT_TRUE(w->Close().ok());
  }
  AuditVerifyReport r = Verify();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.records, 60U);
}

TEST_F(AuditWriterTest, LiveHeadCoversRecordsAfterTheCheckpoint) {
  auto w = Open();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(w->Append(Record(i), Durability::kBuffered).ok());
  ASSERT_TRUE(w->Sync().ok());
  AuditHead head = w->Head();
  AuditVerifyOptions o;
  o.expected_last_seq = head.seq;
  o.expected_head_mac = head.mac;
  EXPECT_TRUE(Verify(o).ok());
  o.expected_last_seq = head.seq + 1;
  o.expected_head_mac.reset();
  AuditVerifyReport r = Verify(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->kind, AuditProblem::Kind::kTruncated);
  EXPECT_EQ(r.problem->seq, 11U);
}

TEST_F(AuditWriterTest, TornTailIsCutAtOpenAndRecorded) {
  auto w = Open();
  for (int i = 1; i <= 5; ++i) ASSERT_TRUE(w->Append(Record(i), Durability::kSync).ok());
  ASSERT_TRUE(w->Close().ok());
  w.reset();
  // A crash in the middle of writing record 6.
  std::string line = SealLine(EncodeRecordBody(6, Record(6)), Digest{});
  const std::string seg = test::SegmentPath(dir_, 1);
  testing::WriteFile(seg, testing::ReadFile(seg) + line.substr(0, 100));

  AuditVerifyReport before = Verify();
  EXPECT_TRUE(before.ok());
  EXPECT_EQ(before.torn_tail_bytes, 100U);

  w = Open();
  ASSERT_TRUE(w);
  EXPECT_EQ(w->open_report().torn_bytes, 100U);
  EXPECT_EQ(w->open_report().torn_file, "audit-00000001.log");
  ASSERT_TRUE(w->Append(Record(7), Durability::kSync).ok());
  ASSERT_TRUE(w->Close().ok());

  AuditVerifyReport after = Verify();
  EXPECT_TRUE(after.ok());
  EXPECT_EQ(after.torn_tail_bytes, 0U);
  EXPECT_EQ(after.records, 7U);  // 5, the recovery event, and the new one
  std::vector<std::string> lines = test::SplitLines(testing::ReadFile(seg));
  nlohmann::json event = nlohmann::json::parse(lines[6]);
  EXPECT_EQ(event["seq"], 6);
  EXPECT_EQ(event["outcome"], "event");
  EXPECT_EQ(event["route"], "audit.open");
  EXPECT_EQ(event["reason"].get<std::string>().rfind("torn_tail_truncated: cut 100 bytes", 0), 0U);
}

TEST_F(AuditWriterTest, RefusesToExtendADamagedOrCutLog) {
  {
    auto w = Open();
    for (int i = 1; i <= 5; ++i) ASSERT_TRUE(w->Append(Record(i), Durability::kSync).ok());
  }  // the destructor closes and checkpoints
  const std::string seg = test::SegmentPath(dir_, 1);
  const std::string good = testing::ReadFile(seg);

  test::EditSegment(dir_, 1, [](std::vector<std::string>& l) { l[2][20] ^= 1; });
  AuditWriterOptions o;
  o.dir = dir_;
  Result<std::unique_ptr<AuditWriter>> w = AuditWriter::Open(o, key_);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kCorruption);
  EXPECT_EQ(w.status().reason(), "audit_corrupt");

  testing::WriteFile(seg, good);
  test::EditSegment(dir_, 1, [](std::vector<std::string>& l) { l.pop_back(); });  // cut the last record
  w = AuditWriter::Open(o, key_);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().reason(), "audit_corrupt");
  EXPECT_NE(std::string(w.status().message()).find("cut behind its checkpoint"), std::string::npos);
}

TEST_F(AuditWriterTest, ConcurrentAppendsAllLand) {
  auto w = Open(16384);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        EXPECT_TRUE(w->Append(Record(t * 100 + i), i % 10 ? Durability::kBuffered : Durability::kSync).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(w->Close().ok());
  AuditVerifyReport r = Verify();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.records, 400U);
}

TEST_F(AuditWriterTest, LeftoverTempFilesAreRemovedAtOpen) {
  { auto w = Open(); }
  testing::WriteFile(dir_ + "/audit-00000002.log.tmp", "half a header");
  auto w = Open();
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->Close().ok());
  EXPECT_EQ(testing::ReadFile(dir_ + "/audit-00000002.log.tmp"), "");
  EXPECT_TRUE(Verify().ok());
}

TEST_F(AuditWriterTest, KeysMustBe32BytesAndTheRightOne) {
  AuditWriterOptions o;
  o.dir = dir_;
  SecretBytes short_key(16);
  EXPECT_EQ(AuditWriter::Open(o, short_key).status().code(), Code::kInvalidArgument);
  {
    auto w = Open();
    ASSERT_TRUE(w->Append(Record(1), Durability::kSync).ok());
  }
  SecretBytes other = TestKey(0x43);
  Result<AuditVerifyReport> r = VerifyAuditLog(dir_, other);
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->ok());
  EXPECT_EQ(r->problem->kind, AuditProblem::Kind::kBadCheckpoint);
  EXPECT_EQ(AuditWriter::Open(o, other).status().reason(), "audit_corrupt");
}

TEST_F(AuditWriterTest, ClosedWriterRefusesAppends) {
  auto w = Open();
  ASSERT_TRUE(w->Close().ok());
  EXPECT_FALSE(w->Append(Record(1), Durability::kSync).ok());
}

}  // namespace
}  // namespace sk::audit
