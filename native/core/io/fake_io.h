// In-memory PacketIo for tests: what one side sends, the linked side
// receives, in order, with its virtio header.
#pragma once

#include <deque>
#include <memory>
#include <vector>

#include "io/packet_io.h"

namespace dne {

class FakeIo : public PacketIo {
 public:
  explicit FakeIo(uint32_t mtu = 1500) : mtu_(mtu) {}
  // Frames sent on `a` arrive on `b` and the other way round.
  static void link(FakeIo& a, FakeIo& b) {
    a.peer_ = &b;
    b.peer_ = &a;
  }
  // Puts a frame in this interface's receive queue (as if it arrived).
  void inject(const uint8_t* frame, size_t len, const VnetHdr& vnet = {}) {
    rx_.push_back({std::vector<uint8_t>(frame, frame + len), vnet});
  }
  // Frames sent out of this interface that no peer took, with their
  // virtio headers.
  std::vector<std::vector<uint8_t>> sent;
  std::vector<VnetHdr> sent_vnet;

  // Frames "the kernel" dropped on this interface, reported once by rx_kernel_drops().
  uint64_t kernel_drops = 0;
  uint64_t rx_kernel_drops() override {
    const uint64_t n = kernel_drops;
    kernel_drops = 0;
    return n;
  }

  int poll_fd() const override { return -1; }
  size_t rx_batch(RxSink& sink) override {
    batch_.assign(std::make_move_iterator(rx_.begin()), std::make_move_iterator(rx_.end()));
    rx_.clear();
    for (auto& e : batch_) {
      RxFrame f;
      f.data = e.bytes.data();
      f.len = static_cast<uint32_t>(e.bytes.size());
      f.vnet = e.vnet;
      sink.on_frame(f);
    }
    return batch_.size();
  }
  void rx_release() override { batch_.clear(); }
  bool tx_queue(const VnetHdr& vnet, const uint8_t* frame, size_t len) override {
    txq_.push_back({std::vector<uint8_t>(frame, frame + len), vnet});
    return true;
  }
  size_t tx_flush() override {
    for (auto& e : txq_) {
      if (peer_ != nullptr)
        peer_->rx_.push_back(std::move(e));
      else {
        sent.push_back(std::move(e.bytes));
        sent_vnet.push_back(e.vnet);
      }
    }
    txq_.clear();
    return 0;
  }
  size_t tx_pending() const override { return txq_.size(); }
  uint32_t mtu() const override { return mtu_; }
  size_t rx_waiting() const { return rx_.size(); }

 private:
  struct Entry {
    std::vector<uint8_t> bytes;
    VnetHdr vnet;
  };
  uint32_t mtu_;
  FakeIo* peer_ = nullptr;
  std::deque<Entry> rx_;
  std::vector<Entry> batch_;
  std::vector<Entry> txq_;
};

}  // namespace dne
