// The gossipnet dashboard: this node's status, a live map of the overlay
// drawn by a small force simulation, and the chat. Everything comes from the
// node's control API on loopback (see docs/API.md). Text that came from the
// network only ever reaches the page through textContent.
'use strict';

(() => {
  const COOKIE = new URLSearchParams(location.search).get('cookie') || '';
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // Counters move slowly; every two seconds keeps them lively and cheap.
  const STATUS_EVERY_MS = 2000;
  // A crawl asks every node, so it runs at most every two seconds and
  // spends at most a third of the time crawling.
  const NETWORK_MIN_MS = 2000;
  // After a neighbour comes or goes, the map is stale: look again soon.
  const NETWORK_SOON_MS = 300;
  // How long to wait before asking a node that did not answer.
  const RETRY_MS = 2000;
  // A node that takes longer than this to answer counts as gone; a crawl
  // may take much longer, since it waits for every node in turn.
  const ANSWER_MS = 5000;
  const CRAWL_MS = 120000;
  // The feed keeps this many lines; older ones fall off the bottom.
  const FEED_MAX = 200;
  // Lines of history to show when the page opens.
  const HISTORY = 50;
  // Beyond this many drawn nodes, labels show only on hover.
  const DENSE = 40;
  // The simulation stops once it has cooled below this.
  const ALPHA_MIN = 0.004;

  const $ = (id) => document.getElementById(id);
  const short = (id) => String(id == null ? '' : id).slice(0, 8);
  const names = new Map(); // node id -> name, learned from status and crawls
  let me = { id: null, name: null };

  // ---- small helpers -------------------------------------------------------

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function svgEl(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  function setText(id, value) {
    $(id).textContent = value == null ? '–' : String(value);
  }

  // "name (shortid)", or the short id alone when the name is not known yet.
  function who(id, name) {
    const f = document.createDocumentFragment();
    const known = name || names.get(id);
    if (known) f.append(known + ' ');
    const code = el('code', null, known ? `(${short(id)})` : short(id));
    code.title = id || '';
    f.append(code);
    return f;
  }

  function num(x) {
    if (typeof x !== 'number' || !Number.isFinite(x)) return '–';
    return Number.isInteger(x) ? x.toLocaleString('en') : x.toFixed(1);
  }

  function bytes(n) {
    if (typeof n !== 'number') return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${i ? n.toFixed(1) : n} ${units[i]}`;
  }

  function duration(s) {
    if (typeof s !== 'number') return '–';
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24;
    const m = Math.floor(s / 60) % 60, sec = Math.floor(s % 60);
    const two = (x) => String(x).padStart(2, '0');
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${two(m)}m`;
    if (m) return `${m}m ${two(sec)}s`;
    return `${sec}s`;
  }

  // Accepts seconds, milliseconds (or finer) since the epoch, or a date string.
  function toDate(t) {
    if (typeof t === 'string' && t.trim() !== '' && !Number.isNaN(Number(t))) t = Number(t);
    if (typeof t === 'number' && Number.isFinite(t)) {
      let ms = t < 1e11 ? t * 1000 : t;
      while (ms > 1e14) ms /= 1000;
      return new Date(ms);
    }
    const d = typeof t === 'string' ? new Date(t) : null;
    return d && !Number.isNaN(d.getTime()) ? d : new Date();
  }

  function clock(t) {
    const d = toDate(t);
    return [d.getHours(), d.getMinutes(), d.getSeconds()]
      .map((x) => String(x).padStart(2, '0')).join(':');
  }

  // ---- the API -------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status; // 0 when the node did not answer at all
    }
  }

  async function api(path, options, timeout) {
    const init = {
      cache: 'no-store',
      signal: AbortSignal.timeout(timeout || ANSWER_MS),
      ...(options || {}),
    };
    init.headers = { Authorization: `Bearer ${COOKIE}`, ...(init.headers || {}) };
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      const slow = e && e.name === 'TimeoutError';
      throw new ApiError(slow ? 'the node is too slow to answer' : 'the node does not answer', 0);
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const why = body && typeof body.error === 'string' ? body.error : `HTTP ${res.status}`;
      throw new ApiError(why, res.status);
    }
    return body;
  }

  function showConnection(err) {
    const banner = $('banner');
    if (!err) {
      banner.hidden = true;
      return;
    }
    if (err.status === 401) {
      banner.textContent = 'the node refused this page (it may have restarted with a new cookie): '
        + 'open the dashboard address it prints now — retrying';
    } else if (err.status) {
      banner.textContent = `the node answered: ${err.message} — retrying`;
    } else {
      banner.textContent = 'disconnected — retrying';
    }
    banner.hidden = false;
  }

  // ---- status --------------------------------------------------------------

  function showStatus(s) {
    me = { id: s.id, name: s.name };
    if (s.id && s.name) names.set(s.id, s.name);
    setText('me-name', s.name);
    setText('me-id', short(s.id));
    $('me-id').title = s.id || '';
    setText('me-role', s.role);
    setText('me-uptime', duration(s.uptime_s));
    document.title = `${s.name || 'node'} · gossipnet`;

    const active = (s.active || []).map((peer) => {
      if (peer.id && peer.name) names.set(peer.id, peer.name);
      const li = el('li');
      li.append(who(peer.id, peer.name));
      const listen = (peer.listen || [])[0] || peer.addr;
      const rtt = typeof peer.rtt_ms === 'number' ? `${peer.rtt_ms.toFixed(1)} ms` : null;
      const detail = [listen, peer.direction, rtt].filter(Boolean).join(' · ');
      if (detail) li.append(' ', el('span', 'muted', detail));
      li.title = [
        peer.transport && `over ${peer.transport}`,
        typeof peer.link_age_s === 'number' && `linked ${duration(peer.link_age_s)} ago`,
        `${bytes(peer.bytes_sent)} sent, ${bytes(peer.bytes_received)} received`,
      ].filter(Boolean).join('; ');
      return li;
    });
    $('active').replaceChildren(...(active.length ? active : [el('li', 'muted', 'none')]));
    setText('s-passive', Array.isArray(s.passive) ? s.passive.length : null);
    setText('s-links', num(s.links));
    setText('s-seeds', `${num(s.seeds_reachable)} / ${num(s.seeds_configured)}`);
    setText('s-broadcast', num(s.broadcast));
    setText('s-delivered', num(s.delivered));
    setText('s-forwarded', num(s.forwarded));
    setText('s-duplicates', num(s.duplicates));
    setText('s-estimate', num(s.size_estimate));
    setText('s-handshake', num(s.handshake_failures));
    setText('s-bytes', bytes(s.bytes_sent));
  }

  async function pollStatus() {
    try {
      showStatus(await api('/api/status'));
      showConnection(null);
    } catch (err) {
      showConnection(err);
    }
    setTimeout(pollStatus, STATUS_EVERY_MS);
  }

  // ---- the feed ------------------------------------------------------------

  const feed = $('feed');
  const seen = new Set(); // ids of the messages in the feed

  function push(li) {
    feed.prepend(li);
    while (feed.children.length > FEED_MAX) {
      const last = feed.lastElementChild;
      seen.delete(last.dataset.id);
      last.remove();
    }
  }

  function addMessage(m, direct) {
    if (!m || typeof m !== 'object') return;
    if (m.id != null) {
      if (seen.has(String(m.id))) return;
      seen.add(String(m.id));
    }
    if (m.origin && m.name) names.set(m.origin, m.name);
    const chat = typeof m.text === 'string';
    const li = el('li', direct ? 'direct' : chat ? '' : 'quiet');
    if (m.own) li.classList.add('own');
    if (m.caught_up) li.classList.add('caught-up');
    if (m.id != null) li.dataset.id = String(m.id);
    const from = el('span', 'who');
    from.append(who(m.origin, m.name));
    li.append(el('span', 'time', clock(m.time)), from,
      el('span', 'text', chat ? m.text : `(${m.kind || 'message'})`));
    if (m.caught_up) li.title = 'caught up: missed while away, fetched from a neighbour';
    push(li);
  }

  function addNeighbor(type, peer) {
    const li = el('li', 'quiet');
    const from = el('span', 'who');
    from.append(who(peer));
    li.append(el('span', 'time', clock(Date.now())), from,
      el('span', 'text', type === 'neighbor_up' ? 'joined the active view' : 'left the active view'));
    push(li);
  }

  // Events that arrive while the history is loading wait here, so the feed
  // stays in order.
  let backlog = [];

  function deliver(fn) {
    if (backlog) backlog.push(fn);
    else fn();
  }

  async function loadHistory() {
    try {
      const list = await api(`/api/messages?limit=${HISTORY}`);
      if (Array.isArray(list)) list.forEach((m) => addMessage(m, m.kind === 'direct'));
    } catch (err) {
      // An older node has no history (404); the live feed still works.
    }
    const waiting = backlog;
    backlog = null;
    waiting.forEach((fn) => fn());
  }

  function parse(e) {
    try {
      return JSON.parse(e.data);
    } catch (err) {
      return null;
    }
  }

  function openEvents() {
    const source = new EventSource(`/api/events?cookie=${encodeURIComponent(COOKIE)}`);
    source.addEventListener('message', (e) => {
      const m = parse(e);
      deliver(() => addMessage(m, false));
    });
    source.addEventListener('direct', (e) => {
      const m = parse(e);
      deliver(() => addMessage(m, true));
    });
    for (const type of ['neighbor_up', 'neighbor_down']) {
      source.addEventListener(type, (e) => {
        const d = parse(e);
        if (d && d.peer) deliver(() => addNeighbor(type, d.peer));
        refreshNetworkSoon();
      });
    }
    // The browser retries by itself after a dropped stream, but gives up
    // for good after a refused one; then start over.
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(openEvents, RETRY_MS);
      }
    };
  }

  // ---- sending -------------------------------------------------------------

  $('send').addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = $('text');
    const button = $('send').querySelector('button');
    const error = $('send-error');
    const text = input.value.trim();
    if (!text) return;
    button.disabled = true;
    error.hidden = true;
    try {
      const body = { text };
      await api('/api/send', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      input.value = '';
      // Our own line comes back on the event stream, marked as ours.
    } catch (err) {
      error.textContent = `not sent: ${err.message}`;
      error.hidden = false;
    } finally {
      button.disabled = false;
      input.focus();
    }
  });

  // ---- the map -------------------------------------------------------------

  const svg = $('topology');
  const linkLayer = svgEl('g');
  const nodeLayer = svgEl('g');
  svg.append(linkLayer, nodeLayer);

  const sim = {
    nodes: new Map(), // id -> {id, seed, x, y, vx, vy, fixed, g}
    links: new Map(), // key -> {a, b, kind, line, s, t}
    alpha: 0,
    running: false,
    width: 800,
    height: 600,
  };
  let drag = null;

  function resize() {
    const r = svg.getBoundingClientRect();
    sim.width = Math.max(r.width, 200);
    sim.height = Math.max(r.height, 200);
    svg.setAttribute('viewBox', `${-sim.width / 2} ${-sim.height / 2} ${sim.width} ${sim.height}`);
  }

  // The ideal distance between neighbours: what the area allows, within
  // bounds that keep labels readable.
  function spacing() {
    const n = Math.max(sim.nodes.size, 1);
    return Math.min(130, Math.max(36, Math.sqrt((sim.width * sim.height) / n) * 0.5));
  }

  function heat(alpha) {
    sim.alpha = Math.max(sim.alpha, alpha);
    svg.dataset.settled = 'false';
    if (!sim.running) {
      sim.running = true;
      requestAnimationFrame(frame);
    }
  }

  function frame() {
    tick();
    draw();
    if (sim.alpha < ALPHA_MIN && !drag) {
      sim.running = false;
      svg.dataset.settled = 'true';
    } else {
      requestAnimationFrame(frame);
    }
  }

  function tick() {
    const list = [...sim.nodes.values()];
    const k = spacing();
    const a = sim.alpha;
    // Repulsion between every pair (fine for the few hundred nodes a map
    // can show legibly).
    const repel = k * k * 0.12 * a;
    for (let i = 0; i < list.length; i += 1) {
      const p = list[i];
      for (let j = i + 1; j < list.length; j += 1) {
        const q = list[j];
        let dx = q.x - p.x;
        let dy = q.y - p.y;
        let d2 = dx * dx + dy * dy;
        if (d2 < 0.01) {
          dx = Math.random() - 0.5;
          dy = Math.random() - 0.5;
          d2 = dx * dx + dy * dy;
        }
        const f = repel / d2;
        p.vx -= dx * f; p.vy -= dy * f;
        q.vx += dx * f; q.vy += dy * f;
      }
    }
    // Springs along the links.
    for (const l of sim.links.values()) {
      const dx = l.t.x - l.s.x;
      const dy = l.t.y - l.s.y;
      const d = Math.sqrt(dx * dx + dy * dy) || 1;
      const rest = l.kind === 'link' ? k : k * 1.4;
      const strength = l.kind === 'link' ? 0.25 : 0.08;
      const f = ((d - rest) / d) * strength * a * 0.5;
      l.s.vx += dx * f; l.s.vy += dy * f;
      l.t.vx -= dx * f; l.t.vy -= dy * f;
    }
    // Gravity towards the centre keeps separate components in view; then
    // damping, and the walls of the picture.
    const wx = sim.width / 2 - 50, top = sim.height / 2 - 14, bottom = sim.height / 2 - 28;
    for (const p of list) {
      if (p.fixed) { p.vx = 0; p.vy = 0; continue; }
      p.vx -= p.x * 0.02 * a;
      p.vy -= p.y * 0.02 * a;
      p.vx *= 0.6; p.vy *= 0.6;
      p.x = Math.min(wx, Math.max(-wx, p.x + p.vx));
      p.y = Math.min(bottom, Math.max(-top, p.y + p.vy));
    }
    sim.alpha += (0 - sim.alpha) * 0.02;
  }

  function draw() {
    for (const p of sim.nodes.values()) {
      p.g.setAttribute('transform', `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})`);
    }
    for (const l of sim.links.values()) {
      l.line.setAttribute('x1', l.s.x.toFixed(1));
      l.line.setAttribute('y1', l.s.y.toFixed(1));
      l.line.setAttribute('x2', l.t.x.toFixed(1));
      l.line.setAttribute('y2', l.t.y.toFixed(1));
    }
  }

  function linkKey(a, b) {
    return a < b ? `${a} ${b}` : `${b} ${a}`;
  }

  function makeNode(n) {
    const g = svgEl('g');
    g.dataset.id = n.id;
    g.append(svgEl('title'));
    g.append(n.seed
      ? svgEl('rect', { x: -7, y: -7, width: 14, height: 14, rx: 2 })
      : svgEl('circle', { r: 8 }));
    g.append(svgEl('text', { y: 22, 'text-anchor': 'middle' }));
    nodeLayer.append(g);
    return { id: n.id, seed: !!n.seed, x: 0, y: 0, vx: 0, vy: 0, fixed: false, g };
  }

  function labelNode(p, n, from) {
    const cls = `${n.seed ? 'seed' : 'node'}${n.id === from ? ' me' : ''}`;
    if (p.g.getAttribute('class') !== cls) p.g.setAttribute('class', cls);
    const label = `${n.name || '?'} · ${short(n.id)}`;
    const text = p.g.querySelector('text');
    if (text.textContent !== label) text.textContent = label;
    const addrs = Array.isArray(n.addrs) ? n.addrs.join(', ') : '';
    p.g.querySelector('title').textContent = [
      `${n.name || '?'}${n.seed ? ' (seed)' : ''}`, n.id, addrs,
      `up ${duration(n.uptime_s)}, size estimate ${num(n.size_estimate)}`,
    ].filter(Boolean).join('\n');
  }

  // Places new nodes next to a neighbour already on the map, so the
  // picture grows where the network grew instead of jumping about.
  function place(fresh, adjacency) {
    const k = spacing();
    let pending = fresh;
    while (pending.length) {
      const later = [];
      for (const p of pending) {
        const anchor = (adjacency.get(p.id) || [])
          .map((id) => sim.nodes.get(id)).find((q) => q && q.placed);
        if (anchor) {
          const angle = Math.random() * 2 * Math.PI;
          p.x = anchor.x + Math.cos(angle) * k * 0.6;
          p.y = anchor.y + Math.sin(angle) * k * 0.6;
          p.placed = true;
        } else {
          later.push(p);
        }
      }
      if (later.length === pending.length) {
        // Nothing to lean on: start one anywhere near the middle.
        const p = later.shift();
        p.x = (Math.random() - 0.5) * k;
        p.y = (Math.random() - 0.5) * k;
        p.placed = true;
      }
      pending = later;
    }
  }

  function components(ids, links) {
    const parent = new Map(ids.map((id) => [id, id]));
    const root = (x) => {
      while (parent.get(x) !== x) {
        parent.set(x, parent.get(parent.get(x)));
        x = parent.get(x);
      }
      return x;
    };
    for (const l of links) parent.set(root(l.a), root(l.b));
    return new Set(ids.map(root)).size;
  }

  function showNetwork(topo) {
    const all = Array.isArray(topo.nodes) ? topo.nodes : [];
    for (const n of all) if (n.id && n.name) names.set(n.id, n.name);
    const shown = new Map(all.filter((n) => n && n.reachable && n.id).map((n) => [n.id, n]));
    let changed = false;

    for (const [id, p] of sim.nodes) {
      const n = shown.get(id);
      if (!n || !!n.seed !== p.seed) {
        p.g.remove();
        sim.nodes.delete(id);
        changed = true;
      }
    }

    const wanted = new Map();
    for (const [a, b] of Array.isArray(topo.links) ? topo.links : []) {
      if (a !== b && shown.has(a) && shown.has(b)) wanted.set(linkKey(a, b), { a, b, kind: 'link' });
    }
    for (const [a, b] of Array.isArray(topo.seed_links) ? topo.seed_links : []) {
      const key = `seed ${linkKey(a, b)}`;
      if (a !== b && shown.has(a) && shown.has(b)) wanted.set(key, { a, b, kind: 'seed-link' });
    }
    const adjacency = new Map();
    for (const l of wanted.values()) {
      if (!adjacency.has(l.a)) adjacency.set(l.a, []);
      if (!adjacency.has(l.b)) adjacency.set(l.b, []);
      adjacency.get(l.a).push(l.b);
      adjacency.get(l.b).push(l.a);
    }

    const fresh = [];
    for (const n of shown.values()) {
      let p = sim.nodes.get(n.id);
      if (!p) {
        p = makeNode(n);
        sim.nodes.set(n.id, p);
        fresh.push(p);
        changed = true;
      } else {
        p.placed = true;
      }
      labelNode(p, n, topo.from);
    }
    place(fresh, adjacency);

    for (const [key, l] of sim.links) {
      if (!wanted.has(key)) {
        l.line.remove();
        sim.links.delete(key);
        changed = true;
      }
    }
    for (const [key, l] of wanted) {
      if (!sim.links.has(key)) {
        l.line = svgEl('line', { class: l.kind });
        linkLayer.append(l.line);
        sim.links.set(key, l);
        changed = true;
      }
      const kept = sim.links.get(key);
      kept.s = sim.nodes.get(kept.a);
      kept.t = sim.nodes.get(kept.b);
    }

    const plain = [...sim.nodes.values()].filter((p) => !p.seed).map((p) => p.id);
    const overlay = [...sim.links.values()].filter((l) => l.kind === 'link');
    svg.dataset.nodes = String(plain.length);
    svg.dataset.links = String(overlay.length);
    svg.classList.toggle('dense', sim.nodes.size > DENSE);

    const self = all.find((n) => n.id === topo.from);
    const unreachable = all.filter((n) => !n.reachable).length;
    const pieces = components(plain, overlay);
    const parts = [
      `${plain.length} nodes`,
      `${overlay.length} links`,
      `${pieces} ${pieces === 1 ? 'component' : 'components'}`,
      `size estimate ${num(self ? self.size_estimate : null)}`,
    ];
    const seeds = shown.size - plain.length;
    if (seeds) parts.push(`${seeds} ${seeds === 1 ? 'seed' : 'seeds'}`);
    if (unreachable) parts.push(`${unreachable} unreachable`);
    if (typeof topo.elapsed_ms === 'number') parts.push(`crawled in ${topo.elapsed_ms} ms`);
    setText('summary', parts.join(' · '));

    if (changed) heat(fresh.length ? 1 : 0.5);
  }

  // One crawl at a time; the next is due a while after the last ended.
  const crawl = { timer: 0, due: Infinity, busy: false, again: false };

  function scheduleNetwork(ms) {
    clearTimeout(crawl.timer);
    crawl.due = Date.now() + ms;
    crawl.timer = setTimeout(loadNetwork, ms);
  }

  function refreshNetworkSoon() {
    if (crawl.busy) crawl.again = true;
    else if (crawl.due - Date.now() > NETWORK_SOON_MS) scheduleNetwork(NETWORK_SOON_MS);
  }

  async function loadNetwork() {
    crawl.due = Infinity;
    crawl.busy = true;
    let wait = RETRY_MS;
    try {
      const topo = await api('/api/network', null, CRAWL_MS);
      showNetwork(topo);
      wait = Math.max(NETWORK_MIN_MS, 3 * (Number(topo.elapsed_ms) || 0));
    } catch (err) {
      if (!sim.nodes.size) setText('summary', `no map yet: ${err.message}`);
    }
    crawl.busy = false;
    if (crawl.again) {
      crawl.again = false;
      wait = NETWORK_SOON_MS;
    }
    scheduleNetwork(wait);
  }

  // Dragging a node pins it under the pointer until it is let go.
  function pointer(e) {
    const m = svg.getScreenCTM();
    return m ? new DOMPoint(e.clientX, e.clientY).matrixTransform(m.inverse()) : null;
  }

  svg.addEventListener('pointerdown', (e) => {
    const g = e.target.closest('g[data-id]');
    const p = g && sim.nodes.get(g.dataset.id);
    if (!p) return;
    drag = { p, pointer: e.pointerId };
    p.fixed = true;
    g.classList.add('dragging');
    svg.setPointerCapture(e.pointerId);
    heat(0.3);
  });

  svg.addEventListener('pointermove', (e) => {
    if (!drag || e.pointerId !== drag.pointer) return;
    const at = pointer(e);
    if (at) {
      drag.p.x = at.x;
      drag.p.y = at.y;
    }
    heat(0.3);
  });

  const endDrag = (e) => {
    if (!drag || e.pointerId !== drag.pointer) return;
    drag.p.fixed = false;
    drag.p.g.classList.remove('dragging');
    drag = null;
  };
  svg.addEventListener('pointerup', endDrag);
  svg.addEventListener('pointercancel', endDrag);

  window.addEventListener('resize', () => {
    resize();
    heat(0.2);
  });

  // ---- start ---------------------------------------------------------------

  resize();
  pollStatus();
  openEvents();
  loadHistory();
  loadNetwork();
})();
