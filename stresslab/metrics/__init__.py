"""Reducing results: summary, layer metrics, paired comparisons, contributions, IRB reference."""
