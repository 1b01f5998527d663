// Per-environment addon state (node-addon-api Addon<T>): loading the addon in
// several worker threads or twice gives each environment its own instance;
// nothing here is process-global.
#pragma once

#include <napi.h>

namespace dne::binding {

class DneAddon : public Napi::Addon<DneAddon> {
 public:
  DneAddon(Napi::Env env, Napi::Object exports);

  Napi::FunctionReference esp_engine_ctor;
  Napi::FunctionReference filter_ctor;

 private:
  Napi::Value StatusNames(const Napi::CallbackInfo& info);
  Napi::Value CryptoInfo(const Napi::CallbackInfo& info);
};

// Throws a TypeError and returns undefined; keeps call sites to one line.
Napi::Value throw_type_error(Napi::Env env, const char* message);

}  // namespace dne::binding
