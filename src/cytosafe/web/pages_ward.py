"""The ward view: one row per patient of a clinical study, live (issue 17, item 4).

**Predictions and alerts support a clinician's judgement and do not replace it**: the page
says so above the table, and every JSON it sends carries the sentence.

``/ward`` lists the clinical studies the user may see; ``/studies/{code}/ward`` shows, for
the chosen scale, each patient's current grade and its trend over the last 24 h, the time
since the infusion, the active (unacknowledged) alerts with an acknowledge button
(analyst and above; audited as ``status`` of the ``monitor_alert``,
:func:`cytosafe.store.monitor.acknowledge_alert`), the predictors' calls and the last
vital signs. The page updates live: ``/studies/{code}/ward/events`` is a server-sent
event stream (``text/event-stream``) that polls the store every second and sends the
ward again whenever an alert was raised or acknowledged or an observation was stored
(``cytosafe monitor --study``), so a new alert appears without a reload.

The rows come from the study's stored observations through
:class:`cytosafe.clinical.monitor.Monitor`, kept per study and scale in the app and fed
only the observations stored since it last looked (the same incremental processing as
``cytosafe monitor``, equal to a full regrade).
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from cytosafe.clinical.monitor import ALERT_DISCLAIMER, Monitor
from cytosafe.clinical.scales import DEFAULT_SCALE, SCALES, get_scale
from cytosafe.errors import InputError
from cytosafe.store import monitor as stored
from cytosafe.web import services
from cytosafe.web.deps import get_study
from cytosafe.web.pages import check_csrf, page, render, session_user, signed_in

__all__ = ["WARD_JS", "router", "ward_payload"]

router = APIRouter(include_in_schema=False)
#: Seconds between two looks at the store by the event stream; a comment line keeps the
#: connection open through proxies every ``_KEEP_ALIVE`` seconds.
POLL_SECONDS = 1.0
_KEEP_ALIVE = 15.0
#: Seconds between two checks that the stream's session is still signed in.
_RECHECK = 30.0
_VITALS = (("temperature", "T", "°C", 1), ("systolic_bp", "SBP", "mmHg", 0),
           ("spo2", "SpO2", "%", 0), ("oxygen_device", "O2", "", None))  # fmt: skip
_lock = threading.Lock()


def _study(request: Request, user, code: str):
    with request.app.state.store.reader() as session:
        study = get_study(session, user, code)
    if study.kind != "clinical":
        raise HTTPException(404, f"study '{code}' is not a clinical cohort: it has no ward")
    return study


def _scale(scale: str | None) -> str:
    try:
        return get_scale(scale or DEFAULT_SCALE).NAME
    except InputError as exc:
        raise HTTPException(422, str(exc)) from None


def _monitor(app, code: str, scale: str) -> Monitor:
    """The study's monitor for ``scale``, fed the observations stored since it last looked."""
    store = app.state.store
    cache = getattr(app.state, "ward_monitors", None)
    if cache is None:
        cache = app.state.ward_monitors = {}
    with _lock:
        entry = cache.get((code, scale))
        corrected = stored.superseded_count(store, code)
        if entry is None or entry["superseded"] != corrected:
            # a source was corrected since: its superseded rows are left out, from the start
            entry = cache[(code, scale)] = {"monitor": Monitor(scale, ["hay2017"]), "seen": 0,
                                            "superseded": corrected}  # fmt: skip
        new = stored.study_observations(store, code, after_id=entry["seen"])
        if len(new):
            first, last = int(new["source_row"].min()), int(new["source_row"].max())
            entry["monitor"].process({f"store observations {first}-{last}": new})
            entry["seen"] = last
        return entry["monitor"]


def _hours(h: float | None) -> str:
    if h is None:
        return "no infusion charted"
    days, rest = divmod(h, 24.0)
    return f"day {int(days)} + {rest:.0f} h" if days >= 1 else f"{h:.0f} h"


def _trend(grades: list[int]) -> str:
    if len(grades) < 2 or grades[-1] == grades[0]:
        return "steady"
    return "rising" if grades[-1] > grades[0] else "falling"


