// .npz archives: NpzWriter and NpzFile round-trip every dtype and rank (stored and
// deflated), text entries, missing/truncated/corrupt archives give DataErrors naming the
// file (and the member), commit() is atomic (the previous file survives, temporaries are
// removed, stale ones cleaned), and NumPy reads what xgrad writes and the other way round.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>
#include <xgrad/data/data.hpp>
#include <xgrad/nn/nn.hpp>

#include "data_test_util.hpp"

#ifndef XGRAD_TEST_SOURCE_DIR
#error "tests/CMakeLists.txt defines XGRAD_TEST_SOURCE_DIR (the numpy scripts live there)"
#endif

namespace {

namespace fs = std::filesystem;
using xgrad::data::DataError;
using xgrad::data::NpzFile;
using xgrad::data::NpzOptions;
using xgrad::data::NpzWriter;
using xgrad::data::Stored;
using xgrad_test::contains;
using xgrad_test::python_with_numpy;
using xgrad_test::read_bytes;
using xgrad_test::TempDir;
using xgrad_test::write_bytes;

std::size_t files_in(const std::string& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

template <class U>
xt::xarray<U> extremes() {
  return {std::numeric_limits<U>::lowest(), U(0), std::numeric_limits<U>::max()};
}

// The arrays numpy_side.py's reference() builds, added to w.
void add_reference(NpzWriter& w) {
  w.add("f4", xt::xarray<float>(xt::reshape_view(xt::arange<float>(24) / 8.f, {2, 3, 4})));
  w.add("f8", xt::xarray<double>{0.1, -2.5, 1e300, 5e-324});
  w.add("i1", extremes<std::int8_t>());
  w.add("u1", xt::xarray<std::uint8_t>{0, 255});
  w.add("i2", xt::xarray<std::int16_t>{-32768, 32767});
  w.add("u2", xt::xarray<std::uint16_t>{0, 65535});
  w.add("i4", xt::xarray<std::int32_t>{std::numeric_limits<std::int32_t>::min(),
                                       std::numeric_limits<std::int32_t>::max()});
  w.add("u4", xt::xarray<std::uint32_t>{0, std::numeric_limits<std::uint32_t>::max()});
  w.add("i8", xt::xarray<std::int64_t>{std::numeric_limits<std::int64_t>::min(),
                                       std::numeric_limits<std::int64_t>::max()});
  w.add("u8", xt::xarray<std::uint64_t>{0, std::numeric_limits<std::uint64_t>::max()});
  w.add("scalar", xt::xarray<double>(3.5));
  w.add("four_d",
        xt::xarray<double>(xt::reshape_view(xt::arange<double>(120) - 60., {2, 3, 4, 5})));
  w.add("empty", xt::xarray<float>::from_shape({0, 3}));
}

// Checks an archive holding the reference arrays (written by NpzWriter or by NumPy).
void check_reference(const NpzFile& z, bool compressed) {
  const std::vector<std::pair<std::string, std::string>> descr = {
      {"f4", "<f4"},     {"f8", "<f8"},     {"i1", "|i1"},   {"u1", "|u1"}, {"i2", "<i2"},
      {"u2", "<u2"},     {"i4", "<i4"},     {"u4", "<u4"},   {"i8", "<i8"}, {"u8", "<u8"},
      {"scalar", "<f8"}, {"four_d", "<f8"}, {"empty", "<f4"}};
  for (const auto& [name, d] : descr) {
    const auto* e = z.find(name);
    ASSERT_NE(e, nullptr) << name;
    EXPECT_TRUE(e->is_array);
    EXPECT_EQ(e->member, name + ".npy");
    EXPECT_EQ(e->format.descr(), d) << name;
    EXPECT_TRUE(e->error.empty()) << e->error;
    if (name != "empty" && name != "scalar") {
      EXPECT_EQ(e->compressed, compressed) << name;
    }
  }
  EXPECT_EQ(z.find("f4")->shape, (std::vector<std::size_t>{2, 3, 4}));
  EXPECT_TRUE(z.find("scalar")->shape.empty());
  EXPECT_EQ(z.find("four_d")->shape, (std::vector<std::size_t>{2, 3, 4, 5}));
  EXPECT_EQ(z.find("empty")->shape, (std::vector<std::size_t>{0, 3}));

  EXPECT_EQ(z.read<float>("f4")(1, 2, 3), 23.f / 8);
  EXPECT_EQ(z.read<double>("f8"), (xt::xarray<double>{0.1, -2.5, 1e300, 5e-324}));
  EXPECT_EQ(z.read<std::int32_t>("i1"), (xt::xarray<std::int32_t>{-128, 0, 127}));
  EXPECT_EQ(z.read<std::int64_t>("u2"), (xt::xarray<std::int64_t>{0, 65535}));
  EXPECT_EQ(z.read<std::int32_t>("i4"), (xt::xarray<std::int32_t>{-2147483647 - 1, 2147483647}));
  EXPECT_EQ(z.read<std::int64_t>("u4"), (xt::xarray<std::int64_t>{0, 4294967295}));
  EXPECT_EQ(z.read<std::int64_t>("i8"),
            (xt::xarray<std::int64_t>{std::numeric_limits<std::int64_t>::min(),
                                      std::numeric_limits<std::int64_t>::max()}));
  EXPECT_EQ(z.read<double>("u8")(1), 18446744073709551615.0);
  const auto s = z.read<float>("scalar");
  EXPECT_EQ(s.dimension(), 0u);
  EXPECT_EQ(s(), 3.5f);
  const auto d4 = z.read<double>("four_d");
  ASSERT_EQ(d4.dimension(), 4u);
  EXPECT_EQ(d4(1, 2, 3, 4), 59.0);
  EXPECT_EQ(d4(0, 0, 0, 0), -60.0);
  EXPECT_EQ(z.read<double>("empty").shape(), (xt::xarray<double>::shape_type{0, 3}));
  // A value that does not fit, and floating-point data for an integer type.
  try {
    z.read<std::int64_t>("u8");
    ADD_FAILURE() << "2^64 - 1 read as int64";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), z.path() + ": u8.npy: byte ")) << e.what();
  }
  try {
    z.read<std::int32_t>("f8");
    ADD_FAILURE() << "float data read as int32";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "f8.npy: dtype <f8 holds floating-point values")) << e.what();
  }
}

