// One dataplane worker: an OS thread of the addon's own, owning a subset of
// the protected ports (a port belongs to exactly one worker).
//
// The burst loop, per port and direction:
//   rx batch -> parse -> classify (flow cache, rules) ->
//     out (workload -> network): allow | drop | protect:
//         GSO segmentation / checksum completion -> MSS clamp ->
//         MTU check (fragment or ICMP back) -> sender IV -> ESP seal
//     in  (network -> workload): ESP: SPI -> replay -> ICV/decrypt ->
//         inner-flow policy check;  clear: allowed only where no rule
//         requires protection
//   -> tx batch (one sendmmsg per interface) -> release the rx batch
//
// Threading contract: a worker reads the published Snapshot (never blocks on
// the control plane), keeps per-SA state (cipher contexts, replay windows,
// its sender) in its own memory, and is the only writer of its WorkerStats.
#pragma once

#include <atomic>
#include <memory>
#include <unordered_map>
#include <vector>

#include "esp/sa.h"
#include "esp/transform.h"
#include "io/packet_io.h"
#include "net/frame.h"
#include "stats/counters.h"
#include "tables/flow_cache.h"
#include "tables/snapshot.h"
#include "worker/tcp_coalescer.h"

namespace dne {

class SnapshotSource {
 public:
  virtual std::shared_ptr<const Snapshot> current() const = 0;

 protected:
  ~SnapshotSource() = default;
};

class Worker final : private RxSink {
 public:
  Worker(uint32_t index, const SnapshotSource& source);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Thread body: waits on the worker's interfaces and its wake-up eventfd.
  void run(const std::atomic<bool>& running);
  // Picks up the latest snapshot and processes what is waiting, without
  // blocking; for the thread loop and for single-threaded tests.
  void poll_once();
  // Adds the frames the kernel dropped on this worker's rings since the last
  // call to the rx_overflow counters (run() calls it every 100 ms).
  void collect_rx_drops();
  // Wakes run() from poll() (configuration changed, or stopping).
  void wake();
  // Lets go of the snapshot and all per-SA state (cipher contexts, windows,
  // senders). Called on a stopped worker, so removed ports close their
  // sockets and removed SAs' key schedules are freed at once.
  void release();
  // Zeroes this worker's counters of every slot whose epoch moved in `s`.
  // Called from sync(), or by the control thread while the worker is stopped.
  void apply_epochs(const Snapshot& s);

  const WorkerStats& stats() const { return *stats_; }

 private:
  struct LocalSa {
    std::shared_ptr<const SaKeys> keys;
    std::unique_ptr<AesGcm> cipher;
    std::unique_ptr<ReceiveState> rx;
    std::unique_ptr<Sender> sender;
    uint32_t key_policy = 0;
    uint32_t slot = 0;
  };

  void sync();
  void drain(const PortRuntime& port, Direction dir);
  void on_frame(RxFrame& f) override;
  void out_frame(RxFrame& f);
  void in_frame(RxFrame& f);
  Match classify_port(const ParsedFrame& p, Direction dir, bool* unknown_fragment);
  void protect_out(RxFrame& f, ParsedFrame& p, const Match& m);
  void seal_ip(const uint8_t* eth, const ParsedFrame& p, const uint8_t* ip,
               size_t len, LocalSa& sa);
  void open_in(RxFrame& f, const ParsedFrame& p);
  void clamp_mss(uint8_t* frame, const ParsedFrame& p);
  uint8_t* alloc_slot();
  void queue(PacketIo& io, const VnetHdr& vnet, const uint8_t* frame, size_t len);
  // Everything for the workload goes through here so coalesced TCP stays in
  // order with the rest.
  void to_workload(const VnetHdr& vnet, const uint8_t* frame, size_t len);
  void flush_coalesced();
  void flush_port();
  void drop(Status reason, LocalSa* sa = nullptr);
  void count_rule(const Match& m, Direction dir, size_t bytes);
  uint64_t now_ms() const;

  const uint32_t index_;
  const SnapshotSource& source_;
  std::unique_ptr<WorkerStats> stats_;
  std::shared_ptr<const Snapshot> snap_;
  uint64_t gen_ = ~uint64_t{0};
  std::vector<const PortRuntime*> my_ports_;
  std::unordered_map<uint32_t, LocalSa> sas_;
  FlowCache flow_cache_;
  TcpCoalescer coalescer_;
  FragmentCache frag_cache_;
  int wake_fd_ = -1;
  std::vector<uint32_t> seen_port_epoch_ = std::vector<uint32_t>(kMaxPorts, 0);
  std::vector<uint32_t> seen_sa_epoch_ = std::vector<uint32_t>(kMaxSaSlots, 0);
  std::vector<uint32_t> seen_rule_epoch_ = std::vector<uint32_t>(kMaxRuleSlots, 0);

  // The port and direction being processed (RxSink has no context argument).
  const PortRuntime* cur_port_ = nullptr;
  const PortTable* cur_table_ = nullptr;
  Direction cur_dir_ = Direction::kOut;

  // Output arena: frames built by this worker wait here until their batch
  // is flushed. Slot size fits the largest MTU supported plus headers.
  static constexpr size_t kSlotSize = 16384;
  static constexpr size_t kSlots = 256;
  std::vector<uint8_t> arena_;
  size_t next_slot_ = 0;
  std::vector<uint8_t> scratch_;       // one GSO segment at a time
  std::vector<uint8_t> frag_scratch_;  // one fragment at a time
};

// Largest network-side MTU a port may have (the output slots hold it).
inline constexpr uint32_t kMaxPortMtu = 16000;

}  // namespace dne
