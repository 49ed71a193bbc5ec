"""Hardware half: workloads, platforms, accelerator templates and search engines."""
