#include "coordinator/assembly/image_history.h"

#include <gtest/gtest.h>

namespace lf::coordinator {
namespace {

TEST(ImageHistory, HumanSizeLikeDocker) {
  // Values from go-units' HumanSizeWithPrecision(size, 3), which docker history uses.
  EXPECT_EQ(humanSize(0), "0B");
  EXPECT_EQ(humanSize(512), "512B");
  EXPECT_EQ(humanSize(999), "999B");
  EXPECT_EQ(humanSize(1000), "1kB");
  EXPECT_EQ(humanSize(1500), "1.5kB");
  EXPECT_EQ(humanSize(1'234'567), "1.23MB");
  EXPECT_EQ(humanSize(4'400'000), "4.4MB");
  EXPECT_EQ(humanSize(999'999), "1e+03kB");  // go-units prints this too
  EXPECT_EQ(humanSize(2'500'000'000ull), "2.5GB");
}

TEST(ImageHistory, HumanDurationLikeDocker) {
  EXPECT_EQ(humanDuration(0), "Less than a second");
  EXPECT_EQ(humanDuration(-5000), "Less than a second");
  EXPECT_EQ(humanDuration(1000), "1 second");
  EXPECT_EQ(humanDuration(59'000), "59 seconds");
  EXPECT_EQ(humanDuration(60'000), "About a minute");
  EXPECT_EQ(humanDuration(5 * 60'000), "5 minutes");
  EXPECT_EQ(humanDuration(59 * 60'000), "59 minutes");
  EXPECT_EQ(humanDuration(89 * 60'000), "About an hour");  // rounds to the nearest hour
  EXPECT_EQ(humanDuration(90 * 60'000), "2 hours");
  EXPECT_EQ(humanDuration(47 * 3'600'000ll), "47 hours");
  EXPECT_EQ(humanDuration(3 * 86'400'000ll), "3 days");
  EXPECT_EQ(humanDuration(20 * 86'400'000ll), "2 weeks");
  EXPECT_EQ(humanDuration(90 * 86'400'000ll), "3 months");
  EXPECT_EQ(humanDuration(800 * 86'400'000ll), "2 years");
}

TEST(ImageHistory, ParsesRfc3339) {
  EXPECT_EQ(*parseRfc3339Ms("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*parseRfc3339Ms("2023-11-14T22:13:20Z"), 1'700'000'000'000);
  EXPECT_EQ(*parseRfc3339Ms("2023-11-14T22:13:20.5Z"), 1'700'000'000'500);
  EXPECT_EQ(*parseRfc3339Ms("2023-11-14T22:13:20.123456789Z"), 1'700'000'000'123);
  EXPECT_EQ(*parseRfc3339Ms("2023-11-15T00:13:20+02:00"), 1'700'000'000'000);
  for (std::string_view bad : {"", "2023-11-14", "2023-11-14T22:13:20", "2023-13-14T22:13:20Z",
                               "2023-11-14T22:13:20.Z", "2023-11-14T22:13:20Zx"}) {
    EXPECT_FALSE(parseRfc3339Ms(bad).isOk()) << bad;
  }
}

oci::ImageConfig sampleConfig() {
  oci::ImageConfig c;
  c.history = {
      {"2023-11-14T22:13:20Z", "ADD rootfs.tar / # buildkit", "", "", false},
      {"2023-11-14T22:13:20Z", "CMD [\"sh\"]", "", "", true},
      {"2023-11-14T23:13:20Z",
       "RUN /bin/sh -c apt-get update && apt-get install -y python3\tand more # buildkit", "",
       "buildkit.dockerfile.v0", false},
      {"2023-11-14T23:13:20Z", "ENV A=b", "", "buildkit.dockerfile.v0", true},
  };
  return c;
}

TEST(ImageHistory, EntriesTakeLayerSizesInOrder) {
  auto e = historyEntries(sampleConfig(), {4'400'000, 1'234'567});
  ASSERT_TRUE(e.isOk()) << e.status().toString();
  ASSERT_EQ(e->size(), 4u);
  EXPECT_EQ((*e)[0].layer_size, 4'400'000u);
  EXPECT_EQ((*e)[1].layer_size, 0u);
  EXPECT_EQ((*e)[2].layer_size, 1'234'567u);
  EXPECT_EQ((*e)[2].created_unix_ms, 1'700'003'600'000);
  EXPECT_TRUE((*e)[3].empty_layer);

  auto short_sizes = historyEntries(sampleConfig(), {1});
  ASSERT_FALSE(short_sizes.isOk());
  EXPECT_NE(short_sizes.status().message().find("config.history[2]"), std::string::npos);

  oci::ImageConfig bad = sampleConfig();
  bad.history[1].created = "yesterday";
  auto r = historyEntries(bad, {1, 2});
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("config.history[1].created"), std::string::npos);
}

TEST(ImageHistory, RowsNewestFirstLikeDockerHistory) {
  auto e = historyEntries(sampleConfig(), {4'400'000, 1'234'567});
  ASSERT_TRUE(e.isOk());
  HistoryOptions opts;
  opts.now_unix_ms = 1'700'003'600'000 + 5 * 60'000;
  opts.image_id = Digest::sha256Of("config").toString();
  auto rows = historyRows(*e, opts);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].image, Digest::sha256Of("config").shortHex());
  EXPECT_EQ(rows[1].image, "<missing>");
  EXPECT_EQ(rows[0].created_by, "ENV A=b");
  EXPECT_EQ(rows[0].size, "0B");
  EXPECT_EQ(rows[0].created, "5 minutes ago");
  EXPECT_EQ(rows[0].comment, "buildkit.dockerfile.v0");
  // Cut to 45 characters, the last one "…"; the tab became a space before cutting.
  EXPECT_EQ(rows[1].created_by, "RUN /bin/sh -c apt-get update && apt-get ins…");
  EXPECT_EQ(rows[1].size, "1.23MB");
  EXPECT_EQ(rows[2].size, "0B");
  EXPECT_EQ(rows[3].created, "About an hour ago");
  EXPECT_EQ(rows[3].size, "4.4MB");

  opts.no_trunc = true;
  rows = historyRows(*e, opts);
  EXPECT_EQ(rows[0].image, Digest::sha256Of("config").toString());
  EXPECT_EQ(rows[1].created_by,
            "RUN /bin/sh -c apt-get update && apt-get install -y python3 and more # buildkit");
}

TEST(ImageHistory, MissingCreatedShowsNA) {
  oci::ImageConfig c;
  c.history = {{"", "imported", "", "", false}};
  auto e = historyEntries(c, {10});
  ASSERT_TRUE(e.isOk());
  auto rows = historyRows(*e, {});
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].created, "N/A");
  EXPECT_EQ(rows[0].size, "10B");
}

}  // namespace
}  // namespace lf::coordinator
