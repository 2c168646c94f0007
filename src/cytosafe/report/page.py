"""The page every report is rendered into: one Jinja environment with the shared filters.

The templates live in ``cytosafe/report/templates`` (``_base.html`` with the styles and
scripts every report inlines, one template per report); :func:`environment` loads them
with autoescaping and the filters the templates use (``plural``, ``cited``).

:func:`page_scripts` gives a report's script payload (plotly.js, the figures, the layout
template) in one of two forms:

* plain (what the web app stores and serves under its hash-only content security policy):
  plotly.js inlined as a script, the figures as JSON;
* packed (``packed=True``, what the report files the CLI writes use): plotly.js and the
  figures gzip-compressed and base64-encoded inside inert ``<script>`` data blocks, unpacked
  in the browser with the standard ``DecompressionStream`` (Chromium 80, Firefox 113,
  Safari 16.4) and plotly.js run from a ``blob:`` URL. A quantification report of nine
  plates is about 3 MB instead of 8 MB, and its first screen is drawn sooner because the
  browser parses a third of the bytes. :func:`figure_specs` reads the figures of either form.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gzip
import hashlib
import json
import os
import re
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import jinja2
from markupsafe import Markup

__all__ = [
    "environment",
    "favicon_uri",
    "figure_specs",
    "input_files",
    "link_citations",
    "page_scripts",
    "plate_inputs",
    "simulated_reason",
]


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """Jinja's compiled templates kept on disk, skipped where the disk refuses them.

    Jinja checks each entry against its template's source (a SHA-1 of the text), its
    bytecode format and the Python version, and writes an entry whole or not at all, so an
    edited template is compiled again and a concurrent run never reads half an entry. What
    Jinja does not check (the environment's options, Jinja's and CytoSafe's versions) is in
    the folder's name (:func:`_template_cache`).
    """

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:  # a read-only cache: compile each time
            pass


#: The options of the report templates' environment (:func:`environment`).
_ENV_OPTIONS = {
    "autoescape": True,
    "undefined": jinja2.StrictUndefined,
    "trim_blocks": True,
    "lstrip_blocks": True,
    "keep_trailing_newline": True,
}


def _template_cache(options: dict[str, object]) -> jinja2.BytecodeCache | None:
    """The compiled templates' cache, under :func:`_cache_dir` (none when it is off or
    cannot be made): compiling the QC report's templates costs about 0.04 s of CPU a run.

    Jinja keys an entry by the template's name and source only, yet the compiled code also
    depends on the environment's ``options`` (``trim_blocks`` changes the output) and on
    the Jinja and CytoSafe versions: the folder is named after all three, so a change of
    any compiles afresh into a folder of its own.
    """
    from cytosafe import __version__

    folder = _cache_dir()
    if folder is None:
        return None
    shape = repr(sorted((k, repr(v)) for k, v in options.items()))
    digest = hashlib.sha256(shape.encode()).hexdigest()[:12]
    folder = folder / f"templates-{__version__}-jinja{jinja2.__version__}-{digest}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return _TemplateCache(str(folder))


def environment() -> jinja2.Environment:
    """The Jinja environment of the report templates (autoescaped, strict, byte-stable);
    compiled templates are kept in the user's cache directory (:func:`_cache_dir`)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cytosafe.report", "templates"),
        bytecode_cache=_template_cache(_ENV_OPTIONS),
        **_ENV_OPTIONS,
    )
    env.filters["plural"] = lambda n, word, many=None: (
        f"{n} {word}" if n == 1 else f"{n} {many or word + 's'}"
    )
    env.filters["cited"] = link_citations
    env.globals["favicon_uri"] = favicon_uri()
    return env


@functools.lru_cache(maxsize=1)
def favicon_uri() -> str:
    """The CytoSafe icon (``templates/favicon.svg``, also the web app's) as a ``data:`` URI,
    so that a report file shows it with nothing to fetch."""
    from urllib.parse import quote

    svg = (Path(__file__).parent / "templates" / "favicon.svg").read_text(encoding="utf-8")
    # ":" is escaped too: the SVG namespace must not read as a link to fetch.
    return "data:image/svg+xml," + quote(svg.strip(), safe=" =/\"'")


