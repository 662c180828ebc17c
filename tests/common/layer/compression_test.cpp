#include "common/layer/compression.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <fstream>
#include <random>
#include <string>

#include "common/digest/digest.h"
#include "tests/common/layer/layer_test_util.h"
#include "tests/support/temp_dir.h"

namespace lf::layer {
namespace {

using testing::runCommand;
using testing::shellQuote;

// Half text-like (compressible), half random bytes.
std::string mixedData(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out;
  out.reserve(size);
  const std::string words[] = {"layer ", "farm ", "tar ", "gzip ", "digest ", "\n"};
  while (out.size() < size) {
    if ((out.size() / 50000) % 2 == 0) {
      out += words[rng() % 6];
    } else {
      out.push_back(static_cast<char>(rng()));
    }
  }
  out.resize(size);
  return out;
}

Result<std::string> compress(Compression c, const std::string& data, int threads,
                             size_t chunk = 7777) {
  std::string out;
  CompressorOptions opts;
  opts.threads = threads;
  LF_ASSIGN_OR_RETURN(auto comp, makeCompressor(c, opts, [&](const void* d, size_t n) {
                        out.append(static_cast<const char*>(d), n);
                        return Status::ok();
                      }));
  for (size_t pos = 0; pos < data.size(); pos += chunk) {
    LF_RETURN_IF_ERROR(comp->write(data.data() + pos, std::min(chunk, data.size() - pos)));
  }
  LF_RETURN_IF_ERROR(comp->finish());
  return out;
}

Result<std::string> decompress(const std::string& blob, Compression* detected = nullptr,
                               size_t out_size = 65536) {
  size_t pos = 0;
  auto dec = makeDecompressor([&](void* d, size_t n) -> Result<size_t> {
    size_t take = std::min(n, std::min<size_t>(blob.size() - pos, 1000));
    std::memcpy(d, blob.data() + pos, take);
    pos += take;
    return take;
  });
  std::string out(out_size, '\0');
  std::string result;
  while (true) {
    LF_ASSIGN_OR_RETURN(size_t n, dec->read(out.data(), out.size()));
    if (n == 0) {
      break;
    }
    result.append(out.data(), n);
  }
  if (detected != nullptr) {
    *detected = dec->detected();
  }
  return result;
}

// Independent check with zlib's own gzip reader (inflate with gzip wrapper, one member).
std::string zlibGunzip(const std::string& blob) {
  z_stream zs{};
  EXPECT_EQ(inflateInit2(&zs, 16 + 15), Z_OK);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(blob.data()));
  zs.avail_in = static_cast<uInt>(blob.size());
  std::string out;
  std::string buf(1 << 16, '\0');
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf.data());
    zs.avail_out = static_cast<uInt>(buf.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf.data(), buf.size() - zs.avail_out);
  } while (rc == Z_OK);
  EXPECT_EQ(rc, Z_STREAM_END) << zs.msg;
  EXPECT_EQ(zs.avail_in, 0u) << "one gzip member must cover the whole blob";
  inflateEnd(&zs);
  return out;
}

class GzipSizes : public ::testing::TestWithParam<size_t> {};

TEST_P(GzipSizes, ParallelOutputIsOneValidGzipStreamIndependentOfThreads) {
  const std::string data = mixedData(GetParam(), static_cast<uint32_t>(GetParam()));
  auto one = compress(Compression::kGzip, data, 1);
  auto two = compress(Compression::kGzip, data, 2);
  auto four = compress(Compression::kGzip, data, 4, 1 << 20);
  ASSERT_TRUE(one.isOk()) << one.status().toString();
  ASSERT_TRUE(two.isOk() && four.isOk());
  EXPECT_EQ(*one, *two);
  EXPECT_EQ(*one, *four);
  EXPECT_EQ(zlibGunzip(*two), data);
  Compression detected = Compression::kNone;
  auto back = decompress(*two, &detected);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, data);
  EXPECT_EQ(detected, Compression::kGzip);
}

INSTANTIATE_TEST_SUITE_P(Sizes, GzipSizes,
                         ::testing::Values(0, 1, 131071, 131072, 131073, 1000003, 3 << 20));

TEST(Compression, GzipPassesGzipToolAndCrcCheck) {
  lf::testing::TempDir tmp;
  const std::string data = mixedData(2'500'000, 7);
  auto gz = compress(Compression::kGzip, data, 2);
  ASSERT_TRUE(gz.isOk());
  auto file = tmp / "x.gz";
  ASSERT_TRUE(lf::testing::writeFile(file, *gz));
  auto test = runCommand("gzip -t " + shellQuote(file.string()));
  EXPECT_EQ(test.exit_code, 0) << test.output;
  auto dc = runCommand("gzip -dc " + shellQuote(file.string()) + " | sha256sum");
  EXPECT_EQ(dc.output.substr(0, 64), Digest::sha256Of(data).hex());
}

