"""The rcc projection oracle and the shifted-candidate study (README.md here, docs/rcc.md §7-§8)."""
