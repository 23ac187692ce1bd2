"""Cost counting and benchmarks."""
