"""The load engine (open and closed loop, HDR histograms, thresholds)."""
