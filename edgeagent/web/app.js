// The operator page: every camera of this cabinet, its state and latest picture, and live video on demand.
// Plain JavaScript, no build step, nothing loaded from outside the agent.
'use strict';

const POLL_MS = 2000;              // camera list and state
const SNAPSHOT_EVERY_MS = 4000;    // latest picture of cameras not watched live
const ICE_GATHER_MAX_MS = 2000;    // the agent wants a complete offer (no trickle ICE)
const STALL_MS = 3000;             // no frame for this long: say so
const RESTART_STALLED_MS = 20000;  // and after this long with the camera online, start a new session
const RETRY_MAX_MS = 15000;
const CONNECT_MAX_MS = 20000;      // connecting for longer than this: give up and try again
const TOKEN_KEY = 'edgeagent.token';

const $ = (selector, root = document) => root.querySelector(selector);

// -- API --------------------------------------------------------------------------------------------

class Unauthorized extends Error {}

const api = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',

  headers(extra = {}) {
    return {...extra, Authorization: 'Bearer ' + this.token};
  },

  async get(path, kind = 'json') {
    const response = await fetch(path, {headers: this.headers(), cache: 'no-store'});
    if (response.status === 401) throw new Unauthorized();
    if (!response.ok) throw new Error(`${response.status} ${(await response.text()).trim()}`);
    return kind === 'json' ? response.json() : response.blob();
  },
};

// -- page state -------------------------------------------------------------------------------------

const cards = new Map();   // camera name -> CameraCard
let polling = null;
let lastOk = 0;

function setConnection(text, state = 'ok') {
  const element = $('#connection');
  element.textContent = text;
  element.dataset.state = state;
}

function formatTime(date) {
  return date.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', second: '2-digit'});
}

function describeHealth(health) {
  if (!health) return '';
  const parts = [];
  if (health.codec) parts.push(health.codec === 'hevc' ? 'H.265' : health.codec === 'h264' ? 'H.264' : health.codec);
  if (health.width && health.height) parts.push(`${health.width}×${health.height}`);
  if (health.fps) parts.push(`${Math.round(health.fps)} fps`);
  if (health.bitrate_kbps) {
    parts.push(health.bitrate_kbps >= 1000 ? `${(health.bitrate_kbps / 1000).toFixed(1)} Mbit/s`
                                           : `${Math.round(health.bitrate_kbps)} kbit/s`);
  }
  const viewers = health.live && health.live.viewers;
  if (viewers) parts.push(`${viewers} live viewer${viewers === 1 ? '' : 's'}`);
  return parts.join(' · ');
}

// Alarm names as the agent publishes them (edgeagent.media.picture.ALARMS), in the operator's words.
const ALARM_LABELS = {
  offline: 'Offline',
  frozen: 'Picture frozen',
  blank: 'Picture blank',
  blurred: 'Out of focus',
  moved: 'View moved',
};

function formatSince(text) {
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return '';
  const today = new Date().toDateString() === date.toDateString();
  return today ? formatTime(date) : `${date.toLocaleDateString()} ${formatTime(date)}`;
}

function describeAlarms(picture) {
  const active = (picture && picture.active) || [];
  return active.map((name) => {
    const since = formatSince((picture.since || {})[name] || '');
    return `${ALARM_LABELS[name] || name}${since ? ' since ' + since : ''}`;
  }).join(' · ');
}

// -- one live view ----------------------------------------------------------------------------------

// States: connecting → live ⇄ waiting (no picture: camera rebooting) → reconnecting → connecting ...
class LiveView {
  constructor(card) {
    this.card = card;
    this.video = card.video;
    this.pc = null;
    this.location = null;
    this.state = 'off';
    this.lastFrame = 0;
    this.frames = 0;
    this.attempt = 0;
    this.timer = null;
    this.watchdog = null;
    this.generation = 0;   // ignores events of a session that has since been replaced
  }

  start() {
    this.stopped = false;
    this.connect();
    this.watchdog = setInterval(() => this.check(), 1000);
  }

