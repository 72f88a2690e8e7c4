// blendkit.pages: synced players and filters. Inline, no dependencies, nothing fetched.
(() => {
  "use strict";
  const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));

  // One play/pause/seek control for every video of a group (and the audio chosen to follow).
  class Sync {
    constructor(root) {
      const q = (s) => root.querySelector(s);
      this.root = root;
      this.fps = parseFloat(root.dataset.fps) || 25;
      this.videos = Array.from(root.querySelectorAll("video"));
      this.tracks = Array.from(root.querySelectorAll("audio"));
      this.lead = this.videos[0];
      this.button = q(".play"); this.seek = q(".seek"); this.time = q(".time");
      this.rate = q(".rate"); this.loop = q(".loop"); this.sound = q(".sound");
      this.playing = false; this.frames = 1;
      this.tick = this.tick.bind(this);
      this.button.addEventListener("click", () => this.toggle());
      for (const b of root.querySelectorAll(".step")) {
        b.addEventListener("click", () => this.step(parseInt(b.dataset.step, 10)));
      }
      this.seek.addEventListener("input", () => { this.pause(false); this.seekFrame(+this.seek.value); });
      this.rate.addEventListener("change", () => { for (const m of this.all()) m.playbackRate = this.base(); });
      if (this.sound) this.sound.addEventListener("change", () => this.soundChanged());
      for (const v of this.videos) v.addEventListener("click", () => this.toggle());
      this.lead.addEventListener("loadedmetadata", () => this.measure());
      this.lead.addEventListener("ended", () => this.ended());
      this.lead.addEventListener("seeked", () => this.show());
      if (this.lead.readyState >= 1) this.measure();
    }
    base() { return parseFloat(this.rate.value) || 1; }
    all() { return this.videos.concat(this.tracks); }
    audio() { return this.sound && this.sound.value !== "" ? this.tracks[+this.sound.value] : null; }
    synced() { const a = this.audio(); return a ? this.videos.concat([a]) : this.videos; }
    measure() {
      this.frames = Math.max(1, Math.round(this.lead.duration * this.fps));
      this.seek.max = String(this.frames - 1);
      this.show();
    }
    frameAt(t) { return clamp(Math.floor(t * this.fps + 1e-6), 0, this.frames - 1); }
    show() {
      const t = this.lead.currentTime, k = this.frameAt(t);
      this.seek.value = String(k);
      this.time.textContent = `frame ${k + 1} / ${this.frames} \u00b7 ${t.toFixed(2)} s`;
    }
    // Every synced element to the middle of frame k: no rounding can show a neighbour frame.
    seekFrame(k) {
      const t = (clamp(k, 0, this.frames - 1) + 0.5) / this.fps;
      for (const m of this.synced()) m.currentTime = t;
      this.show();
    }
    step(d) { this.pause(false); this.seekFrame(this.frameAt(this.lead.currentTime) + d); }
    toggle() { if (this.playing) this.pause(true); else this.play(); }
    play() {
      if (this.playing) return Promise.resolve();
      if (this.lead.ended || this.frameAt(this.lead.currentTime) >= this.frames - 1) this.seekFrame(0);
      const t = this.lead.currentTime;
      this.playing = true;
      this.button.innerHTML = "&#10074;&#10074;";
      const started = this.synced().map((m) => {
        m.currentTime = t; m.playbackRate = this.base();
        return m.play().catch(() => {});
      });
      requestAnimationFrame(this.tick);
      return Promise.all(started);
    }
    // Pausing lines every synced element up on the lead's frame (align=true).
    pause(align) {
      const was = this.playing;
      this.playing = false;
      this.button.innerHTML = "&#9654;";
      for (const m of this.all()) m.pause();
      if (was && align) this.seekFrame(this.frameAt(this.lead.currentTime));
    }
    ended() {
      const wasPlaying = this.playing;
      this.pause(false);
      if (wasPlaying && this.loop.checked) { this.seekFrame(0); this.play(); }
      else this.seekFrame(this.frames - 1);
    }
    soundChanged() {
      for (const a of this.tracks) a.pause();
      const a = this.audio();
      if (a && this.playing) { a.currentTime = this.lead.currentTime; a.playbackRate = this.base(); a.play().catch(() => {}); }
    }
    // While playing: nudge the rate of any video that drifts, jump it back if it drifts far.
    follow(m, t, frame) {
      const d = m.currentTime - t;
      if (Math.abs(d) > 3 * frame) { m.currentTime = t; m.playbackRate = this.base(); }
      else if (Math.abs(d) > frame / 4) m.playbackRate = this.base() * (1 - clamp(d * 2, -0.2, 0.2));
      else if (m.playbackRate !== this.base()) m.playbackRate = this.base();
    }
    tick() {
      if (!this.playing) return;
      const t = this.lead.currentTime, frame = 1 / this.fps;
      for (const v of this.videos.slice(1)) if (!v.ended) this.follow(v, t, frame);
      const a = this.audio();
      if (a && !a.ended && Math.abs(a.currentTime - t) > 0.15) a.currentTime = t;
      this.show();
      requestAnimationFrame(this.tick);
    }
    state() {
      return { playing: this.playing, frames: this.frames, times: this.videos.map((v) => v.currentTime) };
    }
  }

  // Facet menus over a section's groups: a group shows when it carries every chosen value.
  function filters(bar, syncs) {
    const section = bar.closest("section");
    const groups = Array.from(section.querySelectorAll(".group"));
    const menus = Array.from(bar.querySelectorAll("select[data-facet]"));
    const count = bar.querySelector(".count");
    const apply = () => {
      let shown = 0;
      for (const g of groups) {
        const facets = JSON.parse(g.dataset.facets || "{}");
        const ok = menus.every((m) => m.value === "" || (facets[m.dataset.facet] || []).includes(m.value));
        g.hidden = !ok;
        if (!ok) syncs.get(g).pause(false);
        shown += ok ? 1 : 0;
      }
      count.textContent = `${shown} of ${groups.length} shown`;
    };
    for (const m of menus) m.addEventListener("change", apply);
    apply();
  }

  // A server that ignores Range requests (python -m http.server does) leaves a medium
  // unseekable in Chromium (seekable is [0, 0]): such a medium is fetched whole, once, from the
  // same folder and played from memory.
  function seekable(m) {
    const fix = () => {
      const whole = m.seekable.length > 0 && m.seekable.end(0) >= m.duration - 0.05;
      if (whole || m.dataset.fetched || !/^https?:$/.test(location.protocol)) return;
      m.dataset.fetched = "1";
      fetch(m.currentSrc)
        .then((r) => (r.ok ? r.blob() : Promise.reject(r.status)))
        .then((b) => { m.src = URL.createObjectURL(b); })
        .catch(() => {});
    };
    if (m.readyState >= 1) fix(); else m.addEventListener("loadedmetadata", fix, { once: true });
  }

  for (const m of document.querySelectorAll("video, audio")) seekable(m);
  const syncs = new Map();
  for (const g of document.querySelectorAll(".group")) syncs.set(g, new Sync(g));
  for (const bar of document.querySelectorAll(".filters")) filters(bar, syncs);
  window.blendkitPages = { groups: Array.from(syncs.values()) };
})();
