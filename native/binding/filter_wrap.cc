#include "filter_wrap.h"

#include <openssl/crypto.h>

#include "addon.h"
#include "net/frame.h"

namespace dne::binding {

namespace {

bool get_number(Napi::Env env, Napi::Object o, const char* key, const std::string& where,
                double lo, double hi, double* out) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) {
    throw_type_error(env, (where + "." + key + " must be a number").c_str());
    return false;
  }
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || d != static_cast<double>(static_cast<int64_t>(d))) {
    throw_type_error(env, (where + "." + key + " is out of range").c_str());
    return false;
  }
  *out = d;
  return true;
}

bool get_string(Napi::Env env, Napi::Object o, const char* key, const std::string& where,
                bool optional, std::string* out) {
  Napi::Value v = o.Get(key);
  if (optional && (v.IsUndefined() || v.IsNull())) return true;
  if (!v.IsString()) {
    throw_type_error(env, (where + "." + key + " must be a string").c_str());
    return false;
  }
  *out = v.As<Napi::String>().Utf8Value();
  return true;
}

bool get_prefixes(Napi::Env env, Napi::Object o, const char* key, const std::string& where,
                  PrefixSet* out) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) {
    throw_type_error(env, (where + "." + key + " must be an array of prefixes").c_str());
    return false;
  }
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    Prefix p;
    if (!e.IsString() || !Prefix::parse(e.As<Napi::String>().Utf8Value(), &p)) {
      throw_type_error(env, (where + "." + key + "[" + std::to_string(i) +
                             "] is not an IPv4/IPv6 prefix").c_str());
      return false;
    }
    out->prefixes.push_back(p);
  }
  return true;
}

Napi::Value counters_to(Napi::Env env, Napi::Value v, size_t need, uint64_t** data,
                        const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array ||
      v.As<Napi::TypedArray>().ElementLength() < need)
    return throw_type_error(env, what);
  *data = v.As<Napi::TypedArrayOf<uint64_t>>().Data();
  return env.Null();
}

}  // namespace

std::shared_ptr<PortTable> FilterWrap::to_table(Napi::Env env, Napi::Value v,
                                                const std::string& where) {
  if (!v.IsObject()) {
    throw_type_error(env, (where + " must be an object").c_str());
    return nullptr;
  }
  Napi::Object o = v.As<Napi::Object>();
  auto t = std::make_shared<PortTable>();
  double d;
  if (!get_prefixes(env, o, "addresses", where, &t->addresses)) return nullptr;
  if (!get_number(env, o, "defaultAction", where, 0, 3, &d)) return nullptr;
  t->default_action = static_cast<Action>(d);
  Napi::Value rv = o.Get("rules");
  if (!rv.IsArray()) {
    throw_type_error(env, (where + ".rules must be an array").c_str());
    return nullptr;
  }
  Napi::Array rules = rv.As<Napi::Array>();
  for (uint32_t i = 0; i < rules.Length(); ++i) {
    const std::string w = where + ".rules[" + std::to_string(i) + "]";
    Napi::Value e = rules.Get(i);
    if (!e.IsObject()) {
      throw_type_error(env, (w + " must be an object").c_str());
      return nullptr;
    }
    Napi::Object r = e.As<Napi::Object>();
    CompiledRule c;
    if (!get_number(env, r, "ruleId", w, 0, 4294967295.0, &d)) return nullptr;
    c.rule_id = static_cast<uint32_t>(d);
    if (!get_number(env, r, "slot", w, 0, kMaxRuleSlots - 1, &d)) return nullptr;
    c.counter_slot = static_cast<uint32_t>(d);
    if (!get_number(env, r, "role", w, 0, 1, &d)) return nullptr;
    c.role = static_cast<Role>(d);
    if (!get_number(env, r, "ipVersion", w, 0, 6, &d) || (d != 0 && d != 4 && d != 6)) {
      throw_type_error(env, (w + ".ipVersion must be 0, 4 or 6").c_str());
      return nullptr;
    }
    c.ip_version = static_cast<uint8_t>(d);
    if (!get_number(env, r, "protocol", w, -1, 255, &d)) return nullptr;
    c.protocol = static_cast<int>(d);
    if (!get_prefixes(env, r, "local", w, &c.local)) return nullptr;
    if (!get_prefixes(env, r, "remote", w, &c.remote)) return nullptr;
    Napi::Value pv = r.Get("ports");
    if (!pv.IsArray() || pv.As<Napi::Array>().Length() % 2 != 0) {
      throw_type_error(env, (w + ".ports must be a flat array of lo,hi pairs").c_str());
      return nullptr;
    }
    Napi::Array pa = pv.As<Napi::Array>();
    for (uint32_t j = 0; j < pa.Length(); j += 2) {
      Napi::Value lo = pa.Get(j), hi = pa.Get(j + 1);
      if (!lo.IsNumber() || !hi.IsNumber()) {
        throw_type_error(env, (w + ".ports must hold numbers").c_str());
        return nullptr;
      }
      const double l = lo.As<Napi::Number>().DoubleValue(), h = hi.As<Napi::Number>().DoubleValue();
      if (!(l >= 0 && h <= 65535 && l <= h) || l != static_cast<int>(l) || h != static_cast<int>(h)) {
        throw_type_error(env, (w + ".ports has a bad range").c_str());
        return nullptr;
      }
      c.ports.push_back({static_cast<uint16_t>(l), static_cast<uint16_t>(h)});
    }
    if (!get_number(env, r, "action", w, 0, 3, &d)) return nullptr;
    c.action = static_cast<Action>(d);
    if (!get_number(env, r, "keyPolicy", w, 0, 4294967295.0, &d)) return nullptr;
    c.key_policy = static_cast<uint32_t>(d);
    if (!get_number(env, r, "txSpi", w, 0, 4294967295.0, &d)) return nullptr;
    c.tx_spi = static_cast<uint32_t>(d);
    t->rules.push_back(std::move(c));
  }
  return t;
}

