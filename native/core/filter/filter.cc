#include "filter/filter.h"

#include <openssl/crypto.h>

#include <algorithm>

namespace dne {

const char* sender_update_name(SenderUpdate r) {
  switch (r) {
    case SenderUpdate::kOk: return "ok";
    case SenderUpdate::kUnknownSpi: return "unknown_spi";
    case SenderUpdate::kWrongCount: return "wrong_count";
    case SenderUpdate::kTooWide: return "too_wide";
    case SenderUpdate::kDuplicate: return "duplicate";
    case SenderUpdate::kReused: return "reused";
  }
  return "unknown";
}

Filter::Filter(const FilterOptions& o) : opts_(o) {
  if (opts_.workers == 0) opts_.workers = 1;
  auto s = std::make_shared<Snapshot>();
  s->generation = 1;
  s->default_action = o.default_action;
  s->port_epoch.assign(kMaxPorts, 0);
  s->sa_epoch.assign(kMaxSaSlots, 0);
  s->rule_epoch.assign(kMaxRuleSlots, 0);
  std::atomic_store(&snap_, std::shared_ptr<const Snapshot>(std::move(s)));
  const SnapshotSource& source = *this;
  for (uint32_t i = 0; i < opts_.workers; ++i)
    workers_.push_back(std::make_unique<Worker>(i, source));
}

Filter::~Filter() { stop(); }

std::shared_ptr<const Snapshot> Filter::current() const {
  return std::atomic_load(&snap_);
}

std::shared_ptr<Snapshot> Filter::copy_current() const {
  return std::make_shared<Snapshot>(*current());
}

void Filter::publish(std::shared_ptr<Snapshot> s) {
  s->generation = current()->generation + 1;
  // Stopped workers do not sync: reset reused counter slots for them here
  // (no worker thread is writing counters now).
  if (!running_.load())
    for (auto& w : workers_) w->apply_epochs(*s);
  std::atomic_store(&snap_, std::shared_ptr<const Snapshot>(std::move(s)));
  for (auto& w : workers_) w->wake();
}

uint64_t Filter::generation() const { return current()->generation; }

void Filter::start() {
  std::lock_guard<std::mutex> g(mu_);
  if (running_.exchange(true)) return;
  for (auto& w : workers_) {
    Worker* wp = w.get();
    threads_.emplace_back([this, wp] { wp->run(running_); });
  }
}

void Filter::stop() {
  std::lock_guard<std::mutex> g(mu_);
  if (!running_.exchange(false)) return;
  for (auto& w : workers_) w->wake();
  for (auto& t : threads_) t.join();
  threads_.clear();
  for (auto& w : workers_) w->release();
}

void Filter::poll_once() {
  for (auto& w : workers_) {
    w->poll_once();
    w->collect_rx_drops();
  }
}

void Filter::close() {
  stop();
  std::lock_guard<std::mutex> g(mu_);
  auto s = copy_current();
  s->ports.clear();
  s->sas.clear();
  senders_used_.clear();
  // Every slot starts afresh for whatever is configured next.
  for (auto* v : {&s->port_epoch, &s->sa_epoch, &s->rule_epoch})
    for (auto& e : *v) ++e;
  publish(std::move(s));  // no ports, no SAs: sockets close, keys are wiped
}

bool Filter::open_port(const PortConfig& c, std::string* error) {
  if (c.name.empty()) {
    *error = "port name is empty";
    return false;
  }
  if (port_slot(c.name) >= 0) {
    *error = "port " + c.name + " already exists";
    return false;
  }
  if (c.workload_if == c.network_if && c.workload_netns == c.network_netns) {
    *error = "the workload and network sides must be different interfaces";
    return false;
  }
  for (const auto& p : current()->ports) {
    for (const auto& [ifn, ns] : {std::pair{c.workload_if, c.workload_netns},
                                  std::pair{c.network_if, c.network_netns}}) {
      if ((p.workload_if == ifn && p.workload_netns == ns) ||
          (p.network_if == ifn && p.network_netns == ns)) {
        *error = "interface " + ifn + (ns.empty() ? "" : " in " + ns) +
                 " is already used by port " + p.name;
        return false;
      }
    }
  }
  AfPacketOptions wo = opts_.ring, no = opts_.ring;
  wo.ifname = c.workload_if;
  wo.netns = c.workload_netns;
  no.ifname = c.network_if;
  no.netns = c.network_netns;
  std::string err;
  auto wl = AfPacketIo::open(wo, &err);
  if (!wl) {
    *error = "workload side: " + err;
    return false;
  }
  auto nw = AfPacketIo::open(no, &err);
  if (!nw) {
    *error = "network side: " + err;
    return false;
  }
  if (nw->mtu() > kMaxPortMtu) {
    *error = "network side MTU " + std::to_string(nw->mtu()) + " is above the supported " +
             std::to_string(kMaxPortMtu);
    return false;
  }
  if (!add_port(c.name, std::move(wl), std::move(nw), error)) return false;
  // Record where the port lives (for the duplicate check above).
  std::lock_guard<std::mutex> g(mu_);
  auto s = copy_current();
  for (auto& p : s->ports)
    if (p.name == c.name) {
      p.workload_if = c.workload_if;
      p.network_if = c.network_if;
      p.workload_netns = c.workload_netns;
      p.network_netns = c.network_netns;
    }
  publish(std::move(s));
  return true;
}

bool Filter::add_port(const std::string& name, std::shared_ptr<PacketIo> workload,
                      std::shared_ptr<PacketIo> network, std::string* error) {
  std::lock_guard<std::mutex> g(mu_);
  auto s = copy_current();
  for (const auto& p : s->ports)
    if (p.name == name) {
      *error = "port " + name + " already exists";
      return false;
    }
  std::vector<bool> used(kMaxPorts, false);
  for (const auto& p : s->ports) used[p.slot] = true;
  const auto free = std::find(used.begin(), used.end(), false);
  if (free == used.end()) {
    *error = "too many ports (at most " + std::to_string(kMaxPorts) + ")";
    return false;
  }
  PortRuntime p;
  p.name = name;
  p.slot = static_cast<uint32_t>(free - used.begin());
  ++s->port_epoch[p.slot];
  p.worker = next_port_worker_++ % workers_.size();
  p.workload = std::move(workload);
  p.network = std::move(network);
  s->ports.push_back(std::move(p));
  publish(std::move(s));
  return true;
}

bool Filter::remove_port(const std::string& name) {
  std::lock_guard<std::mutex> g(mu_);
  auto s = copy_current();
  const auto it = std::find_if(s->ports.begin(), s->ports.end(),
                               [&](const PortRuntime& p) { return p.name == name; });
  if (it == s->ports.end()) return false;
  s->ports.erase(it);
  publish(std::move(s));
  return true;
}

int Filter::port_slot(const std::string& name) const {
  for (const auto& p : current()->ports)
    if (p.name == name) return static_cast<int>(p.slot);
  return -1;
}

uint32_t Filter::port_mtu(const std::string& name) const {
  for (const auto& p : current()->ports)
    if (p.name == name) return p.network->mtu();
  return 0;
}

Status Filter::install_sa(SaInstall& in) {
  Status st = Status::kOk;
  std::shared_ptr<SaKeys> keys =
      SaKeys::create(in.params, in.keymat.data(), in.keymat.size(), &st);
  OPENSSL_cleanse(in.keymat.data(), in.keymat.size());
  if (!keys) return st;
  std::lock_guard<std::mutex> g(mu_);
  auto s = copy_current();
  if (s->sas.count(in.params.spi) != 0) return Status::kBadConfig;
  std::vector<bool> used(kMaxSaSlots, false);
  for (const auto& [spi, e] : s->sas) used[e.slot] = true;
  const auto free = std::find(used.begin(), used.end(), false);
  if (free == used.end()) return Status::kBadConfig;
  const uint32_t bits = in.params.sender_id_bits;
  for (uint32_t id : in.sender_ids)
    if (bits < 32 && (id >> bits) != 0) return Status::kBadConfig;
  SaEntry e;
  e.keys = std::move(keys);
  e.key_policy = in.key_policy;
  e.slot = static_cast<uint32_t>(free - used.begin());
  ++s->sa_epoch[e.slot];
  e.sender_ids = in.sender_ids;
  e.low_water = in.low_water;
  s->sas.emplace(in.params.spi, std::move(e));
  senders_used_[in.params.spi] =
      std::unordered_set<uint32_t>(in.sender_ids.begin(), in.sender_ids.end());
  publish(std::move(s));
  return Status::kOk;
}

SenderUpdate Filter::replace_senders(uint32_t spi, const std::vector<uint32_t>& sender_ids) {
  std::lock_guard<std::mutex> g(mu_);
  const auto cur = current();
  const auto it = cur->sas.find(spi);
  if (it == cur->sas.end()) return SenderUpdate::kUnknownSpi;
  if (sender_ids.size() != workers_.size()) return SenderUpdate::kWrongCount;
  const uint32_t bits = it->second.keys->params().sender_id_bits;
  std::unordered_set<uint32_t> fresh;
  for (uint32_t id : sender_ids) {
    if (bits < 32 && (id >> bits) != 0) return SenderUpdate::kTooWide;
    if (!fresh.insert(id).second) return SenderUpdate::kDuplicate;
  }
  auto& used = senders_used_[spi];
  for (uint32_t id : sender_ids)
    if (used.count(id) != 0) return SenderUpdate::kReused;
  // Only the sender IDs change: the entry keeps its SaKeys object, which is
  // what a worker's LocalSa is matched on in sync(), so cipher contexts and
  // replay windows stay; the slot and its epoch stay, so counters go on.
  auto s = copy_current();
  s->sas.at(spi).sender_ids = sender_ids;
  used.insert(sender_ids.begin(), sender_ids.end());
  publish(std::move(s));
  return SenderUpdate::kOk;
}

Status Filter::remove_sa(uint32_t spi) {
  std::lock_guard<std::mutex> g(mu_);
  auto s = copy_current();
  if (s->sas.erase(spi) == 0) return Status::kUnknownSpi;
  senders_used_.erase(spi);
  // The key bytes are wiped when the last snapshot and worker holding them
  // let go (SecureBuffer's destructor).
  publish(std::move(s));
  return Status::kOk;
}

int Filter::sa_slot(uint32_t spi) const {
  const auto s = current();
  const auto it = s->sas.find(spi);
  return it == s->sas.end() ? -1 : static_cast<int>(it->second.slot);
}

bool Filter::set_tables(
    std::unordered_map<std::string, std::shared_ptr<const PortTable>> tables,
    Action default_action, std::string* error,
    const std::vector<uint32_t>& new_rule_slots) {
  std::lock_guard<std::mutex> g(mu_);
  auto s = copy_current();
  for (const auto& entry : tables) {
    const std::string& name = entry.first;
    const bool known = std::any_of(s->ports.begin(), s->ports.end(),
                                   [&](const PortRuntime& p) { return p.name == name; });
    if (!known) {
      *error = "no port named " + name;
      return false;
    }
  }
  for (auto& p : s->ports) {
    auto it = tables.find(p.name);
    if (it != tables.end()) p.table = it->second;
  }
  s->default_action = default_action;
  for (uint32_t slot : new_rule_slots)
    if (slot < kMaxRuleSlots) ++s->rule_epoch[slot];
  publish(std::move(s));
  return true;
}

void Filter::read_drops(uint64_t out[kStatusCount]) const {
  for (int i = 0; i < kStatusCount; ++i) {
    out[i] = 0;
    for (const auto& w : workers_) out[i] += w->stats().drops[i].get();
  }
}

bool Filter::read_port(const std::string& name, uint64_t out[kPortCounterCount],
                       uint64_t drops[kStatusCount]) const {
  const int slot = port_slot(name);
  if (slot < 0) return false;
  for (uint32_t i = 0; i < kPortCounterCount; ++i) {
    out[i] = 0;
    for (const auto& w : workers_) out[i] += w->stats().port[slot][i].get();
  }
  for (int i = 0; i < kStatusCount; ++i) {
    drops[i] = 0;
    for (const auto& w : workers_) drops[i] += w->stats().port_drops[slot][i].get();
  }
  return true;
}

void Filter::read_rules(uint32_t slots, uint64_t* out) const {
  if (slots > kMaxRuleSlots) slots = kMaxRuleSlots;
  for (uint32_t r = 0; r < slots; ++r)
    for (uint32_t i = 0; i < kRuleCounterCount; ++i) {
      uint64_t v = 0;
      for (const auto& w : workers_) v += w->stats().rule[r][i].get();
      out[r * kRuleCounterCount + i] = v;
    }
}

bool Filter::read_sa(uint32_t spi, uint64_t out[kSaCounterCount]) const {
  const int slot = sa_slot(spi);
  if (slot < 0) return false;
  for (uint32_t i = 0; i < kSaCounterCount; ++i) {
    out[i] = 0;
    for (const auto& w : workers_) out[i] += w->stats().sa[slot][i].get();
  }
  return true;
}

}  // namespace dne
