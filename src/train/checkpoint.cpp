// Checkpoints (see include/xgrad/train/checkpoint.hpp): one .npz archive with the arrays
// of the run and a JSON document of its scalars, and the callback that writes them.
#include "xgrad/train/checkpoint.hpp"

#include <cmath>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <xtensor/xadapt.hpp>

#include "../data/io.hpp"
#include "monitor.hpp"
#include "xgrad/data/npz.hpp"
#include "xgrad/train/trainer.hpp"

namespace xgrad::train {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kFormat = "xgrad checkpoint";
constexpr const char* kJson = "checkpoint.json";

// JSON has no NaN or infinity: those travel as the strings "nan", "inf" and "-inf".
json number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

double number_of(const json& j) {
  if (j.is_number()) return j.get<double>();
  const std::string s = j.get<std::string>();
  if (s == "inf") return std::numeric_limits<double>::infinity();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  return std::numeric_limits<double>::quiet_NaN();
}

template <class T>
const char* dtype_text() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

std::string shape_text(const std::vector<std::size_t>& s) {
  return shape_str(Shape(s.begin(), s.end()));
}

template <class A>
std::vector<std::size_t> shape_of(const A& a) {
  return {a.shape().begin(), a.shape().end()};
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw data::DataError(path + ": " + what);
}

// "1 process", "3 processes".
std::string processes_text(std::size_t n) {
  return std::to_string(n) + (n == 1 ? " process" : " processes");
}

// The archive itself (save_checkpoint decides which process writes it).
template <class T>
void write_checkpoint(const Trainer<T>& t, const std::string& path, const Extras& extras) {
  data::NpzWriter w(path);
  json state = json::array();
  for (const auto& s : t.state()) {
    const auto& v = s.node.graph().value(s.node);
    w.add("model." + s.name, xt::xarray<T>(v));
    state.push_back({{"name", s.name}, {"shape", shape_of(v)}});
  }
  const optim::OptimizerState<T> os = t.optimizer().state();
  json params = json::array();
  for (std::size_t i = 0; i < os.params.size(); ++i) {
    json scalars = json::object(), tensors = json::array();
    for (const auto& [name, v] : os.params[i].scalars) scalars[name] = number(v);
    for (const auto& [name, v] : os.params[i].tensors) {
      w.add("optimizer." + std::to_string(i) + "." + name, v);
      tensors.push_back(name);
    }
    params.push_back({{"scalars", scalars}, {"tensors", tensors}});
  }
  json schedule = json::object();
  for (const auto& [name, v] : os.schedule) schedule[name] = number(v);

  const History& h = t.history();
  xt::xarray<double> rows = xt::zeros<double>({h.size(), h.columns().size()});
  for (std::size_t i = 0; i < h.size(); ++i) {
    for (std::size_t j = 0; j < h.columns().size(); ++j) rows(i, j) = h.rows()[i][j];
  }
  w.add("history", rows);

  // Inside an epoch, the training metrics' sums so far; at its end they start afresh.
  json position = {{"epoch", t.epoch()},
                   {"batch", t.batch()},
                   {"loss_sum", number(t.loss_sum())},
                   {"examples", t.examples()}};
  if (t.batch() > 0 && t.batch() < t.batches_per_epoch()) {
    json metrics = json::array();
    const auto train_metrics = t.train_metrics();
    for (std::size_t i = 0; i < train_metrics.size(); ++i) {
      const auto s = train_metrics[i]->state();
      metrics.push_back({{"name", train_metrics[i]->name()}, {"saved", s.has_value()}});
      if (s) w.add("metrics." + std::to_string(i), xt::xarray<double>(xt::adapt(*s, {s->size()})));
    }
    position["metrics"] = metrics;
  }

  json numbers = json::object();
  for (const auto& [k, v] : extras.numbers) numbers[k] = number(v);
  const json doc = {
      {"format", kFormat},
      {"version", checkpoint_version},
      {"dtype", dtype_text<T>()},
      {"processes", t.processes()},
      {"position", position},
      {"optimizer",
       {{"name", t.optimizer().name()},
        {"steps", os.steps},
        {"epoch", os.epoch},
        {"params", params},
        {"schedule", schedule}}},
      {"history_columns", h.columns()},
      {"state", state},
      {"extras", {{"numbers", numbers}, {"strings", extras.strings}}},
  };
  w.add_text(kJson, doc.dump(1));
  w.commit();
}

// The training metrics' states of a checkpoint taken inside an epoch, one per metric of
// t (nullopt for one that saved none), checked against t's metrics. None at an epoch's
// end (the metrics start afresh, and may differ) or in a version 1 file (then t reports
// NaN for them until the epoch ends).
template <class T>
std::vector<std::optional<std::vector<double>>> read_metric_states(const Trainer<T>& t,
                                                                   const data::NpzFile& f,
                                                                   const json& pos,
                                                                   const std::string& path) {
  std::vector<std::optional<std::vector<double>>> states;
  if (!pos.contains("metrics")) return states;
  const auto mine = t.train_metrics();
  const json& saved = pos.at("metrics");
  std::string in_file, in_trainer;
  for (const auto& m : saved) {
    in_file += (in_file.empty() ? "" : ", ") + m.at("name").get<std::string>();
  }
  for (const auto* m : mine) in_trainer += (in_trainer.empty() ? "" : ", ") + m->name();
  if (in_file != in_trainer) {
    fail(path, "checkpoint inside an epoch of a run with other training metrics: (" + in_file +
                   ") in the file, (" + in_trainer +
                   ") in the trainer; their partial sums would not fit");
  }
  std::vector<std::string> problems;
  for (std::size_t i = 0; i < mine.size(); ++i) {
    if (!saved[i].at("saved").get<bool>()) {
      states.emplace_back();
      continue;
    }
    const xt::xarray<double> a = f.read<double>("metrics." + std::to_string(i));
    std::vector<double> s(a.begin(), a.end());
    try {
      mine[i]->clone()->restore(s);  // the check restore does, before anything is written
    } catch (const Error& e) {
      problems.push_back("'" + mine[i]->name() + "': " + data::detail::message_of(e));
    }
    states.emplace_back(std::move(s));
  }
  if (!problems.empty()) {
    std::string all;
    for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
    fail(path, "the training metrics' partial sums do not fit the trainer's metrics: " + all);
  }
  return states;
}

}  // namespace

