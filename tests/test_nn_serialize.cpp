// Model files: nn::save / nn::load round-trip every parameter and buffer under PyTorch's
// state_dict keys, write into the existing values (a compiled Function sees them), list
// every mismatch in one strict error or a non-strict report, and keep the previous file
// when a save fails.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <filesystem>
#include <string>
#include <vector>
#include <xgrad/data/data.hpp>
#include <xgrad/nn/nn.hpp>
#include <xgrad/xgrad.hpp>

#include "data_test_util.hpp"

namespace {

namespace fs = std::filesystem;
namespace nn = xgrad::nn;
using xgrad::Graph;
using xgrad::data::DataError;
using xgrad::data::NpzFile;
using xgrad_test::contains;
using xgrad_test::read_bytes;
using xgrad_test::TempDir;

// Linear(784, 256) - ReLU - BatchNorm1d(256) - Linear(256, 10), seeded.
template <class T>
struct Mlp {
  Graph<T> g;
  nn::Sequential<T> model{g};
  nn::Linear<T>& fc1;
  nn::BatchNorm1d<T>& bn;
  nn::Linear<T>& fc2;
  explicit Mlp(std::uint64_t seed, std::size_t in = 784, std::size_t hidden = 256)
      : fc1(model.template add<nn::Linear>(in, hidden, nn::LinearOptions{true, seed})),
        bn((model.template add<nn::ReLU>(), model.template add<nn::BatchNorm1d>(hidden))),
        fc2(model.template add<nn::Linear>(hidden, 10, nn::LinearOptions{true, seed + 1})) {}
};

template <class T>
void expect_same_state(const nn::Module<T>& a, const nn::Module<T>& b) {
  const auto sa = a.state(), sb = b.state();
  ASSERT_EQ(sa.size(), sb.size());
  for (std::size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].name, sb[i].name);
    EXPECT_EQ(a.graph().value(sa[i].node), b.graph().value(sb[i].node)) << sa[i].name;
  }
}

TEST(NnSerialize, SaveLoadRoundTripsEveryParameterAndBuffer) {
  TempDir dir;
  const std::string p = dir.file("mlp.npz");
  Mlp<float> a(1);
  a.g.value(a.bn.running_mean())(3) = 0.25f;  // buffers are saved too
  a.g.value(a.bn.num_batches_tracked())() = 42;
  nn::save(a.model, p);

  const NpzFile z = NpzFile::open(p);
  std::vector<std::string> names;
  for (const auto& e : z.entries()) {
    names.push_back(e.name);
    EXPECT_EQ(e.member, e.name + ".npy");
    EXPECT_EQ(e.format.descr(), "<f4");
    EXPECT_FALSE(e.compressed);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias", "3.weight",
                                             "3.bias", "2.running_mean", "2.running_var",
                                             "2.num_batches_tracked"}));
  EXPECT_EQ(z.find("0.weight")->shape, (std::vector<std::size_t>{256, 784}));
  EXPECT_TRUE(z.find("2.num_batches_tracked")->shape.empty());  // 0-d

  for (bool compress : {false, true}) {
    nn::save(a.model, p, {compress, ""});
    Mlp<float> b(7);
    EXPECT_NE(b.g.value(b.fc1.weight()), a.g.value(a.fc1.weight()));
    const auto r = nn::load(b.model, p);
    EXPECT_TRUE(r.complete()) << r.to_string();
    EXPECT_EQ(r.loaded.size(), 9u);
    EXPECT_EQ(r.to_string(), "");
    expect_same_state(a.model, b.model);
  }
  // A float file loads into a double model (values convert), and back.
  Mlp<double> d(3);
  nn::load(d.model, p);
  EXPECT_EQ(d.g.value(d.fc2.bias())(4), double(a.g.value(a.fc2.bias())(4)));
  EXPECT_EQ(d.g.value(d.bn.num_batches_tracked())(), 42.0);
  nn::save(d.model, dir.file("d.npz"));
  EXPECT_EQ(NpzFile::open(dir.file("d.npz")).find("0.weight")->format.descr(), "<f8");
  Mlp<float> back(9);
  nn::load(back.model, dir.file("d.npz"));
  expect_same_state(a.model, back.model);
}

TEST(NnSerialize, LoadWritesInPlaceSoACompiledFunctionSeesTheNewValues) {
  TempDir dir;
  Mlp<double> a(1, 6, 5), b(2, 6, 5);
  a.model.eval();
  b.model.eval();
  auto xa = a.g.input("x", {xgrad::open, 6});
  auto xb = b.g.input("x", {xgrad::open, 6});
  auto fa = xgrad::compile({a.model(xa)});
  auto fb = xgrad::compile({b.model(xb)});
  const xt::xarray<double> x = {{1, -2, 3, 0.5, 0, 1}, {0, 1, -1, 2, 2, -3}};
  const xt::xarray<double> want = fa.run({{xa, x}})[0];
  const xt::xarray<double> before = fb.run({{xb, x}})[0];
  EXPECT_FALSE(xt::allclose(before, want));
  const double* data = b.g.value(b.fc1.weight()).data();
  nn::save(a.model, dir.file("a.npz"));
  nn::load(b.model, dir.file("a.npz"));
  EXPECT_EQ(b.g.value(b.fc1.weight()).data(), data);  // the same buffer, overwritten
  EXPECT_EQ(fb.run({{xb, x}})[0], want);
}

