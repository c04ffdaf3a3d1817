import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo.screenshots import CHROMIUM, screenshots_take, shots_chosen
from demo.users import DEMO_PASSWORD, DEMO_USERNAME


class Command(BaseCommand):
    help = (
        "Take the back office's screenshots of the demo (dashboard, a lead, coverage with the market map, a scoring "
        "model draft) into docs/screenshots/: serves this database on a free local port for the time it takes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", default="docs/screenshots", help="The folder the PNG files go to.")

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("Screenshots are of the demo: run with DEBUG=true (the demo login exists only then).")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        base_url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(  # this interpreter running this project's manage.py
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            self._wait_for(base_url, server)
            shots = shots_chosen()
            from playwright.sync_api import sync_playwright  # a development dependency

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
                taken = screenshots_take(
                    browser,
                    base_url=base_url,
                    username=DEMO_USERNAME,
                    password=DEMO_PASSWORD,
                    shots=shots,
                    out_dir=Path(options["out"]),
                )
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
        for path in taken:
            self.stdout.write(f"Wrote {path}")

    @staticmethod
    def _wait_for(base_url: str, server: subprocess.Popen) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise CommandError(f"The site did not start: {server.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/admin/login/", timeout=5):  # our own server
                    return
            except OSError:
                time.sleep(0.5)
        raise CommandError(f"The site at {base_url} did not answer within 60 seconds.")
