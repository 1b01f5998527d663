// Two filters back to back through in-memory links (FakeIo), no root needed:
// host A's workload w1 talks to host B's workload w2 across a "wire" the test
// can read and write.
#include <gtest/gtest.h>

#include "filter/filter.h"
#include "io/fake_io.h"
#include "net/checksum.h"
#include "net/frame.h"
#include "test_util.h"

namespace dne::test {
namespace {

const uint8_t kMacW1[6] = {0x02, 0, 0, 0, 0, 0x01};
const uint8_t kMacW2[6] = {0x02, 0, 0, 0, 0, 0x02};

Bytes eth(const Bytes& ip, uint16_t type = 0x0800, const uint8_t* src = kMacW1,
          const uint8_t* dst = kMacW2) {
  Bytes f(14);
  std::copy(dst, dst + 6, f.begin());
  std::copy(src, src + 6, f.begin() + 6);
  store_be16(&f[12], type);
  f.insert(f.end(), ip.begin(), ip.end());
  return f;
}

// UDP 10.1.0.1:40000 -> 10.2.0.2:5201 (ipv4_udp's addresses), valid checksums.
Bytes udp4_frame(const Bytes& payload, bool df = true) {
  Bytes ip = ipv4_udp(payload);
  if (!df) {
    store_be16(&ip[6], 0);
    store_be16(&ip[10], ipv4_header_checksum(ip.data(), 20));
  }
  set_l4_checksum(4, &ip[12], &ip[16], 17, &ip[20], ip.size() - 20);
  return eth(ip);
}

Bytes udp6_frame(const Bytes& payload) {
  Bytes ip = ipv6_udp(payload);
  set_l4_checksum(6, &ip[8], &ip[24], 17, &ip[40], ip.size() - 40);
  return eth(ip, 0x86dd);
}

// TCP 10.1.0.1:40000 -> 10.2.0.2:5201 with the given flags and an MSS
// option on SYNs.
Bytes tcp4_frame(const Bytes& payload, uint8_t flags, uint32_t seq = 1000,
                 uint16_t mss = 0) {
  const size_t thl = mss ? 24 : 20;
  Bytes ip(20 + thl + payload.size());
  ip[0] = 0x45;
  store_be16(&ip[2], static_cast<uint16_t>(ip.size()));
  store_be16(&ip[6], 0x4000);
  ip[8] = 64;
  ip[9] = 6;
  const uint8_t src[4] = {10, 1, 0, 1}, dst[4] = {10, 2, 0, 2};
  std::copy(src, src + 4, &ip[12]);
  std::copy(dst, dst + 4, &ip[16]);
  store_be16(&ip[10], ipv4_header_checksum(ip.data(), 20));
  uint8_t* t = &ip[20];
  store_be16(t, 40000);
  store_be16(t + 2, 5201);
  store_be32(t + 4, seq);
  t[12] = static_cast<uint8_t>((thl / 4) << 4);
  t[13] = flags;
  store_be16(t + 14, 65535);
  if (mss) {
    t[20] = 2;
    t[21] = 4;
    store_be16(t + 22, mss);
  }
  std::copy(payload.begin(), payload.end(), ip.begin() + 20 + thl);
  set_l4_checksum(4, &ip[12], &ip[16], 6, t, ip.size() - 20);
  return eth(ip);
}

bool l4_checksum_ok(const Bytes& frame) {
  ParsedFrame p;
  if (!parse_frame(frame.data(), frame.size(), &p)) return false;
  const uint8_t* ip = frame.data() + p.l3_off;
  const size_t l4len = p.l3_off + p.ip_len - p.l4_off;
  uint64_t s = pseudo_header_sum(p.family, ip + (p.family == 4 ? 12 : 8),
                                 ip + (p.family == 4 ? 16 : 24), p.l4_proto,
                                 static_cast<uint32_t>(l4len));
  s = csum_add(frame.data() + p.l4_off, l4len, s);
  return csum_fold(s) == 0xffff;
}

constexpr uint32_t kSpiGcm = 0x1111;
constexpr uint32_t kSpiGmac = 0x2222;
constexpr uint32_t kKeyPolicy = 7;

struct Host {
  Filter filter{FilterOptions{}};
  std::shared_ptr<FakeIo> wl = std::make_shared<FakeIo>();
  std::shared_ptr<FakeIo> nw = std::make_shared<FakeIo>();
  Host(const char* port) {
    std::string err;
    EXPECT_TRUE(filter.add_port(port, wl, nw, &err)) << err;
  }
  void install(uint32_t spi, EspMode mode, uint32_t sender, uint32_t key_policy = kKeyPolicy,
               uint64_t low_water = 0) {
    SaInstall s;
    s.params.spi = spi;
    s.params.mode = mode;
    s.keymat = pattern(20, static_cast<uint8_t>(spi));
    s.key_policy = key_policy;
    s.sender_ids = {sender};
    s.low_water = low_water;
    ASSERT_EQ(filter.install_sa(s), Status::kOk);
  }
  // One rule: this workload (local) <-> remote prefix, with the action.
  void rules(const char* port, const char* local, const char* remote, Action a,
             uint32_t tx_spi, Role role, int protocol = kAnyProtocol,
             std::vector<PortRange> ports = {}, Action dflt = Action::kAllow,
             uint32_t key_policy = kKeyPolicy) {
    auto t = std::make_shared<PortTable>();
    CompiledRule r;
    r.rule_id = 42;
    r.counter_slot = 3;
    r.role = role;
    // Comma-separated prefix lists.
    auto add = [](PrefixSet& set, const std::string& list) {
      size_t start = 0;
      while (start <= list.size()) {
        const size_t end = std::min(list.find(',', start), list.size());
        Prefix p;
        EXPECT_TRUE(Prefix::parse(list.substr(start, end - start), &p)) << list;
        set.prefixes.push_back(p);
        start = end + 1;
      }
    };
    add(r.local, local);
    add(r.remote, remote);
    r.protocol = protocol;
    r.ports = std::move(ports);
    r.action = a;
    r.key_policy = key_policy;
    r.tx_spi = tx_spi;
    t->rules.push_back(r);
    t->default_action = dflt;
    std::string err;
    ASSERT_TRUE(filter.set_tables({{port, t}}, Action::kAllow, &err)) << err;
  }
  uint64_t drops(Status s) {
    uint64_t d[kStatusCount];
    filter.read_drops(d);
    return d[static_cast<size_t>(s)];
  }
};

// A sends, the test reads the wire, B receives what the test puts on it.
struct Pair {
  Host a{"w1"}, b{"w2"};
  void protect(Action act, EspMode mode, uint32_t spi) {
    a.install(spi, mode, 1);
    b.install(spi, mode, 2);
    a.rules("w1", "10.1.0.0/16,fd00::1", "10.2.0.0/16,fd00::2", act, spi, Role::kSource);
    b.rules("w2", "10.2.0.0/16,fd00::2", "10.1.0.0/16,fd00::1", act, spi, Role::kDestination);
  }
  // Workload w1 sends; returns what A put on the wire.
  std::vector<Bytes> send(const Bytes& frame, const VnetHdr& vnet = {}) {
    a.wl->inject(frame.data(), frame.size(), vnet);
    a.filter.poll_once();
    auto out = std::move(a.nw->sent);
    a.nw->sent.clear();
    return out;
  }
  // Puts frames on B's network side; returns what reached workload w2.
  std::vector<Bytes> deliver(const std::vector<Bytes>& frames) {
    for (const auto& f : frames) b.nw->inject(f.data(), f.size());
    b.filter.poll_once();
    auto out = std::move(b.wl->sent);
    b.wl->sent.clear();
    return out;
  }
};

TEST(Filter, AllowInClearPassesBothWaysUnchanged) {
  Pair p;
  const Bytes f = udp4_frame(pattern(100));
  const auto wire = p.send(f);
  ASSERT_EQ(wire.size(), 1u);
  EXPECT_EQ(wire[0], f);
  const auto got = p.deliver(wire);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], f);
}

