// bconnect admin console: plays an asciicast v2 recording in the page.
// The recording is fetched from the console (same origin, the session cookie goes
// along; the controller checks its SHA-256 before serving it) and replayed into a
// small terminal: text, CR/LF/BS/TAB, cursor moves, erase and scroll. Colours and
// other attributes are dropped: the screen is plain text (textContent, never HTML).
"use strict";

const SCROLLBACK = 5000;
const IDLE_LIMIT = 2; // seconds: longer pauses play as this long

class Terminal {
  // crlf: a line feed also returns the carriage, as a local tty's onlcr does for a
  // channel that had no pty (an exec: its output has bare LFs)
  constructor(cols, rows, crlf) {
    this.history = [];
    this.crlf = crlf;
    this.reset(cols, rows);
  }

  reset(cols, rows) {
    this.cols = Math.max(1, cols);
    this.rows = Math.max(1, rows);
    this.screen = Array.from({ length: this.rows }, () => []);
    this.x = 0;
    this.y = 0;
    this.state = "text";
    this.params = "";
  }

  resize(cols, rows) {
    const keep = this.screen;
    this.cols = Math.max(1, cols);
    this.rows = Math.max(1, rows);
    while (keep.length > this.rows) this.scrollOut(keep.shift());
    while (keep.length < this.rows) keep.push([]);
    this.screen = keep;
    this.y = Math.min(this.y, this.rows - 1);
    this.x = Math.min(this.x, this.cols - 1);
  }

  scrollOut(line) {
    this.history.push(line.join(""));
    if (this.history.length > SCROLLBACK) this.history.shift();
  }

  newline() {
    if (this.y === this.rows - 1) {
      this.scrollOut(this.screen.shift());
      this.screen.push([]);
    } else {
      this.y += 1;
    }
  }

  put(ch) {
    if (this.x >= this.cols) {
      this.x = 0;
      this.newline();
    }
    const line = this.screen[this.y];
    while (line.length < this.x) line.push(" ");
    line[this.x] = ch;
    this.x += 1;
  }

  erase(line, from, to) {
    const cells = this.screen[line];
    for (let i = from; i < Math.min(to, cells.length); i += 1) cells[i] = " ";
  }

  csi(final) {
    const args = this.params.replace(/^[?>=]/, "").split(";").map((v) => parseInt(v, 10));
    const n = (i, d) => (Number.isFinite(args[i]) && args[i] > 0 ? args[i] : d);
    switch (final) {
      case "A": this.y = Math.max(0, this.y - n(0, 1)); break;
      case "B": this.y = Math.min(this.rows - 1, this.y + n(0, 1)); break;
      case "C": this.x = Math.min(this.cols - 1, this.x + n(0, 1)); break;
      case "D": this.x = Math.max(0, this.x - n(0, 1)); break;
      case "G": this.x = Math.min(this.cols - 1, n(0, 1) - 1); break;
      case "d": this.y = Math.min(this.rows - 1, n(0, 1) - 1); break;
      case "H": case "f":
        this.y = Math.min(this.rows - 1, n(0, 1) - 1);
        this.x = Math.min(this.cols - 1, n(1, 1) - 1);
        break;
      case "J": {
        const mode = Number.isFinite(args[0]) ? args[0] : 0;
        if (mode === 2 || mode === 3) {
          this.screen = Array.from({ length: this.rows }, () => []);
        } else if (mode === 0) {
          this.erase(this.y, this.x, this.cols);
          for (let i = this.y + 1; i < this.rows; i += 1) this.screen[i] = [];
        } else {
          this.erase(this.y, 0, this.x + 1);
          for (let i = 0; i < this.y; i += 1) this.screen[i] = [];
        }
        break;
      }
      case "K": {
        const mode = Number.isFinite(args[0]) ? args[0] : 0;
        if (mode === 0) this.screen[this.y].length = Math.min(this.screen[this.y].length, this.x);
        else if (mode === 1) this.erase(this.y, 0, this.x + 1);
        else this.screen[this.y] = [];
        break;
      }
      case "h": case "l":
        if (/^\?(1049|47|1047)$/.test(this.params)) {
          if (final === "h") { // the alternate screen: the main one comes back after
            this.saved = { screen: this.screen, x: this.x, y: this.y };
            this.screen = Array.from({ length: this.rows }, () => []);
          } else if (this.saved) {
            ({ screen: this.screen, x: this.x, y: this.y } = this.saved);
            this.saved = null;
          }
        }
        break;
      default: // colours (m) and everything else: no effect on plain text
    }
  }

  write(text) {
    for (const ch of text) {
      if (this.state === "esc") {
        if (ch === "[") { this.state = "csi"; this.params = ""; }
        else if (ch === "]") { this.state = "osc"; }
        else if (ch === "(" || ch === ")") { this.state = "charset"; }
        else { this.state = "text"; }
        continue;
      }
      if (this.state === "charset") { this.state = "text"; continue; }
      if (this.state === "csi") {
        if (ch >= "@" && ch <= "~") { this.csi(ch); this.state = "text"; }
        else { this.params += ch; }
        continue;
      }
      if (this.state === "osc") {
        if (ch === "\u0007") this.state = "text";
        else if (ch === "\u001b") this.state = "esc"; // ESC \ ends it
        continue;
      }
      switch (ch) {
        case "\u001b": this.state = "esc"; break;
        case "\r": this.x = 0; break;
        case "\n": if (this.crlf) this.x = 0; this.newline(); break;
        case "\b": this.x = Math.max(0, this.x - 1); break;
        case "\t": this.x = Math.min(this.cols - 1, (Math.floor(this.x / 8) + 1) * 8); break;
        default:
          if (ch >= " " && ch !== "\u007f") this.put(ch);
      }
    }
  }