Napi::Value FilterWrap::Classify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3) return throw_type_error(env, "classify(table, frame, direction)");
  auto t = to_table(env, info[0], "table");
  if (!t) return env.Undefined();
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    return throw_type_error(env, "classify: frame must be a Uint8Array");
  if (!info[2].IsNumber()) return throw_type_error(env, "classify: direction must be 0 or 1");
  auto f = info[1].As<Napi::Uint8Array>();
  ParsedFrame p;
  Napi::Object r = Napi::Object::New(env);
  if (!parse_frame(f.Data(), f.ByteLength(), &p) || p.family == 0) {
    r.Set("parsed", false);
    return r;
  }
  const Direction dir = info[2].As<Napi::Number>().Int32Value() == 0 ? Direction::kOut : Direction::kIn;
  const Match m = classify(t->rules, p.key, dir, t->default_action);
  r.Set("parsed", true);
  r.Set("action", static_cast<double>(m.action));
  if (m.rule != nullptr)
    r.Set("ruleId", static_cast<double>(m.rule->rule_id));
  else
    r.Set("ruleId", env.Null());
  return r;
}

Napi::Function FilterWrap::Init(Napi::Env env) {
  return DefineClass(env, "Filter",
                     {
                         InstanceMethod("start", &FilterWrap::Start),
                         InstanceMethod("stop", &FilterWrap::Stop),
                         InstanceMethod("close", &FilterWrap::Close),
                         InstanceMethod("addPort", &FilterWrap::AddPort),
                         InstanceMethod("removePort", &FilterWrap::RemovePort),
                         InstanceMethod("portMtu", &FilterWrap::PortMtu),
                         InstanceMethod("installSa", &FilterWrap::InstallSa),
                         InstanceMethod("removeSa", &FilterWrap::RemoveSa),
                         InstanceMethod("replaceSenders", &FilterWrap::ReplaceSenders),
                         InstanceMethod("setTables", &FilterWrap::SetTables),
                         InstanceMethod("readDrops", &FilterWrap::ReadDrops),
                         InstanceMethod("readPort", &FilterWrap::ReadPort),
                         InstanceMethod("readRules", &FilterWrap::ReadRules),
                         InstanceMethod("readSa", &FilterWrap::ReadSa),
                         InstanceMethod("generation", &FilterWrap::Generation),
                         InstanceMethod("workers", &FilterWrap::Workers),
                         InstanceMethod("defaultAction", &FilterWrap::DefaultAction),
                         StaticMethod("classify", &FilterWrap::Classify),
                     });
}

