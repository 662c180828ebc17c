// StateStore on a real RocksDB in a temp dir: the layer cache, hits, aliases, batches, images,
// contexts, listing, reopen and damaged records.

#include "coordinator/state/state_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "common/blob/directory_blob_store.h"
#include "coordinator/state/record_codec.h"
#include "tests/coordinator/state/state_test_util.h"
#include "tests/support/temp_dir.h"

namespace lf::coordinator {
namespace {

using ::lf::coordinator::testing::alwaysPresent;
using ::lf::coordinator::testing::digestOf;
using ::lf::coordinator::testing::makeBuild;
using ::lf::coordinator::testing::makeEntry;
using ::testing::HasSubstr;

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    reopen();
    auto blobs = blob::DirectoryBlobStore::open(dir_ / "blobs");
    ASSERT_TRUE(blobs.isOk()) << blobs.status().toString();
    blobs_ = std::move(blobs).value();
  }

  void reopen() {
    store_.reset();  // close first: RocksDB holds a LOCK file
    auto store = StateStore::open({.dir = dir_ / "state"});
    ASSERT_TRUE(store.isOk()) << store.status().toString();
    store_ = std::move(store).value();
  }

  // A cache entry whose layer blob really is in the blob store.
  CacheEntry entryWithBlob(const std::string& name, InstructionKind kind = InstructionKind::kRun) {
    auto info = blobs_->putBytes("layer bytes of " + name);
    EXPECT_TRUE(info.isOk()) << info.status().toString();
    CacheEntry e = makeEntry(name, kind);
    e.layer.digest = info->digest;
    e.layer.size = info->size;
    return e;
  }

  lf::testing::TempDir dir_;
  std::unique_ptr<blob::BlobStore> blobs_;
  std::unique_ptr<StateStore> store_;
};

TEST_F(StateStoreTest, PutThenLookupReturnsTheEntry) {
  CacheEntry e = entryWithBlob("a");
  auto stored = store_->putCacheEntry(e, *blobs_);
  ASSERT_TRUE(stored.isOk()) << stored.status().toString();
  EXPECT_EQ(*stored, e);

  auto found = store_->lookup(e.key);
  ASSERT_TRUE(found.isOk()) << found.status().toString();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, e);

  auto missing = store_->lookup(digestOf("nothing"));
  ASSERT_TRUE(missing.isOk());
  EXPECT_FALSE(missing->has_value());
}

TEST_F(StateStoreTest, LookupManyAnswersInKeyOrder) {
  CacheEntry a = entryWithBlob("a");
  CacheEntry b = entryWithBlob("b");
  ASSERT_TRUE(store_->putCacheEntry(a, *blobs_).isOk());
  ASSERT_TRUE(store_->putCacheEntry(b, *blobs_).isOk());
  std::vector<Digest> keys = {b.key, digestOf("absent"), a.key};
  auto found = store_->lookupMany(keys);
  ASSERT_TRUE(found.isOk()) << found.status().toString();
  ASSERT_EQ(found->size(), 3u);
  ASSERT_TRUE((*found)[0].has_value());
  EXPECT_EQ(*(*found)[0], b);
  EXPECT_FALSE((*found)[1].has_value());
  ASSERT_TRUE((*found)[2].has_value());
  EXPECT_EQ(*(*found)[2], a);
}

