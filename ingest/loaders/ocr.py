"""Text of scanned PDF pages and of images, read by OCR (the `ocr` extra: `pip install 'rag[ocr]'`).

RapidOCR runs PaddleOCR's detection and recognition models (PP-OCRv4, Chinese and Latin script)
on onnxruntime; the models are files inside its wheel, so nothing is downloaded. PDF pages are
rendered with pypdfium2 rather than their images taken out with pypdf: a scanned page may be
several image strips, a JBIG2 or CCITT image pypdf cannot decode, rotated, or masked, and a
rendering is the page as a reader sees it, whatever it is made of. Both are imported when a page
first needs OCR.

Boxes of text come back in no dependable order; they are put into lines (top to bottom, each
left to right) and the lines into paragraphs, split where the gap between two lines or a change
of text size says a new one starts.
"""

from __future__ import annotations

import contextlib
import functools
import io
import statistics
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from ingest.errors import LoadError
from ingest.scripts import CJK_RUN

if TYPE_CHECKING:
    from langchain_core.documents import Document
    from PIL import Image

INSTALL_HINT = "pip install 'rag[ocr]'"
# The recogniser runs words together ("maintenancereport") in text under about 30 pixels high;
# at 300 dpi body text is 40-50.
RENDER_DPI = 300
POINTS_PER_INCH = 72
# An image over more than this share of a page is taken for a scan of it.
SCAN_COVERAGE = 0.5
# RapidOCR shrinks a larger image to this longest side before reading it: A4 and Letter pages at
# 300 dpi (3508 and 3300 pixels) stay whole; larger pages are rendered to fit.
MAX_SIDE_PIXELS = 3600
# Text found in boxes lower than this (body text at 300 dpi makes boxes of 40-55 pixels) is read
# again from the page enlarged to make them about READABLE_BOX_PIXELS high, at most MAX_ENLARGEMENT times.
SMALL_BOX_PIXELS = 32
READABLE_BOX_PIXELS = 52
MAX_ENLARGEMENT = 3
# A gap between two lines wider than this share of a line's height starts a paragraph, and so
# does a line whose text is this much taller or shorter than the line above (a heading).
PARAGRAPH_GAP = 0.5
SIZE_CHANGE = 0.3
# Files named in the warning about pages left unread; a count says how many more there are.
FILES_NAMED = 3
# One OCR at a time: pdfium is not thread-safe, the engine keeps per-call state, and each call
# already uses every core.
_LOCK = threading.Lock()


class OcrUnavailable(LoadError):
    """The OCR extra is not installed, or does not load."""


@dataclass(frozen=True)
class _Line:
    top: float
    bottom: float
    text: str

    @property
    def height(self) -> float:
        return self.bottom - self.top


@functools.cache
def _engine() -> Any:
    from rapidocr_onnxruntime import RapidOCR

    # Text is found on the page scaled to at most 2,000 pixels ("max"; fast), and read from the
    # full-size crops of what was found. No angle classifier: it takes some upright lines for
    # upside down and turns them into garbage, losing them, which costs more than the rare page
    # scanned upside down.
    return RapidOCR(max_side_len=MAX_SIDE_PIXELS, det_limit_type="max", use_cls=False)


@contextlib.contextmanager
def _extra_loaded() -> Iterator[None]:
    """Imports of the OCR extra, a missing or broken one turned into OcrUnavailable with the fix."""
    try:
        yield
    except ModuleNotFoundError as exc:
        raise OcrUnavailable(f"OCR is not installed: {INSTALL_HINT}") from exc
    except ImportError as exc:  # installed, but a system library it needs is missing (OpenCV's libGL)
        raise OcrUnavailable(f"OCR is installed but does not load ({exc})") from exc


def read_image(data: bytes) -> list[str]:
    """The text of an image file, one string per frame (a multi-page TIFF has several), paragraphs
    apart by blank lines; "" for a frame without text."""
    with _extra_loaded():
        engine = _engine()
    with _LOCK:
        return [_read(engine, frame) for frame in _frames(data)]