template <class T>
void save_checkpoint(const Trainer<T>& t, const std::string& path, const Extras& extras) {
  if (t.is_root()) write_checkpoint(t, path, extras);
  // No process goes on (and might read the file) before it is complete.
  if (Replicas<T>* r = t.replicas()) r->barrier();
}

template <class T>
Extras load_checkpoint(Trainer<T>& t, const std::string& path) {
  const data::NpzFile f = data::NpzFile::open(path);
  if (!f.find(kJson)) fail(path, "not an xgrad checkpoint (no " + std::string(kJson) + " entry)");
  json doc;
  try {
    doc = json::parse(f.read_text(kJson));
  } catch (const json::exception& e) {
    fail(path, std::string(kJson) + " is not valid JSON: " + e.what());
  }
  try {
    if (doc.value("format", "") != kFormat) fail(path, "not an xgrad checkpoint");
    const int version = doc.at("version").get<int>();
    if (version < 1 || version > checkpoint_version) {
      fail(path, "checkpoint format version " + std::to_string(version) +
                     ", this build reads versions 1 to " + std::to_string(checkpoint_version));
    }
    if (doc.at("dtype").get<std::string>() != dtype_text<T>()) {
      fail(path, "a " + doc.at("dtype").get<std::string>() + " checkpoint, the trainer is " +
                     dtype_text<T>());
    }
    // Each process's shard of every epoch depends on their number: the run continues
    // exactly only on as many.
    const std::size_t processes = doc.value("processes", std::size_t{1});
    if (processes != t.processes()) {
      fail(path, "checkpoint of a run on " + processes_text(processes) + ", this run has " +
                     processes_text(t.processes()) + ": resume it on " + processes_text(processes) +
                     " (each process's shard of the data depends on their number)");
    }

    // Every difference from the trainer's model, all listed before anything is written.
    std::vector<std::string> problems;
    std::vector<xt::xarray<T>> values;
    const auto& saved = doc.at("state");
    std::map<std::string, std::vector<std::size_t>> in_file;
    for (const auto& s : saved) {
      in_file[s.at("name").get<std::string>()] = s.at("shape").get<std::vector<std::size_t>>();
    }
    for (const auto& s : t.state()) {
      const auto it = in_file.find(s.name);
      const auto want = shape_of(s.node.graph().value(s.node));
      if (it == in_file.end()) {
        problems.push_back("'" + s.name + "' missing");
        continue;
      }
      if (it->second != want) {
        problems.push_back("'" + s.name + "' has shape " + shape_text(it->second) +
                           " in the file, " + shape_text(want) + " in the model");
      }
      in_file.erase(it);
    }
    for (const auto& [name, shape] : in_file) problems.push_back("'" + name + "' unexpected");
    const auto& o = doc.at("optimizer");
    const auto& params = o.at("params");
    if (o.at("name").get<std::string>() != t.optimizer().name()) {
      problems.push_back("optimizer " + o.at("name").get<std::string>() + " in the file, " +
                         t.optimizer().name() + " in the trainer");
    }
    if (params.size() != t.optimizer().size()) {
      problems.push_back(std::to_string(params.size()) + " optimizer parameters in the file, " +
                         std::to_string(t.optimizer().size()) + " in the trainer");
    }
    if (!problems.empty()) {
      std::string all;
      for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
      fail(path, "checkpoint of another model: " + all);
    }

    for (const auto& s : t.state()) values.push_back(f.read<T>("model." + s.name));
    optim::OptimizerState<T> os;
    os.steps = o.at("steps").get<std::size_t>();
    os.epoch = o.at("epoch").get<std::size_t>();
    for (std::size_t i = 0; i < params.size(); ++i) {
      optim::ParamState<T> ps;
      for (const auto& [k, v] : params[i].at("scalars").items()) ps.scalars[k] = number_of(v);
      for (const auto& name : params[i].at("tensors")) {
        const std::string n = name.get<std::string>();
        ps.tensors[n] = f.read<T>("optimizer." + std::to_string(i) + "." + n);
      }
      os.params.push_back(std::move(ps));
    }
    for (const auto& [k, v] : o.at("schedule").items()) os.schedule[k] = number_of(v);
    const auto columns = doc.at("history_columns").get<std::vector<std::string>>();
    const xt::xarray<double> rows = f.read<double>("history");
    if (rows.dimension() != 2 || rows.shape(1) != columns.size()) {
      fail(path, "history of shape " + shape_text(shape_of(rows)) + " for " +
                     std::to_string(columns.size()) + " columns");
    }
    std::vector<std::vector<double>> table(rows.shape(0), std::vector<double>(columns.size()));
    for (std::size_t i = 0; i < rows.shape(0); ++i) {
      for (std::size_t j = 0; j < columns.size(); ++j) table[i][j] = rows(i, j);
    }
    const auto& pos = doc.at("position");
    const auto metric_states = read_metric_states(t, f, pos, path);
    Extras extras;
    for (const auto& [k, v] : doc.at("extras").at("numbers").items()) {
      extras.numbers[k] = number_of(v);
    }
    extras.strings = doc.at("extras").at("strings").get<std::map<std::string, std::string>>();

    // Everything read and checked: now write.
    t.optimizer().load_state(std::move(os));
    for (std::size_t i = 0; i < values.size(); ++i) {
      const auto& s = t.state()[i];
      s.node.graph().value(s.node) = std::move(values[i]);
    }
    t.history() = History(columns, std::move(table));
    t.set_position(pos.at("epoch").get<std::size_t>(), pos.at("batch").get<std::size_t>(),
                   number_of(pos.at("loss_sum")), pos.at("examples").get<std::size_t>(),
                   metric_states);
    return extras;
  } catch (const json::exception& e) {
    fail(path, std::string(kJson) + " lacks or misspells an entry: " + e.what());
  }
}

