// Playback of recordings on the operator page: per camera a timeline of the last 24 h (recorded spans,
// gaps with their reason on hover, bookmarks: ONVIF events and picture alarms), click to play from that
// moment (a bookmark: from a little before it), export or lock the range shown.
// The <video> cannot send the bearer token, so it plays a short-lived signed URL the agent hands out
// (POST .../clip-url); the long-lived token never goes into a URL. Uses app.js's `api`, `$`, `signOut`.
'use strict';

const TIMELINE_MS = 24 * 3600 * 1000;
const CLIP_MS = 10 * 60 * 1000;           // a click plays this much from the moment clicked
const TIMELINE_REFRESH_MS = 30000;
const KEY_STEP_MS = 5 * 60 * 1000;
const BOOKMARK_LEAD_MS = 5000;            // a click on a bookmark plays from this much before it

function iso(ms) { return new Date(ms).toISOString(); }

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', second: '2-digit'});
}

function dayClock(ms) {
  return new Date(ms).toLocaleString([], {weekday: 'short', hour: '2-digit', minute: '2-digit', second: '2-digit'});
}

async function apiSend(method, path, body) {
  const init = {method, headers: api.headers(body ? {'Content-Type': 'application/json'} : {}), cache: 'no-store'};
  if (body) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok) throw new Error((await response.text()).trim() || `${response.status}`);
  return response.json();
}

class Playback {
  constructor(card) {
    this.card = card;
    this.root = $('.recordings', card.root);
    this.timeline = $('.timeline', this.root);
    this.track = $('.timeline-track', this.root);
    this.cursor = $('.timeline-cursor', this.root);
    this.selection = $('.timeline-selection', this.root);
    this.axis = $('.timeline-axis', this.root);
    this.video = $('.playback', this.root);
    this.info = $('.playback-info', this.root);
    this.clock = $('.playback-clock', this.root);
    this.exportButton = $('.export', this.root);
    this.lockButton = $('.lock', this.root);
    this.reason = $('.lock-reason', this.root);
    this.spans = [];
    this.range = null;           // [start, end] of the clip shown, in ms
    this.actualStart = null;
    this.cursorMs = null;
    this.timer = null;
    this.loading = false;
    this.video.setAttribute('aria-label', `Recorded video from camera ${card.name}`);
    this.timeline.setAttribute('aria-label', `Recordings of camera ${card.name}, last 24 hours`);
    this.root.addEventListener('toggle', () => (this.root.open ? this.open() : this.close()));
    this.timeline.addEventListener('click', (event) => this.clicked(event));
    this.timeline.addEventListener('keydown', (event) => this.key(event));
    this.video.addEventListener('timeupdate', () => this.showPosition());
    this.video.addEventListener('error', () => this.failed());
    this.exportButton.addEventListener('click', () => this.exportRange());
    this.lockButton.addEventListener('click', () => this.lockRange());
  }

  open() {
    this.load();
    clearInterval(this.timer);
    this.timer = setInterval(() => { if (!document.hidden) this.load(); }, TIMELINE_REFRESH_MS);
  }

  close() {
    clearInterval(this.timer);
    this.timer = null;
    this.video.pause();
  }

  destroy() {
    this.close();
    this.video.removeAttribute('src');
    this.video.load();
  }

  say(text, tone = '') {
    this.info.textContent = text;
    this.info.dataset.tone = tone;
  }

  async load() {
    if (this.loading) return;
    this.loading = true;
    const end = Date.now();
    const start = end - TIMELINE_MS;
    const base = `/recordings/${encodeURIComponent(this.card.name)}`;
    const range = `start=${iso(start)}&end=${iso(end)}`;
    try {
      // Bookmarks are marks on top: the timeline still shows when they cannot be had.
      const [body, marks] = await Promise.all([
        api.get(`${base}?${range}&segments=no`),
        api.get(`${base}/bookmarks?${range}`).catch((error) => {
          if (error instanceof Unauthorized) throw error;
          return {bookmarks: [], truncated: false};
        }),
      ]);
      this.windowStart = start;
      this.windowEnd = end;
      this.render(body, marks);
    } catch (error) {
      if (error instanceof Unauthorized) { signOut('The token was not accepted.'); return; }
      this.say(`Recordings unavailable: ${error.message}`, 'bad');
    } finally {
      this.loading = false;
    }
  }