TEST_F(StateStoreTest, RefusesAnEntryWhoseBlobIsMissing) {
  CacheEntry e = makeEntry("no-blob");  // its layer digest was never written to the blob store
  auto stored = store_->putCacheEntry(e, *blobs_);
  ASSERT_FALSE(stored.isOk());
  EXPECT_EQ(stored.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(stored.status().message(), HasSubstr(e.layer.digest.toString()));
  EXPECT_THAT(stored.status().message(), HasSubstr("state cache " + e.key.toString()));
  auto found = store_->lookup(e.key);
  ASSERT_TRUE(found.isOk());
  EXPECT_FALSE(found->has_value());
}

TEST_F(StateStoreTest, RefusesAnEntryWhoseBlobSizeDiffers) {
  CacheEntry e = entryWithBlob("sized");
  e.layer.size += 1;
  auto stored = store_->putCacheEntry(e, *blobs_);
  ASSERT_FALSE(stored.isOk());
  EXPECT_EQ(stored.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(store_->lookup(e.key)->has_value());
}

TEST_F(StateStoreTest, FirstEntryForAKeyWins) {
  CacheEntry first = entryWithBlob("first");
  CacheEntry second = entryWithBlob("second");
  second.key = first.key;
  ASSERT_TRUE(store_->putCacheEntry(first, *blobs_).isOk());
  auto stored = store_->putCacheEntry(second, *blobs_);
  ASSERT_TRUE(stored.isOk());
  EXPECT_EQ(stored->layer, first.layer);
  EXPECT_EQ(store_->lookup(first.key)->value().layer, first.layer);
}

TEST_F(StateStoreTest, ConcurrentPutsOfOneKeyAgreeOnTheFirst) {
  constexpr int kThreads = 8;
  std::vector<CacheEntry> candidates;
  for (int t = 0; t < kThreads; ++t) {
    CacheEntry e = makeEntry("racer-" + std::to_string(t));
    e.key = digestOf("contended key");
    candidates.push_back(e);
  }
  std::vector<Result<CacheEntry>> results(kThreads, Result<CacheEntry>(internalError("unset")));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back(
        [&, t] { results[t] = store_->putCacheEntry(candidates[t], alwaysPresent()); });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  auto stored = store_->lookup(digestOf("contended key"));
  ASSERT_TRUE(stored.isOk() && stored->has_value());
  for (const Result<CacheEntry>& r : results) {
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    EXPECT_EQ(*r, **stored);  // every caller was told the same winner
  }
}

TEST_F(StateStoreTest, HitsCountAndKeepTheLatestTime) {
  CacheEntry e = entryWithBlob("hit");
  ASSERT_TRUE(store_->putCacheEntry(e, *blobs_).isOk());
  ASSERT_TRUE(store_->recordHit(e.key, 2000).isOk());
  ASSERT_TRUE(store_->recordHit(e.key, 5000).isOk());
  ASSERT_TRUE(store_->recordHit(e.key, 3000).isOk());  // out of order: last hit stays 5000
  std::vector<Digest> keys = {e.key, e.key};
  ASSERT_TRUE(store_->recordHits(keys, 4000).isOk());

  auto found = store_->lookup(e.key);
  ASSERT_TRUE(found.isOk() && found->has_value());
  EXPECT_EQ((*found)->hit_count, 5u);
  EXPECT_EQ((*found)->last_hit_unix_ms, 5000);
  EXPECT_EQ((*found)->layer, e.layer);  // the merge keeps everything else

  // Compaction folds the operands into the stored entry; a reopen reads them from disk.
  ASSERT_TRUE(store_->compact().isOk());
  reopen();
  found = store_->lookup(e.key);
  ASSERT_TRUE(found.isOk() && found->has_value());
  EXPECT_EQ((*found)->hit_count, 5u);
  EXPECT_EQ((*found)->last_hit_unix_ms, 5000);
  ASSERT_TRUE(store_->recordHit(e.key, 6000).isOk());
  EXPECT_EQ(store_->lookup(e.key)->value().hit_count, 6u);
}

TEST_F(StateStoreTest, HitsOnAKeyWithoutAnEntryAreIgnored) {
  CacheEntry e = entryWithBlob("later");
  ASSERT_TRUE(store_->recordHit(e.key, 1000).isOk());
  auto found = store_->lookup(e.key);
  ASSERT_TRUE(found.isOk()) << found.status().toString();
  EXPECT_FALSE(found->has_value());
  EXPECT_EQ(*store_->countCacheEntries(), 0u);
  ASSERT_TRUE(store_->compact().isOk());
  EXPECT_FALSE(store_->lookup(e.key)->has_value());

  // The entry can still be written, and starts with no hits.
  ASSERT_TRUE(store_->putCacheEntry(e, *blobs_).isOk());
  EXPECT_EQ(store_->lookup(e.key)->value().hit_count, 0u);
}

TEST_F(StateStoreTest, RemovedEntryIsGone) {
  CacheEntry e = entryWithBlob("gone");
  ASSERT_TRUE(store_->putCacheEntry(e, *blobs_).isOk());
  ASSERT_TRUE(store_->removeCacheEntry(e.key).isOk());
  EXPECT_FALSE(store_->lookup(e.key)->has_value());
}

TEST_F(StateStoreTest, StatsSumEntriesBytesAndHitsByKind) {
  CacheEntry run = entryWithBlob("run", InstructionKind::kRun);
  CacheEntry copy = entryWithBlob("copy", InstructionKind::kCopy);
  CacheEntry add = entryWithBlob("add", InstructionKind::kAdd);
  for (const CacheEntry& e : {run, copy, add}) {
    ASSERT_TRUE(store_->putCacheEntry(e, *blobs_).isOk());
  }
  ASSERT_TRUE(store_->recordHit(run.key, 1).isOk());
  ASSERT_TRUE(store_->recordHit(run.key, 2).isOk());
  ASSERT_TRUE(store_->recordHit(copy.key, 3).isOk());

  auto stats = store_->cacheStats();
  ASSERT_TRUE(stats.isOk()) << stats.status().toString();
  EXPECT_EQ(stats->entries, 3u);
  EXPECT_EQ(stats->total_bytes, run.layer.size + copy.layer.size + add.layer.size);
  EXPECT_EQ(stats->hits, 3u);
  EXPECT_EQ(stats->run.entries, 1u);
  EXPECT_EQ(stats->run.hits, 2u);
  EXPECT_EQ(stats->copy.hits, 1u);
  EXPECT_EQ(stats->add.total_bytes, add.layer.size);
  EXPECT_EQ(stats->corrupt_entries, 0u);
  EXPECT_EQ(*store_->countCacheEntries(), 3u);

  std::vector<Digest> seen;
  ASSERT_TRUE(store_
                  ->forEachCacheEntry([&](const CacheEntry& e) {
                    seen.push_back(e.key);
                    return seen.size() < 2;  // stop early
                  })
                  .isOk());
  EXPECT_EQ(seen.size(), 2u);
}

TEST_F(StateStoreTest, AliasFindsTheEntry) {
  CacheEntry e = entryWithBlob("aliased");
  ASSERT_TRUE(store_->putCacheEntry(e, *blobs_).isOk());
  Alias alias{.parent_chain_id = digestOf("chain"),
              .instruction_digest = digestOf("RUN make"),
              .cache_key = e.key,
              .created_unix_ms = 7};
  ASSERT_TRUE(store_->putAlias(alias).isOk());
  auto found = store_->lookupAlias(alias.parent_chain_id, alias.instruction_digest);
  ASSERT_TRUE(found.isOk() && found->has_value());
  EXPECT_EQ(**found, alias);
  auto entry = store_->lookupByAlias(alias.parent_chain_id, alias.instruction_digest);
  ASSERT_TRUE(entry.isOk() && entry->has_value());
  EXPECT_EQ(**entry, e);
  EXPECT_FALSE(
      store_->lookupByAlias(digestOf("other chain"), alias.instruction_digest)->has_value());
}

TEST_F(StateStoreTest, UncommittedBatchWritesNothing) {
  CacheEntry e = entryWithBlob("batch");
  {
    StateStore::Batch batch = store_->newBatch();
    batch.putCacheEntry(e);
    batch.putBuild(makeBuild("b-1", "team", 100));
    batch.putJob(JobRecord{.id = "j-1", .key = e.key, .state = JobState::kSucceeded});
    EXPECT_EQ(batch.size(), 3u);
    // Dropped without commit(): the coordinator failed in the middle of finishing the job.
  }
  EXPECT_FALSE(store_->lookup(e.key)->has_value());
  EXPECT_FALSE(store_->getBuild("b-1")->has_value());
  EXPECT_FALSE(store_->getJob("j-1")->has_value());
}

TEST_F(StateStoreTest, BatchWritesEverythingTogether) {
  CacheEntry e = entryWithBlob("together");
  BuildRecord build = makeBuild("b-2", "team", 100, BuildState::kRunning);
  build.steps.push_back(StepRecord{.index = 0,
                                   .key = e.key,
                                   .instruction = "RUN make",
                                   .kind = InstructionKind::kRun,
                                   .state = StepState::kDone,
                                   .job_id = "j-2",
                                   .worker = "w1",
                                   .started_unix_ms = 10,
                                   .finished_unix_ms = 30,
                                   .layer = e.layer,
                                   .diff_id = e.diff_id});
  JobRecord job{.id = "j-2",
                .key = e.key,
                .build_ids = {"b-2"},
                .attempt = 1,
                .worker = "w1",
                .state = JobState::kSucceeded};
  StateStore::Batch batch = store_->newBatch();
  batch.putCacheEntry(e);
  batch.putJob(job);
  batch.putBuild(build);
  ASSERT_TRUE(batch.commit(blobCheckFor(*blobs_)).isOk());
  EXPECT_EQ(batch.size(), 0u);
  EXPECT_EQ(store_->lookup(e.key)->value(), e);
  EXPECT_EQ(store_->getJob("j-2")->value(), job);
  EXPECT_EQ(store_->getBuild("b-2")->value(), build);
  EXPECT_EQ(store_->getBuild("b-2")->value().steps[0].durationMs(), 20);
}

TEST_F(StateStoreTest, BatchWithAMissingBlobWritesNothing) {
  CacheEntry present = entryWithBlob("present");
  CacheEntry missing = makeEntry("missing");
  StateStore::Batch batch = store_->newBatch();
  batch.putBuild(makeBuild("b-3", "team", 100));
  batch.putCacheEntry(present);
  batch.putCacheEntry(missing);
  Status s = batch.commit(blobCheckFor(*blobs_));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr(missing.key.toString()));
  EXPECT_FALSE(store_->getBuild("b-3")->has_value());
  EXPECT_FALSE(store_->lookup(present.key)->has_value());

  // Without a blob check a batch with cache entries is refused.
  EXPECT_EQ(batch.commit().code(), StatusCode::kInvalidArgument);
}

TEST_F(StateStoreTest, BatchWithAConflictingEntryWritesNothing) {
  CacheEntry first = entryWithBlob("winner");
  ASSERT_TRUE(store_->putCacheEntry(first, *blobs_).isOk());
  ASSERT_TRUE(store_->recordHit(first.key, 50).isOk());

  CacheEntry same = first;  // the same layer again (a requeued job): dropped, hits kept
  StateStore::Batch ok_batch = store_->newBatch();
  ok_batch.putCacheEntry(same);
  ok_batch.putJob(JobRecord{.id = "j-same", .state = JobState::kSucceeded});
  ASSERT_TRUE(ok_batch.commit(blobCheckFor(*blobs_)).isOk());
  EXPECT_EQ(store_->lookup(first.key)->value().hit_count, 1u);
  EXPECT_TRUE(store_->getJob("j-same")->has_value());

  CacheEntry other = entryWithBlob("loser");
  other.key = first.key;
  StateStore::Batch batch = store_->newBatch();
  batch.putCacheEntry(other);
  batch.putJob(JobRecord{.id = "j-loser", .state = JobState::kSucceeded});
  Status s = batch.commit(blobCheckFor(*blobs_));
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr(first.layer.digest.toString()));
  EXPECT_FALSE(store_->getJob("j-loser")->has_value());
  EXPECT_EQ(store_->lookup(first.key)->value().layer, first.layer);
}

