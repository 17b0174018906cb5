"""Renderings of a results document: Markdown summary and the offline HTML report. Reads results alone."""

from featuretests.render.html import render_html_report
from featuretests.render.markdown import render_summary

__all__ = ["render_html_report", "render_summary"]
