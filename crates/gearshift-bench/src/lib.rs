//! Benchmark library: mock API, CPU work model, baselines and scenarios.
