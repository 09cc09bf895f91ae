// The built-in callbacks (see include/xgrad/train/callbacks.hpp).
#include "xgrad/train/callbacks.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>

#include "monitor.hpp"
#include "xgrad/error.hpp"
#include "xgrad/plot.hpp"
#include "xgrad/train/trainer.hpp"

namespace xgrad::train {

namespace {

// "1:05" or "1:02:03".
std::string clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-:--";
  const long s = std::lround(seconds);
  std::ostringstream os;
  if (s >= 3600)
    os << s / 3600 << ":" << std::setw(2) << std::setfill('0') << (s / 60) % 60;
  else
    os << s / 60;
  os << ":" << std::setw(2) << std::setfill('0') << s % 60;
  return os.str();
}

// " loss 0.4321 accuracy 0.8812" (epoch, lr and seconds are shown apart).
std::string values_text(const Logs& logs) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(4);
  for (const auto& [name, v] : logs) {
    if (name == "epoch" || name == "seconds" || name == "lr") continue;
    os << " " << name << " " << v;
  }
  return os.str();
}

}  // namespace

template <class T>
ProgressBar<T>::ProgressBar(ProgressOptions options) : opts_(options) {
  const bool to_cout = opts_.out == nullptr || opts_.out == &std::cout;
  terminal_ = opts_.terminal.value_or(to_cout && isatty(STDOUT_FILENO));
  if (opts_.width == 0) opts_.width = 1;
}

template <class T>
std::ostream& ProgressBar<T>::out() const {
  return opts_.out ? *opts_.out : std::cout;
}

template <class T>
void ProgressBar<T>::on_epoch_begin(Trainer<T>& t) {
  if (!t.is_root()) return;
  epoch_start_ = t.elapsed();
  last_draw_ = -1;
  first_batch_ = t.batch();
  first_examples_ = t.examples();
}

template <class T>
void ProgressBar<T>::on_batch_end(Trainer<T>& t) {
  if (!terminal_ || !t.is_root()) return;
  const double now = t.elapsed();
  const std::size_t done = t.batch(), total = t.batches_per_epoch();
  if (done < total && last_draw_ >= 0 && now - last_draw_ < opts_.interval) return;
  last_draw_ = now;
  const double spent = now - epoch_start_;
  const double rate = spent > 0 ? static_cast<double>(t.examples() - first_examples_) / spent : 0;
  const double per_batch =
      done > first_batch_ ? spent / static_cast<double>(done - first_batch_) : 0;
  const std::size_t filled = opts_.width * done / (total ? total : 1);
  std::ostringstream os;
  os << "\repoch " << t.epoch() + 1 << "/" << t.epochs() << " [" << std::string(filled, '#')
     << std::string(opts_.width - filled, '.') << "] " << done << "/" << total << " " << std::fixed
     << std::setprecision(0) << rate << " ex/s " << clock_text(spent) << " ETA "
     << clock_text(per_batch * static_cast<double>(total - done)) << values_text(t.logs())
     << "\x1b[K";
  out() << os.str() << std::flush;
}

template <class T>
void ProgressBar<T>::on_epoch_end(Trainer<T>& t) {
  if (!t.is_root()) return;
  const double spent = t.elapsed() - epoch_start_;
  const double rate = spent > 0 ? static_cast<double>(t.examples() - first_examples_) / spent : 0;
  std::ostringstream os;
  os << (terminal_ ? "\r" : "") << "epoch " << t.epoch() + 1 << "/" << t.epochs() << " "
     << t.batches_per_epoch() << " batches " << std::fixed << std::setprecision(1) << spent << " s "
     << std::setprecision(0) << rate << " ex/s" << values_text(t.logs())
     << (terminal_ ? "\x1b[K" : "") << "\n";
  out() << os.str() << std::flush;
}

template <class T>
void CsvLogger<T>::on_epoch_end(Trainer<T>& t) {
  if (!t.is_root()) return;
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream f(tmp);
    if (!f) throw Error("train::CsvLogger: cannot write " + tmp);
    t.history().write_csv(f);
    if (!f.flush()) throw Error("train::CsvLogger: write error on " + tmp);
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    throw Error("train::CsvLogger: cannot rename " + tmp + " to " + path_);
  }
}

template <class T>
HistoryPlot<T>::HistoryPlot(std::string stem, std::vector<std::string> quantities)
    : stem_(std::move(stem)), quantities_(std::move(quantities)) {}

