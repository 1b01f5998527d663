// Security association parameters and the per-SA objects built from them.
//
// An SA is named by its SPI, which the control plane allocates uniquely per
// (key, mode) across the deployment (DESIGN §3), so one SPI maps to exactly
// one key and one transform.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>

#include "common/status.h"
#include "crypto/aes_gcm.h"
#include "crypto/secure_buffer.h"
#include "replay/window.h"

namespace dne {

enum class EspMode : uint8_t {
  kGcm = 0,   // ENCRYPT: AES-GCM, RFC 4106
  kGmac = 1,  // INTEGRITY_ONLY: AES-GMAC, RFC 4543 (payload in clear)
};

// What the receiver keys its anti-replay window on.
enum class ReplayMode : uint8_t {
  // Group SAs (RFC 6054 §3): many senders share the key, the IV is
  // sender ID || counter, and there is one window per sender ID on that
  // counter. The default for DNE traffic.
  kIvCounter = 0,
  // Classic single-sender SA (RFC 4303 §3.4.3): one window on the ESP
  // sequence number, with ESN inference (Appendix A) when esn is set. Used
  // for peers that pick IVs their own way (Linux xfrm, scapy).
  kEspSeq = 1,
};

inline constexpr size_t kSaltLen = 4;  // RFC 4106 §8.1 / RFC 4543 §7.1

struct SaParams {
  // Any value is accepted here (draft-mcgrew case 4 uses SPI 0); the
  // addon's TypeScript face refuses 0-255, reserved by RFC 4303 §2.1.
  uint32_t spi = 0;
  EspMode mode = EspMode::kGcm;
  // Extended sequence numbers: the high 32 bits are authenticated but not
  // sent (RFC 4106 §5, RFC 4543 §3.3). DNE's own SAs leave this off: the
  // full counter already travels in the IV.
  bool esn = false;
  // Width of the sender ID at the top of the 8-byte IV (RFC 6054 §3).
  uint8_t sender_id_bits = 24;
  uint32_t replay_window = ReplayWindow::kDefaultSize;
  ReplayMode replay_mode = ReplayMode::kIvCounter;
  // Upper bound on per-sender windows kept for this SA. Windows are created
  // only for packets whose ICV verified, so only key holders can use slots.
  uint32_t max_senders = 16384;
  // kEspSeq only: the highest sequence number already delivered when the SA
  // is installed mid-stream (as `ip xfrm state ... replay-seq-hi` does), so
  // the ESN high half is inferred right from the first packet.
  uint64_t initial_seq = 0;
};

// Validates parameters and key length; kOk or kBadConfig.
Status validate_sa_params(const SaParams& p, size_t key_len);

// Immutable key material and transform of one SA. Key bytes (key || salt)
// live in locked memory and are wiped when the SA goes away.
class SaKeys {
 public:
  // keymat = AES key (16 or 32 bytes) || 4-byte salt.
  static std::unique_ptr<SaKeys> create(const SaParams& p,
                                        const uint8_t* keymat,
                                        size_t keymat_len, Status* status);
  const SaParams& params() const { return params_; }
  const uint8_t* salt() const { return keymat_.data() + key_len_; }
  size_t key_len() const { return key_len_; }
  // A fresh cipher context for one thread; expensive, call at install time.
  std::unique_ptr<AesGcm> make_cipher() const;
  bool key_locked() const { return keymat_.locked(); }

 private:
  SaKeys() = default;
  SaParams params_;
  SecureBuffer keymat_;
  size_t key_len_ = 0;
};

// Counter space of one sender under one key. IV = sender_id || counter with
// the sender ID in the top sender_id_bits bits (RFC 6054 §3); the counter
// starts at 1 (the first ESP sequence number is 1, RFC 4303 §3.3.3) and never
// wraps: once it is used up the sender refuses to seal.
class Sender {
 public:
  // low_water: the remaining-count at or below which is_low() turns true, so
  // the agent can ask for new sender IDs or a rotation before exhaustion.
  // 0 picks the default, 1/16 of the counter space.
  // max_counter: 0 means the whole counter space of the width; a classic
  // single-sender SA without ESN caps it at 2^32-1 so the 32-bit sequence
  // number never cycles (RFC 4303 §3.3.3).
  Sender(uint32_t sender_id, uint8_t sender_id_bits, uint64_t first_counter = 1,
         uint64_t low_water = 0, uint64_t max_counter = 0);

  // Takes the next IV; kCounterExhausted once the space is used up.
  Status next(uint64_t* iv, uint64_t* counter);
  bool is_low() const { return max_counter_ - next_ + 1 <= low_water_; }
  uint64_t remaining() const {
    return next_ > max_counter_ ? 0 : max_counter_ - next_ + 1;
  }
  uint32_t sender_id() const { return sender_id_; }
  uint64_t next_counter() const { return next_; }

 private:
  uint32_t sender_id_;
  uint8_t bits_;
  uint64_t next_;
  uint64_t max_counter_;
  uint64_t low_water_;
};

// Splits a received IV into (sender ID, counter) for the given width.
inline void split_iv(uint64_t iv, uint8_t sender_id_bits, uint32_t* sender_id,
                     uint64_t* counter) {
  const unsigned shift = 64u - sender_id_bits;
  *sender_id = static_cast<uint32_t>(iv >> shift);
  *counter = iv & ((uint64_t{1} << shift) - 1);
}

// Receive-side mutable state of one SA on one thread: the replay windows.
// Lives outside any swapped table snapshot so a table swap never resets it.
class ReceiveState {
 public:
  explicit ReceiveState(const SaParams& p)
      : params_(p), seq_window_(p.replay_window, p.initial_seq) {}
  // Window lookup for (sender, counter); kOk when the packet may proceed to
  // the ICV check.
  Status check(uint32_t sender_id, uint64_t counter) const;
  // Commits (sender, counter) after the ICV verified; kTooManySenders when a
  // new sender cannot get a window.
  Status advance(uint32_t sender_id, uint64_t counter);
  // For kEspSeq with ESN: the high 32 bits to authenticate with.
  uint32_t seq_hi_for(uint32_t seq_lo) const {
    return infer_seq_hi(seq_window_.top(), seq_lo, seq_window_.size());
  }
  size_t sender_count() const { return windows_.size(); }

 private:
  SaParams params_;
  ReplayWindow seq_window_;  // kEspSeq
  std::unordered_map<uint32_t, ReplayWindow> windows_;  // kIvCounter
};

}  // namespace dne
