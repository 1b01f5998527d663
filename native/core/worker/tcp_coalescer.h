// Receive-side coalescing of decrypted TCP segments, the job GRO does in a
// NIC driver: consecutive in-order segments of one flow become a single GSO
// frame (virtio_net_hdr with gso_size = the segments' MSS and a partial
// checksum), so the workload's stack handles one skb instead of dozens.
// The bytes a workload receives are the same; only the framing into skbs
// changes, exactly as GRO changes it.
//
// Merge rules follow the kernel's tcp_gro_receive: same addresses, ports,
// IP TOS/TTL (traffic class/hop limit), ACK, window and options; sequence
// numbers contiguous; flags plain ACK (PSH ends the batch); a short segment
// ends the batch; IPv4 without options, IPv6 without extension headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "net/frame.h"
#include "net/offload.h"

namespace dne {

class TcpCoalescer {
 public:
  static constexpr size_t kBuffers = 4;
  static constexpr size_t kBufferSize = 65536 + 128;

  TcpCoalescer();

  bool holding() const { return count_ > 0; }
  // A held frame needs a free buffer; when none is left the caller must send
  // what was emitted (tx flush) and call reset().
  bool buffer_free() const { return next_ < kBuffers; }
  // Takes a copy of the segment if it can be merged into what is held, or
  // start a new batch. Returns false if the segment is not eligible (the
  // caller flushes what is held first, then sends the segment as is) or if
  // it belongs to another batch (the caller flushes, then calls add again).
  bool add(const uint8_t* frame, size_t len, const ParsedFrame& p);
  // Finishes the held batch: emit(vnet, frame, len). The frame stays valid
  // until reset().
  template <typename Emit>
  void flush(Emit&& emit) {
    if (count_ == 0) return;
    VnetHdr v{};
    const size_t len = finish(&v);
    emit(v, buf(), len);
    count_ = 0;
    ++next_;
  }
  // All emitted frames were sent: their buffers can be reused.
  void reset() {
    count_ = 0;
    next_ = 0;
  }
  uint64_t merged() const { return merged_; }

 private:
  uint8_t* buf() { return pool_.data() + next_ * kBufferSize; }
  size_t finish(VnetHdr* v);
  static bool eligible(const uint8_t* frame, const ParsedFrame& p, size_t* payload);

  std::vector<uint8_t> pool_;
  size_t next_ = 0;  // buffer index of the batch being built
  size_t count_ = 0;  // segments in the batch
  size_t len_ = 0;    // bytes of the held frame
  size_t hdr_len_ = 0;  // Ethernet + IP + TCP headers
  size_t l3_off_ = 0;
  size_t l4_off_ = 0;
  uint8_t family_ = 0;
  uint16_t mss_ = 0;
  uint32_t next_seq_ = 0;
  bool closed_ = false;  // PSH or a short segment ended the batch
  uint64_t merged_ = 0;
};

}  // namespace dne
