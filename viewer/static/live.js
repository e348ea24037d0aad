// Dozor live player: fMP4 fragments over a WebSocket into Media Source Extensions, with a
// JPEG fallback where the browser cannot decode the codec (H.265 in Chromium).
//
//   const player = DozorLive.open(element, {site: "school", camera: "gate", stream: "sub"});
//   player.close();
//
// Elements carrying data-live-site and data-live-camera (and optionally data-live-stream)
// get a player when the page loads. Wire format: recorder/live.py, docs/live.md.
(function () {
  "use strict";

  var HEADER_BYTES = 28;
  var KIND = { INIT: 0, MEDIA: 1, JPEG: 2, END: 3 };
  var FLAG_KEYFRAME = 1;
  var KEEP_BEHIND_S = 10; // buffer kept behind the playhead
  var MAX_LAG_S = 1.5; // further behind the live edge than this: jump forward
  var EDGE_MARGIN_S = 0.3; // where to land when jumping: a little buffer against stalls
  var decoder = new TextDecoder();
  // Texts: the page's catalogue (viewer/locales, <script id="i18n">) when there is one.
  var ENGLISH = {
    "live.disconnected": "disconnected",
    "live.waiting": "waiting for the camera…",
    "live.ended": "stream ended: {reason}",
    "live.jpeg_fallback": "{codec} cannot play here: one picture a second",
    "live.show_main": "Main stream",
    "live.show_sub": "Sub stream",
  };
  var catalogue = (function () {
    var node = document.getElementById("i18n");
    try { return node ? JSON.parse(node.textContent) : {}; } catch (err) { return {}; }
  })();
  function t(key, values) {
    var text = catalogue[key] || ENGLISH[key] || key;
    Object.keys(values || {}).forEach(function (k) { text = text.replace("{" + k + "}", values[k]); });
    return text;
  }

  function parse(buffer) {
    var view = new DataView(buffer);
    if (buffer.byteLength < HEADER_BYTES ||
        decoder.decode(new Uint8Array(buffer, 0, 4)) !== "DZL1") {
      throw new Error("not a Dozor live payload");
    }
    var metaLen = view.getUint16(6);
    var meta = null;
    if (metaLen) {
      meta = JSON.parse(decoder.decode(new Uint8Array(buffer, HEADER_BYTES, metaLen)));
    }
    return {
      kind: view.getUint8(4),
      keyframe: (view.getUint8(5) & FLAG_KEYFRAME) !== 0,
      seq: view.getUint32(8),
      sampleWallMs: Number(view.getBigInt64(12)) / 1000,
      recvWallMs: Number(view.getBigInt64(20)) / 1000,
      meta: meta,
      body: new Uint8Array(buffer, HEADER_BYTES + metaLen),
    };
  }

  function el(tag, cls) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    return node;
  }

  function LivePlayer(container, options) {
    this.container = container;
    this.site = options.site;
    this.camera = options.camera;
    this.stream = options.stream || "sub";
    this.mode = options.mode || "mse";
    this.stats = { messages: 0, bytes: 0, fragments: 0, jpegs: 0, kbps: 0, latencyMs: [] };
    this.video = el("video", "live-video");
    this.video.muted = true;
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.image = el("img", "live-jpeg");
    this.image.alt = this.camera;
    this.image.hidden = true;
    this.status = el("div", "live-status");
    this.rate = el("span", "live-rate");
    this.note = el("span", "live-note");
    this.toggle = el("button", "live-stream-toggle");
    this.toggle.type = "button";
    var self = this;
    this.toggle.addEventListener("click", function () { self.switchStream(); });
    this.status.appendChild(this.rate);
    this.status.appendChild(document.createTextNode(" "));
    this.status.appendChild(this.note);
    this.status.appendChild(document.createTextNode(" "));
    this.status.appendChild(this.toggle);
    container.appendChild(this.video);
    container.appendChild(this.image);
    container.appendChild(this.status);
    this.queue = [];
    this.closed = false;
    this._windowBytes = 0;
    this._windowStart = performance.now();
    this._connect();
  }

  // Main stream on request: the same player, reconnected to the other stream.
  LivePlayer.prototype.switchStream = function () {
    this.stream = this.stream === "main" ? "sub" : "main";
    var old = this.ws;
    this.ws = null;
    if (old) old.close();
    this.mediaSource = null;
    this.sourceBuffer = null;
    this.queue = [];
    this._connect();
  };

  LivePlayer.prototype._connect = function () {
    this.toggle.textContent = t(this.stream === "main" ? "live.show_sub" : "live.show_main");
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    var url = scheme + "//" + location.host + "/ws/live/" + encodeURIComponent(this.site) +
      "/" + encodeURIComponent(this.camera) + "?stream=" + encodeURIComponent(this.stream) +
      "&mode=" + this.mode;
    var ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    this._setNote(t("live.waiting"));
    var self = this;
    ws.onmessage = function (event) {
      if (self.ws === ws) self._onMessage(event.data); // not a socket we already left
    };
    ws.onclose = function () {
      if (self.ws === ws && !self.closed) self._setNote(t("live.disconnected"));
    };
    this.ws = ws;
  };

  LivePlayer.prototype._setNote = function (text) {
    this.note.textContent = text;
  };

  LivePlayer.prototype._onMessage = function (data) {
    if (typeof data === "string") {
      var msg = JSON.parse(data);
      if (msg.type === "stats") this.stats.serverBytesPerS = msg.bytes_per_s;
      if (msg.type === "end") this._setNote(t("live.ended", { reason: msg.reason }));
      if (msg.type === "error") this._setNote(msg.message);
      return;
    }
    var chunk = parse(data);
    this.stats.messages += 1;
    this.stats.bytes += data.byteLength;
    this._countRate(data.byteLength);
    if (chunk.recvWallMs > 0 && this.stats.latencyMs.length < 10000) {
      this.stats.latencyMs.push(Date.now() - chunk.recvWallMs);
    }
    if (chunk.kind === KIND.INIT) this._onInit(chunk);
    else if (chunk.kind === KIND.MEDIA) this._append(chunk.body);
    else if (chunk.kind === KIND.JPEG) this._onJpeg(chunk.body);
  };

  LivePlayer.prototype._countRate = function (bytes) {
    this._windowBytes += bytes;
    var now = performance.now();
    if (now - this._windowStart >= 1000) {
      this.stats.kbps = this._windowBytes * 8 / (now - this._windowStart);
      this.rate.textContent = this.stats.kbps.toFixed(0) + " kbit/s";
      this._windowBytes = 0;
      this._windowStart = now;
    }
  };

  LivePlayer.prototype._onInit = function (chunk) {
    var mime = 'video/mp4; codecs="' + chunk.meta.codec + '"';
    if (!window.MediaSource || !MediaSource.isTypeSupported(mime)) {
      this._fallBackToJpeg(chunk.meta.codec);
      return;
    }
    this._setNote(chunk.meta.codec + " " + chunk.meta.width + "x" + chunk.meta.height);
    if (this.mediaSource && this.mime === mime) {
      this._append(chunk.body); // same codec, new run: the new init goes in line
      return;
    }
    this._openMediaSource(mime, chunk.body);
  };

  LivePlayer.prototype._openMediaSource = function (mime, init) {
    var self = this;
    this.mime = mime;
    this.queue = [init];
    this.sourceBuffer = null;
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    var ms = new MediaSource();
    this.mediaSource = ms;
    ms.addEventListener("sourceopen", function () {
      if (self.mediaSource !== ms) return;
      var sb = ms.addSourceBuffer(mime);
      sb.mode = "sequence"; // live: one timeline however the camera's timestamps jump
      sb.addEventListener("updateend", function () { self._afterUpdate(); });
      self.sourceBuffer = sb;
      self._pump();
    });
    this.objectUrl = URL.createObjectURL(ms);
    this.video.src = this.objectUrl;
  };

  LivePlayer.prototype._append = function (body) {
    this.stats.fragments += 1;
    this.queue.push(body);
    this._pump();
  };

  LivePlayer.prototype._pump = function () {
    var sb = this.sourceBuffer;
    if (!sb || sb.updating || !this.queue.length || this.mediaSource.readyState !== "open") {
      return;
    }
    try {
      sb.appendBuffer(this.queue.shift());
    } catch (err) {
      if (err.name === "QuotaExceededError") this._trim(0);
      else this._setNote("player: " + err.message);
    }
  };

  LivePlayer.prototype._afterUpdate = function () {
    var video = this.video;
    var buffered = this.sourceBuffer.buffered;
    if (buffered.length) {
      var end = buffered.end(buffered.length - 1);
      if (end - video.currentTime > MAX_LAG_S || video.currentTime < buffered.start(0)) {
        video.currentTime = Math.max(buffered.start(buffered.length - 1), end - EDGE_MARGIN_S);
      }
      if (video.paused) {
        var playing = video.play();
        if (playing && playing.catch) playing.catch(function () {});
      }
      if (video.currentTime - buffered.start(0) > 2 * KEEP_BEHIND_S) {
        this._trim(KEEP_BEHIND_S);
        return;
      }
    }
    this._pump();
  };

  LivePlayer.prototype._trim = function (keepS) {
    var sb = this.sourceBuffer;
    var until = this.video.currentTime - keepS;
    if (sb.buffered.length && until > sb.buffered.start(0)) sb.remove(0, until);
  };

  LivePlayer.prototype._fallBackToJpeg = function (codec) {
    this.mode = "jpeg";
    var old = this.ws;
    this.ws = null;
    old.close();
    this.video.hidden = true;
    this.image.hidden = false;
    this._connect();
    this._setNote(t("live.jpeg_fallback", { codec: codec }));
  };

  LivePlayer.prototype._onJpeg = function (body) {
    this.stats.jpegs += 1;
    this.video.hidden = true;
    this.image.hidden = false;
    var url = URL.createObjectURL(new Blob([body], { type: "image/jpeg" }));
    if (this.imageUrl) URL.revokeObjectURL(this.imageUrl);
    this.imageUrl = url;
    this.image.src = url;
  };

  LivePlayer.prototype.close = function () {
    this.closed = true;
    if (this.ws) this.ws.close();
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    if (this.imageUrl) URL.revokeObjectURL(this.imageUrl);
    this.container.textContent = "";
  };

  function attachAll(root) {
    var nodes = (root || document).querySelectorAll("[data-live-site][data-live-camera]");
    var players = [];
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      if (node.dozorLive) continue;
      node.dozorLive = new LivePlayer(node, {
        site: node.dataset.liveSite,
        camera: node.dataset.liveCamera,
        stream: node.dataset.liveStream,
        mode: node.dataset.liveMode,
      });
      players.push(node.dozorLive);
    }
    return players;
  }

  window.DozorLive = {
    open: function (container, options) { return new LivePlayer(container, options); },
    attachAll: attachAll,
    parse: parse,
  };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { attachAll(); });
  } else {
    attachAll();
  }
})();
