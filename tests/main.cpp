// Shared doctest main. Tests use small shapes, so the parallel threshold is
// lowered here: otherwise every multi-thread test would silently run serial
// and the threaded code paths would go untested.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "salted/core/parallel.hpp"

int main(int argc, char** argv) {
    salted::set_parallel_min_flops(10000);
    doctest::Context context(argc, argv);
    return context.run();
}