  setState(state, message = '', tone = '') {
    this.state = state;
    this.card.showLive(state, message, tone);
  }

  async connect() {
    const generation = ++this.generation;
    this.connectStarted = performance.now();
    this.setState(this.attempt ? 'reconnecting' : 'connecting');
    const pc = new RTCPeerConnection({iceServers: []});
    this.pc = pc;
    this.lastFrame = 0;
    pc.addTransceiver('video', {direction: 'recvonly'});
    pc.addEventListener('track', (event) => {
      if (generation !== this.generation) return;
      this.video.srcObject = new MediaStream([event.track]);
      this.video.play().catch(() => {});
      this.watchFrames(generation);
    });
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gatheringComplete(pc);
      if (generation !== this.generation) return;
      const response = await fetch('/whep/' + encodeURIComponent(this.card.name), {
        method: 'POST',
        headers: api.headers({'Content-Type': 'application/sdp'}),
        body: pc.localDescription.sdp,
      });
      const body = await response.text();
      if (generation !== this.generation) {
        if (response.status === 201) deleteSession(response.headers.get('Location'));
        return;
      }
      if (response.status === 401) { pc.close(); signOut('Your token is no longer accepted. Sign in again.'); return; }
      if (response.status !== 201) {
        pc.close();
        this.pc = null;
        const reason = body.trim() || `${response.status}`;
        if (response.status === 503 || response.status >= 500) {
          this.retry(`Not available: ${reason}`);
        } else {
          this.fail(`Refused: ${reason}`);
        }
        return;
      }
      this.location = response.headers.get('Location');
      this.card.root.dataset.session = (this.location || '').split('/').pop();
      await pc.setRemoteDescription({type: 'answer', sdp: body});
    } catch (error) {
      if (generation !== this.generation) return;
      pc.close();
      this.pc = null;
      this.retry(`Connection failed (${error.message || error})`);
    }
  }

  watchFrames(generation) {
    const video = this.video;
    if (!('requestVideoFrameCallback' in HTMLVideoElement.prototype)) return;
    const onFrame = () => {
      if (generation !== this.generation) return;
      this.lastFrame = performance.now();
      this.frames++;
      this.attempt = 0;
      if (this.state !== 'live') this.setState('live');
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  check() {
    if (this.stopped || !this.pc) return;
    const connection = this.pc.connectionState;
    const now = performance.now();
    if (connection === 'failed' || connection === 'closed') {
      this.retry('Connection lost');
      return;
    }
    if (connection === 'disconnected') {
      this.disconnectedSince = this.disconnectedSince || now;
      if (now - this.disconnectedSince > 5000) this.retry('Connection lost');
      else this.setState('waiting', 'Connection interrupted…', 'warn');
      return;
    }
    this.disconnectedSince = 0;
    if ((this.state === 'connecting' || this.state === 'reconnecting') && !this.lastFrame &&
        now - this.connectStarted > CONNECT_MAX_MS) {
      this.retry('No picture after connecting');
      return;
    }
    if (this.state === 'live' && now - this.lastFrame > STALL_MS) {
      const offline = this.card.status === 'offline';
      this.stalledSince = now;
      this.setState('waiting', offline ? 'Camera offline — the picture resumes when it is back'
                                       : 'Waiting for the picture…', 'warn');
    } else if (this.state === 'waiting' && this.card.status === 'online' && this.lastFrame &&
               now - this.lastFrame > RESTART_STALLED_MS) {
      this.retry('No picture for a while');
    }
  }

  retry(message) {
    this.teardown();
    if (this.stopped) return;
    const delay = Math.min(RETRY_MAX_MS, 1000 * 2 ** this.attempt);
    this.attempt++;
    this.setState('reconnecting', `${message} — retrying in ${Math.round(delay / 1000)} s`, 'warn');
    this.timer = setTimeout(() => this.connect(), delay);
  }

  fail(message) {
    this.teardown();
    this.setState('error', message, 'bad');
  }

  teardown() {
    this.generation++;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.location) deleteSession(this.location);
    this.location = null;
    delete this.card.root.dataset.session;
    if (this.pc) this.pc.close();
    this.pc = null;
    this.video.srcObject = null;
  }

  stop() {
    this.stopped = true;
    clearInterval(this.watchdog);
    this.teardown();
    this.setState('off');
  }
}

