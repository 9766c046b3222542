"""Renderings of result records: terminal table, HTML, markdown, pytest-benchmark JSON."""
