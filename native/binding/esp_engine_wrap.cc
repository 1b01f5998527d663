#include "esp_engine_wrap.h"

#include <vector>

#include "addon.h"

namespace dne::binding {

namespace {

// Argument readers: each returns false after throwing a TypeError whose text
// names the argument (never its value: it may be key material).
bool get_u32(const Napi::CallbackInfo& info, size_t i, const char* what,
             uint32_t* out) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    throw_type_error(info.Env(), what);
    return false;
  }
  const double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint32_t>(d))) {
    throw_type_error(info.Env(), what);
    return false;
  }
  *out = static_cast<uint32_t>(d);
  return true;
}

bool get_u64(Napi::Env env, Napi::Value v, const char* what, uint64_t* out) {
  if (!v.IsBigInt()) {
    throw_type_error(env, what);
    return false;
  }
  bool lossless = false;
  *out = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) {
    throw_type_error(env, what);
    return false;
  }
  return true;
}

bool get_bytes(const Napi::CallbackInfo& info, size_t i, const char* what,
               const uint8_t** data, size_t* len) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw_type_error(info.Env(), what);
    return false;
  }
  auto a = info[i].As<Napi::Uint8Array>();
  *data = a.Data();
  *len = a.ByteLength();
  return true;
}

Napi::Object result(Napi::Env env, Status s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("status", Napi::Number::New(env, static_cast<double>(s)));
  return o;
}

Napi::Value status_value(Napi::Env env, Status s) {
  return Napi::Number::New(env, static_cast<double>(s));
}

}  // namespace

Napi::Function EspEngineWrap::Init(Napi::Env env) {
  return DefineClass(
      env, "EspEngine",
      {
          InstanceMethod("installSa", &EspEngineWrap::InstallSa),
          InstanceMethod("removeSa", &EspEngineWrap::RemoveSa),
          InstanceMethod("addSender", &EspEngineWrap::AddSender),
          InstanceMethod("seal", &EspEngineWrap::Seal),
          InstanceMethod("sealWithIv", &EspEngineWrap::SealWithIv),
          InstanceMethod("open", &EspEngineWrap::Open),
          InstanceMethod("saCounters", &EspEngineWrap::SaCounters),
          InstanceMethod("globalDrops", &EspEngineWrap::GlobalDrops),
          InstanceMethod("senderInfo", &EspEngineWrap::SenderInfo),
      });
}

EspEngineWrap::EspEngineWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<EspEngineWrap>(info) {}

// installSa({spi, mode, esn, senderIdBits, replayWindow, replayMode,
//            maxSenders, initialSeq}, keymat) -> status
// The key bytes are copied once into locked native memory; the caller wipes
// its Buffer afterwards.
Napi::Value EspEngineWrap::InstallSa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject())
    return throw_type_error(env, "installSa: params must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  const char* fields[] = {"spi", "mode", "senderIdBits", "replayWindow",
                          "replayMode", "maxSenders"};
  uint32_t v[6];
  for (int i = 0; i < 6; ++i) {
    Napi::Value f = o.Get(fields[i]);
    if (!f.IsNumber()) return throw_type_error(env, "installSa: numeric field missing");
    const double d = f.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint32_t>(d)))
      return throw_type_error(env, "installSa: numeric field out of range");
    v[i] = static_cast<uint32_t>(d);
  }
  if (!o.Get("esn").IsBoolean()) return throw_type_error(env, "installSa: esn must be a boolean");
  uint64_t initial_seq = 0;
  if (!get_u64(env, o.Get("initialSeq"), "installSa: initialSeq must be a bigint", &initial_seq))
    return env.Undefined();
  const uint8_t* key = nullptr;
  size_t key_len = 0;
  if (!get_bytes(info, 1, "installSa: keymat must be a Uint8Array", &key, &key_len))
    return env.Undefined();
  if (v[1] > 1 || v[4] > 1 || v[2] > 255)
    return status_value(env, Status::kBadConfig);
  SaParams p;
  p.spi = v[0];
  p.mode = static_cast<EspMode>(v[1]);
  p.sender_id_bits = static_cast<uint8_t>(v[2]);
  p.replay_window = v[3];
  p.replay_mode = static_cast<ReplayMode>(v[4]);
  p.max_senders = v[5];
  p.esn = o.Get("esn").As<Napi::Boolean>().Value();
  p.initial_seq = initial_seq;
  return status_value(env, engine_->install_sa(p, key, key_len));
}

Napi::Value EspEngineWrap::RemoveSa(const Napi::CallbackInfo& info) {
  uint32_t spi;
  if (!get_u32(info, 0, "removeSa: spi must be a uint32", &spi)) return info.Env().Undefined();
  return status_value(info.Env(), engine_->remove_sa(spi));
}

Napi::Value EspEngineWrap::AddSender(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t spi, sender;
  uint64_t first = 1, low = 0;
  if (!get_u32(info, 0, "addSender: spi must be a uint32", &spi) ||
      !get_u32(info, 1, "addSender: senderId must be a uint32", &sender) ||
      info.Length() < 4 ||
      !get_u64(env, info[2], "addSender: firstCounter must be a bigint", &first) ||
      !get_u64(env, info[3], "addSender: lowWater must be a bigint", &low))
    return env.Undefined();
  return status_value(env, engine_->add_sender(spi, sender, first, low));
}

