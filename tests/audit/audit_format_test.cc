#include "agent/audit/audit_format.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "agent/audit/audit_verifier.h"
#include "agent/audit/stored_record.h"
#include "tests/audit/audit_test_util.h"

namespace sk::audit {
namespace {

using test::Record;
using test::TestKey;

TEST(AuditRecordTest, HasNoFieldThatCouldHoldASecret) {
  // Fails to compile when a field is added: review it against "never a value, key or PIN".
  AuditRecord r;
  auto& [time, request_id, peer, route, path, outcome, reason] = r;
  auto& [uid, gid, pid, unit, exe] = peer;
  (void)time, (void)request_id, (void)route, (void)path, (void)outcome, (void)reason;
  (void)uid, (void)gid, (void)pid, (void)unit, (void)exe;
  SUCCEED();
}

// A change's record as the store keeps it reads back as it was, so the log gets the same
// line when it is written again; anything else is refused, not guessed at.
TEST(StoredRecordTest, RoundTripsAndRefusesAnythingElse) {
  AuditRecord r;
  r.time = std::chrono::system_clock::time_point(std::chrono::microseconds(1'700'000'000'123'456));
  r.request_id = "req-1";
  r.peer = {1000, 1001, 4242, "app.service", "/usr/bin/app"};
  r.route = "PUT secret.put";
  r.path = "app/db \"quoted\"";
  r.outcome = AuditOutcome::kAllowed;
  r.reason = "allowed";
  const Bytes bytes = EncodeStoredRecord(r);
  Result<AuditRecord> back = DecodeStoredRecord(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(EncodeRecordBody(7, *back), EncodeRecordBody(7, r));
  EXPECT_EQ(back->time, r.time);

  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_EQ(DecodeStoredRecord(ByteView(bytes.data(), cut)).status().reason(), "audit_corrupt") << cut;
  }
  Bytes longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(DecodeStoredRecord(longer).ok());
  Bytes magic = bytes;
  magic[0] ^= 1;
  EXPECT_FALSE(DecodeStoredRecord(magic).ok());
  Bytes outcome = bytes;
  outcome[4 + 8 + 12] = 9;
  EXPECT_FALSE(DecodeStoredRecord(outcome).ok());
}

TEST(AuditFormatTest, RecordBodyIsExactlyAsSpecified) {
  AuditRecord r = Record(4);
  EXPECT_EQ(EncodeRecordBody(7, r),
            "{\"seq\":7,\"time\":\"2025-06-02T12:20:04.000000Z\",\"request_id\":\"req-4\",\"uid\":1001,"
            "\"gid\":1000,\"pid\":4004,\"unit\":\"\",\"exe\":\"/usr/bin/curl\",\"route\":\"PUT "
            "/v1/secrets/{path}\",\"path\":\"apps/web/key4\",\"outcome\":\"allowed\",\"reason\":\"allowed\"");
}

TEST(AuditFormatTest, KnownAnswerLineAndMac) {
  // Pins the chain MAC so the format cannot drift unnoticed (docs/audit.md shows it; the
  // values were also computed independently with Python's hmac module).
  SecretBytes key = TestKey();
  Hmac hmac(key);
  SegmentHeader h{1, 1, {}};
  auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1748866800));
  std::string header = EncodeHeaderBody(h, t);
  EXPECT_EQ(
      header,
      "{\"sealkeep_audit\":1,\"segment\":1,\"first_seq\":1,\"prev_mac\":"
      "\"0000000000000000000000000000000000000000000000000000000000000000\",\"time\":\"2025-06-02T12:20:"
      "00.000000Z\"");
  Digest hmac_header = ChainMac(hmac, h.prev_mac, header);
  EXPECT_EQ(HexEncode(hmac_header), "3602c6b62a65f48d522a2d2bab7ed545472dd3f645850169f1e5ee0a34a2f989");
  Digest rec = ChainMac(hmac, hmac_header, EncodeRecordBody(1, Record(1)));
  EXPECT_EQ(HexEncode(rec), "8dc54e127022a344c667a0e1031b89c9d3f4a5b22588b5d5e2dfb93717167016");
}

TEST(AuditFormatTest, TheDocumentedExampleVerifies) {
  // The three lines of docs/audit.md's worked example, byte for byte.
  testing::TempDir dir("audit-doc");
  testing::WriteFile(
      dir.Join("audit-00000001.log"),
      "{\"sealkeep_audit\":1,\"segment\":1,\"first_seq\":1,\"prev_mac\":"
      "\"0000000000000000000000000000000000000000000000000000000000000000\",\"time\":\"2025-06-02T12:20:00."
      "000000Z\",\"mac\":\"3602c6b62a65f48d522a2d2bab7ed545472dd3f645850169f1e5ee0a34a2f989\"}\n"
      "{\"seq\":1,\"time\":\"2025-06-02T12:20:01.000000Z\",\"request_id\":\"req-1\",\"uid\":1001,\"gid\":"
      "1000,"
      "\"pid\":4001,\"unit\":\"web.service\",\"exe\":\"/usr/bin/curl\",\"route\":\"GET /v1/secrets/{path}\","
      "\"path\":\"apps/web/key1\",\"outcome\":\"allowed\",\"reason\":\"allowed\",\"mac\":"
      "\"8dc54e127022a344c667a0e1031b89c9d3f4a5b22588b5d5e2dfb93717167016\"}\n");
  testing::WriteFile(
      dir.Join("checkpoint"),
      "{\"sealkeep_audit_checkpoint\":1,\"segment\":1,\"last_seq\":1,\"head_mac\":"
      "\"8dc54e127022a344c667a0e1031b89c9d3f4a5b22588b5d5e2dfb93717167016\",\"time\":\"2025-06-02T12:20:"
      "02.000000Z\",\"mac\":\"df30a7128f890ebe4d0303773eea8841142f778e2a9645dcfe570b5d0fb19aa8\"}\n");
  SecretBytes key = TestKey();
  Result<AuditVerifyReport> r = VerifyAuditLog(dir.path(), key);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->ok()) << r->problem->ToString();
  EXPECT_EQ(r->records, 1U);
  EXPECT_TRUE(r->checkpoint_checked);
  // And the writer produces that record line, byte for byte, for the same record.
  std::string lines = testing::ReadFile(dir.Join("audit-00000001.log"));
  EXPECT_EQ(SealLine(EncodeRecordBody(1, Record(1)), r->head_mac), lines.substr(lines.find('\n') + 1));
}

TEST(AuditFormatTest, HostileStringsStayOneValidJsonLine) {
  AuditRecord r = Record(1);
  r.path = std::string("a\"b\\c\nd\re\tf\x01g\x7f", 15);
  r.peer.exe = "/opt/caf\xc3\xa9/\xff\xfe bin";  // valid é, then two invalid bytes
  r.reason = "x\xe2\x82";                        // a cut-off 3-byte sequence
  r.request_id = "\xed\xa0\x80";                 // an encoded surrogate: invalid UTF-8
  std::string line = SealLine(EncodeRecordBody(1, r), Digest{});
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["path"], std::string("a\"b\\c\nd\re\tf\x01g\x7f", 15));
  EXPECT_EQ(j["exe"], "/opt/caf\xc3\xa9/\xef\xbf\xbd\xef\xbf\xbd bin");
  EXPECT_EQ(j["reason"], "x\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(j["request_id"], "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(j["mac"], std::string(64, '0'));
}

TEST(AuditFormatTest, LongFieldsAreCutAtTheirCaps) {
  AuditRecord r = Record(1);
  r.path = std::string(5000, 'p');
  r.peer.exe = std::string(100000, 'e');
  r.request_id = std::string(100, 'r');
  nlohmann::json j = nlohmann::json::parse(SealLine(EncodeRecordBody(1, r), Digest{}));
  EXPECT_EQ(j["path"].get<std::string>(), std::string(509, 'p') + "...");
  EXPECT_EQ(j["exe"].get<std::string>().size(), 4096U);
  EXPECT_EQ(j["request_id"].get<std::string>().size(), 64U);
  // Even an all-control-character worst case stays under the line cap.
  r.peer.exe = std::string(4096, '\x01');
  r.path = std::string(512, '\x01');
  r.reason = std::string(512, '\x01');
  r.peer.unit = std::string(256, '\x01');
  r.route = std::string(128, '\x01');
  EXPECT_LT(SealLine(EncodeRecordBody(1, r), Digest{}).size(), kMaxLineBytes);
}

TEST(AuditFormatTest, ParseLineReadsHeadersAndRecords) {
  Digest prev{};
  prev[0] = 0xAB;
  std::string header = SealLine(EncodeHeaderBody({3, 77, prev}, std::chrono::system_clock::now()), Digest{});
  header.pop_back();
  Result<ParsedLine> h = ParseLine(header);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_TRUE(h->is_header);
  EXPECT_EQ(h->header.segment, 3U);
  EXPECT_EQ(h->header.first_seq, 77U);
  EXPECT_EQ(h->header.prev_mac, prev);
  std::string rec = SealLine(EncodeRecordBody(12345, Record(1)), Digest{});
  rec.pop_back();
  Result<ParsedLine> r = ParseLine(rec);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->is_header);
  EXPECT_EQ(r->seq, 12345U);
}