TEST(Filter, EncryptSealsOnTheWireAndRestoresAtTheOtherEnd) {
  Pair p;
  p.protect(Action::kEncrypt, EspMode::kGcm, kSpiGcm);
  const Bytes marker = {'s', 'e', 'c', 'r', 'e', 't', '-', 'm', 'a', 'r', 'k'};
  for (const Bytes& f : {udp4_frame(marker), udp6_frame(marker)}) {
    const auto wire = p.send(f);
    ASSERT_EQ(wire.size(), 1u);
    ParsedFrame w;
    ASSERT_TRUE(parse_frame(wire[0].data(), wire[0].size(), &w));
    EXPECT_EQ(w.l4_proto, 50);
    EXPECT_EQ(std::search(wire[0].begin(), wire[0].end(), marker.begin(), marker.end()),
              wire[0].end());
    EXPECT_TRUE(std::equal(f.begin(), f.begin() + 12, wire[0].begin()));  // MACs kept
    const auto got = p.deliver(wire);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(to_hex(got[0]), to_hex(f));
  }
  // The reply direction uses the same rule (B is the rule's destination).
  p.b.install(0x3333, EspMode::kGcm, 9);
  uint64_t sa[kSaCounterCount];
  ASSERT_TRUE(p.a.filter.read_sa(kSpiGcm, sa));
  EXPECT_EQ(sa[kSaSealedPackets], 2u);
  ASSERT_TRUE(p.b.filter.read_sa(kSpiGcm, sa));
  EXPECT_EQ(sa[kSaOpenedPackets], 2u);
  uint64_t rules[4 * kRuleCounterCount];
  p.a.filter.read_rules(4, rules);
  EXPECT_EQ(rules[3 * kRuleCounterCount + kRuleOutPackets], 2u);
}

TEST(Filter, IntegrityOnlyKeepsPayloadReadableAndVerified) {
  Pair p;
  p.protect(Action::kIntegrity, EspMode::kGmac, kSpiGmac);
  const Bytes marker = {'r', 'e', 'a', 'd', 'a', 'b', 'l', 'e'};
  const Bytes f = udp4_frame(marker);
  auto wire = p.send(f);
  ASSERT_EQ(wire.size(), 1u);
  EXPECT_NE(std::search(wire[0].begin(), wire[0].end(), marker.begin(), marker.end()),
            wire[0].end());
  Bytes tampered = wire[0];
  tampered[tampered.size() - 30] ^= 1;
  EXPECT_TRUE(p.deliver({tampered}).empty());
  EXPECT_EQ(p.b.drops(Status::kIcvFailure), 1u);
  const auto got = p.deliver(wire);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], f);
  EXPECT_TRUE(p.deliver(wire).empty());  // replayed
  EXPECT_EQ(p.b.drops(Status::kReplay), 1u);
}

