"""The one pipeline every entry point calls: Settings -> compute_result -> Result, and what is built on it
(result bundles, precompute, sweeps, exports, cache management). Nothing here imports the UI."""