// new Filter({workers, defaultAction, blockSize, blockCount, retireMs})
FilterWrap::FilterWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FilterWrap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    throw_type_error(env, "Filter: options must be an object");
    return;
  }
  Napi::Object o = info[0].As<Napi::Object>();
  FilterOptions fo;
  double d;
  if (!get_number(env, o, "workers", "options", 1, 64, &d)) return;
  fo.workers = static_cast<uint32_t>(d);
  if (!get_number(env, o, "defaultAction", "options", 0, 3, &d)) return;
  fo.default_action = static_cast<Action>(d);
  if (!get_number(env, o, "blockSize", "options", 65536 + 4096, 1 << 26, &d)) return;
  if ((static_cast<uint32_t>(d) & 4095) != 0) {
    throw_type_error(env, "options.blockSize must be a multiple of 4096");
    return;
  }
  fo.ring.block_size = static_cast<uint32_t>(d);
  if (!get_number(env, o, "blockCount", "options", 2, 1024, &d)) return;
  fo.ring.block_count = static_cast<uint32_t>(d);
  // Each interface maps (and locks) one ring of blockSize * blockCount.
  if (static_cast<uint64_t>(fo.ring.block_size) * fo.ring.block_count > (uint64_t{256} << 20)) {
    throw_type_error(env, "options.blockSize * options.blockCount must be at most 256 MiB per interface");
    return;
  }
  if (!get_number(env, o, "retireMs", "options", 1, 1000, &d)) return;
  fo.ring.retire_ms = static_cast<uint32_t>(d);
  filter_ = std::make_unique<Filter>(fo);
}

FilterWrap::~FilterWrap() {
  if (filter_) filter_->close();
}

#define DNE_REQUIRE_FILTER()                                                  \
  if (!filter_) return throw_type_error(info.Env(), "Filter was not created")

Napi::Value FilterWrap::Start(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  filter_->start();
  return info.Env().Undefined();
}

Napi::Value FilterWrap::Stop(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  filter_->stop();
  return info.Env().Undefined();
}

Napi::Value FilterWrap::Close(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  filter_->close();
  return info.Env().Undefined();
}

Napi::Value FilterWrap::DefaultAction(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  return Napi::String::New(info.Env(), action_name(filter_->default_action()));
}

Napi::Value FilterWrap::Workers(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  return Napi::Number::New(info.Env(), filter_->worker_count());
}

Napi::Value FilterWrap::Generation(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  return Napi::BigInt::New(info.Env(), filter_->generation());
}

// addPort({name, workloadIf, networkIf, workloadNetns?, networkNetns?}):
// opens both interfaces; throws Error with the reason when it cannot.
Napi::Value FilterWrap::AddPort(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) return throw_type_error(env, "addPort: config must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  PortConfig c;
  if (!get_string(env, o, "name", "port", false, &c.name) ||
      !get_string(env, o, "workloadIf", "port", false, &c.workload_if) ||
      !get_string(env, o, "networkIf", "port", false, &c.network_if) ||
      !get_string(env, o, "workloadNetns", "port", true, &c.workload_netns) ||
      !get_string(env, o, "networkNetns", "port", true, &c.network_netns))
    return env.Undefined();
  std::string err;
  if (!filter_->open_port(c, &err)) {
    Napi::Error::New(env, "port " + c.name + ": " + err).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, filter_->port_slot(c.name));
}

Napi::Value FilterWrap::RemovePort(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  if (info.Length() < 1 || !info[0].IsString()) return throw_type_error(info.Env(), "removePort: name must be a string");
  return Napi::Boolean::New(info.Env(), filter_->remove_port(info[0].As<Napi::String>().Utf8Value()));
}

Napi::Value FilterWrap::PortMtu(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  if (info.Length() < 1 || !info[0].IsString()) return throw_type_error(info.Env(), "portMtu: name must be a string");
  return Napi::Number::New(info.Env(), filter_->port_mtu(info[0].As<Napi::String>().Utf8Value()));
}

