// Tests of the /etc/hosts and /etc/resolv.conf contents a sandbox gets.

#include "worker/sandbox/etc_files.h"

#include <gtest/gtest.h>

namespace lf::worker::sandbox {
namespace {

TEST(HostsFileTest, LocalhostHostnameAndExtraHosts) {
  auto hosts = makeHostsFile("box", {"db:10.0.0.5", "v6:2001:db8::1"});
  ASSERT_TRUE(hosts.isOk()) << hosts.status().toString();
  EXPECT_EQ(*hosts,
            "127.0.0.1\tlocalhost box\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\n"
            "ff00::0\tip6-mcastprefix\n"
            "ff02::1\tip6-allnodes\n"
            "ff02::2\tip6-allrouters\n"
            "10.0.0.5\tdb\n"
            "2001:db8::1\tv6\n");
}

TEST(HostsFileTest, MalformedExtraHostsAreRejected) {
  for (const char* bad :
       {"nocolon", ":1.2.3.4", "db:", "db:999.1.1.1", "bad name:1.2.3.4", "db:1.2.3.4\nevil"}) {
    auto hosts = makeHostsFile("box", {bad});
    EXPECT_FALSE(hosts.isOk()) << bad;
    EXPECT_EQ(hosts.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ResolvConfTest, LoopbackNameserversAreDropped) {
  EXPECT_EQ(makeResolvConf("search example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n"
                           "nameserver ::1\noptions edns0\n",
                           false),
            "search example.com\nnameserver 10.0.0.2\noptions edns0\n");
}

TEST(ResolvConfTest, PublicResolversWhenNoneRemain) {
  EXPECT_EQ(makeResolvConf("nameserver 127.0.0.53\noptions edns0 trust-ad\n", false),
            "options edns0 trust-ad\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
  EXPECT_EQ(makeResolvConf("", false), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
}

TEST(ResolvConfTest, HostNetworkKeepsTheHostFile) {
  EXPECT_EQ(makeResolvConf("nameserver 127.0.0.53\n", true), "nameserver 127.0.0.53\n");
}

}  // namespace
}  // namespace lf::worker::sandbox