TEST(NpzRoundTrip, EveryDtypeAndRankStoredAndDeflated) {
  TempDir dir;
  for (bool compress : {false, true}) {
    const std::string p = dir.file(compress ? "z.npz" : "s.npz");
    NpzWriter w(p, NpzOptions{compress, compress ? 9 : 0});
    add_reference(w);
    w.add_text("meta.json", "{\"epoch\": 3}");
    w.add_text("empty.txt", "");
    w.commit();
    const NpzFile z = NpzFile::open(p);
    SCOPED_TRACE(p);
    EXPECT_EQ(z.entries().size(), 15u);
    EXPECT_EQ(z.entries().front().name, "f4");  // archive order is the order added
    check_reference(z, compress);
    const auto* t = z.find("meta.json");
    ASSERT_NE(t, nullptr);
    EXPECT_FALSE(t->is_array);
    EXPECT_EQ(z.read_text("meta.json"), "{\"epoch\": 3}");
    EXPECT_EQ(z.read_text("empty.txt"), "");
    // An ArrayFile over the member gives row reads.
    const auto f = z.array("four_d");
    EXPECT_EQ(f.rows(), 2u);
    EXPECT_EQ(f.row_elements(), 60u);
    EXPECT_TRUE(f.in_memory());
  }
  // Deflate shrinks these (mostly zero bytes), and equal contents give equal files.
  EXPECT_LT(fs::file_size(dir.file("z.npz")), fs::file_size(dir.file("s.npz")));
  NpzWriter again(dir.file("s2.npz"));
  add_reference(again);
  again.add_text("meta.json", "{\"epoch\": 3}");
  again.add_text("empty.txt", "");
  again.commit();
  EXPECT_EQ(read_bytes(dir.file("s2.npz")), read_bytes(dir.file("s.npz")));
}