TEST(Filter, ClearTextWhereEncryptionIsRequiredIsDropped) {
  Pair p;
  p.protect(Action::kEncrypt, EspMode::kGcm, kSpiGcm);
  EXPECT_TRUE(p.deliver({udp4_frame(pattern(10))}).empty());
  EXPECT_EQ(p.b.drops(Status::kPolicy), 1u);
}

TEST(Filter, AKeyOnlyOpensTheFlowsOfItsOwnPolicy) {
  // B holds the key of policy 9 too, but the rule for this flow names policy
  // 7: a packet sealed under policy 9's key is refused after decryption.
  Pair p;
  p.a.install(0x9999, EspMode::kGcm, 1, 9);
  p.b.install(0x9999, EspMode::kGcm, 2, 9);
  p.a.rules("w1", "10.1.0.0/16", "10.2.0.0/16", Action::kEncrypt, 0x9999, Role::kSource);
  p.b.rules("w2", "10.2.0.0/16", "10.1.0.0/16", Action::kEncrypt, 0, Role::kDestination,
            kAnyProtocol, {}, Action::kAllow, /*key_policy=*/7);
  const auto wire = p.send(udp4_frame(pattern(10)));
  ASSERT_EQ(wire.size(), 1u);
  EXPECT_TRUE(p.deliver(wire).empty());
  EXPECT_EQ(p.b.drops(Status::kPolicy), 1u);
}

TEST(Filter, UnknownSpiMalformedAndMissingSaAreCounted) {
  Pair p;
  p.protect(Action::kEncrypt, EspMode::kGcm, kSpiGcm);
  auto wire = p.send(udp4_frame(pattern(10)));
  Bytes unknown = wire[0];
  store_be32(&unknown[14 + 20], 0xdead);
  Bytes truncated(wire[0].begin(), wire[0].begin() + 14 + 20 + 10);
  store_be16(&truncated[14 + 2], 30);
  store_be16(&truncated[14 + 10], ipv4_header_checksum(&truncated[14], 20));
  EXPECT_TRUE(p.deliver({unknown, truncated}).empty());
  EXPECT_EQ(p.b.drops(Status::kUnknownSpi), 1u);
  EXPECT_EQ(p.b.drops(Status::kMalformed), 1u);
  EXPECT_EQ(p.deliver(wire).size(), 1u);  // forwarding continues
  // A rule whose key has no SA yet.
  p.a.rules("w1", "10.1.0.0/16", "10.2.0.0/16", Action::kEncrypt, 0x4444, Role::kSource);
  EXPECT_TRUE(p.send(udp4_frame(pattern(10))).empty());
  EXPECT_EQ(p.a.drops(Status::kNoSa), 1u);
}

TEST(Filter, FramesTheKernelDroppedAreCountedPerPort) {
  Pair p;
  p.protect(Action::kEncrypt, EspMode::kGcm, kSpiGcm);
  p.a.wl->kernel_drops = 5;
  p.a.nw->kernel_drops = 2;
  p.a.filter.poll_once();
  EXPECT_EQ(p.a.drops(Status::kRxOverflow), 7u);
  uint64_t port[kPortCounterCount];
  uint64_t port_drops[kStatusCount];
  ASSERT_TRUE(p.a.filter.read_port("w1", port, port_drops));
  EXPECT_EQ(port_drops[static_cast<size_t>(Status::kRxOverflow)], 7u);
  p.a.filter.poll_once();  // read once: the kernel's count restarts from zero
  EXPECT_EQ(p.a.drops(Status::kRxOverflow), 7u);
}

TEST(Filter, NonIpAndLinkControlPassEvenWhenFailClosed) {
  Pair p;
  p.a.rules("w1", "10.1.0.0/16", "10.9.0.0/16", Action::kEncrypt, 0, Role::kSource,
            kAnyProtocol, {}, Action::kDrop);
  const Bytes arp = eth(pattern(28), 0x0806);
  // ICMPv6 neighbour solicitation.
  Bytes ns = ipv6_udp(pattern(20));
  ns[6] = 58;
  ns[40] = 135;
  const Bytes ns_frame = eth(ns, 0x86dd);
  const auto wire = p.send(arp);
  ASSERT_EQ(wire.size(), 1u);
  EXPECT_EQ(wire[0], arp);
  EXPECT_EQ(p.send(ns_frame).size(), 1u);
  // Ordinary IP hits the fail-closed default.
  EXPECT_TRUE(p.send(udp4_frame(pattern(5))).empty());
  EXPECT_EQ(p.a.drops(Status::kPolicy), 1u);
}

