#include "common/dockerfile/commands.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

namespace lf::dockerfile {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

Flag flag(std::string name, std::optional<std::string> value = std::nullopt) {
  Flag f;
  f.name = std::move(name);
  f.value = std::move(value);
  f.raw = "--" + f.name + (f.value ? "=" + *f.value : "");
  f.pos = {3, 10};
  return f;
}

Instruction inst(std::string keyword, std::vector<std::string> args, std::vector<Flag> flags = {},
                 bool json = false) {
  Instruction i;
  i.keyword = std::move(keyword);
  i.args = std::move(args);
  i.flags = std::move(flags);
  i.json = json;
  i.pos = {3, 1};
  i.end_line = 3;
  return i;
}

Instruction pairs(std::string keyword, std::vector<KeyValue> kvs) {
  Instruction i = inst(std::move(keyword), {});
  for (const KeyValue& kv : kvs) {
    i.args.push_back(kv.key);
    if (kv.value) i.args.push_back(*kv.value);
  }
  i.pairs = std::move(kvs);
  return i;
}

class CommandsTest : public ::testing::Test {
 protected:
  shell::Lookup lookup() {
    return [this](std::string_view name) -> std::optional<std::string> {
      auto it = vars_.find(std::string(name));
      if (it == vars_.end()) return std::nullopt;
      return it->second;
    };
  }

  template <typename T>
  T decode(const Instruction& i, char escape = '\\') {
    referenced_.clear();
    DecodeOptions options;
    options.escape = escape;
    options.referenced = &referenced_;
    auto r = decodeInstruction(i, lookup(), options);
    EXPECT_TRUE(r.isOk()) << r.status().toString();
    if (!r.isOk()) return T{};
    EXPECT_TRUE(std::holds_alternative<T>(*r));
    return std::holds_alternative<T>(*r) ? std::get<T>(*r) : T{};
  }

  std::string decodeError(const Instruction& i) {
    auto r = decodeInstruction(i, lookup(), '\\', "dir/Dockerfile");
    EXPECT_FALSE(r.isOk());
    if (r.isOk()) return "";
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    return r.status().message();
  }