TEST_F(StateStoreTest, InvalidRecordsAreRefused) {
  EXPECT_EQ(store_->putBuild(BuildRecord{}).code(), StatusCode::kInvalidArgument);
  BuildRecord nul = makeBuild("b-nul", std::string("te\0am", 5), 1);
  EXPECT_EQ(store_->putBuild(nul).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->putJob(JobRecord{}).code(), StatusCode::kInvalidArgument);
  CacheEntry no_layer = makeEntry("x");
  no_layer.layer.digest = Digest();
  EXPECT_EQ(store_->putCacheEntry(no_layer, alwaysPresent()).status().code(),
            StatusCode::kInvalidArgument);
  ImageRecord image{.manifest_digest = digestOf("m"), .references = {"app@sha256:00"}};
  EXPECT_EQ(store_->putImage(image).code(), StatusCode::kInvalidArgument);
}

TEST_F(StateStoreTest, ListsBuildsNewestFirstWithLimitTenantAndCursor) {
  ASSERT_TRUE(store_->putBuild(makeBuild("b-old", "red", 1000)).isOk());
  ASSERT_TRUE(store_->putBuild(makeBuild("b-mid", "blue", 2000)).isOk());
  ASSERT_TRUE(store_->putBuild(makeBuild("b-new", "red", 3000)).isOk());
  ASSERT_TRUE(store_->putBuild(makeBuild("b-same-1", "blue", 2500)).isOk());
  ASSERT_TRUE(store_->putBuild(makeBuild("b-same-0", "blue", 2500)).isOk());
  // Updating a build does not list it twice.
  BuildRecord updated = makeBuild("b-mid", "blue", 2000, BuildState::kFailed);
  updated.failure_reason = "step 2 exited 1";
  ASSERT_TRUE(store_->putBuild(updated).isOk());

  auto ids = [](const std::vector<BuildRecord>& builds) {
    std::vector<std::string> out;
    for (const BuildRecord& b : builds) {
      out.push_back(b.id);
    }
    return out;
  };
  auto all = store_->listBuilds({.limit = 0});
  ASSERT_TRUE(all.isOk()) << all.status().toString();
  EXPECT_EQ(ids(*all),
            (std::vector<std::string>{"b-new", "b-same-0", "b-same-1", "b-mid", "b-old"}));
  EXPECT_EQ((*all)[3].failure_reason, "step 2 exited 1");

  EXPECT_EQ(ids(*store_->listBuilds({.limit = 2})),
            (std::vector<std::string>{"b-new", "b-same-0"}));
  EXPECT_EQ(ids(*store_->listBuilds({.tenant = "red"})),
            (std::vector<std::string>{"b-new", "b-old"}));
  EXPECT_EQ(ids(*store_->listBuilds({.tenant = "blue", .limit = 10})),
            (std::vector<std::string>{"b-same-0", "b-same-1", "b-mid"}));
  EXPECT_EQ(ids(*store_->listBuilds({.tenant = "blue", .created_before_unix_ms = 2500})),
            (std::vector<std::string>{"b-mid"}));
  EXPECT_EQ(ids(*store_->listBuilds({.created_before_unix_ms = 2000})),
            (std::vector<std::string>{"b-old"}));
  EXPECT_TRUE(store_->listBuilds({.tenant = "green"})->empty());
  // A tenant whose name is a prefix of another's sees only its own builds.
  ASSERT_TRUE(store_->putBuild(makeBuild("b-r", "re", 4000)).isOk());
  EXPECT_EQ(ids(*store_->listBuilds({.tenant = "re"})), (std::vector<std::string>{"b-r"}));
}