TEST(Filter, GsoTcpIsSegmentedSealedAndMtuSized) {
  Pair p;
  p.protect(Action::kEncrypt, EspMode::kGcm, kSpiGcm);
  const Bytes payload = pattern(20000);
  Bytes super = tcp4_frame(payload, 0x18 /*PSH|ACK*/, 5000);
  // As veth hands it over: partial checksum (pseudo-header sum only).
  VnetHdr v{};
  v.flags = kVnetNeedsCsum;
  v.gso_type = kGsoTcpV4;
  v.gso_size = 1400;
  v.csum_start = 14 + 20;
  v.csum_offset = 16;
  const auto wire = p.send(super, v);
  ASSERT_EQ(wire.size(), 15u);  // ceil(20000 / 1400)
  for (const auto& w : wire) EXPECT_LE(w.size() - 14, 1500u);
  // The receiver coalesces the 15 decrypted segments back into one GSO
  // frame for the workload, as GRO would.
  const auto got = p.deliver(wire);
  ASSERT_EQ(got.size(), 1u);
  const VnetHdr& gv = p.b.wl->sent_vnet.empty() ? VnetHdr{} : p.b.wl->sent_vnet.back();
  EXPECT_EQ(gv.gso_type, kGsoTcpV4);
  EXPECT_EQ(gv.gso_size, 1400);
  EXPECT_EQ(gv.flags, kVnetNeedsCsum);
  EXPECT_EQ(gv.csum_start, 34);
  Bytes g = got[0];
  EXPECT_EQ(load_be32(&g[14 + 20 + 4]), 5000u);
  EXPECT_EQ(load_be16(&g[14 + 2]), 20u + 20u + payload.size());
  EXPECT_EQ(ipv4_header_checksum(&g[14], 20), load_be16(&g[14 + 10]));
  EXPECT_EQ(Bytes(g.begin() + 54, g.end()), payload);
  // Completing the partial checksum gives a valid TCP checksum.
  ASSERT_TRUE(complete_checksum(g.data(), g.size(), gv.csum_start, gv.csum_offset));
  EXPECT_TRUE(l4_checksum_ok(g));
  EXPECT_TRUE(g[14 + 20 + 13] & 0x08);  // PSH of the last segment kept
}

TEST(Filter, CoalescingKeepsOrderAndOnlyMergesWhatGroWould) {
  Pair p;
  p.protect(Action::kEncrypt, EspMode::kGcm, kSpiGcm);
  // Three in-order segments, one out of order, one with a different ACK.
  std::vector<Bytes> wire;
  auto seg = [&](uint32_t seq, uint8_t flags, uint32_t ack) {
    Bytes f = tcp4_frame(pattern(1000, static_cast<uint8_t>(seq)), flags, seq);
    store_be32(&f[14 + 20 + 8], ack);
    set_l4_checksum(4, &f[14 + 12], &f[14 + 16], 6, &f[34], f.size() - 34);
    for (auto& w : p.send(f)) wire.push_back(w);
  };
  seg(1000, 0x10, 7);
  seg(2000, 0x10, 7);
  seg(3000, 0x10, 7);
  seg(9000, 0x10, 7);   // gap: a new batch
  seg(10000, 0x10, 8);  // other ACK: a new batch
  const auto got = p.deliver(wire);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].size(), 54u + 3000u);
  EXPECT_EQ(load_be32(&got[1][14 + 24]), 9000u);
  EXPECT_EQ(got[1].size(), 54u + 1000u);
  EXPECT_TRUE(l4_checksum_ok(got[1]));  // a single segment keeps its full checksum
  EXPECT_EQ(load_be32(&got[2][14 + 24]), 10000u);
}

TEST(Filter, PartialChecksumIsCompletedBeforeSealing) {
  Pair p;
  p.protect(Action::kEncrypt, EspMode::kGcm, kSpiGcm);
  Bytes f = udp4_frame(pattern(300));
  const Bytes good = f;
  // Replace the UDP checksum with the pseudo-header sum, as CHECKSUM_PARTIAL.
  const uint64_t ph = pseudo_header_sum(4, &f[14 + 12], &f[14 + 16], 17, 308);
  store_be16(&f[14 + 20 + 6], csum_fold(ph));
  VnetHdr v{};
  v.flags = kVnetNeedsCsum;
  v.csum_start = 34;
  v.csum_offset = 6;
  const auto got = p.deliver(p.send(f, v));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(to_hex(got[0]), to_hex(good));
}

TEST(Filter, OversizedDfPacketGetsIcmpFragNeededWithTheUsableMtu) {
  Pair p;
  p.protect(Action::kEncrypt, EspMode::kGcm, kSpiGcm);
  const Bytes f = udp4_frame(pattern(1472));  // a 1500-byte IP packet
  EXPECT_TRUE(p.send(f).empty());
  ASSERT_EQ(p.a.wl->sent.size(), 1u);
  const Bytes& icmp = p.a.wl->sent[0];
  EXPECT_TRUE(std::equal(kMacW1, kMacW1 + 6, icmp.begin()));  // back to w1
  EXPECT_EQ(icmp[14 + 9], 1);
  EXPECT_EQ(icmp[14 + 20], 3);
  EXPECT_EQ(icmp[14 + 21], 4);
  EXPECT_EQ(load_be16(&icmp[14 + 20 + 6]), 1500 - 37);
  EXPECT_EQ(ipv4_header_checksum(&icmp[14], 20), load_be16(&icmp[14 + 10]));
  EXPECT_EQ(inet_checksum(&icmp[34], icmp.size() - 34), 0);
  EXPECT_EQ(p.a.drops(Status::kMtu), 1u);
  // IPv6: packet too big.
  const Bytes f6 = udp6_frame(pattern(1452));
  EXPECT_TRUE(p.send(f6).empty());
  ASSERT_EQ(p.a.wl->sent.size(), 2u);
  const Bytes& ptb = p.a.wl->sent[1];
  EXPECT_EQ(ptb[14 + 40], 2);
  EXPECT_EQ(load_be32(&ptb[14 + 40 + 4]), 1500u - 37);
  EXPECT_TRUE(l4_checksum_ok(ptb));
}

