// libFuzzer target for the receive path, the one that faces the network.
//
// The first input byte picks the entry point:
//   0: EspEngine::open on an IP packet (transport-mode layout walk, SPI
//      lookup, replay check, ICV, trailer checks, header restore)
//   1: EspEngine::decap_payload on bare ESP (SPI..ICV)
//   2: seal the rest as a plaintext packet, open it again and require the
//      original bytes back (exercises the layout walk on arbitrary headers
//      past the ICV, which mutated ciphertext never reaches)
// SAs with the keys of the draft-mcgrew and Linux vectors are installed, so
// seeds taken from those vectors verify and reach the code after the ICV.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "common/bytes.h"
#include "esp/engine.h"

namespace {

struct Fixture {
  dne::EspEngine rx;        // vector SAs, all replay modes
  dne::EspEngine loop_tx;   // round-trip pair
  dne::EspEngine loop_rx;
  static constexpr uint32_t kLoopSpi = 0x7000;

  Fixture() {
    auto add = [&](uint32_t spi, dne::EspMode mode, bool esn,
                   dne::ReplayMode rm, const char* keymat_hex) {
      std::vector<uint8_t> k;
      for (size_t i = 0; keymat_hex[i] && keymat_hex[i + 1]; i += 2) {
        char b[3] = {keymat_hex[i], keymat_hex[i + 1], 0};
        k.push_back(static_cast<uint8_t>(strtoul(b, nullptr, 16)));
      }
      dne::SaParams p;
      p.spi = spi;
      p.mode = mode;
      p.esn = esn;
      p.replay_mode = rm;
      p.max_senders = 64;
      rx.install_sa(p, k.data(), k.size());
    };
    using dne::EspMode;
    using dne::ReplayMode;
    // draft-mcgrew cases 1/17 (ESN) and 2, 15 (GMAC); Linux xfrm SPI 0x222.
    add(0x4321, EspMode::kGcm, true, ReplayMode::kEspSeq,
        "4c80cdefbb5d10da906ac73c3613a6342e443b68");
    add(0xa5f8, EspMode::kGcm, false, ReplayMode::kEspSeq,
        "feffe9928665731c6d6a8f9467308308cafebabe");
    add(0x222, EspMode::kGcm, false, ReplayMode::kIvCounter,
        "3136627974656b65792b34627974656e6f6e6365");
    add(0x42f67e3f, EspMode::kGmac, true, ReplayMode::kIvCounter,
        "4c80cdefbb5d10da906ac73c3613a63422433c64");

    dne::SaParams p;
    p.spi = kLoopSpi;
    p.mode = dne::EspMode::kGcm;
    uint8_t k[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    loop_tx.install_sa(p, k, sizeof k);
    loop_rx.install_sa(p, k, sizeof k);
    loop_tx.add_sender(kLoopSpi, 1);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* f = new Fixture();
  if (size < 1) return 0;
  const uint8_t mode = data[0] % 3;
  const uint8_t* in = data + 1;
  const size_t len = size - 1;
  // Exact-size output buffers so ASan catches any write past the result.
  std::vector<uint8_t> out(len + dne::kEspMaxOverhead);
  size_t n = 0;
  dne::OpenInfo info;
  if (mode == 0) {
    const dne::Status s = f->rx.open(in, len, out.data(), len, &n, &info);
    if (s == dne::Status::kOk && n > len) abort();
  } else if (mode == 1) {
    const dne::Status s = f->rx.decap_payload(in, len, out.data(), len, &n, &info);
    if (s == dne::Status::kOk && n > len) abort();
  } else {
    dne::SealInfo si;
    if (f->loop_tx.seal(Fixture::kLoopSpi, 1, in, len, out.data(), out.size(), &n, &si) !=
        dne::Status::kOk)
      return 0;
    std::vector<uint8_t> back(n);
    size_t m = 0;
    if (f->loop_rx.open(out.data(), n, back.data(), back.size(), &m, &info) != dne::Status::kOk)
      abort();
    // The restored packet equals the input up to the IP length (trailing
    // bytes after it are not part of the packet).
    if (m > len || std::memcmp(back.data(), in, m) != 0) abort();
  }
  return 0;
}