TEST_F(StateStoreTest, ImagesByReferenceDigestAndNameAtDigest) {
  ImageRecord image{
      .manifest_digest = digestOf("manifest"),
      .config_digest = digestOf("config"),
      .media_type = "application/vnd.oci.image.manifest.v1+json",
      .references = {"registry.local/team/app:1", "registry.local/team/app:latest"},
      .build_id = "b-9",
      .platform = "linux/amd64",
      .created_unix_ms = 99,
      .history = {
          {.created_unix_ms = 1, .created_by = "/bin/sh -c #(nop) LABEL a=b", .empty_layer = true},
          {.created_unix_ms = 2,
           .created_by = "RUN make",
           .comment = "buildkit.dockerfile.v0",
           .layer_size = 4096}}};
  ASSERT_TRUE(store_->putImage(image).isOk());
  for (const std::string& ref :
       {std::string("registry.local/team/app:1"), std::string("registry.local/team/app:latest"),
        image.manifest_digest.toString(),
        "registry.local/team/app@" + image.manifest_digest.toString()}) {
    auto found = store_->getImage(ref);
    ASSERT_TRUE(found.isOk()) << ref << ": " << found.status().toString();
    ASSERT_TRUE(found->has_value()) << ref;
    EXPECT_EQ(**found, image) << ref;
  }
  EXPECT_FALSE(store_->getImage("registry.local/team/app:2")->has_value());
  EXPECT_EQ(store_->getImage("app@sha256:nothex").status().code(), StatusCode::kInvalidArgument);

  // The tag moves to a newer image; the old one stays reachable by digest.
  ImageRecord newer = image;
  newer.manifest_digest = digestOf("manifest 2");
  newer.references = {"registry.local/team/app:latest"};
  ASSERT_TRUE(store_->putImage(newer).isOk());
  EXPECT_EQ(store_->getImage("registry.local/team/app:latest")->value().manifest_digest,
            newer.manifest_digest);
  EXPECT_EQ(store_->getImage("registry.local/team/app:1")->value().manifest_digest,
            image.manifest_digest);
}

