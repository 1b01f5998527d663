#include "io/af_packet.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace dne {

namespace {

std::string sys_error(const std::string& what, const std::string& ifname) {
  return what + " on " + ifname + ": " + std::strerror(errno);
}

// Runs `fn` on a helper thread that has entered the network namespace at
// `path`, so sockets it creates live there; the caller's thread stays put.
template <typename Fn>
bool in_netns(const std::string& path, std::string* error, Fn fn) {
  if (path.empty()) return fn();
  bool ok = false;
  std::thread t([&] {
    const int ns = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
      *error = "cannot open network namespace " + path + ": " + std::strerror(errno);
      return;
    }
    if (setns(ns, CLONE_NEWNET) != 0) {
      *error = "cannot enter network namespace " + path + ": " + std::strerror(errno);
      ::close(ns);
      return;
    }
    ::close(ns);
    ok = fn();
  });
  t.join();
  return ok;
}

}  // namespace

std::unique_ptr<AfPacketIo> AfPacketIo::open(const AfPacketOptions& o,
                                             std::string* error) {
  std::unique_ptr<AfPacketIo> io(new AfPacketIo());
  const bool ok = in_netns(o.netns, error, [&]() -> bool {
    // Protocol 0 until the ring is ready: nothing is queued from other
    // interfaces before bind() narrows the socket to ours.
    const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      *error = sys_error("socket(AF_PACKET) (needs CAP_NET_RAW)", o.ifname);
      return false;
    }
    io->fd_ = fd;
    const unsigned idx = if_nametoindex(o.ifname.c_str());
    if (idx == 0) {
      *error = "no interface named " + o.ifname +
               (o.netns.empty() ? std::string() : " in " + o.netns);
      return false;
    }
    io->ifindex_ = static_cast<int>(idx);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, o.ifname.c_str(), IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFMTU, &ifr) == 0) io->mtu_ = static_cast<uint32_t>(ifr.ifr_mtu);
    const int one = 1;
    const int v3 = TPACKET_V3;
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) != 0) {
      *error = sys_error("PACKET_VNET_HDR", o.ifname);
      return false;
    }
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v3, sizeof v3) != 0) {
      *error = sys_error("PACKET_VERSION TPACKET_V3", o.ifname);
      return false;
    }
    // Not fatal where unsupported: only an optimisation / a filter on reads.
    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) != 0) {
      *error = sys_error("PACKET_IGNORE_OUTGOING", o.ifname);
      return false;
    }
    tpacket_req3 req{};
    req.tp_block_size = o.block_size;
    req.tp_block_nr = o.block_count;
    req.tp_frame_size = 2048;
    req.tp_frame_nr = (o.block_size / 2048) * o.block_count;
    req.tp_retire_blk_tov = o.retire_ms;
    if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) != 0) {
      *error = sys_error("PACKET_RX_RING", o.ifname);
      return false;
    }
    io->ring_len_ = static_cast<size_t>(o.block_size) * o.block_count;
    void* m = mmap(nullptr, io->ring_len_, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_LOCKED | MAP_POPULATE, fd, 0);
    if (m == MAP_FAILED)
      m = mmap(nullptr, io->ring_len_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
      *error = sys_error("mmap of the receive ring", o.ifname);
      return false;
    }
    io->ring_ = static_cast<uint8_t*>(m);
    io->block_size_ = o.block_size;
    io->block_count_ = o.block_count;
    // Frames of a bump in the wire are addressed to the workload or its
    // peers, not to this interface: take them all.
    packet_mreq mr{};
    mr.mr_ifindex = io->ifindex_;
    mr.mr_type = PACKET_MR_PROMISC;
    setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = io->ifindex_;
    if (bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
      *error = sys_error("bind", o.ifname);
      return false;
    }
    return true;
  });
  if (!ok) return nullptr;
  for (size_t i = 0; i < kTxBatch; ++i) {
    std::memset(&io->tx_msg_[i], 0, sizeof(mmsghdr));
    io->tx_msg_[i].msg_hdr.msg_iov = io->tx_iov_[i];
    io->tx_msg_[i].msg_hdr.msg_iovlen = 2;
  }
  return io;
}

AfPacketIo::~AfPacketIo() {
  if (ring_ != nullptr) munmap(ring_, ring_len_);
  if (fd_ >= 0) ::close(fd_);
}

size_t AfPacketIo::rx_batch(RxSink& sink) {
  if (holding_) return 0;
  auto* bd = reinterpret_cast<tpacket_block_desc*>(
      ring_ + static_cast<size_t>(cur_block_) * block_size_);
  if ((__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) &
       TP_STATUS_USER) == 0)
    return 0;
  holding_ = true;
  const uint32_t n = bd->hdr.bh1.num_pkts;
  auto* ppd = reinterpret_cast<tpacket3_hdr*>(reinterpret_cast<uint8_t*>(bd) +
                                              bd->hdr.bh1.offset_to_first_pkt);
  for (uint32_t i = 0; i < n; ++i) {
    RxFrame f;
    uint8_t* mac = reinterpret_cast<uint8_t*>(ppd) + ppd->tp_mac;
    // With PACKET_VNET_HDR the virtio header sits right before the frame.
    std::memcpy(&f.vnet, mac - sizeof(VnetHdr), sizeof(VnetHdr));
    f.data = mac;
    f.len = ppd->tp_snaplen;
    f.truncated = ppd->tp_snaplen < ppd->tp_len;
    sink.on_frame(f);
    ppd = reinterpret_cast<tpacket3_hdr*>(reinterpret_cast<uint8_t*>(ppd) +
                                          ppd->tp_next_offset);
  }
  return n;
}

void AfPacketIo::rx_release() {
  if (!holding_) return;
  auto* bd = reinterpret_cast<tpacket_block_desc*>(
      ring_ + static_cast<size_t>(cur_block_) * block_size_);
  __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
  cur_block_ = (cur_block_ + 1) % block_count_;
  holding_ = false;
}

bool AfPacketIo::tx_queue(const VnetHdr& vnet, const uint8_t* frame,
                          size_t len) {
  if (n_tx_ == kTxBatch) return false;
  tx_hdr_[n_tx_] = vnet;
  tx_iov_[n_tx_][0] = {&tx_hdr_[n_tx_], sizeof(VnetHdr)};
  tx_iov_[n_tx_][1] = {const_cast<uint8_t*>(frame), len};
  ++n_tx_;
  return true;
}

uint64_t AfPacketIo::rx_kernel_drops() {
  // packet(7): PACKET_STATISTICS returns the counts since the last read and
  // resets them; with TPACKET_V3 the layout is tpacket_stats_v3.
  tpacket_stats_v3 st{};
  socklen_t len = sizeof st;
  if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) return 0;
  return st.tp_drops;
}

size_t AfPacketIo::tx_flush() {
  size_t failed = 0;
  size_t done = 0;
  while (done < n_tx_) {
    const int r = sendmmsg(fd_, tx_msg_ + done, static_cast<unsigned>(n_tx_ - done), MSG_DONTWAIT);
    if (r > 0) {
      done += static_cast<size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    // The first message of the rest failed (peer down, no buffer space):
    // count it and go on with the others.
    ++failed;
    ++done;
  }
  n_tx_ = 0;
  return failed;
}

}  // namespace dne