std::string latest_checkpoint(const std::string& directory) {
  std::error_code ec;
  std::string best;
  long long best_step = -1;
  for (const auto& e : fs::directory_iterator(directory, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) != 0 || e.path().extension() != ".npz") continue;
    try {
      const long long step = std::stoll(name.substr(5));
      if (step > best_step) {
        best_step = step;
        best = e.path().string();
      }
    } catch (const std::exception&) {
    }
  }
  return best;
}

template <class T>
ModelCheckpoint<T>::ModelCheckpoint(CheckpointOptions options)
    : opts_(std::move(options)),
      maximize_(detail::larger_is_better(opts_.monitor, opts_.maximize)),
      best_(std::numeric_limits<double>::quiet_NaN()) {}

template <class T>
void ModelCheckpoint<T>::on_train_begin(Trainer<T>& t) {
  if (!t.is_root()) return;
  std::error_code ec;
  fs::create_directories(opts_.directory, ec);
  if (ec) {
    throw data::DataError(opts_.directory +
                          ": cannot create the checkpoint folder: " + ec.message());
  }
}

template <class T>
void ModelCheckpoint<T>::write(Trainer<T>& t) {
  std::ostringstream name;
  name << "step-" << std::setw(9) << std::setfill('0') << t.optimizer().steps() << ".npz";
  const std::string path = (fs::path(opts_.directory) / name.str()).string();
  save_checkpoint(t, path);
  if (kept_.empty() || kept_.back() != path) kept_.push_back(path);
  while (opts_.keep_last > 0 && kept_.size() > opts_.keep_last) {
    std::error_code ec;
    if (t.is_root()) fs::remove(kept_.front(), ec);
    kept_.erase(kept_.begin());
  }
}

template <class T>
void ModelCheckpoint<T>::on_batch_end(Trainer<T>& t) {
  if (opts_.every_steps > 0 && t.optimizer().steps() % opts_.every_steps == 0 &&
      t.batch() < t.batches_per_epoch()) {
    write(t);
  }
}

template <class T>
void ModelCheckpoint<T>::on_epoch_end(Trainer<T>& t) {
  const bool due = (opts_.every_epochs > 0 && (t.epoch() + 1) % opts_.every_epochs == 0) ||
                   (opts_.every_steps > 0 && t.optimizer().steps() % opts_.every_steps == 0);
  if (due) write(t);
  if (!opts_.keep_best) return;
  const double v = t.logs().get(opts_.monitor);
  if (detail::improves(v, best_, maximize_)) {
    best_ = v;
    save_checkpoint(t, (fs::path(opts_.directory) / "best.npz").string());
  }
}

template void save_checkpoint(const Trainer<float>&, const std::string&, const Extras&);
template void save_checkpoint(const Trainer<double>&, const std::string&, const Extras&);
template Extras load_checkpoint(Trainer<float>&, const std::string&);
template Extras load_checkpoint(Trainer<double>&, const std::string&);
template class ModelCheckpoint<float>;
template class ModelCheckpoint<double>;

}  // namespace xgrad::train