TEST(Filter, OversizedPacketWithoutDfIsFragmentedAndEveryFragmentFollows) {
  Pair p;
  // Only UDP to port 5201 is encrypted: non-first fragments carry no port,
  // so they must inherit the first fragment's decision.
  p.a.install(kSpiGcm, EspMode::kGcm, 1);
  p.b.install(kSpiGcm, EspMode::kGcm, 2);
  p.a.rules("w1", "10.1.0.0/16", "10.2.0.0/16", Action::kEncrypt, kSpiGcm, Role::kSource, 17,
            {{5201, 5201}}, Action::kDrop);
  p.b.rules("w2", "10.2.0.0/16", "10.1.0.0/16", Action::kEncrypt, kSpiGcm, Role::kDestination,
            17, {{5201, 5201}}, Action::kDrop);
  const Bytes f = udp4_frame(pattern(3000), /*df=*/false);
  const auto wire = p.send(f);
  ASSERT_EQ(wire.size(), 3u);
  for (const auto& w : wire) EXPECT_LE(w.size() - 14, 1500u);
  const auto got = p.deliver(wire);
  ASSERT_EQ(got.size(), 3u);
  // Reassemble: offsets and data add up to the original datagram.
  Bytes data(3008);
  size_t covered = 0;
  for (const auto& g : got) {
    const uint16_t fo = load_be16(&g[14 + 6]);
    const size_t off = static_cast<size_t>(fo & 0x1fff) * 8;
    const size_t len = load_be16(&g[14 + 2]) - 20;
    std::copy(g.begin() + 34, g.begin() + 34 + len, data.begin() + off);
    covered += len;
  }
  EXPECT_EQ(covered, 3008u);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), f.begin() + 34));
  // A non-first fragment on its own has no decision to inherit.
  Bytes lone = wire[2];
  EXPECT_TRUE(p.deliver({lone}).empty());
}

TEST(Filter, TcpMssIsClampedOnSyn) {
  Pair p;
  p.protect(Action::kEncrypt, EspMode::kGcm, kSpiGcm);
  const auto got = p.deliver(p.send(tcp4_frame({}, 0x02, 1, 1460)));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(load_be16(&got[0][14 + 20 + 22]), 1500 - 40 - 37);
  EXPECT_TRUE(l4_checksum_ok(got[0]));
}

TEST(Filter, TableSwapKeepsReplayState) {
  Pair p;
  p.protect(Action::kEncrypt, EspMode::kGcm, kSpiGcm);
  const auto wire = p.send(udp4_frame(pattern(10)));
  ASSERT_EQ(p.deliver(wire).size(), 1u);
  const uint64_t gen = p.b.filter.generation();
  p.b.rules("w2", "10.2.0.0/16", "10.1.0.0/16", Action::kEncrypt, kSpiGcm, Role::kDestination);
  EXPECT_GT(p.b.filter.generation(), gen);
  EXPECT_TRUE(p.deliver(wire).empty());
  EXPECT_EQ(p.b.drops(Status::kReplay), 1u);
}

TEST(Filter, EachWorkerIsItsOwnSender) {
  // Two filters with the same key and different sender IDs never produce the
  // same IV (RFC 6054).
  Pair p;
  p.protect(Action::kEncrypt, EspMode::kGcm, kSpiGcm);
  Host c("w3");
  c.install(kSpiGcm, EspMode::kGcm, 3);
  c.rules("w3", "10.1.0.0/16", "10.2.0.0/16", Action::kEncrypt, kSpiGcm, Role::kSource);
  std::set<std::string> ivs;
  for (int i = 0; i < 50; ++i) {
    for (const auto& w : p.send(udp4_frame(pattern(20, i)))) ivs.insert(to_hex(&w[14 + 28], 8));
    c.wl->inject(udp4_frame(pattern(20, i)).data(), 62);
    c.filter.poll_once();
    for (const auto& w : c.nw->sent) ivs.insert(to_hex(&w[14 + 28], 8));
    c.nw->sent.clear();
  }
  EXPECT_EQ(ivs.size(), 100u);
}

TEST(Filter, BadControlCallsChangeNothing) {
  Host h("w1");
  std::string err;
  EXPECT_FALSE(h.filter.add_port("w1", std::make_shared<FakeIo>(), std::make_shared<FakeIo>(), &err));
  EXPECT_NE(err.find("already exists"), std::string::npos);
  const uint64_t gen = h.filter.generation();
  EXPECT_FALSE(h.filter.set_tables({{"nope", std::make_shared<PortTable>()}}, Action::kAllow, &err));
  EXPECT_NE(err.find("no port named nope"), std::string::npos);
  EXPECT_EQ(h.filter.generation(), gen);
  SaInstall s;
  s.params.spi = 0x5000;
  s.keymat = pattern(19);  // 15-byte key
  EXPECT_EQ(h.filter.install_sa(s), Status::kBadConfig);
  EXPECT_TRUE(std::all_of(s.keymat.begin(), s.keymat.end(), [](uint8_t b) { return b == 0; }));
  EXPECT_EQ(h.filter.remove_sa(0x5000), Status::kUnknownSpi);
  EXPECT_EQ(h.filter.generation(), gen);
}

// ---- sender-ID renewal in place (Filter::replace_senders) --------------

