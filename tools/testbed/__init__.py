"""The Plumbob testbed: a real control plane, simulated nodes and host-tree fixtures."""
