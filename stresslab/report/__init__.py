"""The HTML report of a run."""

from stresslab.report.html import write_report

__all__ = ["write_report"]
