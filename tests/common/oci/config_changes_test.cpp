#include "common/oci/config_changes.h"

#include <gtest/gtest.h>

namespace lf::oci {
namespace {

ImageConfig applyAll(const std::vector<std::string>& lines) {
  ImageConfig config;
  config.architecture = "amd64";
  config.os = "linux";
  ConfigChanges changes(&config);
  for (size_t i = 0; i < lines.size(); ++i) {
    Status s = changes.apply(lines[i], "--change " + std::to_string(i + 1));
    EXPECT_TRUE(s.isOk()) << lines[i] << ": " << s.toString();
  }
  return config;
}

TEST(ConfigChanges, EveryAllowedInstruction) {
  ImageConfig c = applyAll({
      "ENV PATH=/usr/bin:/bin GREETING=hello",
      "ENV GREETING=\"$GREETING world\"",
      "LABEL org.example.name=\"my image\" version=1",
      "CMD [\"/bin/echo\", \"hello from layerfarm\"]",
      "WORKDIR /srv",
      "WORKDIR app/../data",
      "USER 1000:1000",
      "EXPOSE 80 53/udp 8000-8002",
      "VOLUME [\"/data\", \"/cache\"]",
      "STOPSIGNAL SIGINT",
      "HEALTHCHECK --interval=30s --retries=2 CMD curl -f http://localhost/",
      "ONBUILD RUN make",
  });
  const ContainerConfig& cc = c.config;
  EXPECT_EQ(cc.env, (std::vector<std::string>{"PATH=/usr/bin:/bin", "GREETING=hello world"}));
  EXPECT_EQ(cc.labels.at("org.example.name"), "my image");
  EXPECT_EQ(cc.labels.at("version"), "1");
  EXPECT_EQ(*cc.cmd, (std::vector<std::string>{"/bin/echo", "hello from layerfarm"}));
  EXPECT_EQ(cc.working_dir, "/srv/data");
  EXPECT_EQ(cc.user, "1000:1000");
  EXPECT_EQ(cc.exposed_ports,
            (std::set<std::string>{"80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp"}));
  EXPECT_EQ(cc.volumes, (std::set<std::string>{"/data", "/cache"}));
  EXPECT_EQ(cc.stop_signal, "SIGINT");
  ASSERT_TRUE(cc.healthcheck.has_value());
  EXPECT_EQ(cc.healthcheck->test,
            (std::vector<std::string>{"CMD-SHELL", "curl -f http://localhost/"}));
  EXPECT_EQ(cc.healthcheck->interval_ns, 30'000'000'000);
  EXPECT_EQ(cc.healthcheck->retries, 2);
  EXPECT_EQ(cc.on_build, std::vector<std::string>{"RUN make"});
}

TEST(ConfigChanges, ShellFormUsesShellAndEntrypointResetsUnsetCmd) {
  ImageConfig c = applyAll({"ENTRYPOINT echo hi"});
  EXPECT_EQ(*c.config.entrypoint, (std::vector<std::string>{"/bin/sh", "-c", "echo hi"}));
  EXPECT_FALSE(c.config.cmd.has_value());

  ImageConfig d = applyAll({"CMD [\"-l\"]", "ENTRYPOINT [\"/bin/ls\"]"});
  EXPECT_EQ(*d.config.cmd, std::vector<std::string>{"-l"}) << "a CMD set by a change is kept";
  EXPECT_EQ(*d.config.entrypoint, std::vector<std::string>{"/bin/ls"});
}

TEST(ConfigChanges, RejectsWithChangeName) {
  ImageConfig config;
  ConfigChanges changes(&config);
  Status run = changes.apply("RUN rm -rf /", "--change 3");
  EXPECT_EQ(run.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(run.message().find("--change 3"), std::string::npos) << run.message();
  EXPECT_NE(run.message().find("RUN is not allowed"), std::string::npos) << run.message();

  Status two = changes.apply("ENV A=1\nENV B=2", "--change 4");
  EXPECT_NE(two.message().find("exactly one instruction"), std::string::npos) << two.message();

  Status bad = changes.apply("EXPOSE notaport", "--change 5");
  EXPECT_FALSE(bad.isOk());
  EXPECT_NE(bad.message().find("--change 5"), std::string::npos) << bad.message();

  EXPECT_FALSE(changes.apply("FROM busybox", "--change 6").isOk());
  EXPECT_FALSE(changes.apply("", "--change 7").isOk());
}

}  // namespace
}  // namespace lf::oci
