// StateStore layer variants on a real RocksDB in a temp dir: round trip, per-compression keys,
// replacement, reopen, missing and damaged records, invalid input.

#include <gtest/gtest.h>

#include "coordinator/state/state_store.h"
#include "tests/support/temp_dir.h"

namespace lf::coordinator {
namespace {

class StateVariantsTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }

  void reopen() {
    store_.reset();  // close first: RocksDB holds a LOCK file
    auto store = StateStore::open({.dir = dir_ / "state"});
    ASSERT_TRUE(store.isOk()) << store.status().toString();
    store_ = std::move(store).value();
  }

  static oci::Descriptor gzipVariant(const std::string& name, uint64_t size) {
    oci::Descriptor d;
    d.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
    d.digest = Digest::sha256Of("gz:" + name);
    d.size = size;
    return d;
  }

  lf::testing::TempDir dir_;
  std::unique_ptr<StateStore> store_;
};

TEST_F(StateVariantsTest, PutThenGetReturnsTheDescriptorAndSurvivesReopen) {
  const Digest source = Digest::sha256Of("tar a");
  oci::Descriptor gz = gzipVariant("a", 1234);
  gz.annotations = {{"org.example", "kept"}};
  ASSERT_TRUE(store_->putLayerVariant(source, "gzip", gz).isOk());

  auto got = store_->getLayerVariant(source, "gzip");
  ASSERT_TRUE(got.isOk()) << got.status().toString();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, gz);

  reopen();
  got = store_->getLayerVariant(source, "gzip");
  ASSERT_TRUE(got.isOk()) << got.status().toString();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, gz);
}

TEST_F(StateVariantsTest, MissingIsNulloptPerSourceAndCompression) {
  const Digest source = Digest::sha256Of("tar b");
  auto got = store_->getLayerVariant(source, "gzip");
  ASSERT_TRUE(got.isOk()) << got.status().toString();
  EXPECT_FALSE(got->has_value());

  ASSERT_TRUE(store_->putLayerVariant(source, "gzip", gzipVariant("b", 10)).isOk());
  got = store_->getLayerVariant(source, "zstd");  // another compression: another record
  ASSERT_TRUE(got.isOk());
  EXPECT_FALSE(got->has_value());
  got = store_->getLayerVariant(Digest::sha256Of("tar c"), "gzip");
  ASSERT_TRUE(got.isOk());
  EXPECT_FALSE(got->has_value());
}

TEST_F(StateVariantsTest, ALaterPutReplacesTheRecord) {
  const Digest source = Digest::sha256Of("tar d");
  ASSERT_TRUE(store_->putLayerVariant(source, "gzip", gzipVariant("old", 10)).isOk());
  ASSERT_TRUE(store_->putLayerVariant(source, "gzip", gzipVariant("new", 20)).isOk());
  auto got = store_->getLayerVariant(source, "gzip");
  ASSERT_TRUE(got.isOk() && got->has_value());
  EXPECT_EQ(**got, gzipVariant("new", 20));
}

TEST_F(StateVariantsTest, DamagedRecordIsDataLossNamingTheKey) {
  const Digest source = Digest::sha256Of("tar e");
  const std::string key = source.toString() + " gzip";
  ASSERT_TRUE(store_->putRawForTesting("layer_variants", key, "{not json").isOk());
  auto got = store_->getLayerVariant(source, "gzip");
  ASSERT_FALSE(got.isOk());
  EXPECT_EQ(got.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(got.status().message().find(key), std::string::npos) << got.status().message();

  ASSERT_TRUE(store_->putRawForTesting("layer_variants", key, R"({"mediaType": 5})").isOk());
  got = store_->getLayerVariant(source, "gzip");
  ASSERT_FALSE(got.isOk());
  EXPECT_EQ(got.status().code(), StatusCode::kDataLoss);
}

TEST_F(StateVariantsTest, InvalidInputIsRefused) {
  const Digest source = Digest::sha256Of("tar f");
  EXPECT_EQ(store_->putLayerVariant(source, "", gzipVariant("f", 1)).code(),
            StatusCode::kInvalidArgument);
  oci::Descriptor untyped = gzipVariant("f", 1);
  untyped.media_type.clear();
  EXPECT_EQ(store_->putLayerVariant(source, "gzip", untyped).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lf::coordinator
