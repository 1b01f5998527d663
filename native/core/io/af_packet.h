// AF_PACKET I/O on one interface (packet(7)):
//   receive: TPACKET_V3 memory-mapped ring, one block handed over at a time,
//            with PACKET_VNET_HDR so GSO and partial-checksum state arrive
//            with each frame, and PACKET_IGNORE_OUTGOING so the filter never
//            reads back what it sent;
//   send:    sendmmsg() of everything queued in a burst, one system call per
//            batch, PACKET_QDISC_BYPASS straight to the driver.
// The socket may be opened inside another network namespace: the setns()
// happens on a short-lived helper thread, and the socket stays in the
// namespace it was created in.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <memory>
#include <string>
#include <vector>

#include "io/packet_io.h"

namespace dne {

struct AfPacketOptions {
  std::string ifname;
  std::string netns;  // path such as /run/netns/NAME; empty: current
  // 64 x 256 KiB: a block holds a 64 KiB GSO frame a few times, and at low
  // rates (blocks retired after retire_ms, nearly empty) 64 of them ride out
  // a worker that was descheduled for tens of milliseconds.
  uint32_t block_size = 256 * 1024;
  uint32_t block_count = 64;
  uint32_t retire_ms = 1;          // partially filled blocks are handed over after this
};

class AfPacketIo : public PacketIo {
 public:
  // Opens the interface; on failure returns nullptr and a message naming the
  // interface and the failing step.
  static std::unique_ptr<AfPacketIo> open(const AfPacketOptions& o,
                                          std::string* error);
  ~AfPacketIo() override;

  int poll_fd() const override { return fd_; }
  size_t rx_batch(RxSink& sink) override;
  void rx_release() override;
  bool tx_queue(const VnetHdr& vnet, const uint8_t* frame, size_t len) override;
  size_t tx_flush() override;
  size_t tx_pending() const override { return n_tx_; }
  uint32_t mtu() const override { return mtu_; }
  uint64_t rx_kernel_drops() override;

 private:
  AfPacketIo() = default;
  static constexpr size_t kTxBatch = 64;
  int fd_ = -1;
  uint8_t* ring_ = nullptr;
  size_t ring_len_ = 0;
  uint32_t block_size_ = 0;
  uint32_t block_count_ = 0;
  uint32_t cur_block_ = 0;
  bool holding_ = false;  // current block is with us until rx_release()
  uint32_t mtu_ = 1500;
  int ifindex_ = 0;
  // Send batch: each message is [virtio_net_hdr | frame].
  VnetHdr tx_hdr_[kTxBatch];
  iovec tx_iov_[kTxBatch][2];
  mmsghdr tx_msg_[kTxBatch];
  size_t n_tx_ = 0;
};

}  // namespace dne
