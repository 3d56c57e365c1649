"""The built wheel is the product: installed from it alone, in an empty directory, Kassa
migrates, collects its static files and serves its pages with their CSS (hashed and
compressed, as outside DEBUG), and a receipt's template is there."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SERVE = """
import django, os, re
os.environ["DJANGO_SETTINGS_MODULE"] = "kassa.settings"
django.setup()
import kassa
from django.template.loader import get_template
from django.test import Client
assert kassa.__file__.startswith(os.environ["FROM"]), kassa.__file__
client = Client()
page = client.get("/accounts/login/")
# The page names the hashed copy, which WhiteNoise serves gzipped and cached for ever.
[hashed] = re.findall(r'href="(/static/web/kassa\\.[0-9a-f]{12}\\.css)"', page.content.decode())
css = client.get(hashed, headers={"Accept-Encoding": "gzip"})
assert css["Content-Encoding"] == "gzip", css.headers
assert "immutable" in css["Cache-Control"], css["Cache-Control"]
plain = client.get("/static/web/kassa.css")
get_template("refunds/receipt.txt")
print(page.status_code, css.status_code, plain.status_code,
      b"".join(plain.streaming_content)[:20] != b"")
"""


def test_the_wheel_installed_alone_serves_a_page_with_its_css(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("kassa-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "kassa/web/templates/web/base.html" in names
    assert "kassa/web/static/web/kassa.css" in names
    assert not [n for n in names if "/tests/" in n]  # the tests stay in the checkout

    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--disable-pip-version-check", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300, check=False)
    assert installed.returncode == 0, installed.stderr
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "FROM": str(target),
           "KASSA_VAR_DIR": str(empty / "var"),
           "DATABASE_URL": f"sqlite:///{empty / 'var' / 'k.sqlite3'}"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    migrated = subprocess.run([sys.executable, "-m", "kassa", "migrate"], cwd=empty, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
    assert migrated.returncode == 0, migrated.stderr
    collected = subprocess.run([sys.executable, "-m", "kassa", "collectstatic", "--noinput"],
                               cwd=empty, env=env, capture_output=True, text=True, timeout=300,
                               check=False)
    assert collected.returncode == 0, collected.stderr
    served = subprocess.run([sys.executable, "-c", SERVE], cwd=empty, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert served.returncode == 0, served.stderr
    assert served.stdout.split() == ["200", "200", "200", "True"]