def ward_payload(app, user, code: str, scale: str) -> dict[str, Any]:
    """The ward as JSON-ready data: one row per patient, with the active alerts."""
    monitor = _monitor(app, code, scale)
    alerts = stored.list_alerts(app.state.store, code, active_only=True)
    by_patient: dict[str, list] = {}
    for a in alerts:
        by_patient.setdefault(a["patient_id"], []).append(a)
    rows = []
    for pid in sorted(set(monitor.patients) | set(by_patient)):
        st = monitor.patients.get(pid)
        vitals = []
        if st is not None:
            for item, label, unit, digits in _VITALS:
                if item in st.last_vitals:
                    t, v = st.last_vitals[item]
                    if digits is None:
                        from cytosafe.schema.observations import DEVICES

                        text = DEVICES[int(v)].replace("_", " ")
                    else:
                        text = f"{v:.{digits}f}{(' ' + unit) if unit != '%' else unit}"
                    vitals.append({"label": label, "value": text, "time": t.isoformat() + "Z"})
        trend = [] if st is None else st.trend.get(scale, [])
        calls = {} if st is None else st.predictions
        rows.append({
            "patient_id": pid,
            "grade": None if st is None else st.grade.get(scale),
            "max_grade": None if st is None else st.max_grade.get(scale),
            "trend": trend, "trend_text": _trend(trend),
            "since_infusion": _hours(None if st is None else st.hours_since_infusion),
            "crs_present": None if st is None else st.crs_present.get(scale),
            "predictions": [
                {"name": k, "status": v.get("status"), "reason": v.get("reason") or ""}
                for k, v in calls.items()
            ],
            "alerts": by_patient.get(pid, []),
            "vitals": vitals,
        })  # fmt: skip
    rows.sort(key=lambda r: (-len(r["alerts"]), -(r["grade"] or 0), r["patient_id"]))
    return {
        "study": code,
        "scale": scale,
        "patients": rows,
        "active_alerts": len(alerts),
        "note": ALERT_DISCLAIMER,
    }


def _version(store, code: str) -> tuple:
    return (*stored.last_alert_id(store, code), *stored.latest_observations(store, code),
            stored.superseded_count(store, code))  # fmt: skip


@router.get("/ward", response_class=HTMLResponse)
@page
def ward_index(request: Request):
    found = signed_in(request)
    studies = [s for s in services.list_studies(request.app.state.store, found[0])
               if s.kind == "clinical"]  # fmt: skip
    return render(request, "ward.html", found, studies=studies, study=None, nav="ward",
                  note=ALERT_DISCLAIMER)  # fmt: skip


@router.get("/studies/{code}/ward", response_class=HTMLResponse)
@page
def ward_page(request: Request, code: str, scale: str | None = None):
    found = signed_in(request)
    study = _study(request, found[0], code)
    name = _scale(scale)
    ward = ward_payload(request.app, found[0], study.code, name)
    return render(
        request, "ward.html", found, study=study, ward=ward, scale=name, nav="ward",
        scales=list(SCALES), note=ALERT_DISCLAIMER,
    )  # fmt: skip


@router.get("/studies/{code}/ward/state")
def ward_state(request: Request, code: str, scale: str | None = None):
    found = session_user(request)
    if found is None:
        return JSONResponse({"detail": "sign in"}, status_code=401)
    study = _study(request, found[0], code)
    return JSONResponse(ward_payload(request.app, found[0], study.code, _scale(scale)))


@router.get("/studies/{code}/ward/events")
async def ward_events(request: Request, code: str, scale: str | None = None):
    """Server-sent events: ``event: ward`` with the ward's JSON whenever it changed."""
    found = session_user(request)
    if found is None:
        return JSONResponse({"detail": "sign in"}, status_code=401)
    study = await asyncio.to_thread(_study, request, found[0], code)
    name = _scale(scale)
    app, store, user = request.app, request.app.state.store, found[0]

    async def stream():
        last, quiet, since_check = None, 0.0, 0.0
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            if since_check >= _RECHECK:
                # a session ended (signed out, deactivated) ends its stream too
                if await asyncio.to_thread(session_user, request) is None:
                    break
                since_check = 0.0
            version = await asyncio.to_thread(_version, store, study.code)
            if version != last:
                data = await asyncio.to_thread(ward_payload, app, user, study.code, name)
                yield f"event: ward\ndata: {json.dumps(data, default=str)}\n\n"
                last, quiet = version, 0.0
            elif quiet >= _KEEP_ALIVE:
                yield ": still here\n\n"
                quiet = 0.0
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS
            since_check += POLL_SECONDS

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/studies/{code}/ward/alerts/{alert_id}/acknowledge")
@page
def acknowledge(
    request: Request,
    code: str,
    alert_id: int,
    csrf: Annotated[str, Form()] = "",
    scale: Annotated[str, Form()] = "",
):
    found = signed_in(request, "analyst")
    check_csrf(found[1], csrf)
    study = _study(request, found[0], code)
    try:
        stored.acknowledge_alert(
            request.app.state.store, alert_id, user=found[0].username, study=study.code
        )
    except InputError as exc:
        raise HTTPException(409 if "already" in str(exc) else 404, str(exc)) from None
    if request.headers.get("accept", "").startswith("application/json"):
        return JSONResponse({"acknowledged": alert_id, "note": ALERT_DISCLAIMER})
    suffix = f"?scale={_scale(scale)}" if scale else ""
    return RedirectResponse(f"/studies/{study.code}/ward{suffix}", status_code=303)