function gatheringComplete(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, ICE_GATHER_MAX_MS);
  });
}

function deleteSession(location) {
  if (!location) return;
  // keepalive: the DELETE still goes out when the tab is being closed.
  fetch(location, {method: 'DELETE', headers: api.headers(), keepalive: true}).catch(() => {});
}

// -- one camera card --------------------------------------------------------------------------------

class CameraCard {
  constructor(name) {
    this.name = name;
    this.status = 'unknown';
    this.live = null;
    this.snapshotUrl = null;
    this.lastSnapshot = -Infinity;
    this.snapshotBusy = false;

    const fragment = $('#camera-card').content.cloneNode(true);
    this.root = fragment.firstElementChild;
    this.root.dataset.camera = name;
    const id = 'camera-' + name;
    $('article', this.root).setAttribute('aria-labelledby', id + '-name');
    this.nameElement = $('.name', this.root);
    this.nameElement.id = id + '-name';
    this.nameElement.textContent = name;
    this.img = $('.snapshot', this.root);
    this.img.alt = `Latest picture from camera ${name}`;
    this.video = $('video', this.root);
    this.video.setAttribute('aria-label', `Live video from camera ${name}`);
    this.watchButton = $('.watch', this.root);
    this.watchButton.setAttribute('aria-describedby', id + '-name');
    this.fullscreenButton = $('.fullscreen', this.root);
    this.watchButton.addEventListener('click', () => this.toggle());
    $('.media-button', this.root).addEventListener('click', () => this.toggle());
    this.fullscreenButton.addEventListener('click', () => this.fullscreen());
    this.resetButton = $('.reset-view', this.root);
    this.resetButton.addEventListener('click', () => this.resetView());
    this.playback = typeof Playback === 'function' ? new Playback(this) : null;  // playback.js
    this.render();
  }

  toggle() {
    if (this.live) this.stopLive(); else this.startLive();
  }

  startLive() {
    if (this.live) return;
    this.live = new LiveView(this);
    this.video.hidden = false;
    this.watchButton.textContent = 'Stop live';
    this.watchButton.setAttribute('aria-pressed', 'true');
    this.fullscreenButton.hidden = false;
    this.live.start();
    updateStopAll();
  }

  stopLive() {
    if (!this.live) return;
    const live = this.live;
    this.live = null;
    live.stop();
    if (document.fullscreenElement === $('.media', this.root)) document.exitFullscreen().catch(() => {});
    this.video.hidden = true;
    this.watchButton.textContent = 'Watch live';
    this.watchButton.setAttribute('aria-pressed', 'false');
    this.fullscreenButton.hidden = true;
    this.root.dataset.live = 'off';
    this.root.dataset.overlay = 'off';
    this.root.dataset.busy = 'no';
    this.setMessage('');
    this.lastSnapshot = -Infinity;  // the picture under the video is old: fetch a fresh one now
    this.render();
    this.refreshSnapshot().catch(() => {});
    updateStopAll();
  }

  async resetView() {
    this.resetButton.disabled = true;
    try {
      const response = await fetch(`/cameras/${encodeURIComponent(this.name)}/alarms/reset`,
                                   {method: 'POST', headers: api.headers()});
      if (response.status === 401) { signOut('Your token is no longer accepted. Sign in again.'); return; }
      if (response.status === 429) this.setMessage('Reset a moment ago: try again in a few seconds', 'warn');
      else if (!response.ok) this.setMessage(`Reset refused: ${(await response.text()).trim()}`, 'bad');
      else this.setMessage('Learning the camera\'s view again…');
    } catch (error) {
      this.setMessage(`Reset failed (${error.message || error})`, 'bad');
    } finally {
      this.resetButton.disabled = false;
    }
  }

