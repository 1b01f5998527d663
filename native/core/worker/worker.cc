#include "worker/worker.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "net/icmp.h"
#include "net/offload.h"

namespace dne {

namespace {
constexpr VnetHdr kNoOffload{};
// Per port and direction, at most this many batches before the next port
// gets its turn.
constexpr int kBatchesPerTurn = 4;
}  // namespace

Worker::Worker(uint32_t index, const SnapshotSource& source)
    : index_(index),
      source_(source),
      stats_(std::make_unique<WorkerStats>()),
      arena_(kSlotSize * kSlots),
      scratch_(kSlotSize),
      frag_scratch_(kSlotSize) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

Worker::~Worker() {
  if (wake_fd_ >= 0) close(wake_fd_);
}

void Worker::wake() {
  const uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof one);
}

void Worker::apply_epochs(const Snapshot& s) {
  auto zero = [](auto& counters) {
    for (auto& c : counters) c.set(0);
  };
  for (size_t i = 0; i < s.port_epoch.size() && i < kMaxPorts; ++i)
    if (seen_port_epoch_[i] != s.port_epoch[i]) {
      zero(stats_->port[i]);
      zero(stats_->port_drops[i]);
      seen_port_epoch_[i] = s.port_epoch[i];
    }
  for (size_t i = 0; i < s.sa_epoch.size() && i < kMaxSaSlots; ++i)
    if (seen_sa_epoch_[i] != s.sa_epoch[i]) {
      zero(stats_->sa[i]);
      seen_sa_epoch_[i] = s.sa_epoch[i];
    }
  for (size_t i = 0; i < s.rule_epoch.size() && i < kMaxRuleSlots; ++i)
    if (seen_rule_epoch_[i] != s.rule_epoch[i]) {
      zero(stats_->rule[i]);
      seen_rule_epoch_[i] = s.rule_epoch[i];
    }
}

void Worker::release() {
  sas_.clear();
  my_ports_.clear();
  snap_.reset();
  gen_ = ~uint64_t{0};
}