TEST_F(StateStoreTest, ContextsAreStoredAndTouched) {
  ContextRecord context{
      .digest = digestOf("ctx"), .size = 20 << 20, .uploaded_unix_ms = 10, .last_used_unix_ms = 10};
  ASSERT_TRUE(store_->putContext(context).isOk());
  ASSERT_TRUE(store_->touchContext(context.digest, 50).isOk());
  ASSERT_TRUE(store_->touchContext(context.digest, 20).isOk());  // never goes back
  auto found = store_->getContext(context.digest);
  ASSERT_TRUE(found.isOk() && found->has_value());
  EXPECT_EQ((*found)->last_used_unix_ms, 50);
  EXPECT_EQ((*found)->size, uint64_t{20} << 20);
  EXPECT_EQ(store_->touchContext(digestOf("unknown"), 1).code(), StatusCode::kNotFound);

  ContextRecord other{.digest = digestOf("ctx 2"), .size = 1, .uploaded_unix_ms = 60};
  ASSERT_TRUE(store_->putContext(other).isOk());
  std::vector<Digest> listed;
  ASSERT_TRUE(store_
                  ->forEachContext([&](const ContextRecord& c) {
                    listed.push_back(c.digest);
                    return true;
                  })
                  .isOk());
  EXPECT_THAT(listed, ::testing::UnorderedElementsAre(context.digest, other.digest));
  ASSERT_TRUE(store_->removeContext(context.digest).isOk());
  ASSERT_TRUE(store_->removeContext(context.digest).isOk());  // absent is fine
  EXPECT_FALSE(store_->getContext(context.digest)->has_value());
  EXPECT_TRUE(store_->getContext(other.digest)->has_value());
}