  position(ms) {
    return Math.max(0, Math.min(100, (100 * (ms - this.windowStart)) / TIMELINE_MS));
  }

  place(element, startMs, endMs) {
    const left = this.position(startMs);
    element.style.left = `${left}%`;
    element.style.width = `${Math.max(0.15, this.position(endMs) - left)}%`;
  }

  render(body, marks = {bookmarks: [], truncated: false}) {
    this.spans = body.spans.map((s) => [Date.parse(s.start), Date.parse(s.end)]);
    const parts = [];
    for (const [index, [start, end]] of this.spans.entries()) {
      const span = document.createElement('div');
      span.className = 'span';
      // The span of the segment being written ends at its last whole fragment, about a second ago.
      const still = body.spans[index].open ? ' (still recording)' : '';
      span.title = `Recorded ${dayClock(start)} – ${clock(end)}${still}`;
      this.place(span, start, end);
      parts.push(span);
    }
    for (const gap of body.gaps) {
      const start = Date.parse(gap.start);
      const end = Date.parse(gap.end);
      const element = document.createElement('div');
      element.className = 'gap';
      element.dataset.reason = gap.reason;
      element.title = `Not recorded ${dayClock(start)} – ${clock(end)}: ${gap.reason}`;
      this.place(element, start, end);
      parts.push(element);
    }
    for (const mark of marks.bookmarks) {
      const at = Date.parse(mark.time);
      const element = document.createElement('div');
      element.className = 'bookmark';
      element.dataset.kind = mark.kind;
      element.dataset.source = mark.source;
      element.dataset.at = String(at);
      element.title = `${dayClock(at)}: ${mark.text}`;
      element.style.left = `${this.position(at)}%`;
      parts.push(element);
    }
    this.track.replaceChildren(...parts);
    const ticks = [];
    for (let hours = 0; hours <= 24; hours += 6) {
      const tick = document.createElement('span');
      tick.textContent = hours === 24 ? 'now' : new Date(this.windowStart + hours * 3600 * 1000)
        .toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', hourCycle: 'h23'});
      tick.style.left = `${(100 * hours) / 24}%`;
      ticks.push(tick);
    }
    this.axis.replaceChildren(...ticks);
    const recorded = this.spans.reduce((sum, [a, b]) => sum + (b - a), 0);
    const more = marks.truncated ? ' (the first shown)' : '';
    this.timeline.setAttribute('aria-valuetext', `${this.spans.length} recorded span(s), ${body.gaps.length} gap(s), `
                                                 + `${(recorded / 3600000).toFixed(1)} h recorded, `
                                                 + `${marks.bookmarks.length} bookmark(s)${more}`);
    if (!this.range) {
      this.say(this.spans.length ? 'Click the timeline to play from that moment.'
                                 : 'Nothing recorded in the last 24 hours.');
    }
    this.showSelection();
  }

  clicked(event) {
    if (!this.windowStart) return;
    const mark = event.target.closest('.bookmark');
    if (mark) { this.play(Number(mark.dataset.at) - BOOKMARK_LEAD_MS); return; }
    const box = this.timeline.getBoundingClientRect();
    const perPixel = TIMELINE_MS / box.width;
    let ms = this.windowStart + (event.clientX - box.left) * perPixel;
    // A pixel is minutes wide: a click beside a short span means that span.
    if (this.firstRecorded(ms, ms + CLIP_MS) === null) {
      const near = this.spans.find(([a, b]) => a - 4 * perPixel <= ms && ms <= b + 4 * perPixel);
      if (near) ms = near[0];
    }
    this.play(ms);
  }

  key(event) {
    if (!this.windowStart) return;
    const steps = {ArrowLeft: -KEY_STEP_MS, ArrowRight: KEY_STEP_MS, PageUp: -12 * KEY_STEP_MS, PageDown: 12 * KEY_STEP_MS};
    if (event.key in steps || event.key === 'Home' || event.key === 'End') {
      event.preventDefault();
      const from = this.cursorMs ?? (this.windowEnd - CLIP_MS);
      this.cursorMs = event.key === 'Home' ? this.windowStart : event.key === 'End' ? this.windowEnd - CLIP_MS
        : Math.max(this.windowStart, Math.min(this.windowEnd, from + steps[event.key]));
      this.cursor.hidden = false;
      this.cursor.style.left = `${this.position(this.cursorMs)}%`;
      this.timeline.setAttribute('aria-valuenow', String(Math.round(this.position(this.cursorMs))));
      this.say(`Play from ${dayClock(this.cursorMs)}? Press Enter.`);
    } else if ((event.key === 'Enter' || event.key === ' ') && this.cursorMs !== null) {
      event.preventDefault();
      this.play(this.cursorMs);
    }
  }

