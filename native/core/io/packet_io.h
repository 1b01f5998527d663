// Packet I/O of one interface, as the workers see it: receive a burst of
// frames in place, queue frames for sending, flush the queue in one call.
// AfPacketIo is the real thing (TPACKET_V3 ring + sendmmsg); FakeIo links two
// in memory so two dataplanes can run back to back in tests without root.
//
// Threading: an interface belongs to the one worker that owns its port.
#pragma once

#include <cstddef>
#include <cstdint>

#include "net/offload.h"

namespace dne {

struct RxFrame {
  uint8_t* data = nullptr;  // Ethernet header onwards; writable in place
  uint32_t len = 0;
  VnetHdr vnet{};           // offload state (GSO, partial checksum)
  bool truncated = false;   // the ring had less room than the frame
};

class RxSink {
 public:
  virtual void on_frame(RxFrame& f) = 0;

 protected:
  ~RxSink() = default;
};

class PacketIo {
 public:
  virtual ~PacketIo() = default;
  // A file descriptor that polls readable when frames are waiting, or -1.
  virtual int poll_fd() const = 0;
  // Delivers the frames of the next ready batch to `sink`; returns how many.
  // They stay valid (and any frame queued for sending that points into
  // them) until rx_release().
  virtual size_t rx_batch(RxSink& sink) = 0;
  virtual void rx_release() = 0;
  // Queues one frame; `frame` must stay valid until tx_flush(). Returns
  // false when the queue is full (flush first).
  virtual bool tx_queue(const VnetHdr& vnet, const uint8_t* frame,
                        size_t len) = 0;
  // Sends everything queued; returns the number of frames that failed.
  virtual size_t tx_flush() = 0;
  virtual size_t tx_pending() const = 0;
  // The interface MTU (IP packet bytes).
  virtual uint32_t mtu() const = 0;
  // Frames the kernel dropped because the receive ring was full, since the
  // last call (reading resets the kernel's count).
  virtual uint64_t rx_kernel_drops() { return 0; }
};

}  // namespace dne
