"use strict";
let next = 0;
const list = document.getElementById("events");
function show(e) {
  const a = e.after;
  const li = document.createElement("li");
  li.className = e.type;
  li.dataset.id = a.id;
  const kind = document.createElement("span");
  kind.className = "kind";
  kind.textContent = e.type + " ";
  const text = document.createElement("span");
  text.className = "label";
  text.textContent = a.label + " " + a.score.toFixed(2) + " | " + a.audio.label +
      " @ " + a.frame_time.toFixed(1) + " s ";
  const id = document.createElement("span");
  id.className = "id";
  id.textContent = a.id;
  li.append(kind, text, id);
  list.prepend(li);
  while (list.children.length > 100) list.lastChild.remove();
}
async function poll() {
  try {
    const r = await fetch("/api/events?after=" + next, {cache: "no-store"});
    const j = await r.json();
    for (const e of j.events) show(e);
    next = j.next;
    const s = await (await fetch("/api/state", {cache: "no-store"})).json();
    if (s) {
      document.getElementById("state").textContent =
        "engine    " + s.engine + "\nfps       " + s.fps.toFixed(2) +
        "\ninference " + s.inference_ms.toFixed(0) + " ms\nframes    " + s.frames +
        "   dropped " + s.dropped_frames + "   skipped " + s.frames_skipped + "   bad " + s.frames_bad +
        "\nmasks/s   " + s.mask_rate.toFixed(2) +
        "\naudio     " + s.audio_dbfs.toFixed(1) + " dBFS   gaps " + s.audio_gaps +
        "\nvideo     " + s.video + "   detect " + (s.detect ? "on" : "off");
    }
  } catch (err) { /* server gone or restarting: retry */ }
  setTimeout(poll, 500);
}
poll();
