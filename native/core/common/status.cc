#include "common/status.h"

namespace dne {

const char* status_name(Status s) {
  switch (s) {
#define DNE_STATUS_NAME(name, str, desc) \
  case Status::name:                     \
    return str;
    DNE_STATUS_LIST(DNE_STATUS_NAME)
#undef DNE_STATUS_NAME
  }
  return "invalid";
}

const char* status_description(Status s) {
  switch (s) {
#define DNE_STATUS_DESC(name, str, desc) \
  case Status::name:                     \
    return desc;
    DNE_STATUS_LIST(DNE_STATUS_DESC)
#undef DNE_STATUS_DESC
  }
  return "invalid";
}

}  // namespace dne
