"""Rendering: PNG and terminal plots, the run report and the eval report. Takes analysis results; never
re-analyses."""