def link_citations(text: str) -> Markup:
    """Escape ``text`` and turn its citation marks (``[1, 3]``) into links to the references."""

    def link(match: re.Match) -> str:
        nums = [n.strip() for n in match.group(1).split(",")]
        return "[" + ", ".join(f'<a href="#ref-{n}">{n}</a>' for n in nums) + "]"

    return Markup(re.sub(r"\[(\d+(?:, \d+)*)\]", link, str(Markup.escape(text))))


#: How many lines of an input's head are read for the writer's mark (the MSD "Comments" and
#: xPONENT "BatchDescription" rows are within the first 30).
_HEAD_LINES = 40
_WRITTEN_BY_CYTOSAFE = re.compile(r"written by cytosafe", re.IGNORECASE)
_SIMULATED = re.compile(r"\bSIMULATED\b", re.IGNORECASE)


def simulated_reason(
    *,
    sources: Iterable[object] = (),
    titles: Iterable[object] = (),
    flagged: bool = False,
    patient_ids: Iterable[object] = (),
) -> str:
    """Why a report's inputs are simulated (the shipped examples), in words; "" when not.

    Read from the data's own labels, never guessed from numbers:

    * ``flagged``: the study file says ``simulated = true``;
    * a title (a study's) names itself SIMULATED;
    * an input file's head says it was written by CytoSafe, not acquired on an instrument
      (the example generator's MSD ``Comments`` and xPONENT ``BatchDescription`` rows);
    * the README of an input's folder (or the folder above) is headed SIMULATED, as every
      shipped example folder is;
    * every patient id carries the example generator's ``SIM-`` prefix.
    """
    if flagged:
        return "the study file marks it as simulated (simulated = true)"
    for title in titles:
        if isinstance(title, str) and _SIMULATED.search(title):
            return f"the study calls itself simulated (“{title}”)"
    readmes = set()
    for source in sources:
        path = Path(str(source)) if isinstance(source, (str, Path)) else None
        if path is None or not path.is_file():
            continue
        if _WRITTEN_BY_CYTOSAFE.search(_head(path)):
            return f"its input {path.name} was written by CytoSafe, not acquired on an instrument"
        readmes.update(p / "README.md" for p in (path.parent, path.parent.parent) if p != p.parent)
    for readme in sorted(readmes):
        if readme.is_file():
            first = _head(readme, 1).strip()
            if _SIMULATED.search(first):
                return f"the README of its input folder says so (“{first.lstrip('# ')}”)"
    ids = [str(p) for p in patient_ids]
    if ids and all(p.startswith("SIM-") for p in ids):
        return "every patient id carries the simulated example's SIM- prefix"
    return ""


def _head(path: Path, lines: int = _HEAD_LINES) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            text = fh.read(65536)  # a binary file (a workbook) has no lines to stop at
    except OSError:
        return ""
    return "".join(text.splitlines(keepends=True)[:lines])


def _pack(data: bytes, level: int = 9) -> str:
    # mtime=0: the same input gives the same bytes (reports are byte-stable).
    return base64.b64encode(gzip.compress(data, compresslevel=level, mtime=0)).decode("ascii")


#: The gzip level of a page's figures, packed afresh for every report (plotly.js, packed
#: once and kept on disk, stays at 9). Level 6, zlib's default, packed the MSD example's
#: 2.8 MB of figures in 31 ms of CPU against 72 ms at level 9, into 309 KB against 293 KB
#: (issue 16, item 4); the browser unpacks either alike.
FIGURES_LEVEL = 6


@functools.lru_cache(maxsize=1)
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _once(compute: Callable[[], str]) -> Callable[[], str]:
    """``compute()`` run once per process however many threads ask at once (the web app's
    threadpool): :func:`functools.lru_cache` would let each of them compute it.
    ``cache_clear()`` forgets the value."""
    lock = threading.Lock()
    memo: list[str] = []

    @functools.wraps(compute)
    def get() -> str:
        if not memo:
            with lock:
                if not memo:
                    memo.append(compute())
        return memo[0]

    get.cache_clear = memo.clear  # type: ignore[attr-defined]
    return get


#: How :func:`_pack` packs (gzip level 9, mtime 0, base64): raised when it changes, so that
#: text kept on disk by an older CytoSafe is never read as this one's.
_PACK_FORMAT = 1
#: The first line of a packed plotly.js kept on disk: the text's length and SHA-256 follow.
_PACKED_HEADER = b"cytosafe-packed-plotly"


