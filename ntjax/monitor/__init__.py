"""`ntjax monitor`: a live view of a run that is still writing — follow its log (`follow`), draw terminal
panels (`panels`) or a PNG (`snapshot`), and point at TensorBoard or W&B (`links`)."""
