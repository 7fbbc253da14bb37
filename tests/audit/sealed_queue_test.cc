// SealedAuditQueue: records made while sealed reach the log in order with their own
// times, behind one event that counts them and the dropped ones; a failed write keeps them.
#include "agent/audit/sealed_queue.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/audit/audit_verifier.h"
#include "tests/audit/audit_test_util.h"

namespace sk::audit {
namespace {

using test::Record;

class SealedQueueTest : public ::testing::Test {
 protected:
  std::unique_ptr<AuditWriter> Open() {
    AuditWriterOptions o;
    o.dir = dir_;
    auto w = AuditWriter::Open(o, key_);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? std::move(w).value() : nullptr;
  }
  std::vector<nlohmann::json> Records() {
    std::vector<nlohmann::json> out;
    for (const std::string& line : test::SplitLines(testing::ReadFile(test::SegmentPath(dir_, 1)))) {
      auto j = nlohmann::json::parse(line);
      if (j.contains("seq")) out.push_back(j);
    }
    return out;
  }
  testing::TempDir tmp_{"sealed-queue"};
  std::string dir_ = tmp_.Join("audit");
  SecretBytes key_ = test::TestKey();
};

TEST_F(SealedQueueTest, QueuedRecordsAreWrittenInOrderWithTheirOwnTimesAfterOneEvent) {
  SealedAuditQueue q(3);
  for (int i = 1; i <= 5; ++i) q.Push(Record(i, i == 2 ? AuditOutcome::kDenied : AuditOutcome::kFailed));
  EXPECT_EQ(q.size(), 3U);
  EXPECT_EQ(q.dropped(), 2U) << "beyond the bound, records are counted, not kept";
  auto w = Open();
  ASSERT_TRUE(w);
  ASSERT_TRUE(q.WriteTo(*w).ok());
  EXPECT_EQ(q.size(), 0U);
  EXPECT_EQ(q.dropped(), 0U);
  // On disk before WriteTo returned: no Close or Sync needed to see them.
  std::vector<nlohmann::json> recs = Records();
  ASSERT_EQ(recs.size(), 4U);
  EXPECT_EQ(recs[0]["outcome"], "event");
  EXPECT_EQ(recs[0]["route"], "audit.sealed");
  EXPECT_NE(recs[0]["reason"].get<std::string>().find("sealed_records: 3 records"), std::string::npos)
      << recs[0].dump();
  EXPECT_NE(recs[0]["reason"].get<std::string>().find("2 more were dropped (at most 3 are kept)"),
            std::string::npos)
      << recs[0].dump();
  for (int i = 1; i <= 3; ++i) {
    const auto& r = recs[static_cast<std::size_t>(i)];
    EXPECT_EQ(r["request_id"], "req-" + std::to_string(i));
    EXPECT_EQ(r["time"], FormatTime(Record(i).time)) << "the request's own time";
    EXPECT_EQ(r["outcome"], i == 2 ? "denied" : "failed");
  }
  ASSERT_TRUE(q.WriteTo(*w).ok()) << "an empty queue writes nothing";
  EXPECT_EQ(Records().size(), 4U);
  ASSERT_TRUE(w->Close().ok());
  auto v = VerifyAuditLog(dir_, key_, {});
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok());
}

TEST_F(SealedQueueTest, AFloodOfDeniedRecordsNeverPushesOutAnAdminsChange) {
  SealedAuditQueue q(2);
  q.Push(Record(1, AuditOutcome::kDenied));
  q.Push(Record(2, AuditOutcome::kDenied));
  q.Push(Record(3, AuditOutcome::kDenied));  // full: dropped
  q.Push(Record(4, AuditOutcome::kAllowed), /*must_keep=*/true);
  EXPECT_EQ(q.size(), 3U) << "a change's record is kept beyond the bound";
  EXPECT_EQ(q.dropped(), 1U);
  auto w = Open();
  ASSERT_TRUE(w);
  ASSERT_TRUE(q.WriteTo(*w).ok());
  std::vector<nlohmann::json> recs = Records();
  ASSERT_EQ(recs.size(), 4U);
  EXPECT_EQ(recs[3]["request_id"], "req-4");
  EXPECT_EQ(recs[3]["outcome"], "allowed");
}

TEST_F(SealedQueueTest, AFailedWriteKeepsEveryRecordForTheNextTry) {
  SealedAuditQueue q;
  q.Push(Record(1, AuditOutcome::kDenied));
  q.Push(Record(2));
  auto closed = Open();
  ASSERT_TRUE(closed);
  ASSERT_TRUE(closed->Close().ok());
  Status st = q.WriteTo(*closed);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.reason(), "audit_unavailable");
  EXPECT_EQ(q.size(), 2U);
  closed.reset();
  auto w = Open();
  ASSERT_TRUE(w);
  ASSERT_TRUE(q.WriteTo(*w).ok());
  std::vector<nlohmann::json> recs = Records();
  ASSERT_EQ(recs.size(), 3U);
  EXPECT_EQ(recs[1]["request_id"], "req-1");
  EXPECT_EQ(recs[2]["request_id"], "req-2");
}

}  // namespace
}  // namespace sk::audit
