// PTZ controls on the operator page: arrows (press and hold), zoom, home and presets on the card of a
// camera that is playing live and has ONVIF PTZ. Kept apart from app.js; it uses the token the page
// signed in with. Each press sends a move that ends by itself after MOVE_S (renewed while held), so a
// closed tab or a lost connection never leaves a camera turning; releasing sends a stop at once.
'use strict';

(() => {
  const TOKEN_KEY = 'edgeagent.token';
  const MOVE_S = 1;
  const REPEAT_MS = 400;
  const SPEED = 0.5;
  const CHECK_MS = 3000;
  const ARROWS = {ArrowLeft: 'left', ArrowRight: 'right', ArrowUp: 'up', ArrowDown: 'down', '+': 'in', '-': 'out'};
  const MOVES = [
    ['left', '◀', 'Pan left', {pan: -SPEED}],
    ['up', '▲', 'Tilt up', {tilt: SPEED}],
    ['down', '▼', 'Tilt down', {tilt: -SPEED}],
    ['right', '▶', 'Pan right', {pan: SPEED}],
    ['in', '+', 'Zoom in', {zoom: SPEED}],
    ['out', '−', 'Zoom out', {zoom: -SPEED}],
  ];
  const withPtz = new Set();

  const headers = () => ({Authorization: 'Bearer ' + (sessionStorage.getItem(TOKEN_KEY) || '')});
  const path = (camera) => `/cameras/${encodeURIComponent(camera)}/ptz`;

  async function send(camera, body) {
    try {
      const response = await fetch(path(camera), {
        method: 'POST', headers: {...headers(), 'Content-Type': 'application/json'}, body: JSON.stringify(body),
      });
      return {ok: response.ok, text: response.ok ? '' : (await response.text()).trim()};
    } catch (error) {
      return {ok: false, text: 'PTZ: the agent did not answer'};
    }
  }

  function holdable(button, camera, velocity, say) {
    let timer = null;
    const move = () => send(camera, {action: 'move', pan: 0, tilt: 0, zoom: 0, ...velocity, timeout_s: MOVE_S}).then(say);
    button.ptzStart = () => {
      if (timer) return;
      move();
      timer = setInterval(move, REPEAT_MS);
    };
    button.ptzStop = () => {
      if (!timer) return;
      clearInterval(timer);
      timer = null;
      send(camera, {action: 'stop'}).then(say);
    };
    button.addEventListener('pointerdown', (event) => { event.preventDefault(); button.focus(); button.ptzStart(); });
    for (const end of ['pointerup', 'pointerleave', 'pointercancel', 'blur']) button.addEventListener(end, button.ptzStop);
    button.addEventListener('keydown', (event) => {
      if ((event.key === 'Enter' || event.key === ' ') && !event.repeat) { event.preventDefault(); button.ptzStart(); }
    });
    button.addEventListener('keyup', (event) => { if (event.key === 'Enter' || event.key === ' ') button.ptzStop(); });
  }

  function build(card, camera) {
    const box = document.createElement('div');
    box.className = 'ptz';
    box.setAttribute('role', 'group');
    box.setAttribute('aria-label', `Pan, tilt and zoom of ${camera} (arrow keys, + and -)`);
    box.tabIndex = 0;
    box.hidden = true;
    const message = document.createElement('p');
    message.className = 'ptz-message';
    message.setAttribute('role', 'status');
    const say = (result) => { message.textContent = result.ok ? '' : result.text; };
    const buttons = {};
    for (const [key, symbol, label, velocity] of MOVES) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'button quiet ptz-move';
      button.dataset.ptz = key;
      button.textContent = symbol;
      button.setAttribute('aria-label', label);
      holdable(button, camera, velocity, say);
      buttons[key] = button;
      box.append(button);
    }
    const home = document.createElement('button');
    home.type = 'button';
    home.className = 'button quiet ptz-home';
    home.textContent = 'Home';
    home.addEventListener('click', () => send(camera, {action: 'home'}).then(say));
    const presets = document.createElement('select');
    presets.className = 'ptz-presets';
    presets.setAttribute('aria-label', 'Preset');
    const go = document.createElement('button');
    go.type = 'button';
    go.className = 'button quiet ptz-goto';
    go.textContent = 'Go';
    go.addEventListener('click', () => { if (presets.value) send(camera, {action: 'goto', preset: presets.value}).then(say); });
    box.append(home, presets, go, message);
    box.addEventListener('keydown', (event) => {
      const button = buttons[ARROWS[event.key]];
      if (button && !event.repeat) { event.preventDefault(); button.ptzStart(); }
    });
    box.addEventListener('keyup', (event) => { const button = buttons[ARROWS[event.key]]; if (button) button.ptzStop(); });
    box.loadPresets = async () => {
      try {
        const response = await fetch(path(camera), {headers: headers()});
        if (!response.ok) return;
        const state = await response.json();
        presets.replaceChildren(...state.presets.map((preset) => new Option(preset.name, preset.token)));
      } catch (error) { /* the next showing tries again */ }
    };
    return box;
  }

  function place() {
    for (const card of document.querySelectorAll('#cameras li[data-camera]')) {
      const camera = card.dataset.camera;
      let box = card.querySelector('.ptz');
      if (!box && withPtz.has(camera)) {
        box = build(card, camera);
        (card.querySelector('.info') || card).append(box);
      }
      if (!box) continue;
      const show = card.dataset.live !== 'off' && withPtz.has(camera);
      if (show && box.hidden) box.loadPresets();
      if (!show) for (const button of box.querySelectorAll('.ptz-move')) button.ptzStop();
      box.hidden = !show;
    }
  }

  async function check() {
    if (sessionStorage.getItem(TOKEN_KEY)) {
      try {
        const response = await fetch('/cameras', {headers: headers()});
        if (response.ok) {
          withPtz.clear();
          for (const entry of (await response.json()).cameras) {
            if (entry.health && entry.health.onvif && entry.health.onvif.ptz) withPtz.add(entry.name);
          }
        }
      } catch (error) { /* the page's own poll reports the connection */ }
    }
    place();
  }

  document.addEventListener('DOMContentLoaded', () => {
    const list = document.getElementById('cameras');
    if (list) new MutationObserver(place).observe(list, {subtree: true, childList: true, attributeFilter: ['data-live']});
    check();
    setInterval(check, CHECK_MS);
  });
})();