// installSa({spi, mode, esn, senderIdBits, replayWindow, replayMode,
//            maxSenders, keyPolicy, senderIds, lowWater}, keymat) -> status
Napi::Value FilterWrap::InstallSa(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    return throw_type_error(env, "installSa(params, keymat: Uint8Array)");
  Napi::Object o = info[0].As<Napi::Object>();
  SaInstall s;
  double d;
  if (!get_number(env, o, "spi", "sa", 0, 4294967295.0, &d)) return env.Undefined();
  s.params.spi = static_cast<uint32_t>(d);
  if (!get_number(env, o, "mode", "sa", 0, 1, &d)) return env.Undefined();
  s.params.mode = static_cast<EspMode>(d);
  if (!get_number(env, o, "senderIdBits", "sa", 8, 32, &d)) return env.Undefined();
  s.params.sender_id_bits = static_cast<uint8_t>(d);
  if (!get_number(env, o, "replayWindow", "sa", 0, 4294967295.0, &d)) return env.Undefined();
  s.params.replay_window = static_cast<uint32_t>(d);
  if (!get_number(env, o, "replayMode", "sa", 0, 1, &d)) return env.Undefined();
  s.params.replay_mode = static_cast<ReplayMode>(d);
  if (!get_number(env, o, "maxSenders", "sa", 1, 4294967295.0, &d)) return env.Undefined();
  s.params.max_senders = static_cast<uint32_t>(d);
  if (!get_number(env, o, "keyPolicy", "sa", 0, 4294967295.0, &d)) return env.Undefined();
  s.key_policy = static_cast<uint32_t>(d);
  Napi::Value esn = o.Get("esn");
  if (!esn.IsBoolean()) return throw_type_error(env, "sa.esn must be a boolean");
  s.params.esn = esn.As<Napi::Boolean>().Value();
  Napi::Value lw = o.Get("lowWater");
  bool lossless = false;
  if (!lw.IsBigInt()) return throw_type_error(env, "sa.lowWater must be a bigint");
  s.low_water = lw.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) return throw_type_error(env, "sa.lowWater must be a bigint");
  Napi::Value ids = o.Get("senderIds");
  if (!ids.IsArray()) return throw_type_error(env, "sa.senderIds must be an array");
  Napi::Array ia = ids.As<Napi::Array>();
  for (uint32_t i = 0; i < ia.Length(); ++i) {
    Napi::Value e = ia.Get(i);
    if (!e.IsNumber()) return throw_type_error(env, "sa.senderIds must hold numbers");
    const double v = e.As<Napi::Number>().DoubleValue();
    if (!(v >= 0 && v <= 4294967295.0) || v != static_cast<double>(static_cast<uint32_t>(v)))
      return throw_type_error(env, "sa.senderIds must hold uint32 values");
    s.sender_ids.push_back(static_cast<uint32_t>(v));
  }
  auto km = info[1].As<Napi::Uint8Array>();
  s.keymat.assign(km.Data(), km.Data() + km.ByteLength());
  const Status st = filter_->install_sa(s);  // wipes s.keymat
  return Napi::Number::New(env, static_cast<double>(st));
}

Napi::Value FilterWrap::RemoveSa(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  if (info.Length() < 1 || !info[0].IsNumber()) return throw_type_error(info.Env(), "removeSa: spi must be a number");
  return Napi::Number::New(info.Env(), static_cast<double>(
      filter_->remove_sa(info[0].As<Napi::Number>().Uint32Value())));
}

// replaceSenders(spi, senderIds) -> "ok" | "unknown_spi" | "wrong_count" |
// "too_wide" | "duplicate" | "reused" (sender_update_name): the SA's
// senders get these IDs in place, its receive state stays.
Napi::Value FilterWrap::ReplaceSenders(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsArray())
    return throw_type_error(env, "replaceSenders(spi: number, senderIds: number[])");
  const double spi = info[0].As<Napi::Number>().DoubleValue();
  if (!(spi >= 0 && spi <= 4294967295.0) || spi != static_cast<double>(static_cast<uint32_t>(spi)))
    return throw_type_error(env, "replaceSenders: spi must be a uint32");
  Napi::Array ia = info[1].As<Napi::Array>();
  std::vector<uint32_t> ids;
  for (uint32_t i = 0; i < ia.Length(); ++i) {
    Napi::Value e = ia.Get(i);
    if (!e.IsNumber()) return throw_type_error(env, "senderIds must hold numbers");
    const double v = e.As<Napi::Number>().DoubleValue();
    if (!(v >= 0 && v <= 4294967295.0) || v != static_cast<double>(static_cast<uint32_t>(v)))
      return throw_type_error(env, "senderIds must hold uint32 values");
    ids.push_back(static_cast<uint32_t>(v));
  }
  const SenderUpdate r = filter_->replace_senders(static_cast<uint32_t>(spi), ids);
  return Napi::String::New(env, sender_update_name(r));
}

