// Trainer: the compiled training and evaluation steps, and the epoch loop around them.
#include "xgrad/train/trainer.hpp"

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "xgrad/autodiff.hpp"
#include "xgrad/data/feeds.hpp"
#include "xgrad/error.hpp"

namespace xgrad::train {

template <class T>
struct Trainer<T>::Compiled {
  Function<T> step;      // {loss, metric statistics..., gradients...}
  Function<T> evaluate;  // {eval_loss, metric statistics...}
  std::size_t first_grad = 1;
  std::vector<std::size_t> train_stats;  // statistics per metric in `step`
  std::vector<std::size_t> stats;        // statistics per metric in `evaluate`
};

namespace {

// Outputs {head, every metric's statistics} and how many each metric added.
template <class T>
std::vector<Expr<T>> with_statistics(Expr<T> head, Expr<T> prediction, Expr<T> target,
                                     const std::vector<Metric<T>*>& metrics,
                                     std::vector<std::size_t>& counts) {
  std::vector<Expr<T>> outs;
  if (head) outs.push_back(head);
  counts.clear();
  for (const Metric<T>* m : metrics) {
    auto s = m->statistics(prediction, target);
    counts.push_back(s.size());
    outs.insert(outs.end(), s.begin(), s.end());
  }
  return outs;
}

// Feeds every metric its statistics from outputs, starting at `at`.
template <class T>
void accumulate(const std::vector<xt::xarray<T>>& out, std::size_t at,
                const std::vector<std::size_t>& counts, std::size_t rows,
                const std::vector<Metric<T>*>& metrics) {
  for (std::size_t i = 0; i < metrics.size(); ++i) {
    metrics[i]->accumulate(std::span<const xt::xarray<T>>(out).subspan(at, counts[i]), rows);
    at += counts[i];
  }
}

template <class T>
std::vector<Metric<T>*> pointers(const std::vector<std::unique_ptr<Metric<T>>>& ms) {
  std::vector<Metric<T>*> out;
  for (const auto& m : ms) out.push_back(m.get());
  return out;
}

// With replicas, checks that every process has a loader of the same batches (its shard):
// one with more batches would wait forever in a combine the others never join.
template <class T, class L>
void check_same_batches(Replicas<T>* replicas, const data::DataLoader<T, L>& loader,
                        const char* what) {
  if (!replicas) return;
  replicas->check_same(std::string(what) + ": the batch size", loader.options().batch_size);
  replicas->check_same(std::string(what) + ": the batches per epoch", loader.num_batches());
  replicas->check_same(std::string(what) + ": the examples per epoch", loader.examples_per_epoch());
}

// Runs f over a loader's batches (epoch 0) and feeds the metrics their statistics (outputs
// from `at` on). With replicas, each batch's outputs are combined over the processes first
// (the loss averaged, the statistics summed) and its rows counted on all. Returns the sum
// of output 0 times rows (when at == 1) and the rows.
template <class T, class L>
std::pair<double, std::size_t> run_batches(Function<T>& f, const Task<T>& task,
                                           const data::DataLoader<T, L>& loader, std::size_t at,
                                           const std::vector<std::size_t>& counts,
                                           const std::vector<Metric<T>*>& metrics,
                                           Replicas<T>* replicas) {
  check_same_batches(replicas, loader, "train::Trainer::evaluate");
  const std::size_t processes = replicas ? replicas->size() : 1;
  double loss = 0;
  std::size_t rows = 0;
  for (const auto& b : loader.epoch(0)) {
    const std::vector<xt::xarray<T>>* out = &f.run(data::feeds(b, task.x, task.y));
    if (replicas) out = &replicas->combine(Phase::evaluation, *out, at, out->size());
    const std::size_t n = b.size() * processes;
    if (at == 1) loss += static_cast<double>((*out)[0]()) * static_cast<double>(n);
    rows += n;
    accumulate(*out, at, counts, n, metrics);
  }
  return {loss, rows};
}

// Mean loss (output 0) and the metrics over a loader, for a compiled evaluation function.
template <class T, class L>
Logs run_evaluation(Function<T>& f, const Task<T>& task, const data::DataLoader<T, L>& loader,
                    const std::vector<std::size_t>& counts, const std::vector<Metric<T>*>& metrics,
                    Replicas<T>* replicas = nullptr) {
  for (auto* m : metrics) m->reset();
  const auto [loss, rows] = run_batches(f, task, loader, 1, counts, metrics, replicas);
  Logs l;
  l.set("loss", rows ? loss / static_cast<double>(rows) : std::nan(""));
  for (auto* m : metrics) l.set(m->name(), m->value());
  return l;
}

template <class T>
void require_input(Expr<T> e, const char* what) {
  if (!e) throw GraphError(std::string("train::Trainer: Task::") + what + " is empty");
  if (e.node().kind != NodeKind::input) {
    throw GraphError(std::string("train::Trainer: Task::") + what + " ('" + e.name() +
                     "') is not an input node: fit binds each batch to it");
  }
}

}  // namespace

template <class T>
Task<T> supervised(nn::Module<T>& model, Expr<T> x, Expr<T> y,
                   const std::function<Expr<T>(Expr<T>, Expr<T>)>& loss) {
  Task<T> t{.x = x, .y = y, .loss = {}};
  model.train();
  t.output = model(x);
  t.loss = loss(t.output, y);
  t.updates = model.updates();
  model.eval();
  t.eval_output = model(x);
  t.eval_loss = loss(t.eval_output, y);
  t.state = model.state();
  return t;
}

template <class T>
Trainer<T>::Trainer(Task<T> task, optim::Optimizer<T>& optimizer, TrainerOptions<T> options)
    : task_(std::move(task)), opt_(&optimizer), options_(std::move(options)) {
  require_input(task_.x, "x");
  require_input(task_.y, "y");
  if (!task_.loss) throw GraphError("train::Trainer: Task::loss is empty");
  if (!task_.eval_loss) task_.eval_loss = task_.loss;
  if (!task_.eval_output) task_.eval_output = task_.output;
  if (task_.state.empty()) {
    for (auto p : opt_->parameters()) task_.state.push_back({p.name(), p});
    for (const auto& u : task_.updates) task_.state.push_back({u.target.name(), u.target});
  }
  for (auto p : opt_->parameters()) {
    if (&p.graph() != &task_.loss.graph()) {
      throw GraphError("train::Trainer: parameter '" + p.name() + "' of " + opt_->name() +
                       " is not a node of the loss's graph");
    }
  }
  const bool metrics = !options_.metrics.empty();
  if (metrics && !task_.eval_output) {
    throw GraphError("train::Trainer: metrics need Task::output (the prediction node)");
  }
  std::vector<Metric<T>*> given;
  for (const auto& m : options_.metrics) given.push_back(m.get());

  std::vector<std::size_t> counts;
  std::vector<Expr<T>> step_outs = {task_.loss};
  if (metrics && options_.train_metrics && task_.output) {
    for (const auto& m : options_.metrics) train_metrics_.push_back(m->clone());
    unknown_.assign(train_metrics_.size(), false);
    step_outs =
        with_statistics(task_.loss, task_.output, task_.y, pointers(train_metrics_), counts);
  }
  const std::size_t first_grad = step_outs.size();
  for (auto d : grad(task_.loss, opt_->parameters())) step_outs.push_back(d);
  std::vector<std::size_t> eval_counts;
  auto eval_outs = with_statistics(task_.eval_loss, task_.eval_output, task_.y, given, eval_counts);
  fn_ = std::make_unique<Compiled>(Compiled{
      .step = Function<T>(step_outs, options_.compile, task_.updates),
      .evaluate = Function<T>(eval_outs, options_.compile),
      .first_grad = first_grad,
      .train_stats = counts,
      .stats = eval_counts,
  });
}

template <class T>
Trainer<T>::~Trainer() = default;

template <class T>
Trainer<T>& Trainer<T>::add(std::shared_ptr<Callback<T>> callback) {
  if (!callback) throw ValueError("train::Trainer::add: null callback");
  callbacks_.push_back(std::move(callback));
  return *this;
}

template <class T>
void Trainer<T>::stop(std::string reason) {
  stop_reason_ = reason.empty() ? std::string("stopped") : std::move(reason);
}

template <class T>
double Trainer<T>::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

template <class T>
void Trainer<T>::set_position(
    std::size_t epoch, std::size_t batch, double loss_sum, std::size_t examples,
    const std::vector<std::optional<std::vector<double>>>& metric_states) {
  const std::size_t n = train_metrics_.size();
  if (!metric_states.empty() && metric_states.size() != n) {
    throw ValueError("train::Trainer::set_position: " + std::to_string(metric_states.size()) +
                     " metric states for " + std::to_string(n) + " training metrics");
  }
  const auto saved = [&](std::size_t i) { return i < metric_states.size() && metric_states[i]; };
  // Tried on copies first, so that a state a metric refuses changes nothing.
  for (std::size_t i = 0; i < n; ++i) {
    if (saved(i)) train_metrics_[i]->clone()->restore(*metric_states[i]);
  }
  unknown_.assign(n, false);
  for (std::size_t i = 0; i < n; ++i) {
    train_metrics_[i]->reset();
    if (saved(i)) train_metrics_[i]->restore(*metric_states[i]);
    unknown_[i] = examples > 0 && !saved(i);
  }
  epoch_ = epoch;
  batch_ = batch;
  loss_sum_ = loss_sum;
  examples_ = examples;
}

template <class T>
std::vector<const Metric<T>*> Trainer<T>::train_metrics() const {
  std::vector<const Metric<T>*> out;
  for (const auto& m : train_metrics_) out.push_back(m.get());
  return out;
}

template <class T>
template <class Hook>
void Trainer<T>::each(Hook hook) {
  for (const auto& cb : callbacks_) hook(*cb);
}

template <class T>
void Trainer<T>::agree_stop() {
  Replicas<T>* r = replicas();
  if (!r) return;
  double any = stopped() ? 1 : 0;
  r->sum(std::span<double>(&any, 1));
  if (any > 0 && !stopped()) stop("stopped on another process");
}

template <class T>
template <class L>
const History& Trainer<T>::fit(const data::DataLoader<T, L>& train,
                               const FitOptions<T, L>& options) {
  epochs_ = options.epochs;
  batches_ = train.num_batches();
  start_ = std::chrono::steady_clock::now();
  stop_reason_.clear();
  if (Replicas<T>* r = replicas()) {
    // Every process starts from rank 0's weights, at the same place, on equal shards.
    check_same_batches(r, train, "train::Trainer::fit");
    r->check_same("train::Trainer::fit: the epoch", epoch_);
    r->check_same("train::Trainer::fit: the batch", batch_);
    r->check_same("train::Trainer::fit: the optimizer's step count", opt_->steps());
    std::vector<Expr<T>> nodes;
    for (const auto& s : task_.state) nodes.push_back(s.node);
    r->broadcast(nodes);
  }
  if (batch_ >= batches_) {  // a checkpoint taken after an epoch's last batch
    ++epoch_;
    batch_ = 0;
  }
  optim::Stopping stopping = options.stopping;
  each([&](Callback<T>& c) { c.on_train_begin(*this); });
  agree_stop();
  while (epoch_ < epochs_ && !stopped()) run_epoch(train, options, stopping);
  each([&](Callback<T>& c) { c.on_train_end(*this); });
  return history_;
}

template <class T>
template <class L>
void Trainer<T>::run_epoch(const data::DataLoader<T, L>& train, const FitOptions<T, L>& options,
                           optim::Stopping& stopping) {
  opt_->set_epoch(epoch_);
  const auto metrics = pointers(train_metrics_);
  if (batch_ == 0) {
    loss_sum_ = 0;
    examples_ = 0;
  }
  if (batch_ == 0 || examples_ == 0) {
    for (auto* m : metrics) m->reset();
    unknown_.assign(metrics.size(), false);
  }
  logs_.clear();
  each([&](Callback<T>& c) { c.on_epoch_begin(*this); });
  const std::size_t first = fn_->first_grad;
  Replicas<T>* const replicas = this->replicas();
  for (const auto& b : train.epoch(epoch_, batch_)) {
    each([&](Callback<T>& c) { c.on_batch_begin(*this); });
    const std::vector<xt::xarray<T>>* out = &fn_->step.run(data::feeds(b, task_.x, task_.y));
    // Loss and gradients averaged, statistics summed: the global batch's, on every process.
    if (replicas) out = &replicas->combine(Phase::training, *out, 1, first);
    batch_loss_ = static_cast<double>((*out)[0]());
    if (stopping.size() > 0 &&
        stopping(opt_->steps(), batch_loss_, optim::global_norm(*out, first))) {
      stop(stopping.result().message);
    } else {
      each([&](Callback<T>& c) { c.on_before_step(*this); });
    }
    agree_stop();  // also a stop() on another process after its last update
    if (stopped()) break;
    opt_->step(*out, first);
    const std::size_t rows = b.size() * processes();
    loss_sum_ += batch_loss_ * static_cast<double>(rows);
    examples_ += rows;
    accumulate(*out, 1, fn_->train_stats, rows, metrics);
    ++batch_;
    logs_.set("loss", loss_sum_ / static_cast<double>(examples_));
    for (std::size_t i = 0; i < metrics.size(); ++i) {
      logs_.set(metrics[i]->name(), unknown_[i] ? std::nan("") : metrics[i]->value());
    }
    each([&](Callback<T>& c) { c.on_batch_end(*this); });
    // With replicas a stop() here is agreed before the next update (or after the epoch).
    if (stopped() && !replicas) break;
  }
  if (batch_ < batches_) return;  // stopped inside the epoch: no row, resumable from here
  Logs row;
  row.set("epoch", static_cast<double>(epoch_ + 1));
  for (const auto& [name, v] : logs_) row.set(name, v);
  row.set("lr", opt_->last_lr());
  double monitored = logs_.has("loss") ? logs_.get("loss") : batch_loss_;
  if (options.validation) {
    const Logs v = evaluate(*options.validation);
    for (const auto& [name, value] : v) row.set("val_" + name, value);
    monitored = v.get("loss");
  }
  row.set("seconds", elapsed());
  opt_->report(monitored);  // reduce-on-plateau reacts; other schedules ignore it
  history_.append(row);
  logs_ = row;
  each([&](Callback<T>& c) { c.on_epoch_end(*this); });
  agree_stop();
  ++epoch_;
  batch_ = 0;
}

template <class T>
template <class L>
Logs Trainer<T>::evaluate(const data::DataLoader<T, L>& loader) {
  std::vector<std::unique_ptr<Metric<T>>> clones;
  for (const auto& m : options_.metrics) clones.push_back(m->clone());
  return run_evaluation(fn_->evaluate, task_, loader, fn_->stats, pointers(clones), replicas());
}

template <class T, class L>
Logs evaluate(const Task<T>& task, const data::DataLoader<T, L>& loader,
              const std::vector<std::shared_ptr<Metric<T>>>& metrics) {
  const Expr<T> loss = task.eval_loss ? task.eval_loss : task.loss;
  const Expr<T> output = task.eval_output ? task.eval_output : task.output;
  if (!metrics.empty() && !output) {
    throw GraphError("train::evaluate: metrics need Task::output (the prediction node)");
  }
  std::vector<std::unique_ptr<Metric<T>>> clones;
  for (const auto& m : metrics) clones.push_back(m->clone());
  std::vector<std::size_t> counts;
  Function<T> f(with_statistics(loss, output, task.y, pointers(clones), counts));
  return run_evaluation(f, task, loader, counts, pointers(clones));
}

template <class T>
template <class L>
void Trainer<T>::evaluate(const data::DataLoader<T, L>& loader,
                          const std::vector<Metric<T>*>& metrics) {
  if (!task_.eval_output) {
    throw GraphError("train::Trainer::evaluate: metrics need Task::output (the prediction node)");
  }
  std::vector<std::size_t> counts;
  Function<T> f(with_statistics(Expr<T>{}, task_.eval_output, task_.y, metrics, counts),
                options_.compile);
  run_batches(f, task_, loader, 0, counts, metrics, replicas());
}

#define XGRAD_TRAIN_INSTANTIATE(T, L)                                                              \
  template const History& Trainer<T>::fit(const data::DataLoader<T, L>&, const FitOptions<T, L>&); \
  template Logs Trainer<T>::evaluate(const data::DataLoader<T, L>&);                               \
  template void Trainer<T>::evaluate(const data::DataLoader<T, L>&,                                \
                                     const std::vector<Metric<T>*>&);                              \
  template Logs evaluate(const Task<T>&, const data::DataLoader<T, L>&,                            \
                         const std::vector<std::shared_ptr<Metric<T>>>&);

template class Trainer<float>;
template class Trainer<double>;
XGRAD_TRAIN_INSTANTIATE(float, float)
XGRAD_TRAIN_INSTANTIATE(float, std::int64_t)
XGRAD_TRAIN_INSTANTIATE(double, double)
XGRAD_TRAIN_INSTANTIATE(double, std::int64_t)
template Task<float> supervised(nn::Module<float>&, Expr<float>, Expr<float>,
                                const std::function<Expr<float>(Expr<float>, Expr<float>)>&);
template Task<double> supervised(nn::Module<double>&, Expr<double>, Expr<double>,
                                 const std::function<Expr<double>(Expr<double>, Expr<double>)>&);

}  // namespace xgrad::train
