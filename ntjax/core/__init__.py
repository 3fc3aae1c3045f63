"""The training core: config, model, data, task, state, the compiled steps, optimizer, schedules, guards,
sharding, checkpoints and the run folder. Builds and runs; never analyses or renders."""
