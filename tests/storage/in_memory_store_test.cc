#include "tests/storage/store_conformance.h"

namespace qsweep {
namespace {

INSTANTIATE_TEST_SUITE_P(InMemory, StoreConformanceTest, ::testing::Values(&NewInMemoryStore));

}  // namespace
}  // namespace qsweep