def _frames(data: bytes) -> Iterator["Image.Image"]:
    """An image file's frames, upright (as a camera's orientation tag says), as RGB on white."""
    from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            for frame in ImageSequence.Iterator(image):
                yield _flattened(ImageOps.exif_transpose(frame))
    except UnidentifiedImageError as exc:  # its message names a BytesIO object
        raise LoadError("unreadable image (no image format Pillow reads)") from exc
    except (Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise LoadError(f"unreadable image ({exc})") from exc


def read_pdf_pages(data: bytes, numbers: Sequence[int]) -> dict[int, str]:
    """The text of these pages (numbered from 1) of a PDF, each rendered as a reader sees it."""
    with _extra_loaded():
        engine = _engine()
        import pypdfium2 as pdfium
    texts = {}
    with _LOCK:
        try:
            document = pdfium.PdfDocument(data)
            try:
                for number in numbers:
                    page = document[number - 1]
                    image = _page_image(page)
                    page.close()
                    texts[number] = _read(engine, image)
            finally:
                document.close()
        except pdfium.PdfiumError as exc:
            raise LoadError(f"unreadable PDF for OCR ({exc})") from exc
    return texts


def _page_image(page: Any) -> "Image.Image":
    """A PDF page at RENDER_DPI (or as near as MAX_SIDE_PIXELS allows). A scan is rendered at its
    own resolution, then enlarged with Lanczos: pdfium's enlarging blurs away the gaps between
    words (of a 200 dpi JPEG scan's words, a quarter came out run together, against an eighth)."""
    from PIL import Image

    dpi = min(RENDER_DPI, MAX_SIDE_PIXELS * POINTS_PER_INCH / max(page.get_size()))
    scanned_at = min(dpi, _scan_resolution(page) or dpi)
    image = page.render(scale=scanned_at / POINTS_PER_INCH, grayscale=True).to_pil()
    if scanned_at == dpi:
        return image
    factor = dpi / scanned_at
    return image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.LANCZOS)


def _scan_resolution(page: Any) -> float | None:
    """Pixels per inch of the image that covers most of the page, as a scan does (None: none does)."""
    import pypdfium2.raw as pdfium_c

    width, height = page.get_size()
    for image in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,)):
        left, bottom, right, top = image.get_bounds()
        if (right - left) * (top - bottom) > SCAN_COVERAGE * width * height:
            return max(image.get_px_size()) / (max(right - left, top - bottom) / POINTS_PER_INCH)
    return None


def _flattened(frame: "Image.Image") -> "Image.Image":
    """The frame as RGB, anything transparent on white paper (OpenCV reads alpha as black)."""
    from PIL import Image

    if frame.mode in ("RGBA", "LA", "PA") or (frame.mode == "P" and "transparency" in frame.info):
        rgba = frame.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, "white")
        return Image.alpha_composite(paper, rgba).convert("RGB")
    return frame.convert("RGB")


def _read(engine: Any, image: "Image.Image") -> str:
    """The text of one page; small text (a screenshot's) is read again from the page enlarged,
    since read small it loses the spaces between words."""
    results = engine(image)[0] or []
    if results:
        height = statistics.median(_box_height(corners) for corners, *_ in results)
        factor = min(READABLE_BOX_PIXELS / height, MAX_ENLARGEMENT, MAX_SIDE_PIXELS / max(image.size))
        if height < SMALL_BOX_PIXELS and factor > 1:
            from PIL import Image

            size = (round(image.width * factor), round(image.height * factor))
            results = engine(image.resize(size, Image.Resampling.LANCZOS))[0] or []
    return paragraphs(results)


def _box_height(corners: Sequence[Sequence[float]]) -> float:
    ys = [y for _, y in corners]
    return max(ys) - min(ys)