uint64_t Worker::now_ms() const {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// Brings the worker's private state in line with a new snapshot: cipher
// contexts are created here, at install time, never per packet (esp4.c's
// esp_init_aead); state of removed SAs is dropped, which wipes their keys'
// schedules with the contexts.
void Worker::sync() {
  snap_ = source_.current();
  if (!snap_ || snap_->generation == gen_) return;
  gen_ = snap_->generation;
  apply_epochs(*snap_);
  my_ports_.clear();
  for (const auto& p : snap_->ports)
    if (p.worker == index_) my_ports_.push_back(&p);
  for (auto it = sas_.begin(); it != sas_.end();) {
    auto s = snap_->sas.find(it->first);
    if (s == snap_->sas.end() || s->second.keys != it->second.keys)
      it = sas_.erase(it);
    else
      ++it;
  }
  for (const auto& [spi, e] : snap_->sas) {
    auto it = sas_.find(spi);
    const uint32_t want_sender =
        index_ < e.sender_ids.size() ? e.sender_ids[index_] : UINT32_MAX;
    if (it == sas_.end()) {
      LocalSa l;
      l.keys = e.keys;
      l.cipher = e.keys->make_cipher();
      if (!l.cipher) continue;
      l.rx = std::make_unique<ReceiveState>(e.keys->params());
      l.key_policy = e.key_policy;
      l.slot = e.slot;
      it = sas_.emplace(spi, std::move(l)).first;
    }
    LocalSa& l = it->second;
    l.key_policy = e.key_policy;
    // New sender IDs for this worker start a fresh counter space (RFC 6407
    // §3.5: every key release comes with new sender IDs). This is also how
    // Filter::replace_senders lands: same SaKeys, so the receive state above
    // is kept and only the sender is swapped, between two bursts, so no
    // packet of the SA is dropped for it. The filter never hands a worker an
    // ID the SA used before, so a changed ID always means an unused space.
    if (want_sender == UINT32_MAX) {
      l.sender.reset();
    } else if (!l.sender || l.sender->sender_id() != want_sender) {
      l.sender = std::make_unique<Sender>(want_sender, e.keys->params().sender_id_bits,
                                          1, e.low_water);
      stats_->sa[l.slot][kSaSenderLow].set(0);
    }
  }
}

void Worker::collect_rx_drops() {
  constexpr auto kReason = static_cast<size_t>(Status::kRxOverflow);
  for (const PortRuntime* p : my_ports_) {
    const uint64_t n = p->workload->rx_kernel_drops() + p->network->rx_kernel_drops();
    if (n == 0) continue;
    stats_->drops[kReason].add(n);
    stats_->port_drops[p->slot][kReason].add(n);
  }
}

void Worker::run(const std::atomic<bool>& running) {
  std::vector<pollfd> pfds;
  uint64_t polled_gen = ~uint64_t{0};
  // Kernel ring drops are read with a system call, so not per batch: every
  // 100 ms is precise enough for counters and costs nothing at line rate.
  auto next_collect = std::chrono::steady_clock::now();
  while (running.load(std::memory_order_acquire)) {
    if (const auto now = std::chrono::steady_clock::now(); now >= next_collect) {
      collect_rx_drops();
      next_collect = now + std::chrono::milliseconds(100);
    }
    sync();
    if (gen_ != polled_gen) {
      pfds.clear();
      pfds.push_back({wake_fd_, POLLIN, 0});
      for (const PortRuntime* p : my_ports_) {
        if (p->workload->poll_fd() >= 0) pfds.push_back({p->workload->poll_fd(), POLLIN, 0});
        if (p->network->poll_fd() >= 0) pfds.push_back({p->network->poll_fd(), POLLIN, 0});
      }
      polled_gen = gen_;
    }
    const int n = poll(pfds.data(), pfds.size(), 100);
    if (n > 0 && (pfds[0].revents & POLLIN)) {
      uint64_t v;
      (void)!read(wake_fd_, &v, sizeof v);
    }
    poll_once();
  }
}

void Worker::poll_once() {
  sync();
  for (const PortRuntime* p : my_ports_) {
    drain(*p, Direction::kOut);
    drain(*p, Direction::kIn);
  }
}

void Worker::drain(const PortRuntime& port, Direction dir) {
  cur_port_ = &port;
  cur_table_ = port.table.get();
  cur_dir_ = dir;
  PacketIo& io = dir == Direction::kOut ? *port.workload : *port.network;
  for (int i = 0; i < kBatchesPerTurn; ++i) {
    if (io.rx_batch(*this) == 0) break;
    // Frames queued for sending may point into the receive batch: send
    // them before the batch goes back to the kernel.
    flush_port();
    io.rx_release();
  }
  cur_port_ = nullptr;
}

void Worker::on_frame(RxFrame& f) {
  if (cur_dir_ == Direction::kOut)
    out_frame(f);
  else
    in_frame(f);
}

uint8_t* Worker::alloc_slot() {
  if (next_slot_ == kSlots) flush_port();
  return arena_.data() + (next_slot_++) * kSlotSize;
}

void Worker::queue(PacketIo& io, const VnetHdr& vnet, const uint8_t* frame,
                   size_t len) {
  if (!io.tx_queue(vnet, frame, len)) {
    // The send batch is full: flushing it frees queue entries but must not
    // recycle arena slots that other queued frames still point at.
    const size_t failed = io.tx_flush();
    if (failed) {
      stats_->drops[static_cast<size_t>(Status::kRingFull)].add(failed);
      stats_->port_drops[cur_port_->slot][static_cast<size_t>(Status::kRingFull)].add(failed);
    }
    io.tx_queue(vnet, frame, len);
  }
  const bool to_net = &io == cur_port_->network.get();
  auto& pc = stats_->port[cur_port_->slot];
  pc[to_net ? kToNetworkPackets : kToWorkloadPackets].add();
  pc[to_net ? kToNetworkBytes : kToWorkloadBytes].add(len);
}

void Worker::to_workload(const VnetHdr& vnet, const uint8_t* frame, size_t len) {
  flush_coalesced();
  queue(*cur_port_->workload, vnet, frame, len);
}

void Worker::flush_coalesced() {
  coalescer_.flush([&](const VnetHdr& v, const uint8_t* f, size_t n) {
    queue(*cur_port_->workload, v, f, n);
  });
}

void Worker::flush_port() {
  if (cur_port_ == nullptr) return;
  flush_coalesced();
  size_t failed = cur_port_->network->tx_flush() + cur_port_->workload->tx_flush();
  if (failed) {
    stats_->drops[static_cast<size_t>(Status::kRingFull)].add(failed);
    stats_->port_drops[cur_port_->slot][static_cast<size_t>(Status::kRingFull)].add(failed);
  }
  next_slot_ = 0;
  coalescer_.reset();
}

void Worker::drop(Status reason, LocalSa* sa) {
  const auto r = static_cast<size_t>(reason);
  stats_->drops[r].add();
  stats_->port_drops[cur_port_->slot][r].add();
  stats_->port[cur_port_->slot][kDroppedPackets].add();
  if (sa != nullptr) stats_->sa[sa->slot][kSaDropBase + r].add();
}

void Worker::count_rule(const Match& m, Direction dir, size_t bytes) {
  if (m.rule == nullptr || m.rule->counter_slot >= kMaxRuleSlots) return;
  auto& rc = stats_->rule[m.rule->counter_slot];
  rc[dir == Direction::kOut ? kRuleOutPackets : kRuleInPackets].add();
  rc[dir == Direction::kOut ? kRuleOutBytes : kRuleInBytes].add(bytes);
}

Match Worker::classify_port(const ParsedFrame& p, Direction dir,
                            bool* unknown_fragment) {
  *unknown_fragment = false;
  const uint32_t port = cur_port_->slot;
  Match m;
  if (p.fragment && !p.first_fragment) {
    if (frag_cache_.lookup(gen_, port, dir, p.key, p.frag_id, now_ms(), &m)) return m;
    *unknown_fragment = true;
    return {nullptr, Action::kDrop};
  }
  if (!flow_cache_.lookup(gen_, port, dir, p.key, &m)) {
    if (cur_table_ != nullptr)
      m = classify(cur_table_->rules, p.key, dir, cur_table_->default_action);
    else
      m = {nullptr, snap_->default_action};
    flow_cache_.insert(gen_, port, dir, p.key, m);
  }
  if (p.first_fragment) frag_cache_.insert(gen_, port, dir, p.key, p.frag_id, m, now_ms());
  return m;
}

// RFC 4459 §3.2-style MSS clamping on SYN and SYN-ACK: both ends' TCP learn
// at the handshake that segments must leave room for ESP on this port's
// network side. The checksum is final here, so it is updated incrementally.
void Worker::clamp_mss(uint8_t* frame, const ParsedFrame& p) {
  if (!(p.tcp_flags & 0x02)) return;
  const uint32_t mtu = cur_port_->network->mtu();
  const uint32_t room = (p.family == 4 ? 40 : 60) + kEspMaxOverhead;
  if (mtu > room) clamp_tcp_mss(frame, p, static_cast<uint16_t>(mtu - room), false);
}

// ---- workload -> network ----------------------------------------------

void Worker::out_frame(RxFrame& f) {
  auto& pc = stats_->port[cur_port_->slot];
  pc[kFromWorkloadPackets].add();
  pc[kFromWorkloadBytes].add(f.len);
  if (f.truncated) return drop(Status::kRingFull);
  ParsedFrame p;
  if (!parse_frame(f.data, f.len, &p)) return drop(Status::kMalformed);
  // Non-IP (ARP, LLDP, ...) and link control (ND, DHCP) pass untouched.
  if (p.family == 0 || is_link_control(p, f.data)) {
    pc[kClearPackets].add();
    return queue(*cur_port_->network, f.vnet, f.data, f.len);
  }
  bool unknown_fragment;
  const Match m = classify_port(p, Direction::kOut, &unknown_fragment);
  if (unknown_fragment) return drop(Status::kFragment);
  count_rule(m, Direction::kOut, p.ip_len);
  switch (m.action) {
    case Action::kAllow:
      pc[kClearPackets].add();
      return queue(*cur_port_->network, f.vnet, f.data, f.len);
    case Action::kDrop:
      return drop(Status::kPolicy);
    case Action::kEncrypt:
    case Action::kIntegrity:
      return protect_out(f, p, m);
  }
}

void Worker::protect_out(RxFrame& f, ParsedFrame& p, const Match& m) {
  auto it = m.rule != nullptr ? sas_.find(m.rule->tx_spi) : sas_.end();
  if (it == sas_.end() || !it->second.sender) return drop(Status::kNoSa);
  LocalSa& sa = it->second;
  const bool gcm = sa.keys->params().mode == EspMode::kGcm;
  if (gcm != (m.action == Action::kEncrypt)) return drop(Status::kBadConfig, &sa);

  if ((f.vnet.gso_type & ~kGsoEcn) != kGsoNone && f.vnet.gso_size != 0) {
    stats_->port[cur_port_->slot][kSegmentedPackets].add();
    const Status st = gso_segment(
        f.data, p, f.vnet, scratch_.data(), scratch_.size(),
        [&](const uint8_t* ip, size_t len) { seal_ip(f.data, p, ip, len, sa); });
    if (st != Status::kOk) drop(st, &sa);
    return;
  }
  if (f.vnet.flags & kVnetNeedsCsum) {
    if (!complete_checksum(f.data, f.len, f.vnet.csum_start, f.vnet.csum_offset))
      return drop(Status::kMalformed, &sa);
  }
  clamp_mss(f.data, p);
  seal_ip(f.data, p, f.data + p.l3_off, p.ip_len, sa);
}

void Worker::seal_ip(const uint8_t* eth, const ParsedFrame& p,
                     const uint8_t* ip, size_t len, LocalSa& sa) {
  IpLayout l;
  Status st = ip_layout_for_seal(ip, len, &l);
  if (st != Status::kOk) return drop(st, &sa);
  const uint32_t mtu = cur_port_->network->mtu();
  const size_t sealed = l.hdr_len + esp_encap_len(l.packet_len - l.hdr_len);
  if (sealed > mtu) {
    const uint32_t plain_mtu = mtu > kEspMaxOverhead ? mtu - kEspMaxOverhead : 0;
    const bool df = l.family == 6 || (load_be16(ip + 6) & 0x4000) != 0;
    if (!df) {
      // IPv4 without DF: fragment the plaintext, seal each fragment.
      st = ipv4_fragment(ip, l.packet_len, plain_mtu, frag_scratch_.data(),
                         frag_scratch_.size(),
                         [&](const uint8_t* frag, size_t flen) { seal_ip(eth, p, frag, flen, sa); });
      if (st != Status::kOk) drop(st, &sa);
      return;
    }
    // RFC 1191 / RFC 8201: tell the workload the MTU it can use.
    uint8_t* out = alloc_slot();
    const size_t n = l.family == 4
                         ? build_frag_needed(eth, p, static_cast<uint16_t>(plain_mtu), out, kSlotSize)
                         : build_packet_too_big(eth, p, plain_mtu < 1280 ? 1280 : plain_mtu, out, kSlotSize);
    if (n > 0) {
      to_workload(kNoOffload, out, n);
      stats_->port[cur_port_->slot][kIcmpSent].add();
    }
    return drop(Status::kMtu, &sa);
  }
  uint64_t iv = 0, counter = 0;
  st = sa.sender->next(&iv, &counter);
  if (st != Status::kOk) return drop(st, &sa);
  uint8_t* out = alloc_slot();
  std::memcpy(out, eth, p.l3_off);
  size_t out_len = 0;
  st = transport_seal(*sa.cipher, *sa.keys, l, counter, iv, ip, out + p.l3_off,
                      kSlotSize - p.l3_off, &out_len);
  if (st != Status::kOk) return drop(st, &sa);
  auto& sc = stats_->sa[sa.slot];
  sc[kSaSealedPackets].add();
  sc[kSaSealedBytes].add(l.packet_len);
  if (sa.sender->is_low()) sc[kSaSenderLow].set(1);
  stats_->port[cur_port_->slot][kSealedPackets].add();
  queue(*cur_port_->network, kNoOffload, out, p.l3_off + out_len);
}

// ---- network -> workload ----------------------------------------------

void Worker::in_frame(RxFrame& f) {
  auto& pc = stats_->port[cur_port_->slot];
  pc[kFromNetworkPackets].add();
  pc[kFromNetworkBytes].add(f.len);
  if (f.truncated) return drop(Status::kRingFull);
  ParsedFrame p;
  if (!parse_frame(f.data, f.len, &p)) return drop(Status::kMalformed);
  if (p.family == 0 || is_link_control(p, f.data)) {
    pc[kClearPackets].add();
    return to_workload(f.vnet, f.data, f.len);
  }
  if (p.l4_proto == kIpProtoEsp) return open_in(f, p);
  bool unknown_fragment;
  const Match m = classify_port(p, Direction::kIn, &unknown_fragment);
  if (unknown_fragment) return drop(Status::kFragment);
  // Clear text is accepted only where the rules allow clear text: a flow
  // that must be protected never arrives unprotected (DESIGN §4).
  if (m.action != Action::kAllow) return drop(Status::kPolicy);
  count_rule(m, Direction::kIn, p.ip_len);
  pc[kClearPackets].add();
  to_workload(f.vnet, f.data, f.len);
}

void Worker::open_in(RxFrame& f, const ParsedFrame& p) {
  const uint8_t* ip = f.data + p.l3_off;
  IpLayout l;
  Status st = ip_layout_for_open(ip, p.ip_len, &l);
  if (st != Status::kOk) return drop(Status::kMalformed);
  EspHeader h;
  st = esp_read_header(ip + l.hdr_len, l.packet_len - l.hdr_len, &h);
  if (st != Status::kOk) return drop(st);
  auto it = sas_.find(h.spi);
  if (it == sas_.end()) return drop(Status::kUnknownSpi);
  LocalSa& sa = it->second;
  // Coalescing buffers all handed out: send what is queued first, while no
  // arena slot of this frame is in use yet.
  if (!coalescer_.buffer_free()) flush_port();
  uint8_t* out = alloc_slot();
  std::memcpy(out, f.data, p.l3_off);
  size_t out_len = 0;
  OpenInfo info;
  st = transport_open(*sa.cipher, *sa.keys, *sa.rx, l, h, ip, out + p.l3_off,
                      kSlotSize - p.l3_off, &out_len, &info);
  if (st != Status::kOk) return drop(st, &sa);
  auto& sc = stats_->sa[sa.slot];
  sc[kSaOpenedPackets].add();
  sc[kSaOpenedBytes].add(out_len);

  // DESIGN §3: the decrypted flow must be one this key's policy protects at
  // this port, with the transform its rule asks for. Holding group A's key
  // must not let a host inject into group B.
  const size_t frame_len = p.l3_off + out_len;
  ParsedFrame q;
  if (!parse_frame(out, frame_len, &q) || q.family == 0) return drop(Status::kMalformed, &sa);
  if (cur_table_ != nullptr && !cur_table_->addresses.any() &&
      !cur_table_->addresses.contains(q.family, q.key.dst))
    return drop(Status::kPolicy, &sa);
  bool unknown_fragment;
  const Match m = classify_port(q, Direction::kIn, &unknown_fragment);
  if (unknown_fragment) return drop(Status::kFragment, &sa);
  const bool gcm = sa.keys->params().mode == EspMode::kGcm;
  if (m.rule == nullptr || !action_protects(m.action) ||
      m.rule->key_policy != sa.key_policy || gcm != (m.action == Action::kEncrypt))
    return drop(Status::kPolicy, &sa);
  count_rule(m, Direction::kIn, out_len);
  clamp_mss(out, q);
  stats_->port[cur_port_->slot][kOpenedPackets].add();
  // Decrypted TCP is coalesced into GSO frames for the workload when it can
  // be (the stack then sees one skb per batch, as after GRO).
  if (coalescer_.add(out, frame_len, q)) return;
  flush_coalesced();
  if (coalescer_.buffer_free() && coalescer_.add(out, frame_len, q)) return;
  queue(*cur_port_->workload, kNoOffload, out, frame_len);
}

}  // namespace dne