TEST(Compression, ZstdRoundTripAndToolAgree) {
  lf::testing::TempDir tmp;
  const std::string data = mixedData(3'000'000, 9);
  auto one = compress(Compression::kZstd, data, 1);
  auto two = compress(Compression::kZstd, data, 2);
  ASSERT_TRUE(one.isOk()) << one.status().toString();
  ASSERT_TRUE(two.isOk());
  EXPECT_EQ(*one, *two) << "zstd output must not depend on the worker count";
  Compression detected = Compression::kNone;
  auto back = decompress(*two, &detected);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, data);
  EXPECT_EQ(detected, Compression::kZstd);
  auto file = tmp / "x.zst";
  ASSERT_TRUE(lf::testing::writeFile(file, *two));
  auto dc = runCommand("zstd -dc " + shellQuote(file.string()) + " | sha256sum");
  EXPECT_EQ(dc.output.substr(0, 64), Digest::sha256Of(data).hex()) << dc.output;
}

TEST(Compression, NoneIsPassThrough) {
  const std::string data = "not compressed at all";
  auto out = compress(Compression::kNone, data, 2);
  ASSERT_TRUE(out.isOk());
  EXPECT_EQ(*out, data);
  Compression detected = Compression::kGzip;
  auto back = decompress(*out, &detected);
  ASSERT_TRUE(back.isOk());
  EXPECT_EQ(*back, data);
  EXPECT_EQ(detected, Compression::kNone);
}

TEST(Compression, ReadsConcatenatedGzipMembers) {
  auto a = compress(Compression::kGzip, "first ", 1);
  auto b = compress(Compression::kGzip, "second", 1);
  auto back = decompress(*a + *b);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, "first second");
}

TEST(Compression, CorruptOrTruncatedInputIsDataLoss) {
  const std::string data = mixedData(400'000, 3);
  auto gz = compress(Compression::kGzip, data, 2);
  auto zs = compress(Compression::kZstd, data, 2);
  ASSERT_TRUE(gz.isOk() && zs.isOk());

  auto truncated = decompress(gz->substr(0, gz->size() / 2));
  ASSERT_FALSE(truncated.isOk());
  EXPECT_EQ(truncated.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(truncated.status().message().find("truncated"), std::string::npos);

  std::string bad_crc = *gz;
  bad_crc[bad_crc.size() - 6] ^= 0x55;  // inside the CRC-32 trailer
  auto crc = decompress(bad_crc);
  ASSERT_FALSE(crc.isOk());
  EXPECT_EQ(crc.status().code(), StatusCode::kDataLoss) << crc.status().toString();

  std::string flipped = *gz;
  flipped[flipped.size() / 2] ^= 0xff;
  EXPECT_FALSE(decompress(flipped).isOk());

  EXPECT_FALSE(decompress(*gz + "garbage").isOk());
  EXPECT_TRUE(decompress(*gz + std::string(512, '\0')).isOk()) << "zero padding is tolerated";

  auto zt = decompress(zs->substr(0, zs->size() - 10));
  ASSERT_FALSE(zt.isOk());
  EXPECT_EQ(zt.status().code(), StatusCode::kDataLoss);
}

TEST(Compression, SmallReadsDrainTheDecoderAfterTheInputEnds) {
  // Zeros compress ~1000:1, so the decoder still holds output when the input is used up.
  const std::string zeros(20'000'000, '\0');
  for (Compression c : {Compression::kGzip, Compression::kZstd}) {
    auto blob = compress(c, zeros, 2);
    ASSERT_TRUE(blob.isOk());
    auto back = decompress(*blob, nullptr, 4096);
    ASSERT_TRUE(back.isOk()) << compressionName(c) << ": " << back.status().toString();
    EXPECT_EQ(back->size(), zeros.size());
  }
}

TEST(Compression, MediaTypesAndDetection) {
  EXPECT_EQ(layerMediaType(Compression::kGzip), "application/vnd.oci.image.layer.v1.tar+gzip");
  EXPECT_EQ(compressionFromMediaType("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Compression::kGzip);
  EXPECT_EQ(compressionFromMediaType("application/vnd.oci.image.layer.v1.tar+zstd"),
            Compression::kZstd);
  EXPECT_EQ(compressionFromMediaType("text/plain"), std::nullopt);
  const uint8_t zstd[] = {0x28, 0xb5, 0x2f, 0xfd, 0};
  EXPECT_EQ(detectCompression(zstd, sizeof(zstd)), Compression::kZstd);
  EXPECT_EQ(detectCompression("\x1f", 1), Compression::kNone);
}

}  // namespace
}  // namespace lf::layer
