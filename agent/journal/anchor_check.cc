#include "agent/journal/anchor_check.h"

namespace sk::journal {

AnchorDecision DecideAnchor(const hsm::Anchor& anchor, const Head& head,
                            const std::optional<Digest>& store_seal_at_anchor) {
  const std::string a = std::to_string(anchor.seq);
  const std::string h = std::to_string(head.head_seq);
  if (head.head_seq == anchor.seq && head.head_hash == anchor.head_hash) {
    return {AnchorVerdict::kInSync, "the store's head is the anchored head (seq " + h + ")"};
  }
  if (anchor.seq > head.head_seq) {
    return {AnchorVerdict::kReplay, "the store ends at seq " + h + " but the hardware anchor records seq " +
                                        a + ": this is an older copy of the store"};
  }
  bool has_anchored_entry =
      anchor.seq == 0 || (store_seal_at_anchor && *store_seal_at_anchor == anchor.head_hash);
  if (!has_anchored_entry) {
    return {AnchorVerdict::kReplay,
            "the store's entry at the anchored seq " + a +
                " is not the anchored one: the store's history differs from the anchored "
                "history"};
  }
  if (head.anchor_seq == anchor.seq && head.anchor_hash == anchor.head_hash) {
    return {AnchorVerdict::kRollForward, "the store is ahead of the anchor (store seq " + h +
                                             ", anchor seq " + a +
                                             ") by commits made on top of it: rolling the anchor forward"};
  }
  return {AnchorVerdict::kReplay,
          "the hardware anchor (seq " + a + ") is older than the anchor the store was built on (seq " +
              std::to_string(head.anchor_seq) + "): the token or TPM state was rolled back"};
}

}  // namespace sk::journal
