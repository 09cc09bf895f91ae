/// @file module.hpp
/// @brief nn::Module: a piece of a model that owns named parameters, buffers and
/// submodules, and builds graph nodes for an input.
///
/// A module does not hide the graph: calling it on an Expr adds nodes to the same graph,
/// so a model built from modules can be printed, drawn and differentiated like any
/// hand-built loss. A user module is a small class:
/// @code
/// struct Net : xgrad::nn::Module<float> {
///   xgrad::nn::Linear<float> fc1, fc2;
///   explicit Net(xgrad::Graph<float>& g) : Module(g), fc1(g, 784, 128), fc2(g, 128, 10) {
///     register_module("fc1", fc1);
///     register_module("fc2", fc2);
///   }
///   xgrad::Expr<float> forward(xgrad::Expr<float> x) override {
///     return fc2(xgrad::relu(fc1(x)));
///   }
/// };
/// @endcode
///
/// Training and evaluation. Layers such as Dropout and BatchNorm2d build different nodes
/// in training mode (train(), the default) and in evaluation mode (eval()), and in training
/// mode they also register updates of their buffers (a dropout step counter, running
/// statistics). Build each graph in its mode, over the same parameters, compile each once,
/// and pass the training graph's updates() to its compile():
/// @code
/// model.train();
/// auto loss = xgrad::cross_entropy(model(x), labels);
/// std::vector<xgrad::Expr<float>> outs{loss};
/// for (auto d : xgrad::grad(loss, model.parameters())) outs.push_back(d);
/// auto step = xgrad::compile(outs, {}, model.updates());  // writes the buffers each run
/// model.eval();
/// auto predict = xgrad::compile({model(x)});  // reads the running statistics
/// @endcode
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "xgrad/function.hpp"
#include "xgrad/graph.hpp"

namespace xgrad::nn {

/// A node of a module with its hierarchical name ("features.0.weight").
template <class T>
struct Named {
  std::string name;  ///< Dotted path from the root module, as PyTorch's state_dict keys.
  Expr<T> node;      ///< The parameter or buffer node.
};

/// Base of every layer and model. Modules are neither copyable nor movable: parents refer
/// to their children, and nodes refer to the graph; hold them as members, or in a
/// Sequential.
template <class T>
class Module {
 public:
  /// A module whose nodes live in g.
  explicit Module(Graph<T>& g) : g_(&g) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// Builds the module's nodes for input x and returns the output node.
  virtual Expr<T> forward(Expr<T> x) = 0;
  /// forward(x), after checking that x belongs to the module's graph.
  Expr<T> operator()(Expr<T> x);

  /// Trainable parameters of this module and its submodules, depth first in registration
  /// order: the list an optimizer takes.
  std::vector<Expr<T>> parameters() const;
  /// parameters() with their hierarchical names.
  std::vector<Named<T>> named_parameters() const;
  /// Non-trainable state (running statistics, counters), with hierarchical names.
  std::vector<Named<T>> named_buffers() const;
  /// Parameters, then buffers: everything a model file holds.
  std::vector<Named<T>> state() const;
  /// The buffer updates the last training-mode forward() of this module and of its
  /// submodules registered, depth first in registration order: what compile() takes with
  /// the training outputs, so every run of the compiled step also writes the buffers.
  /// Read it after building the training graph, in a statement of its own: in
  /// compile({model(x)}, {}, model.updates()) C++ may evaluate updates() first.
  std::vector<Update<T>> updates() const;
  /// Direct submodules with their local names, in registration order.
  const std::vector<std::pair<std::string, Module*>>& children() const { return children_; }

  /// Training mode (the default) or evaluation mode, for this module and every submodule.
  /// Layers that behave differently (dropout, batch norm) read it when forward() builds
  /// their nodes, so build the training loss and the evaluation output each in its mode.
  void train(bool on = true);
  /// Evaluation mode: train(false).
  void eval() { train(false); }
  /// True in training mode.
  bool training() const { return training_; }
  /// The graph the module's nodes live in.
  Graph<T>& graph() const { return *g_; }

 protected:
  /// Adds a trainable parameter node named `name` (no dots) with the given initial value.
  Expr<T> register_parameter(const std::string& name, xt::xarray<T> value);
  /// Adds non-trainable state (saved with the model, never given to an optimizer).
  Expr<T> register_buffer(const std::string& name, xt::xarray<T> value);
  /// Makes m a submodule named `name`; m must outlive this module (a member, typically).
  /// Returns m.
  template <class M>
  M& register_module(const std::string& name, M& m) {
    adopt(name, m);
    return m;
  }
  /// Makes `buffer` (one of this module's buffers) take `value` after each run of a
  /// Function compiled with updates(); replaces the buffer's earlier pending update, so
  /// building the training graph again does not write a buffer twice. Layers call it from
  /// a training-mode forward().
  void set_update(Expr<T> buffer, Expr<T> value);

 private:
  void adopt(const std::string& name, Module& child);
  void check_name(const std::string& name, const char* what) const;
  void rename(const std::string& prefix);
  void collect(const std::string& prefix, bool buffers, std::vector<Named<T>>& out) const;

  Graph<T>* g_;
  std::vector<std::pair<std::string, Expr<T>>> params_, buffers_;
  std::vector<std::pair<std::string, Module*>> children_;
  std::vector<Update<T>> updates_;  // pending, one per buffer at most
  std::string prefix_;              // this module's path from the root, for node names
  bool has_parent_ = false;
  bool training_ = true;
};

/// counter + 1, wrapping to 0 when it reaches 2^24: a step counter kept in a buffer of
/// float or double. Float counts integers exactly only up to 2^24, where counter + 1
/// would stop changing; the wrap keeps the counter moving (in both types alike), so a
/// counter that selects random masks repeats after 2^24 steps instead of freezing.
template <class T>
Expr<T> wrapping_increment(Expr<T> counter);

extern template class Module<float>;
extern template class Module<double>;
extern template Expr<float> wrapping_increment(Expr<float>);
extern template Expr<double> wrapping_increment(Expr<double>);

}  // namespace xgrad::nn