TEST(NpzRoundTrip, EmptyArchiveAndEntryErrors) {
  TempDir dir;
  const std::string p = dir.file("e.npz");
  NpzWriter(p).commit();
  EXPECT_TRUE(NpzFile::open(p).entries().empty());

  NpzWriter w(dir.file("names.npz"));
  w.add("a", xt::xarray<double>{1});
  const auto refused = [&](auto&& add, const std::string& expect) {
    try {
      add();
      ADD_FAILURE() << "accepted; expected " << expect;
    } catch (const DataError& e) {
      EXPECT_TRUE(contains(e.what(), dir.file("names.npz") + ": ")) << e.what();
      EXPECT_TRUE(contains(e.what(), expect)) << e.what();
    }
  };
  refused([&] { w.add("a", xt::xarray<double>{2}); }, "array 'a' added twice");
  refused([&] { w.add("", xt::xarray<double>{2}); }, "empty array name");
  refused([&] { w.add("/abs", xt::xarray<double>{2}); }, "a leading '/'");
  refused([&] { w.add("x/../y", xt::xarray<double>{2}); }, "a '..' component");
  refused([&] { w.add_text("b.npy", "x"); }, "ends in '.npy'");
  refused([&] { w.add_text("a.npy", "x"); }, "ends in '.npy'");
  refused([&] { w.add_bytes("c", Stored::float64, {3}, "12345678", 8); },
          "array 'c': 8 data bytes: expected 24");
  try {
    NpzWriter(dir.file("l.npz"), NpzOptions{true, 12});
    ADD_FAILURE() << "level 12 accepted";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "l.npz: compression level 12: expected 0")) << e.what();
  }
  w.add_text("notes/a.txt", "nested");
  w.commit();
  refused([&] { w.add("late", xt::xarray<double>{2}); }, "after commit()");
  EXPECT_EQ(w.names(), (std::vector<std::string>{"a", "notes/a.txt"}));

  const NpzFile z = NpzFile::open(dir.file("names.npz"));
  try {
    z.read<double>("b");
    FAIL() << "missing entry read";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(),
                         "names.npz: no entry 'b': expected one of the 2 entries ('a', "
                         "'notes/a.txt')"))
        << e.what();
  }
  try {
    z.read<double>("notes/a.txt");
    FAIL() << "text read as an array";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "entry 'notes/a.txt' is a text entry")) << e.what();
  }
  EXPECT_EQ(z.read_text("notes/a.txt"), "nested");
  EXPECT_THROW(z.read_text("zzz"), DataError);
}