// The IV of a sealed IPv4 frame split into (sender ID, counter), 24-bit IDs.
std::pair<uint32_t, uint64_t> iv_of(const Bytes& wire) {
  uint32_t id;
  uint64_t counter;
  split_iv(load_be64(&wire[14 + 20 + 8]), 24, &id, &counter);
  return {id, counter};
}

uint64_t sa_counter(Filter& f, uint32_t spi, uint32_t i) {
  uint64_t c[kSaCounterCount];
  EXPECT_TRUE(f.read_sa(spi, c));
  return c[i];
}

// DESIGN §3 renewal: a sender near the end of its counter space gets fresh
// sender IDs while the SA stays installed. The wire switches to the new ID
// from counter 1, the peer opens it, nothing of the SPI is dropped, and the
// receive side's replay windows survive (remove + install reset them).
TEST(Filter, ReplacedSendersSealWithTheNewIdWhileReplayStateAndCountersStay) {
  Pair p;
  // Low water above the whole 40-bit counter space: A's sender is "low" at
  // its first seal, as one near exhaustion would be.
  p.a.install(kSpiGcm, EspMode::kGcm, 1, kKeyPolicy, uint64_t{1} << 41);
  p.b.install(kSpiGcm, EspMode::kGcm, 2);
  p.a.rules("w1", "10.1.0.0/16", "10.2.0.0/16", Action::kEncrypt, kSpiGcm, Role::kSource);
  p.b.rules("w2", "10.2.0.0/16", "10.1.0.0/16", Action::kEncrypt, kSpiGcm, Role::kDestination);

  std::vector<Bytes> before;
  for (int i = 0; i < 3; ++i) {
    auto w = p.send(udp4_frame(pattern(30, i)));
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(iv_of(w[0]), (std::pair<uint32_t, uint64_t>{1, i + 1u}));
    before.push_back(w[0]);
  }
  ASSERT_EQ(p.deliver(before).size(), 3u);
  EXPECT_EQ(sa_counter(p.a.filter, kSpiGcm, kSaSenderLow), 1u);

  // The receiver's own senders are renewed: its windows are untouched, so a
  // packet it already accepted is still a replay.
  const uint64_t gen_b = p.b.filter.generation();
  ASSERT_EQ(p.b.filter.replace_senders(kSpiGcm, {20}), SenderUpdate::kOk);
  EXPECT_GT(p.b.filter.generation(), gen_b);
  EXPECT_TRUE(p.deliver({before[1]}).empty());
  EXPECT_EQ(p.b.drops(Status::kReplay), 1u);

  // The sender's IDs are renewed between two packets.
  const uint64_t sealed = sa_counter(p.a.filter, kSpiGcm, kSaSealedPackets);
  ASSERT_EQ(p.a.filter.replace_senders(kSpiGcm, {10}), SenderUpdate::kOk);
  p.a.filter.poll_once();  // the worker syncs between bursts
  EXPECT_EQ(sa_counter(p.a.filter, kSpiGcm, kSaSenderLow), 0u);
  std::vector<Bytes> after;
  for (int i = 0; i < 3; ++i) {
    auto w = p.send(udp4_frame(pattern(30, 10 + i)));
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(load_be32(&w[0][14 + 20]), kSpiGcm);
    EXPECT_EQ(iv_of(w[0]), (std::pair<uint32_t, uint64_t>{10, i + 1u}));
    after.push_back(w[0]);
  }
  // Counters go on across the renewal (same slot, no epoch bump); the new
  // sender is flagged when it is low in turn.
  EXPECT_EQ(sa_counter(p.a.filter, kSpiGcm, kSaSealedPackets), sealed + 3);
  EXPECT_EQ(sa_counter(p.a.filter, kSpiGcm, kSaSenderLow), 1u);
  EXPECT_EQ(p.a.drops(Status::kNoSa), 0u);

  // The peer opens the new sender's packets (a new window for ID 10), and
  // still refuses the old sender's packets once seen.
  const auto got = p.deliver(after);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2], udp4_frame(pattern(30, 12)));
  EXPECT_TRUE(p.deliver({before[0], after[0]}).empty());
  EXPECT_EQ(p.b.drops(Status::kReplay), 3u);
  EXPECT_EQ(sa_counter(p.b.filter, kSpiGcm, kSaOpenedPackets), 6u);
  EXPECT_EQ(p.b.drops(Status::kIcvFailure) + p.b.drops(Status::kUnknownSpi), 0u);

  // Removing the SA forgets it; a later install starts a new record.
  EXPECT_EQ(p.a.filter.remove_sa(kSpiGcm), Status::kOk);
  EXPECT_EQ(p.a.filter.replace_senders(kSpiGcm, {11}), SenderUpdate::kUnknownSpi);
}

