"""Plain helpers shared by test modules (test modules do not import each other)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

SAMPLE_NOTES = Path(__file__).resolve().parents[1] / "data" / "sample-notes"
# Real documentation nobody here wrote (see its README), beside the checkout; not part of the project.
REALDOCS = Path(__file__).resolve().parents[2] / "shared" / "data" / "realdocs"
# For tests of the real documents only: each pattern they meet is also tested on text written in the test.
requires_realdocs = pytest.mark.skipif(
    not REALDOCS.is_dir(), reason=f"needs the real-documents corpus at {REALDOCS} (see its README in the shared data)"
)


SCAN_DPI = 200
SCAN_FONT_PIXELS = 33  # 12 pt at 200 dpi
SCAN_LINE_CHARS = 60


def scanned_page(*paragraphs: str):
    """A Letter page at SCAN_DPI with these paragraphs on it, drawn with Pillow's own font (no system
    font needed): what a scanner makes of a typed page."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=SCAN_FONT_PIXELS)
    page = Image.new("L", (int(8.5 * SCAN_DPI), 11 * SCAN_DPI), "white")
    draw = ImageDraw.Draw(page)
    top = SCAN_DPI  # an inch of margin
    for paragraph in paragraphs:
        for line in textwrap.wrap(paragraph, SCAN_LINE_CHARS):
            draw.text((SCAN_DPI, top), line, fill="black", font=font)
            top += int(SCAN_FONT_PIXELS * 1.4)
        top += SCAN_FONT_PIXELS
    return page


def scanned_pdf(*pages) -> bytes:
    """Pages as a scanner writes them: each page one image, no text layer."""
    out = io.BytesIO()
    pages[0].save(out, "PDF", resolution=SCAN_DPI, save_all=True, append_images=list(pages[1:]))
    return out.getvalue()


def write_files(folder: Path, files: dict[str, str]) -> Path:
    """`files` (relative path -> text) written under `folder`, UTF-8."""
    for relative, text in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text, encoding="utf-8")
    return folder

# Two small invoices, for batch jobs that extract the same fields from each.
INVOICES = {
    "invoices/acme-2024-03.md": """# Invoice from Acme Tools

Invoice number INV-2024-031, dated 12 March 2024.
Amount due: 1250 EUR for one soldering station and one hot-air rework station.
Billing contact: Maria Lind.
""",
    "invoices/nordic-2024-04.md": """# Invoice from Nordic Cables

Invoice number NC-7781, dated 3 April 2024.
Amount due: 480 EUR for forty shielded USB cables.
Billing contact: Olof Berg.
""",
}


# Questions about the sample notes, each with the file that answers it (relative to the notes).
QUESTIONS = [
    ("At what time does the nightly harbor-retention partition cleanup job run?", "work/runbooks/harbor-ingest-runbook.md"),
    ("Below what battery voltage does a Tern-4 logger refuse an over-the-air update?", "work/design/tern4-ota-updates.md"),
    ("How much did finance approve for the Q2 test-equipment budget?", "work/meetings/2024-03-12-platform-sync.md"),
    ("What oven temperature are the cardamom buns baked at?", "personal/recipes/cardamom-buns.md"),
    ("What is the booking reference for the Rorbu cabin in Reine?", "personal/travel/lofoten-2024.md"),
    ("When is the library loan of The Long Tide due back?", "personal/reading-list-2024.md"),
    ("What soil pH did the 2023 soil test of the allotment show?", "personal/garden/allotment-plan-2024.md"),
    ("When is Dad's hip operation booked?", "personal/journal/2024-06-02.txt"),
    ("What price per board did Ostra Kretskort quote for the main boards?", "work/calls/phone-log-2024-04.txt"),
    ("What is the default value of TERNLOG_CACHE_DIR?", "work/docs/ternlog-install.rst"),
    ("When does the warranty of the Brandt RO-350 reflow oven end?", "work/vendors/brandt-ro350-manual.pdf"),
    ("Which VLAN must lab equipment use on the office network?", "work/intranet/office-it-essentials.html"),
    ("How many days of paid vacation per year do employees get?", "work/hr/onboarding-guide.docx"),
    ("What baud rate does the calibration script use for the service port?", "work/tools/calibrate.py"),
]


