"""Names of the rcc ODE-tail solvers and candidate families (no JAX: the codec's parameter
declarations and the command line read them; :mod:`gvc_jax.sampler.rcc` implements them)."""
SOLVERS = ("euler", "heun", "rk4", "dpm2m")
FAMILIES = ("iid", "shift")