TEST(NpzErrors, MissingEmptyTruncatedAndCorruptArchives) {
  TempDir dir;
  const auto open_fails = [](const std::string& p, const std::string& expect) {
    try {
      NpzFile::open(p);
      ADD_FAILURE() << p << " opened; expected " << expect;
    } catch (const DataError& e) {
      EXPECT_TRUE(contains(e.what(), p + ": ")) << e.what();
      EXPECT_TRUE(contains(e.what(), expect)) << e.what();
    }
  };
  open_fails(dir.file("none.npz"), "cannot open for reading");
  open_fails(dir.path(), "is a directory");
  open_fails(dir.write("empty.npz", ""), "empty file");
  open_fails(dir.write("text.npz", "not a zip archive at all, just text"),
             "not a readable .npz archive");

  for (bool compress : {false, true}) {
    const std::string p = dir.file("good.npz");
    {
      NpzWriter w(p, NpzOptions{compress, 0});
      w.add("w", xt::xarray<double>(xt::reshape_view(xt::arange<double>(64), {8, 8})));
      w.add("b", xt::xarray<float>{1, 2, 3});
      w.commit();
    }
    const std::string good = read_bytes(p);
    // Every truncation: the archive does not open, or an entry is refused, never a crash.
    for (std::size_t n = 1; n < good.size(); ++n) {
      const std::string t = dir.write("cut.npz", good.substr(0, n));
      try {
        const NpzFile z = NpzFile::open(t);
        for (const auto& e : z.entries()) z.read<double>(e.name);
        ADD_FAILURE() << "truncated to " << n << " of " << good.size() << " bytes: read";
      } catch (const DataError& e) {
        EXPECT_TRUE(contains(e.what(), t + ": ")) << e.what();
      }
    }
    // A flipped byte in w's data: the CRC check names the member when it is read.
    std::string bad = good;
    const std::size_t at = good.find("\x93NUMPY") + 128 + 100;
    if (!compress) {
      bad[at] ^= 0x5a;
      const NpzFile z = NpzFile::open(dir.write("crc.npz", bad));
      EXPECT_EQ(z.read<float>("b"), (xt::xarray<float>{1, 2, 3}));
      try {
        z.read<double>("w");
        ADD_FAILURE() << "corrupt data read";
      } catch (const DataError& e) {
        EXPECT_TRUE(contains(e.what(), dir.file("crc.npz") + ": w.npy: ")) << e.what();
        EXPECT_TRUE(contains(e.what(), "CRC")) << e.what();
      }
    }
    // Random bytes over the whole archive: only DataErrors.
    std::uint64_t state = 12345;
    for (int trial = 0; trial < 200; ++trial) {
      bad = good;
      for (int k = 0; k < 4; ++k) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        bad[(state >> 33) % bad.size()] = static_cast<char>(state >> 56);
      }
      const std::string q = dir.write("fuzz.npz", bad);
      try {
        const NpzFile z = NpzFile::open(q);
        for (const auto& e : z.entries()) {
          if (e.is_array) z.read<double>(e.name);
        }
      } catch (const DataError&) {
      }
    }
  }
}

// A .npz member that is not a readable .npy: listed, with the reason, and refused by name.
TEST(NpzErrors, UnreadableArrayMembersAreListedWithTheirError) {
  TempDir dir;
  const std::string p = dir.file("odd.npz");
  NpzWriter w(p);
  w.add_bytes("raw", Stored::uint8, {4}, "abcd", 4);
  w.commit();
  // Turn the member's dtype into '|b1' (bool), which xgrad does not read, in place.
  std::string b = read_bytes(p);
  const std::size_t d = b.find("'|u1'");
  ASSERT_NE(d, std::string::npos);
  b.replace(d, 5, "'|b1'");
  write_bytes(p, b);
  // The CRC no longer matches, so the header parse or the read reports it: either way the
  // archive opens, lists the entry and refuses to read it, naming the member.
  const NpzFile z = NpzFile::open(p);
  ASSERT_EQ(z.entries().size(), 1u);
  EXPECT_TRUE(z.entries()[0].is_array);
  EXPECT_FALSE(z.entries()[0].error.empty());
  EXPECT_TRUE(contains(z.entries()[0].error, p + ": raw.npy: ")) << z.entries()[0].error;
  EXPECT_THROW(z.read<double>("raw"), DataError);
}