// Refusals are precise and change nothing: same generation, and the worker
// keeps sealing with its current sender and counter.
TEST(Filter, BadSenderReplacementsAreRefusedAndChangeNothing) {
  FilterOptions o;
  o.workers = 2;
  Filter f(o);
  auto wl = std::make_shared<FakeIo>(), nw = std::make_shared<FakeIo>();
  std::string err;
  ASSERT_TRUE(f.add_port("w1", wl, nw, &err)) << err;  // worker 0's port
  SaInstall s;
  s.params.spi = kSpiGcm;
  s.params.sender_id_bits = 16;
  s.keymat = pattern(20, 3);
  s.key_policy = kKeyPolicy;
  s.sender_ids = {1, 2};
  ASSERT_EQ(f.install_sa(s), Status::kOk);
  auto t = std::make_shared<PortTable>();
  CompiledRule r;
  r.rule_id = 1;
  r.action = Action::kEncrypt;
  r.key_policy = kKeyPolicy;
  r.tx_spi = kSpiGcm;
  t->rules.push_back(r);
  ASSERT_TRUE(f.set_tables({{"w1", t}}, Action::kAllow, &err)) << err;
  auto seal = [&]() -> std::pair<uint32_t, uint64_t> {
    const Bytes frame = udp4_frame(pattern(20));
    wl->inject(frame.data(), frame.size());
    f.poll_once();
    EXPECT_EQ(nw->sent.size(), 1u);
    if (nw->sent.empty()) return {0, 0};
    uint32_t id;
    uint64_t counter;
    split_iv(load_be64(&nw->sent[0][14 + 20 + 8]), 16, &id, &counter);
    nw->sent.clear();
    return {id, counter};
  };
  EXPECT_EQ(seal(), (std::pair<uint32_t, uint64_t>{1, 1}));

  const uint64_t gen = f.generation();
  using V = std::vector<uint32_t>;
  EXPECT_EQ(f.replace_senders(0x9999, {3, 4}), SenderUpdate::kUnknownSpi);
  EXPECT_EQ(f.replace_senders(kSpiGcm, V{}), SenderUpdate::kWrongCount);
  EXPECT_EQ(f.replace_senders(kSpiGcm, {3}), SenderUpdate::kWrongCount);
  EXPECT_EQ(f.replace_senders(kSpiGcm, {3, 4, 5}), SenderUpdate::kWrongCount);
  EXPECT_EQ(f.replace_senders(kSpiGcm, {3, 0x10000}), SenderUpdate::kTooWide);
  EXPECT_EQ(f.replace_senders(kSpiGcm, {3, 3}), SenderUpdate::kDuplicate);
  EXPECT_EQ(f.replace_senders(kSpiGcm, {3, 1}), SenderUpdate::kReused);
  EXPECT_EQ(f.replace_senders(kSpiGcm, {2, 4}), SenderUpdate::kReused);
  EXPECT_EQ(f.generation(), gen);
  EXPECT_EQ(seal(), (std::pair<uint32_t, uint64_t>{1, 2}));

  // A good set lands; from then on its IDs are used too.
  ASSERT_EQ(f.replace_senders(kSpiGcm, {3, 4}), SenderUpdate::kOk);
  EXPECT_EQ(f.generation(), gen + 1);
  EXPECT_EQ(seal(), (std::pair<uint32_t, uint64_t>{3, 1}));
  EXPECT_EQ(f.replace_senders(kSpiGcm, {5, 4}), SenderUpdate::kReused);
  EXPECT_EQ(f.replace_senders(kSpiGcm, {1, 5}), SenderUpdate::kReused);  // the first set too
  EXPECT_EQ(f.generation(), gen + 1);
  EXPECT_EQ(seal(), (std::pair<uint32_t, uint64_t>{3, 2}));
  EXPECT_STREQ(sender_update_name(SenderUpdate::kReused), "reused");
}

TEST(Filter, WorkerThreadsCarryTrafficAndStopCleanly) {
  Pair p;
  p.protect(Action::kEncrypt, EspMode::kGcm, kSpiGcm);
  // Link the wire and let both filters' threads run.
  FakeIo::link(*p.a.nw, *p.b.nw);
  // FakeIo has no fd to poll: the thread loop still polls every 100 ms.
  p.a.filter.start();
  p.b.filter.start();
  p.a.filter.stop();
  p.b.filter.stop();
  const Bytes f = udp4_frame(pattern(64));
  p.a.wl->inject(f.data(), f.size());
  p.a.filter.poll_once();
  p.b.filter.poll_once();
  ASSERT_EQ(p.b.wl->sent.size(), 1u);
  EXPECT_EQ(p.b.wl->sent[0], f);
}

}  // namespace
}  // namespace dne::test

namespace dne::test {
namespace {

// The word-at-a-time checksum against the textbook 16-bit loop (RFC 1071).
TEST(Checksum, MatchesTheReferenceLoopForEveryLengthAndAlignment) {
  const Bytes data = pattern(600, 13);
  for (size_t off = 0; off < 8; ++off) {
    for (size_t len = 0; len + off <= data.size(); len += (len < 70 ? 1 : 37)) {
      uint32_t ref = 0;
      for (size_t i = 0; i + 1 < len; i += 2) ref += load_be16(&data[off + i]);
      if (len & 1) ref += static_cast<uint32_t>(data[off + len - 1]) << 8;
      while (ref >> 16) ref = (ref & 0xffff) + (ref >> 16);
      EXPECT_EQ(csum_fold(csum_add(&data[off], len, 0)), ref) << off << "+" << len;
      EXPECT_EQ(static_cast<uint16_t>(~csum_fold(csum_add(&data[off], len, 0))) ,
                len == 0 ? 0xffff : inet_checksum(&data[off], len));
    }
  }
}

}  // namespace
}  // namespace dne::test