  fullscreen() {
    const media = $('.media', this.root);
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else media.requestFullscreen().catch(() => {});
  }

  setMessage(text, tone = '') {
    const message = $('.message', this.root);
    if (message.textContent !== text) message.textContent = text;
    message.dataset.tone = tone;
  }

  showLive(state, message, tone) {
    const root = this.root;
    root.dataset.live = state;
    const overlays = {
      connecting: 'Connecting…',
      reconnecting: 'Reconnecting…',
      waiting: this.status === 'offline' ? 'Camera offline' : 'Waiting for picture…',
      error: 'Live view unavailable',
    };
    const overlay = overlays[state] || '';
    root.dataset.overlay = overlay ? 'on' : 'off';
    root.dataset.busy = ['connecting', 'reconnecting', 'waiting'].includes(state) ? 'yes' : 'no';
    $('.overlay-text', root).textContent = overlay;
    $('.badge', root).textContent = state === 'live' ? 'LIVE' : '';
    if (state === 'live') {
      this.root.dataset.hasPicture = 'yes';
      this.setMessage(`Live · ${this.video.videoWidth}×${this.video.videoHeight}`);
    } else if (state === 'connecting') {
      this.setMessage('Connecting to the live picture…');
    } else if (state !== 'off') {
      this.setMessage(message || overlay, tone);
    }
  }

  update(entry) {
    this.status = entry.status;
    this.health = entry.health || {};
    this.render();
  }

  render() {
    const root = this.root;
    root.dataset.status = this.status;
    const labels = {online: 'Online', offline: 'Offline', unknown: '…'};
    $('.status-text', root).textContent = labels[this.status] || this.status;
    const picture = this.health && this.health.picture;
    const active = (picture && picture.active) || [];
    const alarms = $('.alarms', root);
    root.dataset.alarms = active.length ? 'yes' : 'no';
    alarms.hidden = !active.length;
    const text = describeAlarms(picture);
    if (alarms.textContent !== text) alarms.textContent = text;
    this.resetButton.hidden = !active.some((name) => name === 'moved' || name === 'blurred');
    $('.meta', root).textContent = this.status === 'offline'
      ? (this.health && this.health.last_error ? `Offline: ${this.health.last_error}` : 'Offline')
      : describeHealth(this.health);
    if (this.live) {
      if (this.live.state === 'waiting') this.showLive('waiting');
      return;
    }
    if (this.status === 'offline') {
      root.dataset.overlay = 'on';
      root.dataset.busy = 'no';
      $('.overlay-text', root).textContent = this.snapshotUrl ? 'Camera offline · last picture' : 'Camera offline';
    } else {
      root.dataset.overlay = 'off';
    }
  }

  async refreshSnapshot(force = false) {
    if (this.live || this.snapshotBusy || this.status !== 'online') return;
    const now = performance.now();
    if (!force && now - this.lastSnapshot < SNAPSHOT_EVERY_MS) return;
    this.snapshotBusy = true;
    this.lastSnapshot = now;
    try {
      const blob = await api.get(`/cameras/${encodeURIComponent(this.name)}/snapshot.jpg`, 'blob');
      const url = URL.createObjectURL(blob);
      const probe = new Image();
      probe.src = url;
      await probe.decode();   // swap only a decoded picture in: no flash of an empty frame
      const old = this.snapshotUrl;
      this.snapshotUrl = url;
      this.img.src = url;
      this.img.hidden = false;
      this.snapshotTime = new Date();
      if (!this.live) this.setMessage(`Picture of ${formatTime(this.snapshotTime)}`);
      this.root.dataset.hasPicture = 'yes';
      if (old) URL.revokeObjectURL(old);
    } catch (error) {
      if (error instanceof Unauthorized) throw error;
      // No picture yet (503) or a passing error: keep the last one; the next poll tries again.
    } finally {
      this.snapshotBusy = false;
    }
  }
}