@_once
def _plotly_packed() -> str:
    """plotly.js packed (:func:`_pack`), from the disk cache when it holds this copy's.

    Packing the 4.8 MB bundle at gzip level 9 costs about 0.2 s of CPU, as much as the
    rest of a small report, and gives the same bytes every time: a report file reuses the
    packed text kept under the user's cache directory (:func:`_cache_dir`), keyed by the
    bundle's path, size and modification time, the packing format (:data:`_PACK_FORMAT`)
    and the zlib library, and packs afresh when there is none. Each entry carries the text's
    length and SHA-256 (:func:`_read_packed`), so an entry cut short or damaged on disk is
    never embedded in a report: it is packed afresh and written again.
    """
    source = _plotly_source()
    cached = None
    if source is not None and (folder := _cache_dir()) is not None:
        stat = source.stat()
        key = (
            f"{source}|{stat.st_size}|{stat.st_mtime_ns}|"
            f"pack{_PACK_FORMAT}|zlib{zlib.ZLIB_RUNTIME_VERSION}"
        )
        tag = hashlib.sha256(key.encode()).hexdigest()
        cached = folder / f"plotly-{tag[:32]}.gz.b64"
        kept = _read_packed(cached)
        if kept is not None:
            return kept
    packed = _pack(_plotly_js().encode("utf-8"))
    if cached is not None:
        _write_packed(cached, packed)
    return packed


