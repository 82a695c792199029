// One conformance suite for every Store backend. A backend's test file
// instantiates it with a factory:
//   INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest, ::testing::Values(&MakeMyStore));
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "storage/store.h"

namespace qsweep {

using StoreFactory = std::unique_ptr<Store> (*)();

class StoreConformanceTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    store_ = GetParam()();
    ASSERT_NE(store_, nullptr);
  }
  std::unique_ptr<Store> store_;
};

// Test data helpers shared with backend-specific tests.
v1::Sweep TestSweep(const std::string& id, const std::string& key = "");
v1::Job TestJob(const std::string& sweep_id, int index, v1::JobState state = v1::PENDING);

}  // namespace qsweep
