// ControllerCore: the controller's core wired as cutover-controller wires it - store, state, hub,
// migration driver and REST API - but on an in-memory store and a manual clock, with the shared
// token "t0ken" and the read-only token "r3ad". The REST unit tests and the REST fuzz target
// drive it through RestApi::handle.
#pragma once

#include "rest_api.hpp"
#include "scheduler.hpp"
#include "store.hpp"

namespace cutover::testing {

struct ControllerCore {
  controller::MemoryStore store;
  controller::ControllerState state{store};
  controller::AgentHub hub{state};
  controller::ManualScheduler clock;
  controller::Metrics metrics;
  controller::MigrationDriver driver{state, hub, clock, metrics, {}};
  controller::Inventory inventory{state, hub, clock, {}};
  controller::RestApi api{state,
                          hub,
                          driver,
                          inventory,
                          metrics,
                          controller::Access("t0ken", "r3ad"),
                          "openapi: 3.0.3\n"};
};

}  // namespace cutover::testing
