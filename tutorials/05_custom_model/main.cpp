// Tutorial 5: a custom model, a multi-layer perceptron classifying Fashion-MNIST (Debian's
// dataset-fashion-mnist). A Sequential of Linear and ReLU layers (xgrad::nn) is trained by
// a Trainer (xgrad::train) with a progress bar, a CSV history and plots, early stopping and
// checkpoints; saved to one .npz file and loaded into a fresh model; and a run stopped and
// resumed from a checkpoint ends bit for bit where an uninterrupted run ends.
// README.md walks through this file step by step.
//
// Usage: 05_custom_model [--epochs N (default 12)] [--data DIR (of the IDX files)]
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <xgrad/xgrad.hpp>

#include "cli.hpp"

namespace data = xgrad::data;
namespace nn = xgrad::nn;
namespace optim = xgrad::optim;
namespace train = xgrad::train;
using Loader = data::DataLoader<float, std::int64_t>;

// [model]
// logits = W3 relu(W2 relu(W1 x + b1) + b2) + b3 for a batch of rows x, and its loss.
struct Classifier {
  xgrad::Graph<float> g;
  xgrad::Expr<float> x = g.input("x", {xgrad::open, 784});
  xgrad::Expr<float> labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  nn::Sequential<float> model{g};
  train::Task<float> task;

  explicit Classifier(std::uint64_t seed) {
    model.add<nn::Linear>(784, 256, nn::LinearOptions{.seed = seed});
    model.add<nn::ReLU>();
    model.add<nn::Linear>(256, 128, nn::LinearOptions{.seed = seed + 1});
    model.add<nn::ReLU>();
    model.add<nn::Linear>(128, 10, nn::LinearOptions{.seed = seed + 2});
    task = train::supervised<float>(model, x, labels, [](auto logits, auto y) {
      return xgrad::cross_entropy(logits, y);  // mean of -log softmax(logits)[label]
    });
  }
};
// [end]

