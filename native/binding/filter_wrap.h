// JS face of dne::Filter: control calls only. Packets of real traffic stay
// in the workers' threads; JS configures ports, SAs and tables and reads
// counters into caller-provided typed arrays.
#pragma once

#include <napi.h>

#include <memory>

#include "filter/filter.h"

namespace dne::binding {

class FilterWrap : public Napi::ObjectWrap<FilterWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit FilterWrap(const Napi::CallbackInfo& info);
  ~FilterWrap() override;

  // Compiles a JS port table ({addresses, defaultAction, rules}); on error
  // throws a TypeError naming the offending field and returns nullptr.
  static std::shared_ptr<PortTable> to_table(Napi::Env env, Napi::Value v,
                                             const std::string& where);
  // classify(table, frame, direction) -> {action, ruleId}: the native
  // matcher on one frame, for the agreement tests and explain.
  static Napi::Value Classify(const Napi::CallbackInfo& info);

 private:
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value AddPort(const Napi::CallbackInfo& info);
  Napi::Value RemovePort(const Napi::CallbackInfo& info);
  Napi::Value PortMtu(const Napi::CallbackInfo& info);
  Napi::Value InstallSa(const Napi::CallbackInfo& info);
  Napi::Value RemoveSa(const Napi::CallbackInfo& info);
  Napi::Value ReplaceSenders(const Napi::CallbackInfo& info);
  Napi::Value SetTables(const Napi::CallbackInfo& info);
  Napi::Value ReadDrops(const Napi::CallbackInfo& info);
  Napi::Value ReadPort(const Napi::CallbackInfo& info);
  Napi::Value ReadRules(const Napi::CallbackInfo& info);
  Napi::Value ReadSa(const Napi::CallbackInfo& info);
  Napi::Value Generation(const Napi::CallbackInfo& info);
  Napi::Value Workers(const Napi::CallbackInfo& info);
  Napi::Value DefaultAction(const Napi::CallbackInfo& info);

  std::unique_ptr<Filter> filter_;
};

}  // namespace dne::binding