  // Where the recording of [start, end) really begins: the start, or the next span's beginning.
  firstRecorded(start, end) {
    for (const [a, b] of this.spans) {
      if (b > start && a < end) return Math.max(a, start);
    }
    return null;
  }

  async play(startMs, endMs = null) {
    const start = Math.floor(startMs / 1000) * 1000;
    const end = endMs ?? Math.min(start + CLIP_MS, Date.now());
    const actual = this.firstRecorded(start, end);
    if (actual === null) {
      this.say(`Nothing recorded from ${dayClock(start)}: pick a green part of the timeline.`, 'warn');
      return;
    }
    const name = encodeURIComponent(this.card.name);
    try {
      const {url} = await apiSend('POST', `/recordings/${name}/clip-url?start=${iso(start)}&end=${iso(end)}`);
      this.range = [start, end];
      this.actualStart = actual;
      this.video.hidden = false;
      this.video.src = url;
      this.video.play().catch(() => {});
      this.exportButton.disabled = false;
      this.lockButton.disabled = false;
      this.root.dataset.playing = 'yes';
      this.say(`Playing ${dayClock(start)} – ${clock(end)}`);
      this.showSelection();
    } catch (error) {
      if (error instanceof Unauthorized) { signOut('The token was not accepted.'); return; }
      this.say(`Cannot play: ${error.message}`, 'bad');
    }
  }

  // The signed URL lives 60 s: a browser that must fetch again later (after a long pause, a network
  // blip) gets a refusal. Ask for a new clip from where the picture stopped, once.
  failed() {
    if (!this.range || this.actualStart === null) return;
    if (this.recovering) { this.recovering = false; this.say('This clip cannot be played here.', 'bad'); return; }
    this.recovering = true;
    const at = this.actualStart + this.video.currentTime * 1000;
    const end = this.range[1];
    this.say('Reloading the recording…', 'warn');
    this.play(at, end).then(() => { setTimeout(() => { this.recovering = false; }, 5000); });
  }

  showSelection() {
    if (!this.range || !this.windowStart) { this.selection.hidden = true; return; }
    this.selection.hidden = false;
    this.place(this.selection, this.range[0], this.range[1]);
  }

  showPosition() {
    if (!this.range || this.actualStart === null) return;
    // The clip's timeline is the wall clock (a gap stays a gap), so this is the time of the picture shown.
    this.clock.textContent = `Picture of ${dayClock(this.actualStart + this.video.currentTime * 1000)}`;
  }

  async exportRange() {
    if (!this.range) return;
    const [start, end] = this.range;
    try {
      const {url} = await apiSend('POST', `/recordings/${encodeURIComponent(this.card.name)}/export-url?`
                                          + `start=${iso(start)}&end=${iso(end)}`);
      const link = document.createElement('a');
      link.href = url;
      link.download = '';
      link.hidden = true;
      document.body.appendChild(link);
      link.click();
      link.remove();
      this.say(`Export of ${dayClock(start)} – ${clock(end)} is downloading (signed; check it with edgeagent verify).`);
    } catch (error) {
      if (error instanceof Unauthorized) { signOut('The token was not accepted.'); return; }
      this.say(`Export failed: ${error.message}`, 'bad');
    }
  }

  async lockRange() {
    if (!this.range) return;
    const reason = this.reason.value.trim();
    if (!reason) {
      this.say('Give a reason for the lock first.', 'warn');
      this.reason.focus();
      return;
    }
    const [start, end] = this.range;
    try {
      const lock = await apiSend('POST', `/recordings/${encodeURIComponent(this.card.name)}/locks`,
                                 {start: iso(start), end: iso(end), reason});
      this.reason.value = '';
      this.root.dataset.lastLock = lock.id;
      this.say(`Locked ${dayClock(start)} – ${clock(end)}: retention will not delete it (${lock.reason}).`);
    } catch (error) {
      if (error instanceof Unauthorized) { signOut('The token was not accepted.'); return; }
      this.say(`Lock failed: ${error.message}`, 'bad');
    }
  }
}