int main(int argc, char** argv) {
  std::size_t epochs = 12;
  std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!cli::parse(argc, argv,
                  {{"--epochs", "N", [&](const char* v) { epochs = std::max(1, std::atoi(v)); }},
                   {"--data", "DIR", [&](const char* v) { dir = v; }}})) {
    return 2;
  }
  bool ok = true;
  const auto check = cli::checker(ok);

  // [data]
  const std::string train_images = dir + "/train-images-idx3-ubyte.gz";
  if (!std::filesystem::exists(train_images)) {
    std::cout << "SKIPPED: Fashion-MNIST not found in " << dir
              << " (install it with: sudo apt-get install dataset-fashion-mnist)\n";
    return 0;
  }
  const auto pixels = data::IdxOptions().scale(1.0 / 255).flatten(true);  // (n, 784) in [0, 1]
  data::IdxDataset<float, std::int64_t> all_train(train_images, dir + "/train-labels-idx1-ubyte.gz",
                                                  pixels);
  data::IdxDataset<float, std::int64_t> test(dir + "/t10k-images-idx3-ubyte.gz",
                                             dir + "/t10k-labels-idx1-ubyte.gz", pixels);
  // 5000 training images are held out to watch for overfitting and to choose the best
  // epoch; the test set is only used once, at the end.
  auto [train_set, validation] = data::split(all_train, 5000.0 / all_train.size(), /*seed=*/1);
  Loader loader(train_set, {.batch_size = 128, .seed = 7});
  Loader val_loader(validation, {.batch_size = 1000, .shuffle = false});
  Loader test_loader(test, {.batch_size = 1000, .shuffle = false});
  // [end]

  // [fit]
  Classifier net(/*seed=*/42);
  optim::Adam<float> adam(net.model.parameters(),
                          optim::cosine(1e-3, epochs * loader.num_batches(), 1e-5));
  train::Trainer<float> trainer(net.task, adam, {.metrics = {train::accuracy<float>()}});
  trainer.add(std::make_shared<train::ProgressBar<float>>())
      .add(std::make_shared<train::CsvLogger<float>>("history.csv"))
      .add(std::make_shared<train::HistoryPlot<float>>("history"))
      .add(std::make_shared<train::EarlyStopping<float>>(
          train::EarlyStoppingOptions{.monitor = "val_accuracy", .patience = 3}))
      .add(std::make_shared<train::ModelCheckpoint<float>>(
          train::CheckpointOptions{.directory = "checkpoints", .keep_last = 1, .keep_best = true}));
  const auto& history = trainer.fit(loader, {.epochs = epochs, .validation = &val_loader});
  // [end]

  // [test]
  const auto scores = train::evaluate(net.task, test_loader, {train::accuracy<float>()});
  std::cout << "test accuracy: " << std::fixed << std::setprecision(4) << scores.get("accuracy")
            << " (loss " << scores.get("loss") << ")\n"
            << std::defaultfloat;
  // [end]

  // [save]
  nn::save(net.model, "model.npz");     // numpy.load("model.npz")["0.weight"] in Python
  Classifier loaded(/*seed=*/0);        // other random weights...
  nn::load(loaded.model, "model.npz");  // ...replaced by the saved ones
  const auto reloaded = train::evaluate(loaded.task, test_loader, {train::accuracy<float>()});
  std::cout << "loaded model: test accuracy " << std::fixed << std::setprecision(4)
            << reloaded.get("accuracy") << "\n"
            << std::defaultfloat;
  // [end]

  // [loop]
  auto [small, rest] = data::split(train_set, 1.0 - 5000.0 / train_set.size(), /*seed=*/2);
  Loader small_loader(small, {.batch_size = 128, .seed = 7});
  Classifier by_hand(/*seed=*/1);
  optim::Adam<float> adam_by_hand(by_hand.model.parameters(), 1e-3);
  std::vector<xgrad::Expr<float>> outputs{by_hand.task.loss};  // loss, then the gradients
  for (auto d : xgrad::grad(by_hand.task.loss, by_hand.model.parameters())) outputs.push_back(d);
  auto step = xgrad::compile(outputs);
  for (std::size_t epoch = 0; epoch < 2; ++epoch) {
    adam_by_hand.set_epoch(epoch);
    for (const auto& batch : small_loader.epoch(epoch)) {
      adam_by_hand.step(step.run(batch.feeds(by_hand.x, by_hand.labels)), 1);
    }
  }
  // [end]

  // [resume]
  {  // A run that stops after its first epoch, leaving a checkpoint behind...
    Classifier first(/*seed=*/1);
    optim::Adam<float> adam_first(first.model.parameters(), 1e-3);
    train::Trainer<float> stopped(first.task, adam_first);
    stopped.add(std::make_shared<train::ModelCheckpoint<float>>(
        train::CheckpointOptions{.directory = "resume"}));
    stopped.fit(small_loader, {.epochs = 1});
  }
  Classifier second(/*seed=*/5);  // ...and a new process that continues it.
  optim::Adam<float> adam_second(second.model.parameters(), 1e-3);
  train::Trainer<float> resumed(second.task, adam_second);
  train::load_checkpoint(resumed, train::latest_checkpoint("resume"));
  resumed.fit(small_loader, {.epochs = 2});
  bool equal = true;
  for (std::size_t i = 0; i < outputs.size() - 1; ++i) {
    const auto& a = by_hand.g.value(by_hand.model.parameters()[i]);
    const auto& b = second.g.value(second.model.parameters()[i]);
    equal = equal && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  }
  std::cout << "resumed run equals the uninterrupted loop bit for bit: " << std::boolalpha << equal
            << "\n";
  // [end]

  // [checks]
  check(epochs < 12 || scores.get("accuracy") >= 0.88, "test accuracy >= 0.88");
  check(reloaded.get("accuracy") == scores.get("accuracy"), "the loaded model predicts the same");
  check(history.last("loss") < history.column("loss").front(), "training lowered the loss");
  check(equal, "the resumed run equals the uninterrupted one");
  std::cout << (ok ? "all checks passed" : "SOME CHECKS FAILED") << "\n";
  return ok ? 0 : 1;
  // [end]
}