  std::map<std::string, std::string> vars_ = {
      {"TAG", "3.19"},  {"DIR", "/app"},    {"USER_ID", "1000"}, {"PORTS", "80 443/udp"},
      {"MODE", "0755"}, {"STAGE", "build"}, {"EMPTY", ""}};
  std::set<std::string, std::less<>> referenced_;
};

TEST_F(CommandsTest, FromExpandsImageAndPlatform) {
  auto from = decode<FromCommand>(
      inst("FROM", {"alpine:${TAG}", "as", "Builder"}, {flag("platform", "linux/${ARCH:-amd64}")}));
  EXPECT_EQ(from.image, "alpine:3.19");
  EXPECT_EQ(from.stage_name, "builder");
  EXPECT_EQ(from.platform, "linux/amd64");
  EXPECT_EQ(from.pos.line, 3);
  EXPECT_THAT(referenced_, ElementsAre("ARCH", "TAG"));
  auto plain = decode<FromCommand>(inst("FROM", {"scratch"}));
  EXPECT_EQ(plain.stage_name, "");
  EXPECT_FALSE(plain.platform.has_value());
}

TEST_F(CommandsTest, FromErrors) {
  EXPECT_THAT(decodeError(inst("FROM", {"a", "b"})), HasSubstr("one or three arguments"));
  EXPECT_THAT(decodeError(inst("FROM", {"a", "TO", "b"})), HasSubstr("expected 'AS'"));
  EXPECT_THAT(decodeError(inst("FROM", {"a", "AS", "1st"})), HasSubstr("invalid stage name"));
  EXPECT_THAT(decodeError(inst("FROM", {"a", "AS", "a/b"})), HasSubstr("invalid stage name"));
  EXPECT_THAT(decodeError(inst("FROM", {"$NOPE"})),
              HasSubstr("dir/Dockerfile:3:1: FROM: base image name '$NOPE' is empty"));
  EXPECT_THAT(decodeError(inst("FROM", {"a"}, {flag("platform")})),
              HasSubstr("dir/Dockerfile:3:10: FROM --platform: missing a value"));
  EXPECT_THAT(decodeError(inst("FROM", {"${TAG"})), HasSubstr("FROM: cannot expand '${TAG'"));
}

TEST_F(CommandsTest, RunKeepsCommandsUnexpanded) {
  auto shell = decode<RunCommand>(inst("RUN", {"echo $DIR && make"}));
  EXPECT_TRUE(shell.shell_form);
  EXPECT_THAT(shell.args, ElementsAre("echo $DIR && make"));
  EXPECT_TRUE(referenced_.empty());
  EXPECT_EQ(shell.network, NetworkMode::kDefault);
  EXPECT_EQ(shell.security, SecurityMode::kSandbox);
  auto exec = decode<RunCommand>(inst("RUN", {"echo", "$DIR"}, {}, /*json=*/true));
  EXPECT_FALSE(exec.shell_form);
  EXPECT_THAT(exec.args, ElementsAre("echo", "$DIR"));
}

TEST_F(CommandsTest, RunMountsNetworkSecurity) {
  auto run =
      decode<RunCommand>(inst("RUN", {"go build"},
                              {flag("mount", "type=cache,target=${DIR}/.cache,uid=$USER_ID"),
                               flag("mount", "type=ssh"), flag("mount", "type=ssh,id=github"),
                               flag("network", "none"), flag("security", "insecure")}));
  ASSERT_EQ(run.mounts.size(), 3u);
  EXPECT_EQ(run.mounts[0].type, MountType::kCache);
  EXPECT_EQ(run.mounts[0].target, "/app/.cache");
  EXPECT_EQ(run.mounts[0].uid, 1000u);
  EXPECT_EQ(run.mounts[1].target, "/run/buildkit/ssh_agent.0");
  EXPECT_EQ(run.mounts[2].target, "/run/buildkit/ssh_agent.1");
  EXPECT_EQ(run.mounts[2].id, "github");
  EXPECT_EQ(run.network, NetworkMode::kNone);
  EXPECT_EQ(run.security, SecurityMode::kInsecure);
  EXPECT_THAT(referenced_, ElementsAre("DIR", "USER_ID"));
}

TEST_F(CommandsTest, RunErrors) {
  EXPECT_THAT(decodeError(inst("RUN", {"x"}, {flag("mount", "type=foo,target=/x")})),
              HasSubstr("dir/Dockerfile:3:10: RUN --mount: unknown type 'foo'"));
  EXPECT_THAT(decodeError(inst("RUN", {"x"}, {flag("network", "bridge")})),
              HasSubstr("--network must be default, none or host"));
  EXPECT_THAT(decodeError(inst("RUN", {"x"}, {flag("security", "lax")})),
              HasSubstr("--security must be sandbox or insecure"));
  EXPECT_THAT(decodeError(inst("RUN", {"x"}, {flag("mount", "target=${X")})),
              HasSubstr("RUN --mount: cannot expand '${X'"));
  EXPECT_THAT(decodeError(inst("RUN", {"x"}, {flag("network", "none"), flag("network", "host")})),
              HasSubstr("--network given more than once"));
  EXPECT_THAT(decodeError(inst("RUN", {"x"}, {flag("chown", "1")})),
              HasSubstr("RUN: unknown flag --chown"));
  EXPECT_THAT(decodeError(inst("RUN", {})), HasSubstr("RUN requires a command"));
}

TEST_F(CommandsTest, RunHeredocsAreKeptAsWritten) {
  Instruction i = inst("RUN", {"<<EOF"});
  i.heredocs.push_back(Heredoc{"EOF", "echo $DIR\n", true, false});
  auto run = decode<RunCommand>(i);
  ASSERT_EQ(run.heredocs.size(), 1u);
  EXPECT_EQ(run.heredocs[0].content, "echo $DIR\n");
  EXPECT_TRUE(referenced_.empty());
}

TEST_F(CommandsTest, CopyExpandsSourcesDestAndFlags) {
  auto copy =
      decode<CopyCommand>(inst("COPY", {"src/$STAGE", "'a b'", "${DIR}/"},
                               {flag("from", "$STAGE"), flag("chown", "${USER_ID}:staff"),
                                flag("chmod", "$MODE"), flag("link"), flag("parents", "false"),
                                flag("exclude", "*.md"), flag("exclude", "$STAGE/tmp")}));
  EXPECT_FALSE(copy.is_add);
  EXPECT_THAT(copy.sources, ElementsAre("src/build", "a b"));
  EXPECT_EQ(copy.dest, "/app/");
  EXPECT_EQ(copy.from, "build");
  EXPECT_EQ(copy.chown, "1000:staff");
  EXPECT_EQ(copy.chmod, "0755");
  EXPECT_EQ(copy.chmod_octal, 0755u);
  EXPECT_TRUE(copy.link);
  EXPECT_FALSE(copy.parents);
  EXPECT_THAT(copy.excludes, ElementsAre("*.md", "build/tmp"));
  EXPECT_THAT(referenced_, ElementsAre("DIR", "MODE", "STAGE", "USER_ID"));
}

TEST_F(CommandsTest, CopyExecFormAndEscapedDollar) {
  auto copy = decode<CopyCommand>(inst("COPY", {"\\$DIR", "/quux"}));
  EXPECT_THAT(copy.sources, ElementsAre("$DIR"));
  auto json = decode<CopyCommand>(inst("COPY", {"my file", "$DIR"}, {}, true));
  EXPECT_THAT(json.sources, ElementsAre("my file"));
  EXPECT_EQ(json.dest, "/app");
  auto backtick = decode<CopyCommand>(inst("COPY", {"`$DIR", "C:\\dest"}), '`');
  EXPECT_THAT(backtick.sources, ElementsAre("$DIR"));
  EXPECT_EQ(backtick.dest, "C:\\dest");
  auto symbolic = decode<CopyCommand>(inst("COPY", {"a", "b"}, {flag("chmod", "u=rwX,go=rX")}));
  EXPECT_EQ(symbolic.chmod, "u=rwX,go=rX");
  EXPECT_FALSE(symbolic.chmod_octal.has_value());
}

TEST_F(CommandsTest, CopyHeredocsBecomeInlineSources) {
  Instruction i = inst("COPY", {"<<EOF", "<<'RAW'", "/etc/"});
  i.heredocs.push_back(Heredoc{"EOF", "dir=$DIR \"q\"\n", true, false});
  i.heredocs.push_back(Heredoc{"RAW", "dir=$DIR\n", false, false});
  auto copy = decode<CopyCommand>(i);
  EXPECT_TRUE(copy.sources.empty());
  ASSERT_EQ(copy.inline_sources.size(), 2u);
  EXPECT_EQ(copy.inline_sources[0].name, "EOF");
  EXPECT_EQ(copy.inline_sources[0].content, "dir=/app \"q\"\n");
  EXPECT_EQ(copy.inline_sources[1].content, "dir=$DIR\n");
  EXPECT_EQ(copy.dest, "/etc/");
  EXPECT_THAT(referenced_, ElementsAre("DIR"));
}

TEST_F(CommandsTest, CopyErrors) {
  EXPECT_THAT(decodeError(inst("COPY", {"a", "b"}, {flag("chmod", "9z")})),
              HasSubstr("dir/Dockerfile:3:10: COPY --chmod=9z: invalid mode"));
  EXPECT_THAT(decodeError(inst("COPY", {"only"})), HasSubstr("requires at least two arguments"));
  EXPECT_THAT(decodeError(inst("COPY", {"a", "b"}, {flag("chown", ":grp")})),
              HasSubstr("COPY --chown=:grp: invalid owner"));
  EXPECT_THAT(decodeError(inst("COPY", {"a", "b"}, {flag("link", "maybe")})),
              HasSubstr("COPY --link=maybe: expecting a boolean"));
  EXPECT_THAT(decodeError(inst("COPY", {"a", "b"}, {flag("checksum", "sha256:00")})),
              HasSubstr("COPY: unknown flag --checksum"));
  EXPECT_THAT(decodeError(inst("COPY", {"a", "b"}, {flag("from", "$EMPTY")})),
              HasSubstr("COPY --from is empty"));
  EXPECT_THAT(decodeError(inst("COPY", {"a", "$EMPTY"})), HasSubstr("is empty after expansion"));
  EXPECT_THAT(decodeError(inst("COPY", {"a'", "b"})), HasSubstr("unterminated single-quoted"));
}

TEST_F(CommandsTest, AddFlags) {
  std::string digest = "sha256:" + std::string(64, 'a');
  auto add = decode<CopyCommand>(inst("ADD", {"https://example.com/x.tgz", "/x"},
                                      {flag("checksum", digest), flag("unpack", "true"),
                                       flag("keep-git-dir", "true"), flag("link", "false")}));
  EXPECT_TRUE(add.is_add);
  EXPECT_EQ(add.checksum, digest);
  EXPECT_EQ(add.unpack, true);
  EXPECT_TRUE(add.keep_git_dir);
  EXPECT_FALSE(add.link);
  auto git = decode<CopyCommand>(inst("ADD", {"git@github.com:moby/buildkit.git#v0.10.1", "/b"},
                                      {flag("checksum", "be1f38e")}));
  EXPECT_EQ(git.checksum, "be1f38e");
  auto none = decode<CopyCommand>(inst("ADD", {"a.tar", "/"}));
  EXPECT_FALSE(none.unpack.has_value());
  EXPECT_THAT(decodeError(inst("ADD", {"local.txt", "/"}, {flag("checksum", digest)})),
              HasSubstr("one HTTP(S) or Git source"));
  EXPECT_THAT(decodeError(inst("ADD", {"https://x/y", "/"}, {flag("checksum", "md5:abc")})),
              HasSubstr("ADD --checksum=md5:abc"));
  EXPECT_THAT(decodeError(inst("ADD", {"a", "b"}, {flag("from", "x")})),
              HasSubstr("ADD: unknown flag --from"));
}

TEST_F(CommandsTest, EnvUsesOneScopeForTheWholeInstruction) {
  vars_["abc"] = "hello";
  auto env = decode<EnvCommand>(pairs("ENV", {{"abc", "bye"}, {"def", "$abc"}, {"x", "\"a b\""}}));
  EXPECT_THAT(env.pairs, ElementsAre(Pair("abc", "bye"), Pair("def", "hello"), Pair("x", "a b")));
  EXPECT_THAT(referenced_, ElementsAre("abc"));
  auto label = decode<LabelCommand>(pairs("LABEL", {{"\"com.example.v\"", "${TAG}-x"}}));
  EXPECT_THAT(label.pairs, ElementsAre(Pair("com.example.v", "3.19-x")));
  EXPECT_THAT(decodeError(pairs("ENV", {{"K", std::nullopt}})),
              HasSubstr("ENV K: missing a value"));
  EXPECT_THAT(decodeError(pairs("LABEL", {{"$EMPTY", "v"}})), HasSubstr("names can not be blank"));
  EXPECT_THAT(decodeError(inst("ENV", {})), HasSubstr("ENV requires at least one argument"));
}

TEST_F(CommandsTest, EnvFromArgsWhenPairsAreMissing) {
  auto env = decode<EnvCommand>(inst("ENV", {"A", "1", "B", "$TAG"}));
  EXPECT_THAT(env.pairs, ElementsAre(Pair("A", "1"), Pair("B", "3.19")));
}

TEST_F(CommandsTest, ArgExpandsDefaultsOnly) {
  auto arg = decode<ArgCommand>(pairs("ARG", {{"$NAME", std::nullopt}, {"V", "${TAG}"}}));
  ASSERT_EQ(arg.args.size(), 2u);
  EXPECT_EQ(arg.args[0].name, "$NAME");  // names are not expanded
  EXPECT_FALSE(arg.args[0].default_value.has_value());
  EXPECT_EQ(arg.args[1].default_value, "3.19");
  EXPECT_THAT(referenced_, ElementsAre("TAG"));
  auto fallback = decode<ArgCommand>(inst("ARG", {"A=1", "B"}));
  ASSERT_EQ(fallback.args.size(), 2u);
  EXPECT_EQ(fallback.args[0].default_value, "1");
  EXPECT_THAT(decodeError(pairs("ARG", {{"", "x"}})), HasSubstr("ARG: invalid name"));
}

TEST_F(CommandsTest, SingleStringInstructions) {
  EXPECT_EQ(decode<WorkdirCommand>(inst("WORKDIR", {"${DIR}/src"})).path, "/app/src");
  EXPECT_EQ(decode<UserCommand>(inst("USER", {"${USER_ID}:1000"})).user, "1000:1000");
  EXPECT_EQ(decode<StopsignalCommand>(inst("STOPSIGNAL", {"SIGTERM"})).signal, "SIGTERM");
  vars_["SIG"] = "9";
  EXPECT_EQ(decode<StopsignalCommand>(inst("STOPSIGNAL", {"$SIG"})).signal, "9");
  EXPECT_EQ(decode<MaintainerCommand>(inst("MAINTAINER", {"Jane $DIR <j@x>"})).name,
            "Jane $DIR <j@x>");
  EXPECT_THAT(decodeError(inst("STOPSIGNAL", {"SIGNOPE"})), HasSubstr("invalid signal 'SIGNOPE'"));
  EXPECT_THAT(decodeError(inst("WORKDIR", {"a", "b"})), HasSubstr("exactly one argument"));
  EXPECT_THAT(decodeError(inst("WORKDIR", {"$EMPTY"})), HasSubstr("empty after expansion"));
  EXPECT_THAT(decodeError(inst("USER", {"a"}, {flag("x")})), HasSubstr("USER: unknown flag --x"));
}

TEST_F(CommandsTest, CmdEntrypointShellAreNotExpanded) {
  auto cmd = decode<CmdCommand>(inst("CMD", {"echo $DIR"}));
  EXPECT_TRUE(cmd.shell_form);
  EXPECT_THAT(cmd.args, ElementsAre("echo $DIR"));
  auto ep = decode<EntrypointCommand>(inst("ENTRYPOINT", {"/bin/app", "$DIR"}, {}, true));
  EXPECT_FALSE(ep.shell_form);
  EXPECT_THAT(ep.args, ElementsAre("/bin/app", "$DIR"));
  auto sh = decode<ShellCommand>(inst("SHELL", {"/bin/bash", "-c"}, {}, true));
  EXPECT_THAT(sh.args, ElementsAre("/bin/bash", "-c"));
  EXPECT_TRUE(referenced_.empty());
  EXPECT_THAT(decodeError(inst("SHELL", {"/bin/bash -c"})), HasSubstr("JSON form"));
  EXPECT_THAT(decodeError(inst("SHELL", {}, {}, true)), HasSubstr("at least one argument"));
}

TEST_F(CommandsTest, ExposeSplitsExpandedWords) {
  auto expose = decode<ExposeCommand>(inst("EXPOSE", {"$PORTS", "8000-8010/tcp", "\"9000\""}));
  EXPECT_THAT(expose.ports, ElementsAre("80", "443/udp", "8000-8010/tcp", "9000"));
  ASSERT_EQ(expose.specs.size(), 4u);
  EXPECT_EQ(expose.specs[1].protocol, "udp");
  EXPECT_EQ(expose.specs[2].first, 8000);
  EXPECT_EQ(expose.specs[2].last, 8010);
  EXPECT_THAT(decodeError(inst("EXPOSE", {"80/icmp"})), HasSubstr("EXPOSE: invalid protocol"));
  EXPECT_THAT(decodeError(inst("EXPOSE", {"99999"})), HasSubstr("EXPOSE: invalid port"));
  EXPECT_THAT(decodeError(inst("EXPOSE", {"$EMPTY"})), HasSubstr("no ports left"));
}

TEST_F(CommandsTest, Volume) {
  auto vol = decode<VolumeCommand>(inst("VOLUME", {"$DIR/data", "/logs"}));
  EXPECT_THAT(vol.paths, ElementsAre("/app/data", "/logs"));
  EXPECT_THAT(decodeError(inst("VOLUME", {"$EMPTY"})), HasSubstr("can not be an empty string"));
}

TEST_F(CommandsTest, Healthcheck) {
  auto hc = decode<HealthcheckCommand>(
      inst("HEALTHCHECK", {"CMD", "curl -f http://localhost/ || exit 1"},
           {flag("interval", "1m30s"), flag("timeout", "10s"), flag("start-period", "0"),
            flag("start-interval", "500ms"), flag("retries", "5")}));
  EXPECT_FALSE(hc.none);
  EXPECT_TRUE(hc.shell_form);
  EXPECT_THAT(hc.args, ElementsAre("curl -f http://localhost/ || exit 1"));
  EXPECT_EQ(hc.interval_ns, 90'000'000'000);
  EXPECT_EQ(hc.timeout_ns, 10'000'000'000);
  EXPECT_EQ(hc.start_period_ns, 0);
  EXPECT_EQ(hc.start_interval_ns, 500'000'000);
  EXPECT_EQ(hc.retries, 5);
  auto exec =
      decode<HealthcheckCommand>(inst("HEALTHCHECK", {"CMD", "/bin/check", "-q"}, {}, true));
  EXPECT_FALSE(exec.shell_form);
  EXPECT_THAT(exec.args, ElementsAre("/bin/check", "-q"));
  EXPECT_FALSE(exec.interval_ns.has_value());
  EXPECT_TRUE(decode<HealthcheckCommand>(inst("HEALTHCHECK", {"none"})).none);
}

TEST_F(CommandsTest, HealthcheckErrors) {
  EXPECT_THAT(decodeError(inst("HEALTHCHECK", {"NONE", "x"})), HasSubstr("takes no arguments"));
  EXPECT_THAT(decodeError(inst("HEALTHCHECK", {"PING", "x"})), HasSubstr("unknown type 'PING'"));
  EXPECT_THAT(decodeError(inst("HEALTHCHECK", {"CMD"})), HasSubstr("requires a command"));
  EXPECT_THAT(
      decodeError(inst("HEALTHCHECK", {"CMD", "true"}, {flag("interval", "30")})),
      HasSubstr("dir/Dockerfile:3:10: HEALTHCHECK --interval=30: missing unit in duration"));
  EXPECT_THAT(decodeError(inst("HEALTHCHECK", {"CMD", "true"}, {flag("timeout", "-1s")})),
              HasSubstr("cannot be negative"));
  EXPECT_THAT(decodeError(inst("HEALTHCHECK", {"CMD", "true"}, {flag("timeout", "10us")})),
              HasSubstr("cannot be less than 1ms"));
  EXPECT_THAT(decodeError(inst("HEALTHCHECK", {"CMD", "true"}, {flag("retries", "-3")})),
              HasSubstr("--retries=-3: must be a non-negative integer"));
  EXPECT_THAT(decodeError(inst("HEALTHCHECK", {"CMD", "true"}, {flag("retries", "x")})),
              HasSubstr("--retries=x"));
}

TEST_F(CommandsTest, Onbuild) {
  Instruction i = inst("ONBUILD", {"RUN make $TARGET"});
  i.trigger = std::make_unique<Instruction>(inst("RUN", {"make $TARGET"}));
  auto on = decode<OnbuildCommand>(i);
  EXPECT_EQ(on.trigger, "RUN make $TARGET");
  EXPECT_EQ(on.trigger_keyword, "RUN");
  EXPECT_TRUE(referenced_.empty());
  EXPECT_EQ(decode<OnbuildCommand>(inst("ONBUILD", {"copy . /app"})).trigger_keyword, "COPY");
  EXPECT_THAT(decodeError(inst("ONBUILD", {"ONBUILD RUN x"})), HasSubstr("cannot be chained"));
  EXPECT_THAT(decodeError(inst("ONBUILD", {"FROM x"})), HasSubstr("FROM isn't allowed"));
  EXPECT_THAT(decodeError(inst("ONBUILD", {"MAINTAINER me"})), HasSubstr("MAINTAINER isn't"));
  EXPECT_THAT(decodeError(inst("ONBUILD", {"FORM x"})), HasSubstr("unknown trigger"));
  EXPECT_THAT(decodeError(inst("ONBUILD", {})), HasSubstr("requires an instruction"));
}

TEST_F(CommandsTest, UnknownInstruction) {
  EXPECT_THAT(decodeError(inst("FORM", {"x"})),
              HasSubstr("dir/Dockerfile:3:1: unknown instruction: FORM"));
}

TEST_F(CommandsTest, CommandPosition) {
  auto r = decodeInstruction(inst("USER", {"app"}), lookup());
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(commandPosition(*r).line, 3);
  EXPECT_EQ(commandPosition(*r).column, 1);
}

}  // namespace
}  // namespace lf::dockerfile
