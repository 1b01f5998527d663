// The filter: protected ports, the SA set and the rule tables, published to
// the workers as immutable snapshots (one atomic swap per change), plus the
// workers' threads. Every public method is a control call from one thread
// (the agent's JS thread); none of them waits for a worker.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "io/af_packet.h"
#include "tables/snapshot.h"
#include "worker/worker.h"

namespace dne {

struct FilterOptions {
  uint32_t workers = 1;
  Action default_action = Action::kAllow;  // ports without a table yet
  AfPacketOptions ring;                    // ring geometry for every port
};

struct PortConfig {
  std::string name;
  std::string workload_if;
  std::string network_if;
  std::string workload_netns;  // e.g. /run/netns/host1; empty: ours
  std::string network_netns;
};

// Outcome of Filter::replace_senders. Not a packet-path Status: these name
// control-plane refusals precisely and are never counted as drops.
enum class SenderUpdate : uint8_t {
  kOk = 0,
  kUnknownSpi,  // no SA installed with that SPI
  kWrongCount,  // not exactly one sender ID per worker
  kTooWide,     // an ID does not fit the SA's sender_id_bits
  kDuplicate,   // the same ID twice in the new set
  kReused,      // an ID this SA has already used in this process
};
// "ok", "unknown_spi", "wrong_count", "too_wide", "duplicate", "reused".
const char* sender_update_name(SenderUpdate r);

struct SaInstall {
  SaParams params;
  std::vector<uint8_t> keymat;  // key || salt; wiped by install_sa
  uint32_t key_policy = 0;
  std::vector<uint32_t> sender_ids;  // one per worker
  uint64_t low_water = 0;
};

class Filter : private SnapshotSource {
 public:
  explicit Filter(const FilterOptions& o);
  ~Filter();
  Filter(const Filter&) = delete;
  Filter& operator=(const Filter&) = delete;

  // Starts one thread per worker (idempotent).
  void start();
  // Stops and joins the worker threads (idempotent).
  void stop();
  bool running() const { return running_.load(); }
  // Stops the workers and drops every port (sockets closed) and SA (keys
  // wiped). The filter can be configured and started again afterwards.
  void close();
  uint32_t worker_count() const { return static_cast<uint32_t>(workers_.size()); }

  // Opens both interfaces of a port with AF_PACKET. On failure nothing
  // changes and *error says what failed.
  bool open_port(const PortConfig& c, std::string* error);
  // Adds a port over given I/O objects (tests use FakeIo).
  bool add_port(const std::string& name, std::shared_ptr<PacketIo> workload,
                std::shared_ptr<PacketIo> network, std::string* error);
  bool remove_port(const std::string& name);
  // Slot of a port (counter index), or -1.
  int port_slot(const std::string& name) const;
  uint32_t port_mtu(const std::string& name) const;

  // Installs an SA. keymat is wiped whatever the outcome.
  Status install_sa(SaInstall& s);
  Status remove_sa(uint32_t spi);
  // Gives the SA's senders new sender IDs (one per worker) without touching
  // its receive side: RFC 6054 §3 counter space runs out per sender, and
  // DESIGN §3 renews it with fresh IDs from the key manager. Each worker
  // switches to its new ID with a fresh counter at its next sync; the SA's
  // keys, cipher contexts, replay windows and counters are kept, so no
  // packet of the SPI is dropped and no replay window restarts. Refused
  // (nothing changes) unless there is exactly one ID per worker, each fits
  // the SA's width, all are distinct and none was used with this SA before
  // (since its install_sa): a reused ID would repeat IVs under the key.
  SenderUpdate replace_senders(uint32_t spi, const std::vector<uint32_t>& sender_ids);
  // SA slot (counter index), or -1.
  int sa_slot(uint32_t spi) const;

  // Replaces the rule tables of the named ports (others keep theirs) and
  // the default action; unknown port names are an error and change nothing.
  // new_rule_slots: counter slots handed to rules they did not count for
  // before; their counters start from zero.
  bool set_tables(std::unordered_map<std::string, std::shared_ptr<const PortTable>> tables,
                  Action default_action, std::string* error,
                  const std::vector<uint32_t>& new_rule_slots = {});

  // Runs every worker once in the calling thread (tests without threads),
  // kernel receive drops included.
  void poll_once();

  uint64_t generation() const;
  // What IP traffic of a port without a table gets.
  Action default_action() const { return current()->default_action; }

  // Counter reads: sums over workers into caller memory.
  void read_drops(uint64_t out[kStatusCount]) const;
  bool read_port(const std::string& name, uint64_t out[kPortCounterCount],
                 uint64_t drops[kStatusCount]) const;
  void read_rules(uint32_t slots, uint64_t* out) const;  // slots * kRuleCounterCount
  bool read_sa(uint32_t spi, uint64_t out[kSaCounterCount]) const;

 private:
  std::shared_ptr<const Snapshot> current() const override;
  std::shared_ptr<Snapshot> copy_current() const;
  void publish(std::shared_ptr<Snapshot> s);

  FilterOptions opts_;
  mutable std::mutex mu_;  // serialises control calls
  std::shared_ptr<const Snapshot> snap_;  // accessed with std::atomic_load/store
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  std::atomic<bool> running_{false};
  uint32_t next_port_worker_ = 0;
  // Every sender ID each installed SA has had, by SPI (guarded by mu_).
  // Lives outside the snapshots: it is control-plane bookkeeping only.
  std::unordered_map<uint32_t, std::unordered_set<uint32_t>> senders_used_;
};

}  // namespace dne
