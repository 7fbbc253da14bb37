// Staged rotation in the secret service (docs/rotation.md): a pending version is stored and
// journaled but never the head, finish and abort are one journal batch each and move the
// hardware anchor at once, every stage is readable as documented, everything survives a
// restart (the index is rebuilt from the journal), a replayed older copy of the store cannot
// bring a rotated-away credential back, and lifetimes (expiry, schedules) are counted.
#include <gtest/gtest.h>

#include "agent/secrets/generator.h"
#include "tests/agent/service_fixture.h"

namespace sk::testing {
namespace {

using secrets::Op;
using secrets::Stage;

Op MakeOp(Op::Type type, const std::string& path) {
  Op op;
  op.type = type;
  op.path = path;
  return op;
}

Result<secrets::TxnResult> One(ServiceHarness& h, Op op) {
  std::vector<Op> ops;
  ops.push_back(std::move(op));
  return h.svc().Transact(std::move(ops), "", h.actor);
}

Result<std::uint64_t> Begin(ServiceHarness& h, const std::string& path, const std::string& value,
                            const std::string& every = "") {
  Op op = MakeOp(Op::Type::kStage, path);
  op.value = SecretBytes::CopyFrom(AsBytes(value));
  op.note = "test rotation";
  if (!every.empty()) op.labels[std::string(secrets::kRotationLabel)] = every;
  SK_ASSIGN_OR_RETURN(auto r, One(h, std::move(op)));
  return r.results.at(0).version;
}

Status End(ServiceHarness& h, const std::string& path, std::uint64_t v, bool finish,
           const std::string& reason = "") {
  Op op = MakeOp(finish ? Op::Type::kPromote : Op::Type::kAbort, path);
  op.version = v;
  op.note = reason;
  return One(h, std::move(op)).status();
}

std::string StageText(ServiceHarness& h, const std::string& path, Stage stage) {
  auto v = h.svc().GetStage(path, stage);
  if (!v.ok()) return "error: " + std::string(v.status().reason());
  return Text(v->value) + "@" + std::to_string(v->version);
}

class RotationServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(h.Open().ok()); }
  ServiceHarness h{"rot"};
};

TEST_F(RotationServiceTest, PendingIsStoredButNeverTheHeadUntilFinished) {
  h.PutText("db/pw", "old");
  auto pending = Begin(h, "db/pw", "new", "30d");
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  EXPECT_EQ(*pending, 2u);
  // The head is still the old value; the pending one is readable only by stage.
  EXPECT_EQ(*h.GetText("db/pw"), "old");
  EXPECT_EQ(StageText(h, "db/pw", Stage::kPending), "new@2");
  EXPECT_EQ(StageText(h, "db/pw", Stage::kCurrent), "old@1");
  EXPECT_EQ(StageText(h, "db/pw", Stage::kPrevious), "error: no_such_stage");
  auto by_number = h.svc().Get("db/pw", 2);
  ASSERT_FALSE(by_number.ok());
  EXPECT_EQ(by_number.status().reason(), "pending");
  auto listed = h.svc().List("db", 10);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].head, 1u);
  EXPECT_EQ((*listed)[0].pending, 2u);

  ASSERT_TRUE(End(h, "db/pw", 2, true).ok());
  EXPECT_EQ(*h.GetText("db/pw"), "new");
  EXPECT_EQ(StageText(h, "db/pw", Stage::kPrevious), "old@1");
  EXPECT_EQ(StageText(h, "db/pw", Stage::kPending), "error: no_such_stage");
  auto labels = h.svc().PathLabels("db/pw");
  ASSERT_TRUE(labels.ok());
  EXPECT_EQ(labels->at("sealkeep.rotation"), "30d");
  auto versions = h.svc().Versions("db/pw");
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_EQ((*versions)[1].state, "live");
  EXPECT_EQ((*versions)[1].kind, "stage");
  EXPECT_TRUE((*versions)[1].verifies);
}

TEST_F(RotationServiceTest, AbortErasesThePendingVersionAndKeepsTheHead) {
  h.PutText("db/pw", "old");
  auto pending = Begin(h, "db/pw", "new");
  ASSERT_TRUE(pending.ok());
  ASSERT_TRUE(End(h, "db/pw", *pending, false, "target refused").ok());
  EXPECT_EQ(*h.GetText("db/pw"), "old");
  EXPECT_EQ(StageText(h, "db/pw", Stage::kPending), "error: no_such_stage");
  auto versions = h.svc().Versions("db/pw");
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_EQ((*versions)[1].state, "destroyed");
  // The aborted number is never reused: the next write is version 3.
  EXPECT_EQ(h.PutText("db/pw", "newer"), 3u);
  auto again = Begin(h, "db/pw", "newest");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 4u);
  auto verify = h.svc().VerifyAll();
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->ok) << (verify->problems.empty() ? "" : verify->problems[0].detail);
}