TEST(AuditFormatTest, ParseLineRefusesWhatTheWriterNeverWrites) {
  std::string good = SealLine(EncodeRecordBody(5, Record(1)), Digest{});
  good.pop_back();
  auto bad = [](std::string s) { return !ParseLine(s).ok(); };
  std::string upper = good;
  upper[upper.size() - 3] = 'A';  // upper-case hex
  EXPECT_TRUE(bad(upper));
  EXPECT_TRUE(bad(good + " "));
  EXPECT_TRUE(bad(good.substr(1)));
  EXPECT_TRUE(bad(""));
  EXPECT_TRUE(bad("{\"seq\":0" + good.substr(good.find(',', 1))));                     // seq 0
  EXPECT_TRUE(bad("{\"seq\":05" + good.substr(good.find(',', 1))));                    // leading zero
  EXPECT_TRUE(bad("{\"seq\":99999999999999999999" + good.substr(good.find(',', 1))));  // > u64
  EXPECT_TRUE(bad("{\"other\":1" + good.substr(good.find(',', 1))));
  EXPECT_TRUE(bad(std::string(kMaxLineBytes + 1, 'x')));
}

TEST(AuditFormatTest, SegmentFileNamesHaveOneSpelling) {
  EXPECT_EQ(SegmentFileName(1), "audit-00000001.log");
  EXPECT_EQ(SegmentFileName(123456789), "audit-123456789.log");
  EXPECT_EQ(ParseSegmentFileName("audit-00000001.log"), 1U);
  EXPECT_EQ(ParseSegmentFileName("audit-123456789.log"), 123456789U);
  for (const char* n : {"audit-1.log", "audit-000000001.log", "audit-00000000.log", "audit-0000000x.log",
                        "audit-00000001.log.tmp", "checkpoint", "audit-+0000001.log"}) {
    EXPECT_FALSE(ParseSegmentFileName(n).has_value()) << n;
  }
}

TEST(AuditFormatTest, TimesAreUtcMicroseconds) {
  using namespace std::chrono;
  EXPECT_EQ(FormatTime(system_clock::time_point(microseconds(1748866800123456))),
            "2025-06-02T12:20:00.123456Z");
  EXPECT_EQ(FormatTime(system_clock::time_point(microseconds(-1))), "1969-12-31T23:59:59.999999Z");
}

}  // namespace
}  // namespace sk::audit