namespace dne::test {
namespace {

TEST(Filter, StoppedFilterLetsGoOfRemovedPortsAndCloseDropsEverything) {
  Filter f{FilterOptions{}};
  auto wl = std::make_shared<FakeIo>();
  auto nw = std::make_shared<FakeIo>();
  std::weak_ptr<FakeIo> wl_ref = wl, nw_ref = nw;
  std::string err;
  ASSERT_TRUE(f.add_port("p", std::move(wl), std::move(nw), &err));
  f.start();
  f.stop();
  // A stopped worker holds no snapshot, so removal closes the port now.
  ASSERT_TRUE(f.remove_port("p"));
  EXPECT_TRUE(wl_ref.expired());
  EXPECT_TRUE(nw_ref.expired());

  auto a = std::make_shared<FakeIo>();
  std::weak_ptr<FakeIo> a_ref = a;
  ASSERT_TRUE(f.add_port("q", std::move(a), std::make_shared<FakeIo>(), &err));
  SaInstall s;
  s.params.spi = 0x7777;
  s.keymat = pattern(20);
  s.sender_ids = {1};
  ASSERT_EQ(f.install_sa(s), Status::kOk);
  f.start();
  f.close();
  EXPECT_TRUE(a_ref.expired());
  EXPECT_EQ(f.sa_slot(0x7777), -1);
  EXPECT_EQ(f.port_slot("q"), -1);
}

}  // namespace
}  // namespace dne::test

namespace dne::test {
namespace {

TEST(Filter, ReusedCounterSlotsStartFromZero) {
  Pair p;
  p.protect(Action::kEncrypt, EspMode::kGcm, kSpiGcm);
  p.deliver(p.send(udp4_frame(pattern(10))));
  uint64_t sa[kSaCounterCount];
  ASSERT_TRUE(p.a.filter.read_sa(kSpiGcm, sa));
  EXPECT_EQ(sa[kSaSealedPackets], 1u);
  // Remove and install another SA: it takes the same slot, from zero.
  ASSERT_EQ(p.a.filter.remove_sa(kSpiGcm), Status::kOk);
  p.a.install(0x5555, EspMode::kGcm, 1);
  ASSERT_TRUE(p.a.filter.read_sa(0x5555, sa));
  EXPECT_EQ(sa[kSaSealedPackets], 0u);
  // A port that takes a removed port's slot, and a rule slot handed out anew.
  uint64_t pc[kPortCounterCount], pd[kStatusCount];
  ASSERT_TRUE(p.a.filter.read_port("w1", pc, pd));
  EXPECT_GT(pc[kFromWorkloadPackets], 0u);
  ASSERT_TRUE(p.a.filter.remove_port("w1"));
  std::string err;
  ASSERT_TRUE(p.a.filter.add_port("w9", std::make_shared<FakeIo>(), std::make_shared<FakeIo>(), &err));
  ASSERT_TRUE(p.a.filter.read_port("w9", pc, pd));
  EXPECT_EQ(pc[kFromWorkloadPackets], 0u);
  uint64_t rules[4 * kRuleCounterCount];
  p.a.filter.read_rules(4, rules);
  EXPECT_EQ(rules[3 * kRuleCounterCount + kRuleOutPackets], 1u);
  ASSERT_TRUE(p.a.filter.set_tables({}, Action::kAllow, &err, {3}));
  p.a.filter.read_rules(4, rules);
  EXPECT_EQ(rules[3 * kRuleCounterCount + kRuleOutPackets], 0u);
}

}  // namespace
}  // namespace dne::test

namespace dne::test {
namespace {

// A key rollover as the agent drives it: the new SA is installed receive-first
// on both hosts, then senders switch to it, then the old SA goes; packets
// sealed under the old key that are still in flight open until it is removed.
TEST(Filter, SasAreInstalledSwitchedAndRemovedWhileTrafficFlows) {
  Pair p;
  p.protect(Action::kEncrypt, EspMode::kGcm, kSpiGcm);
  std::vector<Bytes> in_flight;
  for (int i = 0; i < 5; ++i) {
    auto w = p.send(udp4_frame(pattern(40, i)));
    in_flight.insert(in_flight.end(), w.begin(), w.end());
  }
  // New key: receivers first, then the sender's table points at it.
  p.b.install(0x1112, EspMode::kGcm, 2);
  p.a.install(0x1112, EspMode::kGcm, 1);
  p.a.rules("w1", "10.1.0.0/16", "10.2.0.0/16", Action::kEncrypt, 0x1112, Role::kSource);
  const auto after = p.send(udp4_frame(pattern(40, 9)));
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(load_be32(&after[0][14 + 20]), 0x1112u);
  p.a.filter.remove_sa(kSpiGcm);
  // Old-key packets still in flight and the new one all open.
  in_flight.insert(in_flight.end(), after.begin(), after.end());
  EXPECT_EQ(p.deliver(in_flight).size(), 6u);
  // Once the receiver removes the old SA too, its packets are unknown.
  p.b.filter.remove_sa(kSpiGcm);
  auto late = p.send(udp4_frame(pattern(40, 10)));
  EXPECT_EQ(p.deliver({in_flight[0]}).size(), 0u);
  EXPECT_EQ(p.b.drops(Status::kUnknownSpi), 1u);
  EXPECT_EQ(p.deliver(late).size(), 1u);
  EXPECT_EQ(p.b.drops(Status::kIcvFailure) + p.b.drops(Status::kPolicy), 0u);
}

}  // namespace
}  // namespace dne::test
