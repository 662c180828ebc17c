#include "common/dockerfile/command_values.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace lf::dockerfile {
namespace {

using ::testing::HasSubstr;

Result<Mount> mount(std::string_view spec, int ssh_index = 0) {
  return parseMountSpec(spec, nullptr, ssh_index);
}

TEST(MountSpecTest, BindDefaults) {
  auto m = mount("target=/src,source=app,from=build");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(m->type, MountType::kBind);
  EXPECT_EQ(m->target, "/src");
  EXPECT_EQ(m->source, "app");
  EXPECT_EQ(m->from, "build");
  EXPECT_TRUE(m->readonly);
  auto rw = mount("type=bind,dst=/x,rw");
  ASSERT_TRUE(rw.isOk());
  EXPECT_FALSE(rw->readonly);
  auto rw2 = mount("type=bind,destination=/x,readwrite=true");
  ASSERT_TRUE(rw2.isOk());
  EXPECT_FALSE(rw2->readonly);
  auto ro = mount("type=bind,target=/x,rw=false");
  ASSERT_TRUE(ro.isOk());
  EXPECT_TRUE(ro->readonly);
}

TEST(MountSpecTest, CacheOptions) {
  auto m = mount("type=cache,target=/var/cache/apt,sharing=locked,mode=0700,uid=1000,gid=50");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(m->type, MountType::kCache);
  EXPECT_EQ(m->id, "/var/cache/apt");  // defaults to target
  EXPECT_EQ(m->sharing, MountSharing::kLocked);
  EXPECT_EQ(m->mode, 0700u);
  EXPECT_EQ(m->uid, 1000u);
  EXPECT_EQ(m->gid, 50u);
  EXPECT_FALSE(m->readonly);
  auto ro = mount("type=cache,target=/c,id=go,ro,sharing=private");
  ASSERT_TRUE(ro.isOk());
  EXPECT_TRUE(ro->readonly);
  EXPECT_EQ(ro->id, "go");
  EXPECT_EQ(ro->sharing, MountSharing::kPrivate);
}

TEST(MountSpecTest, TmpfsSize) {
  auto m = mount("type=tmpfs,target=/tmp,size=64m");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(m->size_bytes, 64u << 20);
  EXPECT_FALSE(m->readonly);
  EXPECT_THAT(mount("type=tmpfs,target=/t,size=lots").status().message(),
              HasSubstr("invalid size"));
}

TEST(MountSpecTest, SecretDefaults) {
  auto byid = mount("type=secret,id=aws");
  ASSERT_TRUE(byid.isOk());
  EXPECT_EQ(byid->target, "/run/secrets/aws");
  EXPECT_TRUE(byid->readonly);
  auto bytarget = mount("type=secret,target=/root/.aws/credentials,required");
  ASSERT_TRUE(bytarget.isOk());
  EXPECT_EQ(bytarget->id, "credentials");
  EXPECT_TRUE(bytarget->required);
  auto env = mount("type=secret,id=API_KEY,env=API_KEY");
  ASSERT_TRUE(env.isOk());
  EXPECT_EQ(env->env, "API_KEY");
  EXPECT_EQ(env->target, "");
  EXPECT_THAT(mount("type=secret").status().message(), HasSubstr("needs an id"));
}

TEST(MountSpecTest, SshDefaults) {
  auto m = mount("type=ssh", 2);
  ASSERT_TRUE(m.isOk());
  EXPECT_EQ(m->id, "default");
  EXPECT_EQ(m->target, "/run/buildkit/ssh_agent.2");
  auto req = mount("type=ssh,required=true,mode=0600");
  ASSERT_TRUE(req.isOk());
  EXPECT_TRUE(req->required);
  EXPECT_EQ(req->mode, 0600u);
}

TEST(MountSpecTest, Errors) {
  EXPECT_THAT(mount("type=foo,target=/x").status().message(), HasSubstr("unknown type 'foo'"));
  EXPECT_THAT(mount("type=cache").status().message(), HasSubstr("needs a target"));
  EXPECT_THAT(mount("source=x").status().message(), HasSubstr("needs a target"));
  EXPECT_THAT(mount("target=/x,bogus=1").status().message(), HasSubstr("unexpected key 'bogus'"));
  EXPECT_THAT(mount("target=/x,size=1m").status().message(),
              HasSubstr("'size' is not allowed for type=bind"));
  EXPECT_THAT(mount("type=tmpfs,target=/x,from=a").status().message(), HasSubstr("not allowed"));
  EXPECT_THAT(mount("type=cache,target=/x,sharing=all").status().message(),
              HasSubstr("sharing must be"));
  EXPECT_THAT(mount("type=cache,target=/x,mode=999").status().message(),
              HasSubstr("invalid octal mode"));
  EXPECT_THAT(mount("type=cache,target=/x,uid=-1").status().message(), HasSubstr("invalid uid"));
  EXPECT_THAT(mount("type=secret,id=a,required=maybe").status().message(),
              HasSubstr("invalid boolean"));
  EXPECT_THAT(mount("target").status().message(), HasSubstr("needs a value"));
  EXPECT_THAT(mount("type").status().message(), HasSubstr("needs a value"));
  EXPECT_THAT(mount("\"target=/x").status().message(), HasSubstr("unterminated quote"));
}

TEST(MountSpecTest, CsvQuotingAndCaseInsensitiveKeys) {
  auto m = mount("TYPE=bind,\"target=/a,b\",Source=\"\"");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(m->target, "/a,b");
  auto q = mount("type=bind,\"target=/say \"\"hi\"\"\"");
  ASSERT_TRUE(q.isOk()) << q.status().toString();
  EXPECT_EQ(q->target, "/say \"hi\"");
}

TEST(MountSpecTest, ValuesGoThroughTheExpander) {
  ValueExpander upper = [](std::string_view v) -> Result<std::string> {
    if (v == "fail") return invalidArgument("boom");
    return std::string(v) + "!";
  };
  auto m = parseMountSpec("type=cache,target=/c,id=x", upper, 0);
  ASSERT_TRUE(m.isOk());
  EXPECT_EQ(m->target, "/c!");
  EXPECT_EQ(m->id, "x!");
  EXPECT_EQ(m->type, MountType::kCache);  // type is not expanded
  EXPECT_THAT(parseMountSpec("target=fail", upper, 0).status().message(), HasSubstr("boom"));
}

TEST(DurationTest, GoSyntax) {
  EXPECT_EQ(*parseDuration("30s"), 30'000'000'000);
  EXPECT_EQ(*parseDuration("1m30s"), 90'000'000'000);
  EXPECT_EQ(*parseDuration("1.5h"), 5'400'000'000'000);
  EXPECT_EQ(*parseDuration("250ms"), 250'000'000);
  EXPECT_EQ(*parseDuration("10us"), 10'000);
  EXPECT_EQ(*parseDuration("7ns"), 7);
  EXPECT_EQ(*parseDuration("0"), 0);
  EXPECT_EQ(*parseDuration("-2s"), -2'000'000'000);
  EXPECT_EQ(*parseDuration(".5s"), 500'000'000);
  for (std::string_view bad : {"", "s", "10", "10x", "1m30", "1..5s", "-", "9999999999h", "1 s"}) {
    EXPECT_FALSE(parseDuration(bad).isOk()) << bad;
  }
}

TEST(ByteSizeTest, Units) {
  EXPECT_EQ(*parseByteSize("1024"), 1024u);
  EXPECT_EQ(*parseByteSize("512k"), 512u * 1024);
  EXPECT_EQ(*parseByteSize("64M"), 64u << 20);
  EXPECT_EQ(*parseByteSize("1g"), 1u << 30);
  EXPECT_EQ(*parseByteSize("1GiB"), 1u << 30);
  EXPECT_EQ(*parseByteSize("1.5kb"), 1536u);
  for (std::string_view bad : {"", "k", "12q", "1.2.3", "99999999999999999999p"}) {
    EXPECT_FALSE(parseByteSize(bad).isOk()) << bad;
  }
}

TEST(PortSpecTest, Forms) {
  auto p = parsePortSpec("80");
  ASSERT_TRUE(p.isOk());
  EXPECT_EQ(p->first, 80);
  EXPECT_EQ(p->last, 80);
  EXPECT_EQ(p->protocol, "tcp");
  auto udp = parsePortSpec("53/UDP");
  ASSERT_TRUE(udp.isOk());
  EXPECT_EQ(udp->protocol, "udp");
  auto range = parsePortSpec("8000-8010/sctp");
  ASSERT_TRUE(range.isOk());
  EXPECT_EQ(range->first, 8000);
  EXPECT_EQ(range->last, 8010);
  for (std::string_view bad :
       {"", "http", "70000", "80/icmp", "90-80", "80-", "-80", "80/", "1.5", "8o"}) {
    EXPECT_FALSE(parsePortSpec(bad).isOk()) << bad;
  }
}

TEST(SignalTest, NamesAndNumbers) {
  for (std::string_view ok : {"SIGTERM", "TERM", "sigkill", "9", "64", "SIGRTMIN+3", "RTMAX-1",
                              "SIGRTMIN", "SIGSYS", "SIGCHLD"}) {
    EXPECT_TRUE(validateSignal(ok).isOk()) << ok;
  }
  for (std::string_view bad : {"", "0", "65", "SIGFOO", "RTMIN-1", "RTMAX+1", "SIG"}) {
    EXPECT_FALSE(validateSignal(bad).isOk()) << bad;
  }
}

TEST(ChmodTest, OctalAndSymbolic) {
  EXPECT_EQ(*parseChmod("755"), 0755u);
  EXPECT_EQ(*parseChmod("0644"), 0644u);
  EXPECT_EQ(*parseChmod("4755"), 04755u);
  ASSERT_TRUE(parseChmod("+x").isOk());
  EXPECT_FALSE(parseChmod("+x")->has_value());
  EXPECT_TRUE(parseChmod("u=rwX,go=rX").isOk());
  EXPECT_TRUE(parseChmod("g=u").isOk());
  for (std::string_view bad : {"", "9z", "789", "77777", "u", "u+q", "x+", "u=rw,", ",", "0x1ff"}) {
    EXPECT_FALSE(parseChmod(bad).isOk()) << bad;
  }
}

TEST(BoolTest, GoParseBool) {
  EXPECT_EQ(parseBool("true"), true);
  EXPECT_EQ(parseBool("1"), true);
  EXPECT_EQ(parseBool("False"), false);
  EXPECT_EQ(parseBool("yes"), std::nullopt);
}

}  // namespace
}  // namespace lf::dockerfile