def paragraphs(results: Iterable[Sequence[Any]]) -> str:
    """RapidOCR's results (box corners, text, confidence) as text in reading order: boxes on one
    line left to right, lines top to bottom, paragraphs apart by blank lines."""
    lines = _lines(results)
    if not lines:
        return ""
    typical = statistics.median(line.height for line in lines)
    blocks = [[lines[0]]]
    for line in lines[1:]:
        above = blocks[-1][-1]
        gap = line.top - above.bottom
        resized = abs(line.height - above.height) > SIZE_CHANGE * max(line.height, above.height)
        if gap > PARAGRAPH_GAP * min(typical, line.height, above.height) or resized:
            blocks.append([line])
        else:
            blocks[-1].append(line)
    return "\n\n".join(_joined(line.text for line in block) for block in blocks)


def _lines(results: Iterable[Sequence[Any]]) -> list[_Line]:
    """Boxes grouped into lines: a box whose middle is within a line's height is on that line."""
    boxes = []
    for corners, text, *_score in results:
        if text.strip():
            ys, xs = [y for _, y in corners], [x for x, _ in corners]
            boxes.append((min(ys), max(ys), min(xs), text.strip()))
    boxes.sort(key=lambda box: (box[0] + box[1]) / 2)
    rows: list[list[tuple[float, float, float, str]]] = []
    for box in boxes:
        middle = (box[0] + box[1]) / 2
        if rows and min(b[0] for b in rows[-1]) <= middle <= max(b[1] for b in rows[-1]):
            rows[-1].append(box)
        else:
            rows.append([box])
    return [
        _Line(min(b[0] for b in row), max(b[1] for b in row), _joined(b[3] for b in sorted(row, key=lambda b: b[2])))
        for row in rows
    ]


def _joined(pieces: Iterable[str]) -> str:
    """Pieces of one line, or lines of one paragraph, as running text: apart by a space, but not
    between two CJK characters, and a word hyphenated at a line's end made whole."""
    text = ""
    for piece in pieces:
        if not text:
            text = piece
        elif text.endswith("-") and text[-2:-1].isalpha() and piece[:1].islower():
            text = text[:-1] + piece
        elif CJK_RUN.match(text[-1]) and CJK_RUN.match(piece[0]):
            text += piece
        else:
            text += " " + piece
    return text


def pages_label(metadatas: Iterable[Mapping[str, Any]]) -> str:
    """Where these documents are, by page: 'pages 2-4, 7'; each mail attachment apart
    ('message 1, attachment scan.pdf, page 1')."""
    pages: dict[tuple[str, ...], list[int]] = {}
    for metadata in metadatas:
        container = tuple(f"{key} {metadata[key]}" for key in ("message", "attachment") if key in metadata)
        pages.setdefault(container, []).append(metadata["page"])
    return "; ".join(", ".join([*container, _numbers(numbers)]) for container, numbers in pages.items())


def _numbers(numbers: list[int]) -> str:
    """'page 3', 'pages 2-4, 7'."""
    runs: list[list[int]] = []
    for number in sorted(set(numbers)):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    spans = [f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs]
    return f"page {spans[0]}" if len(runs) == 1 and len(runs[0]) == 1 else f"pages {', '.join(spans)}"


def pages_by_ocr(documents: Iterable["Document"]) -> tuple[str, str]:
    """Labels of the pages of one file's documents that OCR read, and of those left unread for
    want of OCR (see load_pdf); "" for none."""
    metadatas = [document.metadata for document in documents]
    read = [metadata for metadata in metadatas if metadata.get("ocr")]
    unread = [{**metadata, "page": page} for metadata in metadatas for page in metadata.get("unread_pages", ())]
    return pages_label(read) if read else "", pages_label(unread) if unread else ""


def unread_pages_warning(files: list[tuple[str, str]]) -> str | None:
    """One message for the whole ingest about the (path, pages) left unread without OCR, or None."""
    if not files:
        return None
    listed = "; ".join(f"{path}: {pages}" for path, pages in files[:FILES_NAMED])
    more = f" and {len(files) - FILES_NAMED} more" if len(files) > FILES_NAMED else ""
    return (
        f"{len(files)} PDF file{'s' if len(files) > 1 else ''} with pages that have no text layer, not read "
        f"without OCR ({listed}{more}); {INSTALL_HINT} reads them."
    )
