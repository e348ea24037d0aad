// Dozor viewer: camera grid, alert feed and health board, kept current over one WebSocket.
// Vanilla JS, no external resources (the station may have no internet).
"use strict";

(function () {
  const T = JSON.parse(document.getElementById("i18n").textContent);
  const CSRF = document.querySelector('meta[name="csrf-token"]').content;
  const PERMS = new Set(document.querySelector('meta[name="permissions"]').content.split(" "));
  const MAX_ALERTS = 100;

  function t(key, values) {
    let text = T[key] || key;
    for (const [k, v] of Object.entries(values || {})) text = text.replace("{" + k + "}", v);
    return text;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function clock(unixS) {
    if (!unixS) return "";
    const d = new Date(unixS * 1000);
    const today = new Date().toDateString() === d.toDateString();
    const time = d.toLocaleTimeString(document.documentElement.lang, { hour12: false });
    return today ? time : d.toLocaleDateString(document.documentElement.lang) + " " + time;
  }

  function bytes(n) {
    if (n === null || n === undefined) return "";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }

  const state = { sites: new Map(), alerts: new Map() };

  // --- sound: a short two-tone beep made with WebAudio (no file to fetch) ----------------
  let audio = null;
  let soundOn = localStorage.getItem("dozor.sound") !== "off";
  function beep() {
    if (!soundOn) return;
    try {
      audio = audio || new AudioContext();
      if (audio.state === "suspended") audio.resume();
      [880, 660].forEach((freq, i) => {
        const osc = audio.createOscillator();
        const gain = audio.createGain();
        osc.frequency.value = freq;
        gain.gain.value = 0.2;
        osc.connect(gain).connect(audio.destination);
        const start = audio.currentTime + i * 0.18;
        osc.start(start);
        osc.stop(start + 0.15);
      });
      document.body.dataset.lastBeep = String(Date.now());
    } catch (err) {
      console.warn("dozor: cannot play the alert sound", err);
    }
  }
  const soundButton = document.getElementById("sound-toggle");
  function showSound() {
    if (!soundButton) return;
    // Browsers keep audio suspended until the user has clicked on the page: say so, or
    // the first alert of the shift would be silent.
    const blocked = soundOn && (!audio || audio.state === "suspended");
    soundButton.classList.toggle("blocked", blocked);
    soundButton.textContent = blocked ? t("alerts.sound_blocked")
      : (soundOn ? t("alerts.sound_on") : t("alerts.sound_off"));
    soundButton.setAttribute("aria-pressed", String(soundOn));
  }
  function unlockAudio() {
    try {
      audio = audio || new AudioContext();
      if (audio.state === "suspended") audio.resume().then(showSound, showSound);
    } catch (err) {
      console.warn("dozor: no WebAudio", err);
    }
    showSound();
  }
  if (soundButton) {
    soundButton.addEventListener("click", (ev) => {
      const wasBlocked = soundButton.classList.contains("blocked");
      ev.stopPropagation();
      if (!wasBlocked) {
        soundOn = !soundOn;
        localStorage.setItem("dozor.sound", soundOn ? "on" : "off");
      }
      unlockAudio();
    });
  }
  document.addEventListener("click", unlockAudio, { once: true });
  try {
    audio = new AudioContext();
    if (audio.onstatechange !== undefined) audio.onstatechange = showSound;
  } catch (err) {
    audio = null;
  }
  showSound();

  // --- camera grid ------------------------------------------------------------------------
  function latestSnapshot(site, camera) {
    let best = null;
    for (const a of state.alerts.values()) {
      if (a.site === site && a.camera === camera && a.has_snapshot &&
          (!best || a.received_at > best.received_at)) best = a;
    }
    return best;
  }

  function renderGrid() {
    const grid = document.getElementById("camera-grid");
    if (!grid) return;
    const sites = [...state.sites.values()].sort((a, b) => a.site.localeCompare(b.site));
    if (!sites.length) {
      grid.replaceChildren(el("p", { class: "empty", text: t("wall.no_cameras") }));
      return;
    }
    const canLive = PERMS.has("live");
    grid.replaceChildren(...sites.map((s) => {
      const tiles = s.cameras.map((c) => {
        const cls = "tile" + (s.online ? "" : " site-down") + (c.problem ? " problem" : "") +
          " state-" + c.state;
        const snap = latestSnapshot(s.site, c.camera);
        const tile = el(canLive ? "button" : "div",
          { class: cls, "data-site": s.site, "data-camera": c.camera,
            title: canLive ? t("live.open") : null, type: canLive ? "button" : null },
          snap ? el("img", { src: "/api/alerts/" + snap.id + "/snapshot", alt: "", loading: "lazy" })
               : el("span", { class: "noimg" }),
          el("span", { class: "cam-name", text: c.camera }),
          el("span", { class: "cam-state", text: s.online ? t("state." + c.state) : t("site.offline") }),
          // The picture is the last alert's snapshot, not live: say when it was taken.
          snap ? el("span", { class: "snap-time", text: t("wall.snapshot_at", { time: clock(snap.started_at) }) }) : null);
        if (canLive) tile.addEventListener("click", () => openLive(s.site, c.camera));
        return tile;
      });
      return el("section", { class: "site " + (s.online ? "online" : "offline"), "data-site": s.site },
        el("h3", {},
          el("span", { text: s.site }),
          el("span", { class: "badge " + (s.online ? "ok" : "bad"),
                       text: s.online ? t("site.online") : t("site.offline") })),
        el("div", { class: "tiles" }, ...tiles));
    }));
  }

  // --- live view: the dialog; the player itself is live.js (window.DozorLive) ----------------
  const dialog = document.getElementById("live-dialog");
  let player = null;
  function openLive(site, camera) {
    if (!dialog) return;
    document.getElementById("live-title").textContent = site + " / " + camera;
    const container = document.getElementById("live-player");
    container.replaceChildren();
    dialog.showModal();
    if (window.DozorLive && window.DozorLive.open) {
      player = window.DozorLive.open(container, { site, camera, stream: "sub" });
    }
  }
  function closeLive() {
    if (player) player.close();
    player = null;
    document.getElementById("live-player").replaceChildren();
  }
  if (dialog) {
    document.getElementById("live-close").addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", closeLive);
  }

  // --- alert feed -------------------------------------------------------------------------
  function ackForm(alert) {
    const form = document.getElementById("ack-form-template").content.firstElementChild.cloneNode(true);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        const resp = await fetch("/api/alerts/" + alert.id + "/ack", {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
          body: JSON.stringify({ comment: form.elements.comment.value }),
          credentials: "same-origin",
        });
        const body = await resp.json();
        if (body.alert) upsertAlert(body.alert, false);
        else { button.disabled = false; form.dataset.error = body.message || resp.status; }
      } catch (err) {
        button.disabled = false;
        form.dataset.error = String(err);
      }
    });
    return form;
  }

  function alertItem(a) {
    const acked = a.acked_at !== null && a.acked_at !== undefined;
    const ackLine = acked
      ? el("p", { class: "ack " + (a.ack_delivered ? "confirmed" : "pending") },
          t("alerts.acked_by", { user: a.acked_by }) + " · " + clock(a.acked_at) +
          (a.ack_comment ? " · «" + a.ack_comment + "»" : "") + " · " +
          (a.ack_delivered ? t("alerts.ack_confirmed") :
            (a.ack_error ? t("alerts.ack_failed") : t("alerts.ack_pending"))))
      : (PERMS.has("acknowledge") ? ackForm(a) : null);
    return el("li", { class: "alert" + (acked ? " acked" : " open"), "data-id": a.id,
                      "data-site": a.site, "data-camera": a.camera },
      a.has_snapshot ? snapshotThumb(a) : el("span", { class: "snap noimg" }),
      el("div", { class: "body" },
        el("p", { class: "where" }, el("strong", { text: a.site }), " / " + a.camera),
        el("p", { class: "when" }, clock(a.started_at) + " · " +
          (a.ended_at ? t("alerts.ended") : t("alerts.ongoing"))),
        a.zones.length ? el("p", { class: "zones", text: t("alerts.zones") + ": " + a.zones.join(", ") }) : null,
        ackLine));
  }

  const snapDialog = document.getElementById("snapshot-dialog");
  function snapshotThumb(a) {
    const img = el("img", { class: "snap", src: "/api/alerts/" + a.id + "/snapshot",
                            alt: t("alerts.snapshot"), title: t("alerts.snapshot") });
    if (snapDialog) {
      img.addEventListener("click", () => {
        document.getElementById("snapshot-title").textContent =
          a.site + " / " + a.camera + " · " + clock(a.started_at);
        document.getElementById("snapshot-large").src = img.src;
        snapDialog.showModal();
      });
    }
    return img;
  }
  if (snapDialog) {
    document.getElementById("snapshot-close").addEventListener("click", () => snapDialog.close());
  }

  const baseTitle = document.title;
  function showOpenCount() {
    let open = 0;
    for (const a of state.alerts.values()) if (a.acked_at === null || a.acked_at === undefined) open++;
    const badge = document.getElementById("open-count");
    if (badge) {
      badge.hidden = open === 0;
      badge.textContent = String(open);
    }
    document.title = (open ? "(" + open + ") " : "") + baseTitle;
  }

  function renderAlerts() {
    const feed = document.getElementById("alert-feed");
    if (!feed) return;
    const alerts = [...state.alerts.values()]
      .sort((a, b) => b.received_at - a.received_at || b.id - a.id).slice(0, MAX_ALERTS);
    // Keep a half-typed comment: re-render only items whose content changed, and carry the
    // comment (and the cursor) over to an item that an update (event end, snapshot) rebuilt.
    const old = new Map([...feed.children].map((li) => [li.dataset.id, li]));
    let refocus = null;
    const items = alerts.map((a) => {
      const key = JSON.stringify(a);
      const li = old.get(String(a.id));
      if (li && li.dataset.key === key) return li;
      const fresh = alertItem(a);
      fresh.dataset.key = key;
      if (li) refocus = keepTypedComment(li, fresh) || refocus;
      return fresh;
    });
    if (!items.length) feed.replaceChildren(el("li", { class: "empty", text: t("alerts.none") }));
    else feed.replaceChildren(...items);
    if (refocus) refocus();
    showOpenCount();
  }

  // Copies what the officer typed into the rebuilt item; returns how to give the field its
  // focus back once the item is in the page (null when it had none).
  function keepTypedComment(from, to) {
    const typed = from.querySelector("input[name=comment]");
    const field = to.querySelector("input[name=comment]");
    if (!typed || !field) return null;
    field.value = typed.value;
    if (document.activeElement !== typed) return null;
    const start = typed.selectionStart, end = typed.selectionEnd;
    return () => { field.focus(); field.setSelectionRange(start, end); };
  }

  function upsertAlert(a, isNew) {
    const old = state.alerts.get(a.id);
    if (old && old.ack_error && !a.ack_delivered && a.ack_error === undefined) a.ack_error = old.ack_error;
    state.alerts.set(a.id, a);
    if (isNew) beep();
    renderAlerts();
    renderGrid();
  }

  // --- health board -----------------------------------------------------------------------
  function problems() {
    const out = [];
    for (const s of [...state.sites.values()].sort((a, b) => a.site.localeCompare(b.site))) {
      if (!s.online) { out.push({ level: "bad", text: t("health.site_offline"), site: s.site, since: s.since }); continue; }
      for (const c of s.cameras) if (c.problem) {
        out.push({ level: "bad", text: t("state." + c.state), site: s.site, camera: c.camera,
                   since: c.since, detail: c.detail });
      }
      for (const a of s.alarms) {
        out.push({ level: "warn", text: t("alarm." + a.kind), site: s.site, camera: a.camera,
                   since: a.since, detail: a.detail });
      }
      if (s.disk_low) {
        out.push({ level: "warn", text: t("health.disk_low"), site: s.site,
                   detail: bytes(s.disk_free_bytes) + " " + t("health.free") });
      }
    }
    return out;
  }

  function renderHealth() {
    const board = document.getElementById("health-board");
    if (!board) return;
    const list = problems();
    if (!list.length) {
      board.replaceChildren(el("li", { class: "ok", text: t("health.all_ok") }));
      return;
    }
    board.replaceChildren(...list.map((p) => el("li",
      { class: "problem " + p.level, "data-site": p.site, "data-camera": p.camera || null },
      el("strong", { text: p.text }), " · " + p.site + (p.camera ? " / " + p.camera : ""),
      p.since ? el("span", { class: "since", text: " · " + t("health.since") + " " + clock(p.since) }) : null,
      p.detail ? el("span", { class: "detail", text: " · " + p.detail }) : null)));
  }

  // --- WebSocket --------------------------------------------------------------------------
  const linkState = document.getElementById("link-state");
  function showLink(s) {
    if (!linkState) return;
    linkState.hidden = false;
    linkState.dataset.state = s;
    linkState.textContent = t("ws." + s);
  }

  let retryMs = 500;
  function connect() {
    showLink("connecting");
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    ws.onopen = () => { retryMs = 500; showLink("online"); };
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "state") {
        state.sites = new Map(msg.sites.map((s) => [s.site, s]));
        state.alerts = new Map(msg.alerts.map((a) => [a.id, a]));
        renderGrid(); renderAlerts(); renderHealth();
      } else if (msg.type === "site") {
        state.sites.set(msg.site.site, msg.site);
        renderGrid(); renderHealth();
      } else if (msg.type === "alert") {
        upsertAlert(msg.alert, msg.new);
      }
    };
    ws.onclose = async (ev) => {
      showLink("offline");
      // Session over (logout, expiry, account disabled)? Then back to the login page.
      try {
        const resp = await fetch("/api/state", { credentials: "same-origin" });
        if (ev.code === 4401 || resp.status === 401) { location.href = "/login"; return; }
      } catch (err) { /* the viewer itself is down: keep retrying */ }
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }

  window.Dozor = { t, csrf: CSRF, permissions: PERMS };
  renderHealth();
  connect();
  setInterval(renderHealth, 30000); // keep "since" times fresh
})();