  text() {
    const lines = this.history.concat(this.screen.map((l) => l.join("")));
    while (lines.length && lines[lines.length - 1].trim() === "") lines.pop();
    return lines.map((l) => l.replace(/\s+$/, "")).join("\n");
  }
}

function parseCast(text) {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const header = JSON.parse(lines[0]);
  if (header.version !== 2) throw new Error("not an asciicast v2 recording");
  const events = [];
  for (const line of lines.slice(1)) {
    try {
      const event = JSON.parse(line);
      if (Array.isArray(event) && event.length === 3) events.push(event);
    } catch (error) {
      // a line cut short (an incomplete recording): the events before it still play
    }
  }
  let shift = 0;
  let last = 0;
  for (const event of events) {
    const gap = event[0] - last;
    last = event[0];
    if (gap > IDLE_LIMIT) shift += gap - IDLE_LIMIT;
    event[0] -= shift;
  }
  return { header, events };
}

function player(root) {
  const screen = root.querySelector(".screen");
  const status = root.querySelector(".status");
  const clock = root.querySelector(".clock");
  const speed = root.querySelector("select[name=speed]");
  const buttons = {};
  for (const b of root.querySelectorAll("button[data-action]")) buttons[b.dataset.action] = b;
  let cast = null;
  let term = null;
  let index = 0;
  let position = 0; // seconds into the recording
  let timer = null;
  let started = 0;

  const show = () => {
    screen.textContent = term.text();
    screen.scrollTop = screen.scrollHeight;
    clock.textContent = `${position.toFixed(1)} s`;
  };
  const apply = (event) => {
    if (event[1] === "o") term.write(event[2]);
    else if (event[1] === "r") {
      const m = /^(\d+)x(\d+)$/.exec(event[2]);
      if (m) term.resize(parseInt(m[1], 10), parseInt(m[2], 10));
    }
  };
  const pause = () => {
    if (timer !== null) window.clearTimeout(timer);
    timer = null;
    buttons.play.textContent = "Play";
  };
  const finished = () => {
    pause();
    status.textContent = "Played to the end.";
    root.dataset.state = "ended";
  };
  const tick = () => {
    const rate = parseFloat(speed.value) || 1;
    const now = started + ((performance.now() - timer0) / 1000) * rate;
    while (index < cast.events.length && cast.events[index][0] <= now) {
      apply(cast.events[index]);
      index += 1;
    }
    position = Math.min(now, cast.events.length ? cast.events[cast.events.length - 1][0] : 0);
    show();
    if (index >= cast.events.length) { finished(); return; }
    const wait = ((cast.events[index][0] - now) / rate) * 1000;
    timer = window.setTimeout(tick, Math.max(0, Math.min(wait, 250)));
  };
  let timer0 = 0;
  const play = () => {
    if (index >= cast.events.length) restart();
    started = position;
    timer0 = performance.now();
    buttons.play.textContent = "Pause";
    status.textContent = "Playing.";
    root.dataset.state = "playing";
    timer = window.setTimeout(tick, 0);
  };
  const restart = () => {
    pause();
    const pty = Boolean(cast.header.env && cast.header.env.TERM);
    term = new Terminal(cast.header.width || 80, cast.header.height || 24, !pty);
    index = 0;
    position = 0;
    show();
  };

  buttons.play.addEventListener("click", () => (timer === null ? play() : pause()));
  buttons.restart.addEventListener("click", () => { restart(); play(); });
  buttons.end.addEventListener("click", () => {
    pause();
    while (index < cast.events.length) { apply(cast.events[index]); index += 1; }
    position = cast.events.length ? cast.events[cast.events.length - 1][0] : 0;
    show();
    finished();
  });
  speed.addEventListener("change", () => { if (timer !== null) { pause(); play(); } });

  fetch(root.dataset.cast, { credentials: "same-origin", cache: "no-store" })
    .then(async (response) => {
      const body = await response.text();
      if (!response.ok) throw new Error(body.trim() || `HTTP ${response.status}`);
      cast = parseCast(body);
      const incomplete = response.headers.get("X-Bconnect-Recording-State") === "incomplete";
      restart();
      for (const b of Object.values(buttons)) b.disabled = false;
      status.textContent = incomplete
        ? "Incomplete recording (not verified): it plays up to where it stops."
        : "Verified (SHA-256 matches what the worker recorded). Press Play.";
      root.dataset.state = "ready";
    })
    .catch((error) => {
      status.textContent = `The recording cannot be played: ${error.message}`;
      root.dataset.state = "error";
    });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-cast]").forEach(player);
});
