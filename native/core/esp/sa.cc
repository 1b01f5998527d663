#include "esp/sa.h"

namespace dne {

Status validate_sa_params(const SaParams& p, size_t key_len) {
  if (key_len != 16 && key_len != 24 && key_len != 32) return Status::kBadConfig;
  if (p.mode != EspMode::kGcm && p.mode != EspMode::kGmac)
    return Status::kBadConfig;
  if (p.sender_id_bits != 8 && p.sender_id_bits != 16 &&
      p.sender_id_bits != 24 && p.sender_id_bits != 32)
    return Status::kBadConfig;
  if (!ReplayWindow::valid_size(p.replay_window)) return Status::kBadConfig;
  if (p.replay_mode != ReplayMode::kIvCounter &&
      p.replay_mode != ReplayMode::kEspSeq)
    return Status::kBadConfig;
  if (p.max_senders == 0) return Status::kBadConfig;
  return Status::kOk;
}

std::unique_ptr<SaKeys> SaKeys::create(const SaParams& p, const uint8_t* keymat,
                                       size_t keymat_len, Status* status) {
  if (keymat_len <= kSaltLen) {
    *status = Status::kBadConfig;
    return nullptr;
  }
  const size_t key_len = keymat_len - kSaltLen;
  *status = validate_sa_params(p, key_len);
  if (*status != Status::kOk) return nullptr;
  std::unique_ptr<SaKeys> k(new SaKeys());
  k->params_ = p;
  k->keymat_ = SecureBuffer(keymat, keymat_len);
  k->key_len_ = key_len;
  if (!k->keymat_.ok()) {
    *status = Status::kBadConfig;
    return nullptr;
  }
  return k;
}

std::unique_ptr<AesGcm> SaKeys::make_cipher() const {
  return AesGcm::create(keymat_.data(), key_len_);
}

Sender::Sender(uint32_t sender_id, uint8_t sender_id_bits,
               uint64_t first_counter, uint64_t low_water, uint64_t max_counter)
    : sender_id_(sender_id), bits_(sender_id_bits), next_(first_counter) {
  const unsigned counter_bits = 64u - bits_;
  max_counter_ = (uint64_t{1} << counter_bits) - 1;
  if (max_counter != 0 && max_counter < max_counter_) max_counter_ = max_counter;
  low_water_ = low_water != 0 ? low_water : (max_counter_ >> 4) + 1;
  if (next_ == 0) next_ = 1;
}

Status Sender::next(uint64_t* iv, uint64_t* counter) {
  if (next_ > max_counter_) return Status::kCounterExhausted;
  *counter = next_++;
  *iv = (static_cast<uint64_t>(sender_id_) << (64u - bits_)) | *counter;
  return Status::kOk;
}

Status ReceiveState::check(uint32_t sender_id, uint64_t counter) const {
  if (params_.replay_mode == ReplayMode::kEspSeq)
    return seq_window_.check(counter);
  auto it = windows_.find(sender_id);
  // An unknown sender has an empty window: every counter is new to it.
  if (it == windows_.end()) return Status::kOk;
  return it->second.check(counter);
}

Status ReceiveState::advance(uint32_t sender_id, uint64_t counter) {
  if (params_.replay_mode == ReplayMode::kEspSeq) {
    seq_window_.advance(counter);
    return Status::kOk;
  }
  auto it = windows_.find(sender_id);
  if (it == windows_.end()) {
    if (windows_.size() >= params_.max_senders) return Status::kTooManySenders;
    it = windows_.emplace(sender_id, ReplayWindow(params_.replay_window)).first;
  }
  it->second.advance(counter);
  return Status::kOk;
}

}  // namespace dne
