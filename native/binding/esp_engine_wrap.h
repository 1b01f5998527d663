// JS face of dne::EspEngine: a diagnostic and test surface that seals and
// opens single packets handed in from JavaScript. The filter's data path never
// goes through it (packets of real traffic never enter JS); the self-test,
// the interop tests and the known-answer checks do.
//
// Threading: used from the JS thread that created it only.
#pragma once

#include <napi.h>

#include <memory>

#include "esp/engine.h"

namespace dne::binding {

class EspEngineWrap : public Napi::ObjectWrap<EspEngineWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit EspEngineWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value InstallSa(const Napi::CallbackInfo& info);
  Napi::Value RemoveSa(const Napi::CallbackInfo& info);
  Napi::Value AddSender(const Napi::CallbackInfo& info);
  Napi::Value Seal(const Napi::CallbackInfo& info);
  Napi::Value SealWithIv(const Napi::CallbackInfo& info);
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value SaCounters(const Napi::CallbackInfo& info);
  Napi::Value GlobalDrops(const Napi::CallbackInfo& info);
  Napi::Value SenderInfo(const Napi::CallbackInfo& info);

  std::unique_ptr<EspEngine> engine_ = std::make_unique<EspEngine>();
};

}  // namespace dne::binding
