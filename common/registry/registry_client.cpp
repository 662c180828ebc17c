// RegistryClient core: requests with auth, redirects and retries; manifests and tags.
// Blob transfers are in registry_blobs.cpp.

#include "common/registry/registry_client.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/registry/registry_client_state.h"

namespace lf::registry {

namespace {

std::string scopeKey(std::vector<std::string> scopes) {
  std::sort(scopes.begin(), scopes.end());
  std::string key;
  for (const auto& s : scopes) key += s + " ";
  return key;
}

std::optional<int> retryAfterMs(const HttpResponse& res) {
  auto value = res.headers.get("Retry-After");
  if (!value || value->empty() || value->size() > 6) return std::nullopt;
  int seconds = 0;
  for (char c : *value) {
    if (c < '0' || c > '9') return std::nullopt;  // HTTP-date form: use our own backoff
    seconds = seconds * 10 + (c - '0');
  }
  return seconds * 1000;
}

bool retryableStatus(int status) {
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

}  // namespace

std::string pullScope(std::string_view repository) {
  return fmt::format("repository:{}:pull", repository);
}
std::string pushScope(std::string_view repository) {
  return fmt::format("repository:{}:pull,push", repository);
}

RegistryClient::RegistryClient(RegistryConfig config, std::unique_ptr<HttpClient> http)
    : config_(std::move(config)), http_(std::move(http)), state_(std::make_unique<State>()) {}
RegistryClient::~RegistryClient() = default;

Result<std::unique_ptr<RegistryClient>> RegistryClient::create(RegistryConfig config) {
  LF_ASSIGN_OR_RETURN(auto http, HttpClient::create(config.http));
  if (config.max_attempts < 1 || config.upload_chunk_bytes == 0 ||
      config.max_parallel_uploads == 0 || config.max_parallel_downloads == 0) {
    return invalidArgument(
        "registry config: max_attempts, upload_chunk_bytes and max_parallel_* must be positive");
  }
  return std::unique_ptr<RegistryClient>(new RegistryClient(std::move(config), std::move(http)));
}

RegistryClient::Counters RegistryClient::counters() const {
  Counters c;
  c.requests = state_->requests;
  c.retries = state_->retries;
  c.token_fetches = state_->token_fetches;
  c.blob_uploads = state_->blob_uploads;
  c.blob_mounts = state_->blob_mounts;
  c.upload_chunks = state_->upload_chunks;
  c.resumed_downloads = state_->resumed_downloads;
  return c;
}

std::string RegistryClient::schemeFor(const std::string& host) const {
  std::string bare = host.substr(0, host.rfind(':'));
  for (const auto& h : config_.insecure_registries) {
    if (h == host || h == bare) return "http";
  }
  return "https";
}

void RegistryClient::sleepBackoff(int attempt, std::optional<int> retry_after_ms) {
  int delay_ms;
  if (retry_after_ms) {
    delay_ms = std::min(*retry_after_ms, config_.max_retry_after_ms);
  } else {
    int64_t base = static_cast<int64_t>(config_.initial_backoff_ms) << std::min(attempt, 20);
    base = std::min<int64_t>(base, config_.max_backoff_ms);
    double jitter;
    {
      std::lock_guard lock(state_->mu);
      jitter = std::uniform_real_distribution<double>(0.5, 1.0)(state_->rng);
    }
    delay_ms = static_cast<int>(static_cast<double>(base) * jitter);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
}

Status RegistryClient::httpError(const HttpResponse& res, std::string_view what) {
  std::string msg =
      fmt::format("{}: registry answered {}: {}", what, res.status, summariseErrorBody(res.body));
  if (res.status == 401) {
    return permissionDenied(msg + " (authentication failed)");
  }
  if (res.status == 403) return permissionDenied(msg);
  if (res.status == 404) return notFound(msg);
  if (res.status == 416) return failedPrecondition(msg);
  if (res.status == 429 || res.status >= 500) return unavailable(msg);
  return invalidArgument(msg);
}

Result<HttpResponse> RegistryClient::sendWithRetry(HttpRequest& req, const Call& call) {
  for (int attempt = 0;; ++attempt) {
    if (call.before_attempt) call.before_attempt(req);
    ++state_->requests;
    auto res = http_->send(req, call.stream);
    bool last = !call.retry || attempt + 1 >= config_.max_attempts;
    if (!res.isOk()) {
      if (res.status().code() != StatusCode::kUnavailable || last) {
        return res.status().withContext(call.what);
      }
      ++state_->retries;
      sleepBackoff(attempt, std::nullopt);
      continue;
    }
    if (!retryableStatus(res->status) || last) {
      return res;
    }
    ++state_->retries;
    sleepBackoff(attempt, retryAfterMs(*res));
  }
}

Result<HttpResponse> RegistryClient::execute(Call call) {
  HttpRequest req;
  req.method = call.method;
  req.headers = call.headers;
  req.body = call.body;
  req.max_response_bytes = call.max_response_bytes;
  if (call.url) {
    req.url = *call.url;
  } else {
    LF_ASSIGN_OR_RETURN(req.url,
                        Url::parse(schemeFor(call.host) + "://" + call.host + call.target));
  }
  const std::string registry_origin = req.url.origin();
  int auth_rounds = 0;
  int redirects = 0;
  std::string rejected;  // the Authorization value the registry last answered 401 to
  while (true) {
    req.headers.remove("Authorization");
    if (req.url.origin() == registry_origin) {
      LF_ASSIGN_OR_RETURN(auto auth, authorization(call.host, call.scopes, rejected));
      if (auth) req.headers.set("Authorization", *auth);
    }
    LF_ASSIGN_OR_RETURN(HttpResponse res, sendWithRetry(req, call));
    if (res.status == 401 && req.url.origin() == registry_origin) {
      if (++auth_rounds > 2) {
        return httpError(res, call.what);
      }
      LF_RETURN_IF_ERROR(learnChallenge(call.host, res, call.what));
      rejected = req.headers.get("Authorization").value_or("");
      continue;
    }
    bool redirect = res.status == 301 || res.status == 302 || res.status == 303 ||
                    res.status == 307 || res.status == 308;
    if (redirect) {
      auto location = res.headers.get("Location");
      if (!location) {
        return unavailable(fmt::format("{}: redirect {} without Location", call.what, res.status));
      }
      if (++redirects > config_.max_redirects) {
        return unavailable(
            fmt::format("{}: more than {} redirects", call.what, config_.max_redirects));
      }
      LF_ASSIGN_OR_RETURN(req.url, req.url.resolve(*location));
      if (res.status == 303 || ((res.status == 301 || res.status == 302) && req.method == "POST")) {
        req.method = "GET";
        req.body.clear();
      }
      continue;
    }
    return res;
  }
}

Status RegistryClient::learnChallenge(const std::string& host, const HttpResponse& res,
                                      std::string_view what) {
  auto header = res.headers.get("WWW-Authenticate");
  if (!header) {
    return permissionDenied(fmt::format("{}: registry answered 401 without a challenge", what));
  }
  auto challenges = parseChallenges(*header);
  if (!challenges.isOk()) {
    return challenges.status().withContext(what);
  }
  const Challenge* chosen = nullptr;
  for (const auto& c : *challenges) {
    if (c.scheme == "bearer" || (c.scheme == "basic" && chosen == nullptr)) chosen = &c;
  }
  if (chosen == nullptr) {
    return unimplemented(fmt::format("{}: unsupported authentication scheme \"{}\"", what,
                                     challenges->front().scheme));
  }
  std::lock_guard lock(state_->mu);
  auto& host_auth = state_->hosts[host];
  host_auth.challenge = *chosen;
  return Status::ok();
}

Result<std::optional<std::string>> RegistryClient::authorization(
    const std::string& host, const std::vector<std::string>& scopes, const std::string& rejected) {
  std::string key = scopeKey(scopes);
  // A cached token for these scopes, unless it is the one the registry just refused.
  auto cached = [&]() -> std::optional<std::string> {
    auto& host_auth = state_->hosts[host];
    auto it = host_auth.tokens.find(key);
    if (it != host_auth.tokens.end() &&
        it->second.expires > std::chrono::steady_clock::now() + std::chrono::seconds(5) &&
        "Bearer " + it->second.token != rejected) {
      return "Bearer " + it->second.token;
    }
    return std::nullopt;
  };
  std::optional<Challenge> challenge;
  {
    std::lock_guard lock(state_->mu);
    challenge = state_->hosts[host].challenge;
    if (!challenge) return std::optional<std::string>();
    if (challenge->scheme == "bearer") {
      if (auto header = cached()) return header;
    }
  }
  if (challenge->scheme == "basic") {
    auto creds = config_.credentials.lookup(host);
    if (!creds || creds->username.empty()) {
      return permissionDenied(fmt::format(
          "registry {} requires authentication (Basic) and no credentials are configured for it",
          host));
    }
    return std::optional<std::string>("Basic " +
                                      base64Encode(creds->username + ":" + creds->password));
  }
  // One token fetch at a time: parallel uploads that all hit a 401 at once then share the token
  // the first of them fetched instead of each asking the realm.
  std::lock_guard fetch_lock(state_->token_fetch_mu);
  {
    std::lock_guard lock(state_->mu);
    if (auto header = cached()) return header;
  }
  LF_ASSIGN_OR_RETURN(BearerToken token, fetchToken(host, *challenge, scopes));
  std::string header = "Bearer " + token.token;
  std::lock_guard lock(state_->mu);
  state_->hosts[host].tokens[key] = std::move(token);
  return std::optional<std::string>(std::move(header));
}

Result<BearerToken> RegistryClient::fetchToken(const std::string& host, const Challenge& challenge,
                                               const std::vector<std::string>& scopes) {
  auto realm_it = challenge.params.find("realm");
  if (realm_it == challenge.params.end()) {
    return permissionDenied(fmt::format("registry {}: Bearer challenge without realm", host));
  }
  auto realm = Url::parse(realm_it->second);
  if (!realm.isOk()) {
    return realm.status().withContext(fmt::format("registry {}: token realm", host));
  }
  if (realm->scheme == "http" && schemeFor(host) == "https") {
    return permissionDenied(
        fmt::format("registry {}: refusing to send credentials to plain-HTTP token realm {}", host,
                    realm_it->second));
  }
  std::vector<std::string> all_scopes = scopes;
  if (auto s = challenge.params.find("scope"); s != challenge.params.end() && !s->second.empty()) {
    if (std::find(all_scopes.begin(), all_scopes.end(), s->second) == all_scopes.end()) {
      all_scopes.push_back(s->second);
    }
  }
  std::string query;
  if (auto s = challenge.params.find("service"); s != challenge.params.end()) {
    query += "service=" + urlEncode(s->second);
  }
  for (const auto& scope : all_scopes) {
    query += (query.empty() ? "" : "&") + std::string("scope=") + urlEncode(scope);
  }
  HttpRequest req;
  req.url = *realm;
  if (!query.empty()) {
    req.url.target += (req.url.target.find('?') == std::string::npos ? "?" : "&") + query;
  }
  auto creds = config_.credentials.lookup(host);
  if (creds && !creds->username.empty()) {
    req.headers.set("Authorization",
                    "Basic " + base64Encode(creds->username + ":" + creds->password));
  }
  req.max_response_bytes = 1 << 20;
  Call call;
  call.what = fmt::format("get token from {}", realm->origin());
  ++state_->token_fetches;
  LF_ASSIGN_OR_RETURN(HttpResponse res, sendWithRetry(req, call));
  if (res.status != 200) {
    return httpError(res, call.what);
  }
  auto token = parseTokenResponse(res.body, std::chrono::steady_clock::now());
  if (!token.isOk()) return token.status().withContext(call.what);
  return token;
}

Status RegistryClient::ping(const std::string& host) {
  Call call;
  call.host = host;
  call.target = "/v2/";
  call.what = fmt::format("ping {}", host);
  LF_ASSIGN_OR_RETURN(HttpResponse res, execute(std::move(call)));
  if (res.status != 200) return httpError(res, fmt::format("ping {}", host));
  return Status::ok();
}

namespace {

std::string acceptAll() {
  return fmt::format("{}, {}, {}, {}", kOciManifestType, kOciIndexType, kDockerManifestType,
                     kDockerManifestListType);
}

std::string contentType(const HttpResponse& res) {
  std::string type = res.headers.get("Content-Type").value_or("");
  return type.substr(0, type.find(';'));
}

}  // namespace

Result<ManifestHead> RegistryClient::headManifest(const Repository& repo,
                                                  std::string_view reference) {
  Call call;
  call.method = "HEAD";
  call.host = repo.host;
  call.target = fmt::format("/v2/{}/manifests/{}", repo.name, reference);
  call.headers.set("Accept", acceptAll());
  call.scopes = {pullScope(repo.name)};
  call.what = fmt::format("HEAD manifest {}:{}", repo.toString(), reference);
  std::string what = call.what;
  LF_ASSIGN_OR_RETURN(HttpResponse res, execute(std::move(call)));
  if (res.status != 200) return httpError(res, what);
  auto digest_header = res.headers.get("Docker-Content-Digest");
  if (!digest_header) {
    // Not every registry sends the digest on HEAD; the body tells us.
    LF_ASSIGN_OR_RETURN(FetchedManifest m, getManifest(repo, reference));
    return ManifestHead{m.digest, m.media_type, m.bytes.size()};
  }
  auto digest = Digest::parse(*digest_header);
  if (!digest.isOk()) {
    return dataLoss(fmt::format("{}: bad Docker-Content-Digest \"{}\"", what, *digest_header));
  }
  ManifestHead head{*digest, contentType(res), 0};
  if (auto len = res.headers.get("Content-Length")) {
    head.size = std::strtoull(len->c_str(), nullptr, 10);
  }
  return head;
}

Result<FetchedManifest> RegistryClient::getManifest(const Repository& repo,
                                                    std::string_view reference) {
  Call call;
  call.host = repo.host;
  call.target = fmt::format("/v2/{}/manifests/{}", repo.name, reference);
  call.headers.set("Accept", acceptAll());
  call.scopes = {pullScope(repo.name)};
  call.max_response_bytes = config_.max_manifest_bytes;
  call.what = fmt::format("GET manifest {}:{}", repo.toString(), reference);
  std::string what = call.what;
  LF_ASSIGN_OR_RETURN(HttpResponse res, execute(std::move(call)));
  if (res.status != 200) return httpError(res, what);
  FetchedManifest m;
  m.digest = Digest::sha256Of(res.body);
  m.media_type = contentType(res);
  if (auto expected = Digest::parse(reference); expected.isOk() && *expected != m.digest) {
    return dataLoss(
        fmt::format("{}: content has digest {}, not the one requested", what, m.digest.toString()));
  }
  if (auto header = res.headers.get("Docker-Content-Digest");
      header && *header != m.digest.toString()) {
    return dataLoss(fmt::format("{}: content has digest {} but the registry said {}", what,
                                m.digest.toString(), *header));
  }
  m.bytes = std::move(res.body);
  return m;
}

Result<Digest> RegistryClient::putManifest(const Repository& repo, std::string_view reference,
                                           std::string_view media_type, std::string_view bytes) {
  Call call;
  call.method = "PUT";
  call.host = repo.host;
  call.target = fmt::format("/v2/{}/manifests/{}", repo.name, reference);
  call.headers.set("Content-Type", std::string(media_type));
  call.body = std::string(bytes);
  call.scopes = {pushScope(repo.name)};
  call.what = fmt::format("PUT manifest {}:{}", repo.toString(), reference);
  std::string what = call.what;
  LF_ASSIGN_OR_RETURN(HttpResponse res, execute(std::move(call)));
  if (res.status != 201 && res.status != 200) return httpError(res, what);
  Digest digest = Digest::sha256Of(bytes);
  if (auto header = res.headers.get("Docker-Content-Digest");
      header && *header != digest.toString()) {
    return dataLoss(
        fmt::format("{}: registry stored digest {}, we sent {}", what, *header, digest.toString()));
  }
  return digest;
}

Result<std::vector<std::string>> RegistryClient::listTags(const Repository& repo) {
  std::vector<std::string> tags;
  std::string target = fmt::format("/v2/{}/tags/list", repo.name);
  for (int page = 0; page < 1000 && !target.empty(); ++page) {
    Call call;
    call.host = repo.host;
    call.target = target;
    call.scopes = {pullScope(repo.name)};
    call.max_response_bytes = config_.max_manifest_bytes;
    call.what = fmt::format("list tags of {}", repo.toString());
    std::string what = call.what;
    LF_ASSIGN_OR_RETURN(HttpResponse res, execute(std::move(call)));
    if (res.status != 200) return httpError(res, what);
    auto doc = nlohmann::json::parse(res.body, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object()) {
      return dataLoss(fmt::format("{}: answer is not a JSON object", what));
    }
    if (auto it = doc.find("tags"); it != doc.end() && it->is_array()) {
      for (const auto& t : *it) {
        if (!t.is_string()) return dataLoss(fmt::format("{}: \"tags\" holds a non-string", what));
        tags.push_back(t.get<std::string>());
      }
    }
    // Link: </v2/name/tags/list?last=x&n=100>; rel="next"
    target.clear();
    if (auto link = res.headers.get("Link");
        link && link->find("rel=\"next\"") != std::string::npos) {
      size_t open = link->find('<');
      size_t close = link->find('>');
      if (open != std::string::npos && close != std::string::npos && close > open + 1 &&
          (*link)[open + 1] == '/') {
        target = link->substr(open + 1, close - open - 1);
      }
    }
  }
  return tags;
}

}  // namespace lf::registry
