#include "stats/counters.h"

namespace dne {

const char* port_counter_name(uint32_t i) {
  static const char* names[] = {
#define DNE_PC_NAME(e, n) n,
      DNE_PORT_COUNTERS(DNE_PC_NAME)
#undef DNE_PC_NAME
  };
  return i < kPortCounterCount ? names[i] : "invalid";
}

}  // namespace dne