TEST_F(StateStoreTest, ContextRecordKeepsItsManifestAndOldRecordsHaveNone) {
  // A legacy tar context names the manifest it was converted to.
  ContextRecord legacy{.digest = digestOf("tar"), .size = 9, .manifest = digestOf("manifest")};
  ASSERT_TRUE(store_->putContext(legacy).isOk());
  reopen();
  EXPECT_EQ(store_->getContext(legacy.digest)->value(), legacy);
  // A record written before manifests existed (no field 5) decodes with an empty manifest.
  ContextRecord old{.digest = digestOf("old"), .size = 3, .uploaded_unix_ms = 7};
  auto decoded = codec::decodeContext(codec::encode(old));
  ASSERT_TRUE(decoded.isOk()) << decoded.status().toString();
  EXPECT_TRUE(decoded->manifest.empty());
  EXPECT_EQ(*decoded, old);
  // A damaged manifest digest is reported, naming the field.
  std::string bad = codec::encode(old);
  bad += std::string("\x2a\x03") + "md5";  // field 5 (string) = "md5"
  auto damaged = codec::decodeContext(bad);
  ASSERT_FALSE(damaged.isOk());
  EXPECT_THAT(damaged.status().message(), HasSubstr("manifest"));
}

TEST_F(StateStoreTest, ReopenKeepsEverything) {
  CacheEntry e = entryWithBlob("kept");
  ASSERT_TRUE(store_->putCacheEntry(e, *blobs_).isOk());
  Alias alias{
      .parent_chain_id = digestOf("p"), .instruction_digest = digestOf("i"), .cache_key = e.key};
  ASSERT_TRUE(store_->putAlias(alias).isOk());
  BuildRecord build = makeBuild("b-kept", "team", 5, BuildState::kSucceeded);
  build.manifest_digest = digestOf("m");
  build.steps.push_back(StepRecord{
      .key = e.key, .instruction = "RUN x", .state = StepState::kCached, .cached = true});
  ASSERT_TRUE(store_->putBuild(build).isOk());
  JobRecord job{.id = "j-kept",
                .key = e.key,
                .build_ids = {"b-kept"},
                .lease_expiry_unix_ms = 77,
                .state = JobState::kSucceeded};
  ASSERT_TRUE(store_->putJob(job).isOk());
  ImageRecord image{.manifest_digest = digestOf("m"), .references = {"r/app:1"}};
  ASSERT_TRUE(store_->putImage(image).isOk());
  ContextRecord context{.digest = digestOf("c"), .size = 3};
  ASSERT_TRUE(store_->putContext(context).isOk());

  reopen();
  EXPECT_EQ(store_->lookup(e.key)->value(), e);
  EXPECT_EQ(store_->lookupAlias(alias.parent_chain_id, alias.instruction_digest)->value(), alias);
  EXPECT_EQ(store_->getBuild("b-kept")->value(), build);
  EXPECT_EQ(store_->getJob("j-kept")->value(), job);
  EXPECT_EQ(store_->getImage("r/app:1")->value(), image);
  EXPECT_EQ(store_->getContext(context.digest)->value(), context);
  EXPECT_EQ(store_->listBuilds({})->size(), 1u);
}