TEST(NpzWriter, CommitIsAtomicAndTemporariesAreCleanedUp) {
  TempDir dir;
  const std::string p = dir.file("model.npz");
  {
    NpzWriter w(p);
    w.add("v", xt::xarray<double>{1, 2, 3});
    w.commit();
  }
  const std::string before = read_bytes(p);
  {
    NpzWriter w(p);
    w.add("v", xt::xarray<double>{4, 5, 6});
    EXPECT_EQ(files_in(dir.path()), 2u);  // the temporary sits beside the target
    EXPECT_EQ(read_bytes(p), before);
  }  // destroyed before commit(): the temporary is gone, the target unchanged
  EXPECT_EQ(files_in(dir.path()), 1u);
  EXPECT_EQ(read_bytes(p), before);

  // The rename fails (the target is a non-empty directory): the error names it, and the
  // temporary is removed with the writer.
  const std::string d = dir.file("taken.npz");
  fs::create_directories(d + "/inside");
  {
    NpzWriter w(d);
    w.add("v", xt::xarray<double>{1});
    try {
      w.commit();
      ADD_FAILURE() << "renamed over a directory";
    } catch (const DataError& e) {
      EXPECT_TRUE(contains(e.what(), d + ": cannot rename ")) << e.what();
    }
  }
  EXPECT_EQ(files_in(dir.path()), 2u);

  // A directory that cannot be written: nothing is created, the old file stays.
  const std::string ro = dir.file("ro");
  fs::create_directories(ro);
  {
    NpzWriter w(ro + "/m.npz");
    w.add("v", xt::xarray<double>{1});
    w.commit();
  }
  const std::string ro_before = read_bytes(ro + "/m.npz");
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
  if (::geteuid() != 0) {  // root writes anyway
    try {
      NpzWriter w(ro + "/m.npz");
      ADD_FAILURE() << "writer created in a read-only directory";
    } catch (const DataError& e) {
      EXPECT_TRUE(contains(e.what(), ro + "/m.npz: cannot create the temporary file")) << e.what();
    }
    EXPECT_EQ(read_bytes(ro + "/m.npz"), ro_before);
  }
  fs::permissions(ro, fs::perms::owner_all);
  EXPECT_THROW(NpzWriter(dir.file("no/such/dir.npz")), DataError);

  // Temporaries of this target left by a process that no longer runs are removed by the
  // next writer; those of running processes, and of other targets, stay.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);
  const std::string stale = p + ".tmp." + std::to_string(child) + ".0";
  const std::string live = p + ".tmp.1.0";  // init always runs
  const std::string other = dir.file("other.npz.tmp." + std::to_string(child) + ".0");
  for (const auto& f : {stale, live, other}) write_bytes(f, "partial");
  {
    NpzWriter w(p);
    w.add("v", xt::xarray<double>{7});
    w.commit();
  }
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(other));
  EXPECT_EQ(NpzFile::open(p).read<double>("v"), (xt::xarray<double>{7}));
}

// NumPy writes (numpy.savez, numpy.savez_compressed: zip64 members, stored and deflated)
// and xgrad reads; xgrad writes (NpzWriter, nn::save) and NumPy reads and checks names,
// dtypes, shapes and values. The ctest entry npz_numpy runs these with python required.
class NpzNumPy : public ::testing::Test {
 protected:
  void SetUp() override {
    py_ = python_with_numpy();
    if (py_.empty()) {
      if (std::getenv("XGRAD_REQUIRE_NUMPY")) FAIL() << "python3 with numpy not found";
      GTEST_SKIP() << "python3 with numpy not found (apt-get install python3-numpy)";
    }
  }
  int run(const std::string& mode) const {
    const std::string cmd =
        py_ + " " XGRAD_TEST_SOURCE_DIR "/npz/numpy_side.py " + mode + " '" + dir_.path() + "'";
    return std::system(cmd.c_str());
  }
  std::string py_;
  TempDir dir_;
};

TEST_F(NpzNumPy, XgradReadsSavezAndSavezCompressed) {
  ASSERT_EQ(run("write"), 0) << "numpy side failed";
  for (auto [file, compressed] : {std::pair{"plain.npz", false}, std::pair{"packed.npz", true}}) {
    SCOPED_TRACE(file);
    const NpzFile z = NpzFile::open(dir_.file(file));
    check_reference(z, compressed);
    if (!compressed) {
      EXPECT_EQ(z.find("be")->format.descr(), ">f8");
      EXPECT_EQ(z.read<double>("be"), (xt::xarray<double>{1.25, -3.5}));
    }
  }
}