TEST(NnSerialize, StrictLoadListsEveryProblemAndLoadsNothing) {
  TempDir dir;
  const std::string p = dir.file("small.npz");
  Mlp<float> small(1, 6, 5);
  nn::save(small.model, p);
  // A Linear where the file has a BatchNorm (a mismatched weight, a matching bias, its
  // buffers unexpected), a wider layer (mismatched) and one layer more (missing).
  Graph<float> g;
  nn::Sequential<float> other(g);
  other.add<nn::Linear>(6, 5, nn::LinearOptions{true, 4});
  other.add<nn::ReLU>();
  other.add<nn::Linear>(5, 5, nn::LinearOptions{true, 5});
  other.add<nn::Linear>(5, 11, nn::LinearOptions{true, 6});
  other.add<nn::Linear>(11, 3, nn::LinearOptions{true, 7});
  std::vector<xt::xarray<float>> before;
  for (const auto& s : other.state()) before.push_back(g.value(s.node));
  try {
    nn::load(other, p);
    FAIL() << "mismatched model loaded";
  } catch (const DataError& e) {
    const std::string m = e.what();
    EXPECT_TRUE(contains(m, p + ": the file does not match the model (strict load, nothing "
                                "loaded): "))
        << m;
    EXPECT_TRUE(contains(m,
                         "2 missing: '4.weight', '4.bias'; 3 unexpected: '2.running_mean', "
                         "'2.running_var', '2.num_batches_tracked'; 3 mismatched: '2.weight' "
                         "(shape (5,) in the file, (5, 5) in the model), '3.weight' (shape "
                         "(10, 5) in the file, (11, 5) in the model), '3.bias' (shape (10,) "
                         "in the file, (11,) in the model)"))
        << m;
  }
  const auto state = other.state();
  for (std::size_t i = 0; i < state.size(); ++i) EXPECT_EQ(g.value(state[i].node), before[i]);

  // Non-strict: what matches is loaded, the rest reported.
  const auto r = nn::load(other, p, {false, ""});
  EXPECT_EQ(r.loaded, (std::vector<std::string>{"0.weight", "0.bias", "2.bias"}));
  EXPECT_EQ(r.missing, (std::vector<std::string>{"4.weight", "4.bias"}));
  EXPECT_EQ(r.unexpected,
            (std::vector<std::string>{"2.running_mean", "2.running_var", "2.num_batches_tracked"}));
  ASSERT_EQ(r.mismatched.size(), 3u);
  EXPECT_EQ(r.mismatched[0].name, "2.weight");
  EXPECT_FALSE(r.complete());
  EXPECT_EQ(g.value(state[0].node), small.g.value(small.fc1.weight()));
  EXPECT_EQ(g.value(state[2].node), before[2]);
}

// A checkpoint-like archive: the model's state under a prefix beside other entries.
TEST(NnSerialize, WriteStateAndReadStateShareAnArchiveUnderAPrefix) {
  TempDir dir;
  const std::string p = dir.file("ckpt.npz");
  Mlp<float> a(1, 4, 3), b(2, 4, 3);
  {
    xgrad::data::NpzWriter w(p);
    nn::write_state(w, a.model, "model.");
    w.add("optimizer.step", xt::xarray<std::int64_t>(17));
    w.add_text("meta.json", "{}");
    w.commit();
  }
  const NpzFile z = NpzFile::open(p);
  ASSERT_NE(z.find("model.0.weight"), nullptr);
  const auto r = nn::read_state(z, b.model, {true, "model."});
  EXPECT_TRUE(r.complete()) << r.to_string();
  expect_same_state(a.model, b.model);
  EXPECT_EQ(z.read<std::int64_t>("optimizer.step")(), 17);
  // Without the prefix nothing matches.
  const auto none = nn::read_state(z, b.model, {false, ""});
  EXPECT_TRUE(none.loaded.empty());
  EXPECT_EQ(none.missing.size(), 9u);
  EXPECT_EQ(none.unexpected.size(), 10u);
}

TEST(NnSerialize, AFailedSaveKeepsThePreviousFile) {
  TempDir dir;
  const std::string p = dir.file("mlp.npz");
  Mlp<float> a(1), b(2);
  nn::save(a.model, p);
  const std::string good = read_bytes(p);
  // The disk "fills" in the middle of the archive: writes beyond 64 KiB fail (EFBIG).
  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto* previous = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 64 << 10;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  try {
    nn::save(b.model, p);
    ADD_FAILURE() << "save beyond the file size limit succeeded";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), p + ": ")) << e.what();
    EXPECT_TRUE(contains(e.what(), "File too large")) << e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, previous);
  EXPECT_EQ(read_bytes(p), good);
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++n;
  EXPECT_EQ(n, 1u);  // the temporary is gone
  Mlp<float> c(3);
  nn::load(c.model, p);
  expect_same_state(a.model, c.model);
  EXPECT_THROW(nn::save(a.model, dir.file("missing/dir/m.npz")), DataError);
}

}  // namespace