@router.get("/ward.js")
def ward_js() -> Response:
    return Response(WARD_JS, media_type="text/javascript")


#: The page's script (served from this server: the content security policy allows no
#: inline script). It draws the rows from the JSON and redraws them on every event.
WARD_JS = r"""
(function () {
  var table = document.getElementById("ward");
  if (!table) { return; }
  var body = table.querySelector("tbody");
  var status = document.getElementById("live");
  var csrf = table.getAttribute("data-csrf");
  var canAck = table.getAttribute("data-can-ack") === "1";
  var scale = table.getAttribute("data-scale");
  var code = table.getAttribute("data-study");
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function cell(row, label, cls) {
    var td = el("td", cls);
    td.setAttribute("data-label", label);
    row.appendChild(td);
    return td;
  }
  function draw(ward) {
    var rows = document.createDocumentFragment();
    ward.patients.forEach(function (p) {
      var tr = el("tr", p.alerts.length ? "alerting" : "");
      tr.setAttribute("data-patient", p.patient_id);
      cell(tr, "Patient", "pid").appendChild(el("b", "", p.patient_id));
      var g = cell(tr, "Grade (" + ward.scale + ")", "grade");
      g.appendChild(el("span", "g g" + (p.grade === null ? "x" : p.grade),
                       p.grade === null ? "–" : p.grade));
      if (p.max_grade) { g.appendChild(el("small", "", " max " + p.max_grade)); }
      var t = cell(tr, "Trend (24 h)", "trend");
      t.appendChild(el("span", "trend " + p.trend_text, p.trend_text));
      if (p.trend.length) { t.appendChild(el("small", "", " " + p.trend.join(" "))); }
      cell(tr, "Since infusion (at the last reading)", "since").textContent = p.since_infusion;
      var a = cell(tr, "Active alerts", "alerts");
      if (!p.alerts.length) { a.appendChild(el("span", "none", "none")); }
      p.alerts.forEach(function (al) {
        var box = el("div", "alert " + al.kind);
        box.setAttribute("data-alert", al.id);
        box.appendChild(el("b", "", al.kind.replace(/_/g, " ")));
        box.appendChild(el("span", "", " " + al.reason));
        box.appendChild(el("small", "", " " + al.time.replace("T", " ").slice(0, 16) + " UTC"));
        if (canAck) {
          var f = el("form");
          f.method = "post";
          f.action = "/studies/" + encodeURIComponent(code) + "/ward/alerts/" + al.id + "/acknowledge";
          var c = el("input"); c.type = "hidden"; c.name = "csrf"; c.value = csrf; f.appendChild(c);
          var s = el("input"); s.type = "hidden"; s.name = "scale"; s.value = scale; f.appendChild(s);
          var b = el("button", "quiet", "Acknowledge"); b.type = "submit"; f.appendChild(b);
          box.appendChild(f);
        }
        a.appendChild(box);
      });
      var pr = cell(tr, "Predictors", "calls");
      p.predictions.forEach(function (c) {
        var s = el("span", "call " + c.status.replace(/ /g, "-"), c.name + ": " + c.status);
        s.title = c.reason;
        pr.appendChild(s);
      });
      var v = cell(tr, "Last vital signs", "vitals");
      p.vitals.forEach(function (x) {
        var s = el("span", "vital", x.label + " " + x.value);
        s.title = x.time;
        v.appendChild(s);
      });
      rows.appendChild(tr);
    });
    body.replaceChildren(rows);
    var n = document.getElementById("active-count");
    if (n) { n.textContent = ward.active_alerts; }
  }
  var first = document.getElementById("ward-data");
  if (first) { draw(JSON.parse(first.textContent)); }
  if (!window.EventSource) { status.textContent = "live updates need a newer browser: reload"; return; }
  var url = "/studies/" + encodeURIComponent(code) + "/ward/events?scale=" + encodeURIComponent(scale);
  var source = new EventSource(url);
  source.addEventListener("ward", function (e) {
    draw(JSON.parse(e.data));
    status.textContent = "live · updated " + new Date().toLocaleTimeString();
    status.className = "live on";
  });
  source.onerror = function () { status.textContent = "reconnecting…"; status.className = "live off"; };
})();
"""