TEST_F(RotationServiceTest, OneRotationAtATimeAndNoOtherChangeMeanwhile) {
  h.PutText("db/pw", "old");
  ASSERT_TRUE(Begin(h, "db/pw", "new").ok());
  auto second = Begin(h, "db/pw", "other");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().reason(), "rotation_in_progress");
  Op put = MakeOp(Op::Type::kPut, "db/pw");
  put.value = SecretBytes::CopyFrom(AsBytes(std::string("x")));
  EXPECT_EQ(One(h, std::move(put)).status().reason(), "rotation_in_progress");
  Op rollback = MakeOp(Op::Type::kRollback, "db/pw");
  rollback.version = 1;
  EXPECT_EQ(One(h, std::move(rollback)).status().reason(), "rotation_in_progress");
  EXPECT_EQ(One(h, MakeOp(Op::Type::kDelete, "db/pw")).status().reason(), "rotation_in_progress");
  // Finishing or aborting another version than the pending one is refused.
  EXPECT_EQ(End(h, "db/pw", 1, true).reason(), "no_pending_rotation");
  EXPECT_EQ(End(h, "db/pw", 3, false).reason(), "no_pending_rotation");
  // A path without a live head does not rotate.
  EXPECT_EQ(Begin(h, "db/none", "x").status().code(), Code::kNotFound);
}

TEST_F(RotationServiceTest, StagesSurviveARestartAndFinishAndAbortAreAnchoredAtOnce) {
  h.PutText("db/pw", "old");
  h.PutText("db/other", "o1");
  ASSERT_TRUE(Begin(h, "db/pw", "new").ok());
  ASSERT_TRUE(Begin(h, "db/other", "o2").ok());
  ASSERT_TRUE(h.Restart().ok());
  EXPECT_EQ(StageText(h, "db/pw", Stage::kPending), "new@2");
  EXPECT_EQ(*h.GetText("db/pw"), "old");

  const std::uint64_t before = h.svc().Report().anchor.seq;
  ASSERT_TRUE(End(h, "db/pw", 2, true).ok());
  auto after_finish = h.svc().Report();
  EXPECT_GT(after_finish.anchor.seq, before);
  EXPECT_EQ(after_finish.anchor.seq, after_finish.head_seq);  // epoch mode, yet anchored at once
  ASSERT_TRUE(End(h, "db/other", 2, false, "test").ok());
  auto after_abort = h.svc().Report();
  EXPECT_EQ(after_abort.anchor.seq, after_abort.head_seq);

  ASSERT_TRUE(h.Restart().ok());
  EXPECT_EQ(*h.GetText("db/pw"), "new");
  EXPECT_EQ(StageText(h, "db/pw", Stage::kPrevious), "old@1");
  EXPECT_EQ(*h.GetText("db/other"), "o1");
}

TEST_F(RotationServiceTest, AnOlderCopyOfTheStoreCannotBringBackARotatedAwayCredential) {
  h.PutText("db/pw", "old");
  ASSERT_TRUE(Begin(h, "db/pw", "new").ok());
  h.Close();
  h.SaveStoreCopy("mid-rotation");
  ASSERT_TRUE(h.Open().ok());
  ASSERT_TRUE(End(h, "db/pw", 2, true).ok());
  h.Close();
  h.RestoreStoreCopy("mid-rotation");
  Status st = h.Open();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.reason(), "replay_detected");
}

TEST_F(RotationServiceTest, RestoreKeepsAPathWithARotationInProgressOrARotatedOne) {
  h.PutText("app/pw", "v1");
  h.PutText("app/cfg", "c1");
  ASSERT_TRUE(h.svc().CreateSnapshot("rel-1", "app", h.actor).ok());
  h.PutText("app/cfg", "c2");
  ASSERT_TRUE(Begin(h, "app/pw", "v2", "manual").ok());  // the label the API always adds
  secrets::RestoreOptions keep;
  keep.keep_rotated = true;
  auto r = h.svc().RestoreSnapshot("rel-1", h.actor, {}, keep);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->applied);
  EXPECT_EQ(r->kept.count("app/pw"), 1u);
  EXPECT_NE(r->kept.at("app/pw").find("rotation is in progress"), std::string::npos);
  EXPECT_EQ(*h.GetText("app/cfg"), "c1");
  ASSERT_TRUE(End(h, "app/pw", 2, true).ok());
  // Finished: the rotation label keeps it on the rotated value.
  auto again = h.svc().RestoreSnapshot("rel-1", h.actor, {}, keep);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->kept.count("app/pw"), 1u);
  EXPECT_EQ(*h.GetText("app/pw"), "v2");
}