TEST_F(StateStoreTest, SecondOpenOfTheSameDirectoryIsRefused) {
  auto second = StateStore::open({.dir = dir_ / "state"});
  ASSERT_FALSE(second.isOk());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr((dir_ / "state").string()));
}

TEST_F(StateStoreTest, NewerSchemaIsRefused) {
  ASSERT_TRUE(store_->putRawForTesting("default", "schema_version", "99").isOk());
  store_.reset();
  auto store = StateStore::open({.dir = dir_ / "state"});
  ASSERT_FALSE(store.isOk());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("newer coordinator"));
}

TEST_F(StateStoreTest, DamagedRecordsGiveDataLossNamingTheKey) {
  CacheEntry good = entryWithBlob("good");
  ASSERT_TRUE(store_->putCacheEntry(good, *blobs_).isOk());
  const Digest bad_key = digestOf("key:bad");
  ASSERT_TRUE(store_->putRawForTesting("cache", bad_key.toString(), "\xff\xff\xff\xff").isOk());

  auto found = store_->lookup(bad_key);
  ASSERT_FALSE(found.isOk());
  EXPECT_EQ(found.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(found.status().message(), HasSubstr("state cache " + bad_key.toString()));
  std::vector<Digest> keys = {good.key, bad_key};
  EXPECT_EQ(store_->lookupMany(keys).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(store_->forEachCacheEntry([](const CacheEntry&) { return true; }).code(),
            StatusCode::kDataLoss);
  // Hits on a damaged entry neither repair nor break it, and compaction still runs.
  ASSERT_TRUE(store_->recordHit(bad_key, 1).isOk());
  ASSERT_TRUE(store_->compact().isOk());
  EXPECT_EQ(store_->lookup(bad_key).status().code(), StatusCode::kDataLoss);
  auto stats = store_->cacheStats();
  ASSERT_TRUE(stats.isOk());
  EXPECT_EQ(stats->entries, 1u);
  EXPECT_EQ(stats->corrupt_entries, 1u);

  // A put replaces the damaged entry.
  CacheEntry repaired = entryWithBlob("repaired");
  repaired.key = bad_key;
  auto stored = store_->putCacheEntry(repaired, *blobs_);
  ASSERT_TRUE(stored.isOk()) << stored.status().toString();
  EXPECT_EQ(*stored, repaired);
  EXPECT_EQ(store_->lookup(bad_key)->value(), repaired);

  // A well-formed record stored under another key is damage too.
  const Digest moved = digestOf("key:moved");
  ASSERT_TRUE(store_->putRawForTesting("cache", moved.toString(), codec::encode(makeEntry("other")))
                  .isOk());
  auto moved_found = store_->lookup(moved);
  EXPECT_EQ(moved_found.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(moved_found.status().message(), HasSubstr("record is for key"));

  // Bytes that parse as protobuf but lack required fields, and bytes that do not parse.
  ASSERT_TRUE(store_->putRawForTesting("builds", "b-bad", "\x0a").isOk());
  auto build = store_->getBuild("b-bad");
  EXPECT_EQ(build.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(build.status().message(), HasSubstr("state builds b-bad"));
  ASSERT_TRUE(store_->putRawForTesting("jobs", "j-bad", "garbage").isOk());
  EXPECT_EQ(store_->getJob("j-bad").status().code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace lf::coordinator