function updateStopAll() {
  const any = [...cards.values()].some((card) => card.live);
  $('#stop-all').hidden = !any;
}

// -- polling ----------------------------------------------------------------------------------------

let pollInFlight = false;

async function poll() {
  if (pollInFlight) return;  // a slow agent must not pile requests up
  pollInFlight = true;
  try {
    const document_ = await api.get('/cameras');
    lastOk = Date.now();
    $('#agent-id').textContent = document_.agent || '';
    document.title = `Cameras · ${document_.agent || 'edgeagent'}`;
    const list = $('#cameras');
    const names = new Set();
    for (const entry of document_.cameras || []) {
      names.add(entry.name);
      let card = cards.get(entry.name);
      if (!card) {
        card = new CameraCard(entry.name);
        cards.set(entry.name, card);
        list.appendChild(card.root);
      }
      card.update(entry);
    }
    for (const [name, card] of cards) {
      if (!names.has(name)) {
        card.stopLive();
        if (card.playback) card.playback.destroy();
        card.root.remove();
        cards.delete(name);
      }
    }
    $('#empty').hidden = cards.size > 0;
    const online = [...cards.values()].filter((card) => card.status === 'online').length;
    setConnection(`${online} of ${cards.size} camera${cards.size === 1 ? '' : 's'} online · updated ${formatTime(new Date())}`);
    if (!document.hidden) {
      await Promise.all([...cards.values()].map((card) => card.refreshSnapshot()));
    }
  } catch (error) {
    if (error instanceof Unauthorized) {
      signOut('The token was not accepted.');
      return;
    }
    const since = lastOk ? ` since ${formatTime(new Date(lastOk))}` : '';
    setConnection(`Agent unreachable${since} — retrying…`, 'error');
  } finally {
    pollInFlight = false;
  }
}

function startPolling() {
  stopPolling();
  poll();
  polling = setInterval(poll, POLL_MS);
}

function stopPolling() {
  clearInterval(polling);
  polling = null;
}

// -- sign in and out --------------------------------------------------------------------------------

function showLogin(message = '') {
  $('#cameras-section').hidden = true;
  $('#sign-out').hidden = true;
  $('#stop-all').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = message;
  setConnection('');
  $('#token').value = '';
  $('#token').focus();
}

function showCameras() {
  $('#login').hidden = true;
  $('#cameras-section').hidden = false;
  $('#sign-out').hidden = false;
  startPolling();
}

function signOut(message = '') {
  stopPolling();
  for (const card of cards.values()) card.stopLive();
  for (const card of cards.values()) { if (card.playback) card.playback.destroy(); card.root.remove(); }
  cards.clear();
  sessionStorage.removeItem(TOKEN_KEY);
  api.token = '';
  showLogin(message);
}

async function signIn(event) {
  event.preventDefault();
  const token = $('#token').value.trim();
  if (!token) {
    $('#login-error').textContent = 'Enter the API token.';
    return;
  }
  api.token = token;
  try {
    await api.get('/cameras');
  } catch (error) {
    api.token = '';
    $('#login-error').textContent = error instanceof Unauthorized
      ? 'This token is not accepted by the agent.'
      : `The agent cannot be reached (${error.message}).`;
    $('#token').select();
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  showCameras();
  $('#cameras').focus();
}

document.addEventListener('DOMContentLoaded', () => {
  $('#login-form').addEventListener('submit', signIn);
  $('#sign-out').addEventListener('click', () => signOut());
  $('#stop-all').addEventListener('click', () => { for (const card of cards.values()) card.stopLive(); });
  document.addEventListener('visibilitychange', () => { if (!document.hidden && api.token) poll(); });
  // Closing the tab ends the viewers at once instead of after the agent's timeout.
  window.addEventListener('pagehide', () => { for (const card of cards.values()) if (card.live) card.live.stop(); });
  if (api.token) showCameras(); else showLogin();
});