TEST_F(RotationServiceTest, LifetimesCountExpiryWindowsAndDueRotations) {
  const std::uint64_t now =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  auto put = [&](const std::string& path, std::uint64_t expires_in_s) {
    Op op = MakeOp(Op::Type::kPut, path);
    op.value = SecretBytes::CopyFrom(AsBytes(std::string("v")));
    op.expires_in_s = expires_in_s;
    ASSERT_TRUE(One(h, std::move(op)).ok());
  };
  put("a/half-day", 12 * 3600);
  put("a/three-days", 3 * 86400);
  put("a/twenty-days", 20 * 86400);
  put("a/ninety-days", 90 * 86400);
  put("a/never", 0);
  h.PutText("a/rotated", "r1");
  ASSERT_TRUE(Begin(h, "a/rotated", "r2", "1m").ok());
  ASSERT_TRUE(End(h, "a/rotated", 2, true).ok());
  secrets::LifetimeReport r = h.svc().Lifetimes(now, 10);
  EXPECT_EQ(r.expired, 0u);
  EXPECT_EQ(r.within_1d, 1u);
  EXPECT_EQ(r.within_7d, 2u);
  EXPECT_EQ(r.within_30d, 3u);
  ASSERT_EQ(r.expiring.size(), 3u);
  EXPECT_EQ(r.expiring[0].path, "a/half-day");
  EXPECT_EQ(r.rotations_due, 0u);  // rotated just now, every minute
  secrets::LifetimeReport later = h.svc().Lifetimes(now + 120'000, 10);
  EXPECT_EQ(later.rotations_due, 1u);
  ASSERT_EQ(later.due.size(), 1u);
  EXPECT_EQ(later.due[0].path, "a/rotated");
  secrets::LifetimeReport much_later = h.svc().Lifetimes(now + 4 * 86'400'000ULL, 10);
  EXPECT_EQ(much_later.expired, 2u);
}

TEST(GeneratorTest, PasswordsHonourLengthClassesAndExclusions) {
  secrets::GeneratorSpec spec;
  spec.length = 40;
  spec.exclude = "0Ol1I\"'`\\";
  for (int i = 0; i < 50; ++i) {
    auto v = secrets::Generate(spec);
    ASSERT_TRUE(v.ok());
    std::string s = Text(*v);
    ASSERT_EQ(s.size(), 40u);
    EXPECT_EQ(s.find_first_of(spec.exclude), std::string::npos) << s;
    EXPECT_NE(s.find_first_of("abcdefghijkmnopqrstuvwxyz"), std::string::npos);
    EXPECT_NE(s.find_first_of("ABCDEFGHJKLMNPQRSTUVWXYZ"), std::string::npos);
    EXPECT_NE(s.find_first_of("23456789"), std::string::npos);
    EXPECT_NE(s.find_first_of("!#$%&()*+,-./:;<=>?@[]^_{|}~"), std::string::npos);
  }
  secrets::GeneratorSpec digits;
  digits.lower = digits.upper = digits.symbol = false;
  digits.length = 12;
  auto d = secrets::Generate(digits);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(Text(*d).find_first_not_of("0123456789"), std::string::npos);
  auto a = secrets::Generate(spec), b = secrets::Generate(spec);
  EXPECT_NE(Text(*a), Text(*b));
}

TEST(GeneratorTest, BytesAreEncodedAndBadSpecsAreRefused) {
  secrets::GeneratorSpec hex;
  hex.type = secrets::GeneratorSpec::Type::kBytes;
  hex.length = 16;
  auto h = secrets::Generate(hex);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(Text(*h).size(), 32u);
  EXPECT_EQ(Text(*h).find_first_not_of("0123456789abcdef"), std::string::npos);
  secrets::GeneratorSpec b64 = hex;
  b64.encoding = secrets::GeneratorSpec::Encoding::kBase64;
  b64.length = 32;
  auto b = secrets::Generate(b64);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(Text(*b).size(), 44u);
  EXPECT_EQ(Text(*b).back(), '=');

  secrets::GeneratorSpec short_pw;
  short_pw.length = 4;
  EXPECT_EQ(secrets::Generate(short_pw).status().reason(), "bad_generator");
  secrets::GeneratorSpec emptied;
  emptied.lower = emptied.upper = emptied.symbol = false;
  emptied.exclude = "0123456789";
  EXPECT_EQ(secrets::Generate(emptied).status().reason(), "bad_generator");
  secrets::GeneratorSpec huge = hex;
  huge.length = 5000;
  EXPECT_EQ(secrets::Generate(huge).status().reason(), "bad_generator");
}

}  // namespace
}  // namespace sk::testing
