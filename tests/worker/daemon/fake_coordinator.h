#pragma once

// FakeCoordinator: a small WebSocket server on 127.0.0.1 (port 0) speaking the worker protocol
// for tests of the worker daemon. Its own io thread accepts connections, refuses a wrong bearer
// token with HTTP 401, answers Register with Registered{accepted, heartbeat 100 ms} (unless
// setAutoRegister(false)) and records every WorkerMessage for waitFor(). Beast lives in
// fake_coordinator.cpp only. Thread-safe.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proto/layerfarm/v1/worker_protocol.pb.h"

namespace lf::worker::daemon_test {

class FakeCoordinator {
 public:
  explicit FakeCoordinator(std::string token);
  ~FakeCoordinator();

  uint16_t port() const;
  std::string url() const;  // ws://127.0.0.1:<port>/v1/workers

  // To the latest connection (dropped if there is none).
  void send(const layerfarm::v1::CoordinatorMessage& m);
  void sendRaw(std::string bytes, bool text);
  // Closes the latest connection abruptly (no close frame).
  void dropConnection();
  void setAutoRegister(bool on);

  // Waits for a recorded message matching `pred` that no earlier waitFor took; marks it taken.
  std::optional<layerfarm::v1::WorkerMessage> waitFor(
      std::function<bool(const layerfarm::v1::WorkerMessage&)> pred,
      std::chrono::milliseconds timeout = std::chrono::seconds(20));
  std::vector<layerfarm::v1::WorkerMessage> all() const;
  int handshakes() const;  // accepted WebSocket handshakes
  int refused() const;     // handshakes refused for a wrong token

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lf::worker::daemon_test