// setTables({defaultAction, ports: {name: table}}): one snapshot swap.
Napi::Value FilterWrap::SetTables(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) return throw_type_error(env, "setTables: config must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  double d;
  if (!get_number(env, o, "defaultAction", "tables", 0, 3, &d)) return env.Undefined();
  Napi::Value pv = o.Get("ports");
  if (!pv.IsObject()) return throw_type_error(env, "tables.ports must be an object keyed by port name");
  Napi::Object ports = pv.As<Napi::Object>();
  Napi::Array names = ports.GetPropertyNames();
  std::unordered_map<std::string, std::shared_ptr<const PortTable>> tables;
  for (uint32_t i = 0; i < names.Length(); ++i) {
    const std::string name = names.Get(i).As<Napi::String>().Utf8Value();
    auto t = to_table(env, ports.Get(name), "tables.ports." + name);
    if (!t) return env.Undefined();
    tables.emplace(name, std::move(t));
  }
  std::vector<uint32_t> new_slots;
  Napi::Value nv = o.Get("newRuleSlots");
  if (!nv.IsUndefined()) {
    if (!nv.IsArray()) return throw_type_error(env, "tables.newRuleSlots must be an array");
    Napi::Array na = nv.As<Napi::Array>();
    for (uint32_t i = 0; i < na.Length(); ++i) {
      Napi::Value e = na.Get(i);
      if (!e.IsNumber()) return throw_type_error(env, "tables.newRuleSlots must hold numbers");
      new_slots.push_back(e.As<Napi::Number>().Uint32Value());
    }
  }
  std::string err;
  if (!filter_->set_tables(std::move(tables), static_cast<Action>(d), &err, new_slots)) {
    Napi::Error::New(env, "setTables: " + err).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::BigInt::New(env, filter_->generation());
}

Napi::Value FilterWrap::ReadDrops(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  uint64_t* out;
  if (info.Length() < 1 || counters_to(info.Env(), info[0], kStatusCount, &out,
                                       "readDrops: out must be a BigUint64Array of status count").IsUndefined())
    return info.Env().Undefined();
  filter_->read_drops(out);
  return info.Env().Undefined();
}

Napi::Value FilterWrap::ReadPort(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString()) return throw_type_error(env, "readPort(name, counters, drops)");
  uint64_t *out, *drops;
  if (counters_to(env, info[1], kPortCounterCount, &out, "readPort: counters array too small").IsUndefined() ||
      counters_to(env, info[2], kStatusCount, &drops, "readPort: drops array too small").IsUndefined())
    return env.Undefined();
  return Napi::Boolean::New(env, filter_->read_port(info[0].As<Napi::String>().Utf8Value(), out, drops));
}

Napi::Value FilterWrap::ReadRules(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber()) return throw_type_error(env, "readRules(slots, out)");
  const uint32_t slots = info[0].As<Napi::Number>().Uint32Value();
  if (slots > kMaxRuleSlots) return throw_type_error(env, "readRules: too many slots");
  uint64_t* out;
  if (counters_to(env, info[1], static_cast<size_t>(slots) * kRuleCounterCount, &out,
                  "readRules: out must be a BigUint64Array of slots * 4").IsUndefined())
    return env.Undefined();
  filter_->read_rules(slots, out);
  return env.Undefined();
}

Napi::Value FilterWrap::ReadSa(const Napi::CallbackInfo& info) {
  DNE_REQUIRE_FILTER();
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber()) return throw_type_error(env, "readSa(spi, out)");
  uint64_t* out;
  if (counters_to(env, info[1], kSaCounterCount, &out, "readSa: out array too small").IsUndefined())
    return env.Undefined();
  return Napi::Boolean::New(env, filter_->read_sa(info[0].As<Napi::Number>().Uint32Value(), out));
}

}  // namespace dne::binding
