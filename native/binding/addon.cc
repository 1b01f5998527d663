#include "addon.h"

#include "common/status.h"
#include "crypto/aes_gcm.h"
#include "esp/esp_packet.h"
#include "esp_engine_wrap.h"
#include "filter_wrap.h"
#include "stats/counters.h"

namespace dne::binding {

Napi::Value throw_type_error(Napi::Env env, const char* message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

DneAddon::DneAddon(Napi::Env env, Napi::Object exports) {
  esp_engine_ctor = Napi::Persistent(EspEngineWrap::Init(env));
  filter_ctor = Napi::Persistent(FilterWrap::Init(env));
  Napi::Array port_counters = Napi::Array::New(env, kPortCounterCount);
  for (uint32_t i = 0; i < kPortCounterCount; ++i)
    port_counters.Set(i, Napi::String::New(env, port_counter_name(i)));
  DefineAddon(exports,
              {
                  InstanceMethod("statusNames", &DneAddon::StatusNames),
                  InstanceMethod("cryptoInfo", &DneAddon::CryptoInfo),
                  InstanceValue("EspEngine", esp_engine_ctor.Value()),
                  InstanceValue("Filter", filter_ctor.Value()),
                  InstanceValue("portCounterNames", port_counters),
                  InstanceValue("saCounterCount", Napi::Number::New(env, kSaCounterCount)),
                  InstanceValue("ruleCounterCount", Napi::Number::New(env, kRuleCounterCount)),
                  InstanceValue("espMaxOverhead",
                                Napi::Number::New(env, kEspMaxOverhead)),
              });
}

// Status names in enum order, so TypeScript can check its copy of the table.
Napi::Value DneAddon::StatusNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env, kStatusCount);
  for (int i = 0; i < kStatusCount; ++i)
    out.Set(static_cast<uint32_t>(i),
            Napi::String::New(env, status_name(static_cast<Status>(i))));
  return out;
}

// Which OpenSSL the addon's crypto runs on and whether the CPU offers the
// instructions its AES-GCM fast path needs (DESIGN §4: prove at start).
Napi::Value DneAddon::CryptoInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CryptoProvenance p = crypto_provenance();
  const CpuAesFeatures cpu = cpu_aes_features();
  Napi::Object o = Napi::Object::New(env);
  o.Set("opensslVersion", p.openssl_version);
  o.Set("evpObject", p.evp_object);
  o.Set("evpFromMainExecutable", p.from_main_executable);
  o.Set("cpuAesni", cpu.aesni);
  o.Set("cpuPclmulqdq", cpu.pclmulqdq);
  return o;
}

}  // namespace dne::binding

using dne::binding::DneAddon;
NODE_API_ADDON(DneAddon)
