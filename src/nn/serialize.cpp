// Model files: a Module's state as arrays of an .npz archive (data::NpzWriter/NpzFile).
#include "xgrad/nn/serialize.hpp"

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "xgrad/data/npz.hpp"

namespace xgrad::nn {

namespace {

std::string dims(const std::vector<std::size_t>& shape) {
  return shape_str(Shape(shape.begin(), shape.end()));
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "'" : ", '") + n + "'";
  return s;
}

}  // namespace

std::string LoadReport::to_string() const {
  std::string s;
  auto part = [&](std::size_t n, const char* what, const std::string& list) {
    if (n == 0) return;
    s += (s.empty() ? "" : "; ") + std::to_string(n) + " " + what + ": " + list;
  };
  part(missing.size(), "missing", quoted_list(missing));
  part(unexpected.size(), "unexpected", quoted_list(unexpected));
  std::string bad;
  for (const auto& m : mismatched)
    bad += (bad.empty() ? "'" : ", '") + m.name + "' (" + m.problem + ")";
  part(mismatched.size(), "mismatched", bad);
  return s;
}

template <class T>
void write_state(data::NpzWriter& w, const Module<T>& m, const std::string& prefix) {
  for (const Named<T>& s : m.state()) w.add(prefix + s.name, m.graph().value(s.node));
}

template <class T>
LoadReport read_state(const data::NpzFile& f, Module<T>& m, const LoadOptions& options) {
  LoadReport report;
  std::vector<std::pair<xt::xarray<T>*, xt::xarray<T>>> values;
  std::set<std::string> keys;
  for (const Named<T>& s : m.state()) {
    const std::string key = options.prefix + s.name;
    keys.insert(key);
    const data::NpzEntry* e = f.find(key);
    if (!e || !e->is_array) {
      report.missing.push_back(s.name);
      continue;
    }
    xt::xarray<T>& target = m.graph().value(s.node);
    const std::vector<std::size_t> want(target.shape().begin(), target.shape().end());
    if (!e->error.empty()) {
      report.mismatched.push_back({s.name, e->error});
    } else if (e->shape != want) {
      report.mismatched.push_back(
          {s.name, "shape " + dims(e->shape) + " in the file, " + dims(want) + " in the model"});
    } else {
      try {
        values.emplace_back(&target, f.read<T>(key));
        report.loaded.push_back(s.name);
      } catch (const data::DataError& err) {
        report.mismatched.push_back({s.name, err.message()});
      }
    }
  }
  for (const data::NpzEntry& e : f.entries()) {
    if (e.is_array && e.name.compare(0, options.prefix.size(), options.prefix) == 0 &&
        !keys.count(e.name)) {
      report.unexpected.push_back(e.name.substr(options.prefix.size()));
    }
  }
  if (options.strict && !report.complete()) {
    throw data::DataError(f.path() + ": the file does not match the model (strict load, nothing " +
                          "loaded): " + report.to_string());
  }
  // In place: compiled Functions hold the parameters' buffers.
  for (auto& [target, value] : values) std::copy(value.begin(), value.end(), target->begin());
  return report;
}

template <class T>
void save(const Module<T>& m, const std::string& path, const SaveOptions& options) {
  data::NpzWriter w(path, {options.compress, 0});
  write_state(w, m, options.prefix);
  w.commit();
}

template <class T>
LoadReport load(Module<T>& m, const std::string& path, const LoadOptions& options) {
  return read_state(data::NpzFile::open(path), m, options);
}

#define XGRAD_NN_SERIALIZE_INSTANTIATE(T)                                               \
  template void write_state(data::NpzWriter&, const Module<T>&, const std::string&);    \
  template LoadReport read_state(const data::NpzFile&, Module<T>&, const LoadOptions&); \
  template void save(const Module<T>&, const std::string&, const SaveOptions&);         \
  template LoadReport load(Module<T>&, const std::string&, const LoadOptions&);
XGRAD_NN_SERIALIZE_INSTANTIATE(float)
XGRAD_NN_SERIALIZE_INSTANTIATE(double)
#undef XGRAD_NN_SERIALIZE_INSTANTIATE

}  // namespace xgrad::nn
