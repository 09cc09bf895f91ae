// Module bookkeeping: names, registration and the walk over submodules.
#include "xgrad/nn/module.hpp"

#include <algorithm>

#include "xgrad/ops.hpp"

namespace xgrad::nn {

template <class T>
Expr<T> Module<T>::operator()(Expr<T> x) {
  if (&x.graph("nn: module '" + prefix_ + "'") != g_) {
    throw GraphError("nn: the input " + x.graph().describe(x.id()) + " of module '" +
                     (prefix_.empty() ? std::string("(root)") : prefix_) +
                     "' belongs to another graph than the module's parameters");
  }
  return forward(x);
}

template <class T>
void Module<T>::check_name(const std::string& name, const char* what) const {
  if (name.empty() || name.find('.') != std::string::npos) {
    throw ValueError("nn: " + std::string(what) + " name '" + name +
                     "' must be non-empty and contain no '.' (dots separate submodules)");
  }
  auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& e) { return e.first == name; });
  };
  if (taken(params_) || taken(buffers_) || taken(children_)) {
    throw ValueError("nn: the name '" + name + "' is already used in module '" +
                     (prefix_.empty() ? std::string("(root)") : prefix_) + "'");
  }
}

template <class T>
Expr<T> Module<T>::register_parameter(const std::string& name, xt::xarray<T> value) {
  check_name(name, "parameter");
  Expr<T> e = g_->parameter(prefix_.empty() ? name : prefix_ + "." + name, std::move(value));
  params_.emplace_back(name, e);
  return e;
}

template <class T>
Expr<T> Module<T>::register_buffer(const std::string& name, xt::xarray<T> value) {
  check_name(name, "buffer");
  // A parameter node, not a constant: constants are folded into the graph, while a buffer
  // changes between runs.
  Expr<T> e = g_->parameter(prefix_.empty() ? name : prefix_ + "." + name, std::move(value));
  buffers_.emplace_back(name, e);
  return e;
}

template <class T>
void Module<T>::adopt(const std::string& name, Module& child) {
  check_name(name, "submodule");
  if (&child == this || child.has_parent_) {
    throw ValueError("nn: module '" + name + "' is already a submodule of another module");
  }
  if (child.g_ != g_) {
    throw GraphError("nn: submodule '" + name + "' builds nodes in another graph");
  }
  child.has_parent_ = true;
  child.training_ = training_;
  children_.emplace_back(name, &child);
  child.rename(prefix_.empty() ? name : prefix_ + "." + name);
}

template <class T>
void Module<T>::rename(const std::string& prefix) {
  // Iterative over the subtree: models may nest deeply.
  std::vector<std::pair<Module*, std::string>> todo{{this, prefix}};
  while (!todo.empty()) {
    auto [m, p] = todo.back();
    todo.pop_back();
    m->prefix_ = p;
    for (auto& [n, e] : m->params_) g_->set_name(e.id(), p + "." + n);
    for (auto& [n, e] : m->buffers_) g_->set_name(e.id(), p + "." + n);
    for (auto& [n, c] : m->children_) todo.emplace_back(c, p + "." + n);
  }
}

template <class T>
void Module<T>::collect(const std::string& prefix, bool buffers, std::vector<Named<T>>& out) const {
  for (const auto& [n, e] : buffers ? buffers_ : params_)
    out.push_back({prefix.empty() ? n : prefix + "." + n, e});
  for (const auto& [n, c] : children_)
    c->collect(prefix.empty() ? n : prefix + "." + n, buffers, out);
}

template <class T>
std::vector<Named<T>> Module<T>::named_parameters() const {
  std::vector<Named<T>> out;
  collect({}, false, out);
  return out;
}

template <class T>
std::vector<Named<T>> Module<T>::named_buffers() const {
  std::vector<Named<T>> out;
  collect({}, true, out);
  return out;
}

template <class T>
std::vector<Named<T>> Module<T>::state() const {
  std::vector<Named<T>> out = named_parameters();
  for (Named<T>& b : named_buffers()) out.push_back(std::move(b));
  return out;
}

template <class T>
std::vector<Expr<T>> Module<T>::parameters() const {
  std::vector<Expr<T>> out;
  for (const Named<T>& p : named_parameters()) out.push_back(p.node);
  return out;
}

template <class T>
void Module<T>::train(bool on) {
  std::vector<Module*> todo{this};
  while (!todo.empty()) {
    Module* m = todo.back();
    todo.pop_back();
    m->training_ = on;
    for (auto& [n, c] : m->children_) todo.push_back(c);
  }
}

template <class T>
void Module<T>::set_update(Expr<T> buffer, Expr<T> value) {
  const std::string where = prefix_.empty() ? std::string("(root)") : prefix_;
  if (!buffer.valid() || std::none_of(buffers_.begin(), buffers_.end(),
                                      [&](const auto& b) { return b.second == buffer; })) {
    throw ValueError("nn: set_update: the target is not a buffer of module '" + where + "'");
  }
  if (!value.valid() || &value.graph() != g_) {
    throw GraphError("nn: set_update: the value for " + g_->describe(buffer.id()) + " of module '" +
                     where + "' belongs to another graph");
  }
  for (Update<T>& u : updates_) {
    if (u.target == buffer) {
      u.value = value;
      return;
    }
  }
  updates_.push_back({buffer, value});
}

template <class T>
std::vector<Update<T>> Module<T>::updates() const {
  // Depth first, children in registration order, without recursion.
  std::vector<Update<T>> out;
  std::vector<const Module*> todo{this};
  while (!todo.empty()) {
    const Module* m = todo.back();
    todo.pop_back();
    out.insert(out.end(), m->updates_.begin(), m->updates_.end());
    for (auto it = m->children_.rbegin(); it != m->children_.rend(); ++it)
      todo.push_back(it->second);
  }
  return out;
}

template <class T>
Expr<T> wrapping_increment(Expr<T> counter) {
  // (c + 1) - 2^24 [c >= 2^24 - 1], every step exact in float for integers c in [0, 2^24):
  // c - (2^24 - 2) > 0 holds exactly when c + 1 reaches 2^24.
  constexpr T wrap = T(16777216);
  return (counter + T(1)) - wrap * step(counter - (wrap - T(2)));
}

template class Module<float>;
template class Module<double>;
template Expr<float> wrapping_increment(Expr<float>);
template Expr<double> wrapping_increment(Expr<double>);

}  // namespace xgrad::nn
