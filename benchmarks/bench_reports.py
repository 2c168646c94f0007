"""Report size and first-draw time in Chromium (issue 15 item 4), for the MSD example's
quantification QC report (9 plates, 170 figures) and the example cohort's CRS grading
report (60 timelines), each written in both forms of :func:`cytosafe.report.page.page_scripts`
in the same run:

* ``plain``: plotly.js inlined as a script and the figures as JSON, the form every report
  file had before the packed form (and that the web app still serves);
* ``packed``: plotly.js and the figures gzip + base64, unpacked in the browser; what
  ``cytosafe quantify``/``grade``/``analyze`` write now.

Times are wall-clock milliseconds from navigation start, measured by Playwright on Debian's
Chromium (1440 x 900 window, a new page per run), min and median of 3 runs:

* ``first screen``: the document parsed (DOMContentLoaded) and every figure inside the
  first window drawn;
* ``first figure``: the page opened at its first figure section (``#curves``, ``#timelines``)
  and every figure in that window drawn (plotly.js loaded and run: the packed form's
  unpacking included);
* ``all figures``: how long drawing every remaining figure takes (``csDrawAll``, as
  printing does), from the call.

Targets: under 4 MB and a first screen under 2 s for the MSD report.

    python benchmarks/bench_reports.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MSD = ROOT / "examples" / "cra-study" / "msd"
COHORT = ROOT / "examples" / "crs-cohort" / "observations.csv"
RUNS = 3
TARGET_MB, TARGET_MS = 4.0, 2000.0

#: Resolves to DOMContentLoaded's time once the document is parsed and every figure that
#: intersects the window has been drawn (Plotly's SVG is in it).
_DRAWN = """() => {
  if (document.readyState === "loading") return false;
  const vis = Array.from(document.querySelectorAll(".plot[data-fig]")).filter(el => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.bottom > 0 && r.top < innerHeight;
  });
  return vis.every(el => el.querySelector(".main-svg")) ? performance.now() : false;
}"""


def write_reports(folder: Path) -> dict[str, dict[str, Path]]:
    """Both reports in both forms under ``folder``."""
    from cytosafe.clinical import grade, read_observations
    from cytosafe.quantification import quantify
    from cytosafe.report import write_qc_report
    from cytosafe.report.clinical import write_clinical_report

    plates = sorted(str(p) for p in MSD.glob("plate_*.csv"))
    result = quantify(plates, sample_map=MSD / "samples.csv", study_id="CRA-EX-001")
    graded = grade(
        read_observations(COHORT), ["astct2019", "lee2014", "ctcae5", "penn", "mskcc", "cartox"]
    )
    out: dict[str, dict[str, Path]] = {"MSD QC": {}, "CRS grading": {}}
    for form, packed in (("plain", False), ("packed", True)):
        out["MSD QC"][form] = write_qc_report(result, folder / f"msd-{form}.html", packed=packed)
        out["CRS grading"][form] = write_clinical_report(
            graded, folder / f"crs-{form}.html", sources=[str(COHORT)], packed=packed
        )
    return out


def measure(browser, path: Path, anchor: str) -> dict[str, float]:
    """One run: first screen, first figure and all figures, in ms."""
    times = {}
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(path.as_uri(), wait_until="commit")
    times["first screen"] = page.wait_for_function(_DRAWN, timeout=120_000, polling=10).json_value()
    page.close()
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(path.as_uri() + anchor, wait_until="commit")
    times["first figure"] = page.wait_for_function(_DRAWN, timeout=120_000, polling=10).json_value()
    start = page.evaluate("performance.now()")
    page.evaluate("() => window.csDrawAll()")
    times["all figures"] = page.evaluate("performance.now()") - start
    assert page.evaluate("document.querySelectorAll('.plot[data-fig] .main-svg').length") > 0
    page.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="write the reports here and keep them")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from cytosafe.report.hazard import CHROMIUM, CHROMIUM_ARGS

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        reports = write_reports(folder)
        anchors = {"MSD QC": "#curves", "CRS grading": "#timelines"}
        rows = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for name, forms in reports.items():
                    for form, path in forms.items():
                        runs = [measure(browser, path, anchors[name]) for _ in range(RUNS)]
                        rows.append((name, form, path.stat().st_size / 1e6, runs))
            finally:
                browser.close()
    print(
        f"Report size and draw times in ms, min / median of {RUNS} (first screen and first "
        "figure from navigation start; all figures: csDrawAll's own time)"
    )
    print(f"{'report':<12} {'form':<7} {'MB':>6}  {'first screen':>15}  {'first figure':>15}"
          f"  {'all figures':>15}")  # fmt: skip
    ok = True
    for name, form, mb, runs in rows:
        cells = []
        for key in ("first screen", "first figure", "all figures"):
            values = [r[key] for r in runs]
            cells.append(f"{min(values):>6.0f} / {statistics.median(values):>6.0f}")
        print(f"{name:<12} {form:<7} {mb:>6.2f}  " + "  ".join(f"{c:>15}" for c in cells))
        if name == "MSD QC" and form == "packed":
            first = statistics.median(r["first screen"] for r in runs)
            ok = mb < TARGET_MB and first < TARGET_MS
            print(
                f"  target: under {TARGET_MB:g} MB and first screen under {TARGET_MS:g} ms: "
                + ("met" if ok else "NOT met")
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