TEST_F(NpzNumPy, NumPyReadsWhatXgradWrites) {
  for (bool compress : {false, true}) {
    NpzWriter w(dir_.file(compress ? "dtypes_z.npz" : "dtypes.npz"), NpzOptions{compress, 0});
    add_reference(w);
    w.commit();
  }
  xgrad::Graph<float> g;
  xgrad::nn::Sequential<float> model(g);
  model.add<xgrad::nn::Linear>(5, 4, xgrad::nn::LinearOptions{true, 1});
  model.add<xgrad::nn::ReLU>();
  model.add<xgrad::nn::BatchNorm1d>(4);
  model.add<xgrad::nn::Linear>(4, 3, xgrad::nn::LinearOptions{true, 2});
  xgrad::nn::save(model, dir_.file("model.npz"));
  xgrad::nn::save(model, dir_.file("model_z.npz"), {true, ""});
  fs::create_directories(dir_.file("expected"));
  std::string keys = "[";
  for (const auto& s : model.state()) {
    xgrad::data::save_npy(dir_.file("expected/" + s.name + ".npy"), g.value(s.node));
    keys += (keys.size() > 1 ? ", \"" : "\"") + s.name + "\"";
  }
  write_bytes(dir_.file("expected/keys.json"), keys + "]");
  EXPECT_TRUE(contains(keys, "\"2.running_mean\", \"2.running_var\", \"2.num_batches_tracked\""))
      << keys;
  {
    NpzWriter w(dir_.file("with_text.npz"));
    xgrad::nn::write_state(w, model, "model.");
    w.add_text("meta.json", "{\"epoch\": 3, \"name\": \"mlp\"}");
    w.commit();
  }
  EXPECT_EQ(run("check"), 0) << "numpy side failed";
}

TEST_F(NpzNumPy, ModelStateFromNumPyLoadsStrictlyOrReportsEveryMismatch) {
  ASSERT_EQ(run("write"), 0) << "numpy side failed";
  xgrad::Graph<double> g;
  xgrad::nn::Sequential<double> model(g);
  auto& fc1 = model.add<xgrad::nn::Linear>(3, 4);
  model.add<xgrad::nn::ReLU>();
  auto& fc2 = model.add<xgrad::nn::Linear>(4, 2);
  const auto report = xgrad::nn::load(model, dir_.file("state.npz"));
  EXPECT_TRUE(report.complete()) << report.to_string();
  EXPECT_EQ(report.loaded.size(), 4u);
  EXPECT_EQ(g.value(fc1.weight())(3, 2), 1.1);
  EXPECT_EQ(g.value(fc2.bias()), (xt::xarray<double>{7, 8}));

  const std::string bad = dir_.file("bad_state.npz");
  try {
    xgrad::nn::load(model, bad);
    FAIL() << "mismatched state loaded";
  } catch (const DataError& e) {
    const std::string m = e.what();
    EXPECT_TRUE(contains(m, bad + ": the file does not match the model")) << m;
    EXPECT_TRUE(contains(m, "1 missing: '2.bias'")) << m;
    EXPECT_TRUE(contains(m, "1 unexpected: '3.weight'")) << m;
    EXPECT_TRUE(contains(m, "'0.bias' (" + bad + ": 0.bias.npy: ")) << m;
    EXPECT_TRUE(contains(m, "unsupported dtype '|b1'")) << m;
    EXPECT_TRUE(contains(m, "'2.weight' (shape (4, 2) in the file, (2, 4) in the model)")) << m;
  }
  EXPECT_EQ(g.value(fc1.weight())(3, 2), 1.1);  // nothing loaded
  const auto r = xgrad::nn::load(model, bad, {false, ""});
  EXPECT_EQ(r.loaded, (std::vector<std::string>{"0.weight"}));
  EXPECT_EQ(r.missing, (std::vector<std::string>{"2.bias"}));
  EXPECT_EQ(r.unexpected, (std::vector<std::string>{"3.weight"}));
  ASSERT_EQ(r.mismatched.size(), 2u);
  EXPECT_EQ(r.mismatched[0].name, "0.bias");
  EXPECT_EQ(r.mismatched[1].name, "2.weight");
}

}  // namespace
