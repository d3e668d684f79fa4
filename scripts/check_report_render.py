#!/usr/bin/env python3
"""Render a study's report.html in headless Chromium and save a PNG screenshot.

Checks that the report is self-contained (every <img> is an embedded data: URI, no external
resource) and that the browser produces a non-blank screenshot. Look at the PNG afterwards.

Usage::

    python scripts/check_report_render.py results/quick/report.html --png report.png

Needs a Chromium binary (``apt-get install -y chromium``); found as ``chromium``,
``chromium-browser``, ``google-chrome`` or given with ``--browser``. Exit code 0 when the page
rendered, 1 when it did not, 2 on a bad argument or a missing browser.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
)


def find_browser(given: str | None = None) -> str | None:
    """Path of a Chromium-family browser, or None."""
    if given:
        return shutil.which(given) or (given if Path(given).is_file() else None)
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def check_self_contained(html: str) -> list[str]:
    """Problems that make the page depend on other files or the network (empty list: none)."""
    problems = []
    for src in re.findall(r"<img[^>]*\ssrc=['\"]([^'\"]+)['\"]", html):
        if not src.startswith("data:image/"):
            problems.append(f"image not embedded: {src[:80]}")
    for href in re.findall(r"<(?:link|script)[^>]*\s(?:href|src)=['\"]([^'\"]+)['\"]", html):
        problems.append(f"external resource: {href[:80]}")
    if "<img" not in html:
        problems.append("no images in the report")
    return problems


def render(html_path: Path, png_path: Path, browser: str, width: int = 1200,
           height: int = 4000, timeout: float = 120.0) -> None:
    """Screenshot ``html_path`` into ``png_path`` with headless ``browser``."""
    png_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sinotriage-chromium-") as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={png_path.resolve()}", html_path.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if not png_path.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot (exit {proc.returncode}): "
                           f"{proc.stderr.strip()[-500:]}")


def non_blank_fraction(png_path: Path) -> float:
    """Fraction of pixels that are not (near) white: a blank page gives ~0."""
    import matplotlib.image as mpimg
    import numpy as np

    img = mpimg.imread(str(png_path))[..., :3]
    return float(np.mean(img.min(axis=-1) < 0.9))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="report.html to render")
    parser.add_argument("--png", type=Path, default=None, help="screenshot path (default: beside the html)")
    parser.add_argument("--browser", default=None, help="browser executable")
    parser.add_argument("--width", type=int, default=1200, help="viewport width in pixels")
    parser.add_argument("--height", type=int, default=4000, help="viewport height in pixels")
    args = parser.parse_args(argv)
    if not args.html.is_file():
        print(f"error: {args.html} does not exist", file=sys.stderr)
        return 2
    browser = find_browser(args.browser)
    if browser is None:
        print(f"error: no browser found (tried {', '.join(BROWSERS)}); "
              "install one with `apt-get install -y chromium`", file=sys.stderr)
        return 2
    problems = check_self_contained(args.html.read_text(encoding="utf-8"))
    png = args.png or args.html.with_suffix(".png")
    render(args.html, png, browser, args.width, args.height)
    ink = non_blank_fraction(png)
    print(f"screenshot {png} ({ink:.1%} non-white pixels)")
    for p in problems:
        print(f"problem: {p}")
    if problems or ink < 0.02:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