template <class T>
void HistoryPlot<T>::on_train_end(Trainer<T>& t) {
  images_.clear();
  const History& h = t.history();
  if (h.empty() || !t.is_root()) return;
  std::vector<std::string> qs = quantities_;
  if (qs.empty()) {
    for (const auto& c : h.columns()) {
      if (c == "epoch" || c == "lr" || c == "seconds" || c.rfind("val_", 0) == 0) continue;
      qs.push_back(c);
    }
    for (const auto& c : h.columns()) {  // validation columns without a training one
      if (c.rfind("val_", 0) == 0 && !h.has(c.substr(4))) qs.push_back(c);
    }
  }
  const std::vector<double> epochs = h.column("epoch");
  for (const auto& q : qs) {
    plot::Plot p{.name = stem_ + "_" + q,
                 .settings = {"set xlabel 'epoch'", "set ylabel " + plot::quoted(q),
                              "set offsets 0.5, 0.5, 0, 0", "set title " + plot::quoted(q)},
                 .enhanced = false};
    if (h.has(q)) p.series.push_back({"training", epochs, h.column(q), "linespoints pt 7"});
    if (h.has("val_" + q)) {
      p.series.push_back({"validation", epochs, h.column("val_" + q), "linespoints pt 7"});
    }
    if (p.series.empty()) {
      throw ValueError("train::HistoryPlot: the history has no column '" + q + "'");
    }
    if (!plot::draw(p)) throw Error("train::HistoryPlot: gnuplot failed on " + p.name + ".gp");
    if (plot::have_program("gnuplot")) {
      images_.push_back(p.name + ".png");
      images_.push_back(p.name + ".svg");
    }
  }
}

template <class T>
EarlyStopping<T>::EarlyStopping(EarlyStoppingOptions options)
    : opts_(std::move(options)),
      maximize_(detail::larger_is_better(opts_.monitor, opts_.maximize)),
      best_(std::numeric_limits<double>::quiet_NaN()) {
  if (!(opts_.min_delta >= 0)) {
    throw ValueError("train::EarlyStopping: min_delta must be >= 0, got " +
                     std::to_string(opts_.min_delta));
  }
}

template <class T>
void EarlyStopping<T>::on_train_begin(Trainer<T>&) {
  wait_ = 0;
}

template <class T>
void EarlyStopping<T>::on_epoch_end(Trainer<T>& t) {
  const double v = t.logs().get(opts_.monitor);
  if (detail::improves(v, best_, maximize_, opts_.min_delta)) {
    best_ = v;
    best_epoch_ = t.epoch() + 1;
    wait_ = 0;
    if (opts_.restore_best) {
      best_values_.clear();
      for (const auto& s : t.state()) best_values_.push_back(s.node.graph().value(s.node));
    }
    return;
  }
  if (++wait_ >= opts_.patience) {
    std::ostringstream os;
    os << "early stopping: " << opts_.monitor << " did not improve for " << wait_
       << " epochs (best " << best_ << " at epoch " << best_epoch_ << ")";
    t.stop(os.str());
  }
}

template <class T>
void EarlyStopping<T>::on_train_end(Trainer<T>& t) {
  if (!opts_.restore_best || best_values_.empty()) return;
  const auto& state = t.state();
  for (std::size_t i = 0; i < state.size() && i < best_values_.size(); ++i) {
    state[i].node.graph().value(state[i].node) = best_values_[i];
  }
}

template <class T>
void TerminateOnNaN<T>::on_before_step(Trainer<T>& t) {
  if (std::isfinite(t.batch_loss())) return;
  std::ostringstream os;
  os << "loss is " << t.batch_loss() << " at epoch " << t.epoch() + 1 << ", batch " << t.batch() + 1
     << " (not applied)";
  t.stop(os.str());
}

template <class T>
void TimeBudget<T>::on_batch_end(Trainer<T>& t) {
  if (t.elapsed() < seconds_) return;
  std::ostringstream os;
  os << "time budget of " << seconds_ << " s used up";
  t.stop(os.str());
}

#define XGRAD_TRAIN_CALLBACKS(T)    \
  template class ProgressBar<T>;    \
  template class CsvLogger<T>;      \
  template class HistoryPlot<T>;    \
  template class EarlyStopping<T>;  \
  template class TerminateOnNaN<T>; \
  template class TimeBudget<T>;
XGRAD_TRAIN_CALLBACKS(float)
XGRAD_TRAIN_CALLBACKS(double)

}  // namespace xgrad::train