Napi::Value EspEngineWrap::Seal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t spi, sender;
  const uint8_t* pkt;
  size_t len;
  if (!get_u32(info, 0, "seal: spi must be a uint32", &spi) ||
      !get_u32(info, 1, "seal: senderId must be a uint32", &sender) ||
      !get_bytes(info, 2, "seal: packet must be a Uint8Array", &pkt, &len))
    return env.Undefined();
  std::vector<uint8_t> out(len + kEspMaxOverhead);
  size_t n = 0;
  SealInfo si;
  const Status s = engine_->seal(spi, sender, pkt, len, out.data(), out.size(), &n, &si);
  Napi::Object r = result(env, s);
  if (s == Status::kOk) {
    r.Set("packet", Napi::Buffer<uint8_t>::Copy(env, out.data(), n));
    r.Set("iv", Napi::BigInt::New(env, si.iv));
    r.Set("seq", Napi::BigInt::New(env, si.seq));
    r.Set("senderLow", Napi::Boolean::New(env, si.sender_low));
  }
  return r;
}

Napi::Value EspEngineWrap::SealWithIv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t spi;
  uint64_t seq, iv;
  const uint8_t* pkt;
  size_t len;
  if (!get_u32(info, 0, "sealWithIv: spi must be a uint32", &spi) || info.Length() < 4 ||
      !get_u64(env, info[1], "sealWithIv: seq must be a bigint", &seq) ||
      !get_u64(env, info[2], "sealWithIv: iv must be a bigint", &iv) ||
      !get_bytes(info, 3, "sealWithIv: packet must be a Uint8Array", &pkt, &len))
    return env.Undefined();
  std::vector<uint8_t> out(len + kEspMaxOverhead);
  size_t n = 0;
  const Status s = engine_->seal_with_iv(spi, seq, iv, pkt, len, out.data(), out.size(), &n);
  Napi::Object r = result(env, s);
  if (s == Status::kOk) r.Set("packet", Napi::Buffer<uint8_t>::Copy(env, out.data(), n));
  return r;
}

Napi::Value EspEngineWrap::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t* pkt;
  size_t len;
  if (!get_bytes(info, 0, "open: packet must be a Uint8Array", &pkt, &len))
    return env.Undefined();
  std::vector<uint8_t> out(len);
  size_t n = 0;
  OpenInfo oi;
  const Status s = engine_->open(pkt, len, out.data(), out.size(), &n, &oi);
  Napi::Object r = result(env, s);
  if (s == Status::kOk) {
    r.Set("packet", Napi::Buffer<uint8_t>::Copy(env, out.data(), n));
    r.Set("spi", Napi::Number::New(env, oi.spi));
    r.Set("senderId", Napi::Number::New(env, oi.sender_id));
    r.Set("counter", Napi::BigInt::New(env, oi.counter));
    r.Set("seq", Napi::BigInt::New(env, oi.seq));
    r.Set("nextHeader", Napi::Number::New(env, oi.next_header));
  }
  return r;
}

// saCounters(spi, out: BigUint64Array) -> bool. Layout: sealed packets,
// sealed bytes, opened packets, opened bytes, then one drop counter per
// status code. Filled in place; nothing is allocated.
Napi::Value EspEngineWrap::SaCounters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t spi;
  if (!get_u32(info, 0, "saCounters: spi must be a uint32", &spi)) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array ||
      info[1].As<Napi::TypedArray>().ElementLength() < 4 + static_cast<size_t>(kStatusCount))
    return throw_type_error(env, "saCounters: out must be a BigUint64Array of 4 + status count");
  const dne::SaCounters* c = engine_->counters(spi);
  if (c == nullptr) return Napi::Boolean::New(env, false);
  auto a = info[1].As<Napi::TypedArrayOf<uint64_t>>();
  uint64_t* d = a.Data();
  d[0] = c->sealed_packets;
  d[1] = c->sealed_bytes;
  d[2] = c->opened_packets;
  d[3] = c->opened_bytes;
  for (int i = 0; i < kStatusCount; ++i) d[4 + i] = c->drops[i];
  return Napi::Boolean::New(env, true);
}

Napi::Value EspEngineWrap::GlobalDrops(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array ||
      info[0].As<Napi::TypedArray>().ElementLength() < static_cast<size_t>(kStatusCount))
    return throw_type_error(env, "globalDrops: out must be a BigUint64Array of status count");
  auto a = info[0].As<Napi::TypedArrayOf<uint64_t>>();
  const auto& g = engine_->global_drops();
  for (int i = 0; i < kStatusCount; ++i) a.Data()[i] = g[i];
  return env.Undefined();
}

Napi::Value EspEngineWrap::SenderInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t spi, sender;
  if (!get_u32(info, 0, "senderInfo: spi must be a uint32", &spi) ||
      !get_u32(info, 1, "senderInfo: senderId must be a uint32", &sender))
    return env.Undefined();
  dne::SenderInfo si;
  if (engine_->sender_info(spi, sender, &si) == nullptr) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("senderId", Napi::Number::New(env, si.sender_id));
  o.Set("nextCounter", Napi::BigInt::New(env, si.next_counter));
  o.Set("remaining", Napi::BigInt::New(env, si.remaining));
  o.Set("low", Napi::Boolean::New(env, si.low));
  return o;
}

}  // namespace dne::binding
