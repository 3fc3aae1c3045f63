"""The user's own training command as a monitored run (`ntjax run`): launching and watching it, its report,
its LR range test, its fixes and its evals. The sweep and scaling slices fill their command templates here."""