def _read_packed(path: Path) -> str | None:
    """The packed text kept at ``path``, or None when it is missing or does not match the
    length and SHA-256 its header states (cut short, damaged, or not ours)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    header, _, body = data.partition(b"\n")
    fields = header.split(b" ")
    if len(fields) != 3 or fields[0] != _PACKED_HEADER:
        return None
    if (
        fields[1] != str(len(body)).encode()
        or fields[2] != hashlib.sha256(body).hexdigest().encode()
    ):
        return None
    try:
        return body.decode("ascii")
    except UnicodeDecodeError:
        return None


def _write_packed(path: Path, packed: str) -> None:
    """Keep ``packed`` at ``path`` with its header, whole or not at all: written to a temp
    file of its own in the same folder (threads and processes never share one), flushed
    to disk, then renamed over ``path``; the temp file is removed when any step fails, and
    a cache that cannot be written (a read-only home) is skipped."""
    body = packed.encode("ascii")
    header = b"%s %d %s\n" % (_PACKED_HEADER, len(body), hashlib.sha256(body).hexdigest().encode())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(header + body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, path)
    except BaseException as exc:  # an interrupt too: no temp file is left behind
        with contextlib.suppress(OSError):
            os.unlink(partial)
        if not isinstance(exc, OSError):
            raise


def _plotly_source() -> Path | None:
    """The plotly.min.js file :func:`plotly.offline.get_plotlyjs` reads (found without
    importing plotly), or None."""
    import importlib.util

    spec = importlib.util.find_spec("plotly")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    return None


def _cache_dir() -> Path | None:
    """Where packed plotly.js is kept: ``CYTOSAFE_CACHE_DIR`` (empty: no cache), else
    ``$XDG_CACHE_HOME/cytosafe`` or ``~/.cache/cytosafe``."""
    chosen = os.environ.get("CYTOSAFE_CACHE_DIR")
    if chosen is not None:
        return Path(chosen) if chosen.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cytosafe"


def page_scripts(figures, *, packed: bool = False) -> dict[str, Markup]:
    """The script payload of a report page (see the module): the context entries
    ``plotly_js``, ``plotly_packed``, ``figures_json``, ``figures_packed`` and
    ``template_json`` that ``_base.html`` places, one of each pair left empty.

    ``figures`` is the page's :class:`~cytosafe.report.figures.Figures`.
    """
    from cytosafe.report.figures import LAYOUT_TEMPLATE

    template = json.dumps({"layout": LAYOUT_TEMPLATE}, separators=(",", ":"), ensure_ascii=False)
    figures_json = figures.to_json()
    if packed:
        return {
            "plotly_js": Markup(""),
            "plotly_packed": Markup(_plotly_packed()),
            "figures_json": Markup(""),
            "figures_packed": Markup(_pack(figures_json.encode("utf-8"), FIGURES_LEVEL)),
            "template_json": Markup(template),
        }
    return {
        "plotly_js": Markup(_plotly_js()),
        "plotly_packed": Markup(""),
        "figures_json": Markup(figures_json),
        "figures_packed": Markup(""),
        "template_json": Markup(template),
    }


_FIGURES_JSON = re.compile(r'<script type="application/json" id="cs-figures">(.*?)</script>', re.S)
_FIGURES_PACKED = re.compile(
    r'<script type="application/gzip\+base64" id="cs-figures-packed">(.*?)</script>', re.S
)


def figure_specs(html: str) -> dict[str, dict]:
    """The figure specifications of a report page, plain or packed (:func:`page_scripts`).

    Examples
    --------
    >>> from cytosafe.report.figures import Figures
    >>> figs = Figures(); _ = figs.add({"data": [], "layout": {}})
    >>> scripts = page_scripts(figs, packed=True)
    >>> page = (f'<script type="application/gzip+base64" id="cs-figures-packed">'
    ...         f'{scripts["figures_packed"]}</script>')
    >>> figure_specs(page)
    {'fig1': {'data': [], 'layout': {}}}
    """
    plain = _FIGURES_JSON.search(html)
    if plain is not None and plain.group(1).strip():
        return json.loads(plain.group(1))
    packed = _FIGURES_PACKED.search(html)
    if packed is None:
        raise ValueError("not a CytoSafe report page: no figures found")
    return json.loads(gzip.decompress(base64.b64decode(packed.group(1))).decode("utf-8"))


def input_files(
    sources: Iterable[object] = (),
    *,
    inputs: Iterable[dict] | None = None,
    table=None,
) -> list[dict]:
    """Each input of a report, for its header: ``name``, ``sha256``, ``bytes``, ``note``.

    ``inputs``, when given, is the record a face kept (the web app's stored plates: their
    ``source_file`` as ``name`` and ``measurements_sha256`` as ``sha256``, with a ``note``
    saying what the digest covers) and is listed as it is. Otherwise each source that is a
    file is hashed here (SHA-256 of its bytes, as ``cytosafe`` records its inputs). A table
    passed in memory (``"<DataFrame>"``) has no file to hash: its rows' ``source_file``
    names are listed, each saying so, and never the Python type.
    """
    import hashlib

    if inputs is not None:
        return [
            {
                "name": str(i.get("name") or "(unnamed)"),
                "sha256": i.get("sha256"),
                "bytes": i.get("bytes"),
                "note": i.get("note", ""),
            }
            for i in inputs
        ]
    out: list[dict] = []
    for source in sources:
        text = str(source)
        if text.startswith("<") and text.endswith(">"):
            names: list[str] = []
            if table is not None and "source_file" in getattr(table, "columns", ()):
                names = sorted({str(n) for n in table["source_file"].dropna().unique() if n})
            note = "read from a table in memory: the file itself was not hashed here"
            out.extend({"name": n, "sha256": None, "bytes": None, "note": note} for n in names)
            if not names:
                out.append(
                    {"name": "a measurement table in memory", "sha256": None, "bytes": None,
                     "note": "no file name was recorded with it"}
                )  # fmt: skip
            continue
        path = Path(text)
        if not path.is_file():
            out.append({"name": text, "sha256": None, "bytes": None, "note": "not found to hash"})
            continue
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(chunk)
        out.append(
            {"name": text, "sha256": digest.hexdigest(), "bytes": path.stat().st_size, "note": ""}
        )
    return out


def plate_inputs(plates: Iterable[tuple[str, str | None, str | None]]) -> list[dict]:
    """The ``inputs`` of a report made from stored plates (for :func:`input_files`).

    ``plates`` holds each plate's code, ``source_file`` and ``measurements_sha256`` as the
    store keeps them (``cytosafe.store.models.Plate``); the digest covers the plate's stored
    measurements (the store's fingerprint), which the note says, since it is not the digest
    of the uploaded file's bytes.

    Examples
    --------
    >>> plate_inputs([("MSD-01", "plate_MSD-01.csv", "ab" * 32)])[0]["name"]
    'plate_MSD-01.csv'
    """
    return [
        {
            "name": source or f"plate {code}",
            "sha256": digest,
            "bytes": None,
            "note": f"plate {code}: SHA-256 of its stored measurements (the store's fingerprint)",
        }
        for code, source, digest in plates
    ]