def assert_ranks_first(settings, question: str, expected: str) -> None:
    import rag  # after conftest has cleared the environment

    hits = rag.search(question, settings, k=3)
    assert hits[0].source == str(SAMPLE_NOTES / expected), [(h.source, h.score) for h in hits]
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].score >= hits[1].score >= hits[2].score


# Identifiers only words can find, paraphrases only meaning can find, and near misses for both.
FIXTURE_CORPUS = {
    "pump-7731": "Fault code QX-7731 means the coolant pump firmware must be reflashed before restarting.",
    "pump-7713": "Fault code QX-7713 means a coolant pump sensor cable is loose and must be reseated.",
    "valve-5520": "Fault code QX-5520 means the coolant valve is stuck; replace the valve actuator.",
    "cat": "The feline dozed on the rug all afternoon, purring in the sunlight.",
    "car": "Automobiles need regular oil changes and tyre rotations to keep running smoothly.",
    "garden": "Tomato seedlings want full sun and water every second day once transplanted.",
    "invoice": "Invoice INV-2024-0042 was paid on 3 March by bank transfer.",
    "budget": "The hardware budget for the second quarter is one hundred thousand crowns.",
}
FIXTURE_QUERIES = {
    "q1": ("QX-7731", "pump-7731"),
    "q2": ("QX-7713", "pump-7713"),
    "q3": ("INV-2024-0042", "invoice"),
    "q4": ("a cat sleeping on a mat", "cat"),
    "q5": ("how to look after a vehicle", "car"),
    "q6": ("how much money can we spend on equipment", "budget"),
}


def write_beir_fixture(folder: Path) -> Path:
    folder.mkdir()
    (folder / "qrels").mkdir()
    with (folder / "corpus.jsonl").open("w") as fh:
        for doc_id, text in FIXTURE_CORPUS.items():
            fh.write(json.dumps({"_id": doc_id, "title": "", "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as fh:
        for query_id, (text, _) in FIXTURE_QUERIES.items():
            fh.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{doc}\t1\n" for q, (_, doc) in FIXTURE_QUERIES.items())
    )
    return folder


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(command: list[str], ready_url: str, timeout: float = 60) -> Iterator[None]:
    """A real server process, up once `ready_url` answers 200, stopped afterwards."""
    # Its own process group: a launcher (llama-cpp-server runs llama-server) goes with its children.
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(ready_url, timeout=1):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                _stop(server)
                raise RuntimeError(f"{command[0]} did not come up at {ready_url}") from None
            time.sleep(0.2)
    try:
        yield
    finally:
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@contextlib.contextmanager
def headless_browser(width: int = 390, height: int = 844, language: str = "en-US"):
    """Headless Debian chromium through Selenium and the system chromedriver (nothing is downloaded),
    the size of a phone by default, preferring `language`; its console log is kept (CSP violations
    show there)."""
    import shutil

    from selenium import webdriver

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        # CI installs them (.ci/run); elsewhere the test says what it needs.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "the browser test needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(argument)
    options.add_argument(f"--lang={language}")
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Chromium leaves its profile's lock folder in TMPDIR: a folder of its own is removed after.
    scratch = tempfile.mkdtemp(prefix="rag-test-browser-")
    service = webdriver.ChromeService(shutil.which("chromedriver"), env={**os.environ, "TMPDIR": scratch})
    browser = webdriver.Chrome(options=options, service=service)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(scratch, ignore_errors=True)


def ctrl_c_reaches_it() -> None:
    """`preexec_fn` of a child process the test presses Ctrl-C in: a shell starts its background jobs
    (a CI runner's, say) with SIGINT ignored, and the child would inherit that and never see the key."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
