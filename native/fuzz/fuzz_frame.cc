// libFuzzer target for the filter's frame path: arbitrary frames arrive on
// a port's network side (as from the wire) and workload side (as from a
// guest), each carrying an arbitrary virtio header (GSO type and size,
// checksum offsets), through one Filter with an encrypting and an allowing
// rule. Nothing may crash or write out of bounds whatever the input.
//
// Input: byte 0 picks the side, bytes 1-10 are the virtio header, the rest is
// the frame.
#include <cstdint>
#include <cstring>
#include <memory>

#include "filter/filter.h"
#include "io/fake_io.h"

namespace {

struct Fixture {
  dne::Filter filter{dne::FilterOptions{}};
  std::shared_ptr<dne::FakeIo> wl = std::make_shared<dne::FakeIo>();
  std::shared_ptr<dne::FakeIo> nw = std::make_shared<dne::FakeIo>();
  Fixture() {
    std::string err;
    filter.add_port("p", wl, nw, &err);
    dne::SaInstall s;
    s.params.spi = 0x1001;
    s.keymat.assign(20, 0x42);
    s.key_policy = 1;
    s.sender_ids = {1};
    filter.install_sa(s);
    auto t = std::make_shared<dne::PortTable>();
    dne::CompiledRule enc;
    enc.rule_id = 1;
    enc.protocol = 6;
    enc.ports = {{1, 1024}};
    enc.action = dne::Action::kEncrypt;
    enc.key_policy = 1;
    enc.tx_spi = 0x1001;
    dne::CompiledRule allow;
    allow.rule_id = 2;
    allow.action = dne::Action::kAllow;
    t->rules = {enc, allow};
    filter.set_tables({{"p", t}}, dne::Action::kAllow, &err);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* f = new Fixture();
  if (size < 11) return 0;
  dne::VnetHdr v;
  std::memcpy(&v, data + 1, sizeof v);
  const uint8_t* frame = data + 11;
  const size_t len = size - 11;
  if (data[0] & 1)
    f->nw->inject(frame, len, v);
  else
    f->wl->inject(frame, len, v);
  f->filter.poll_once();
  f->wl->sent.clear();
  f->wl->sent_vnet.clear();
  f->nw->sent.clear();
  f->nw->sent_vnet.clear();
  return 0;
}
