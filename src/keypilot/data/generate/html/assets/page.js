// The page side of the HTML renderer: one document per worker, a screen swapped in per
// session (kp.load) and the typed text, keyboard and candidate bar updated per step (kp.step).
// kp.step answers the ROI boxes in CSS pixels of the viewport, clipped to what is visible,
// and the visible text cut into pieces per line box (kp's texts below).
"use strict";
window.kp = (() => {
  const phone = () => document.getElementById("phone");

  function load(screen) {
    document.getElementById("theme").textContent = screen.css;
    const root = phone();
    root.className = screen.classes;
    root.dataset.app = screen.app;
    root.innerHTML = screen.html;
  }

  function escapeText(s) {
    return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function fillField(field, st) {
    const text = st.masked && st.context ? "\u2022".repeat(st.context.length - 1) + st.context.slice(-1) : st.context;
    const body = field.querySelector(".val");
    if (!text) {
      body.innerHTML = '<span class="caret"></span><span class="ph">' + escapeText(field.dataset.placeholder || "") + "</span>";
      return;
    }
    let head = text, buf = "";
    if (st.buffer && text.endsWith(st.buffer)) {
      head = text.slice(0, text.length - st.buffer.length);
      buf = st.buffer;
    }
    body.innerHTML = escapeText(head) + (buf ? '<span class="buf">' + escapeText(buf) + "</span>" : "") + '<span class="caret"></span>';
    if (field.classList.contains("single")) body.scrollLeft = body.scrollWidth;  // scrolled to the caret
    else body.scrollTop = body.scrollHeight;
  }

  function fillCandidates(bar, st) {
    if (!bar) return;
    const items = bar.querySelector(".cands");
    if (st.buffer && st.candidates.length) {
      bar.classList.add("composing");
      bar.querySelector(".pinyin").textContent = st.buffer;
      items.innerHTML = st.candidates.map((c, i) => '<span class="cand' + (i === 0 ? " first" : "") + '">' + escapeText(c) + "</span>").join("");
    } else {
      bar.classList.remove("composing");
      bar.querySelector(".pinyin").textContent = "";
      items.innerHTML = "";
    }
    const quoted = bar.querySelector(".typed");
    if (quoted) {
      const word = (st.context.match(/[A-Za-z']+$/) || [""])[0];
      quoted.textContent = word && !st.buffer ? "\u201c" + word + "\u201d" : "";
    }
  }

  function box(el, clips) {
    if (!el || el.offsetParent === null && getComputedStyle(el).position !== "fixed") return null;
    const r = el.getBoundingClientRect();
    let [x0, y0, x1, y1] = [r.left, r.top, r.right, r.bottom];
    for (const c of clips) {
      if (!c) continue;
      x0 = Math.max(x0, c[0]); y0 = Math.max(y0, c[1]); x1 = Math.min(x1, c[2]); y1 = Math.min(y1, c[3]);
    }
    return x1 - x0 > 2 && y1 - y0 > 2 ? [x0, y0, x1, y1] : null;
  }

  function rect(el) {
    if (!el) return null;
    const r = el.getBoundingClientRect();
    return [r.left, r.top, r.right, r.bottom];
  }

  // The clip of everything inside el: the viewport cut by every ancestor that hides its overflow.
  function clipOf(el, cache) {
    if (!el || el === document.body) return [0, 0, window.innerWidth, window.innerHeight];
    if (cache.has(el)) return cache.get(el);
    const c = clipOf(el.parentElement, cache).slice();
    const cs = getComputedStyle(el);
    if (cs.overflowX !== "visible" || cs.overflowY !== "visible") {
      const r = el.getBoundingClientRect();
      c[0] = Math.max(c[0], r.left); c[1] = Math.max(c[1], r.top); c[2] = Math.min(c[2], r.right); c[3] = Math.min(c[3], r.bottom);
    }
    cache.set(el, c);
    return c;
  }

  const inside = (b, x, y) => b && x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3];

  // What a recogniser could read: every visible text node outside the keyboard, cut per line
  // box into [text, x0, y0, x1, y1] pieces (one Range per character, kept when its centre is
  // visible: not clipped away, not under the banner). A password shows its dots only.
  function texts(root, st, kbd, bannerRect) {
    const cache = new Map(), out = [];
    const kbdRect = kbd && st.layout ? rect(kbd) : null;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const range = document.createRange();
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const el = node.parentElement;
      if (!node.data.trim() || el.closest(".kbd, .avatar, .caret, .hidden")) continue;
      if (!el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) continue;
      const clip = clipOf(el, cache), er = el.getBoundingClientRect();
      if (er.right < clip[0] || er.left > clip[2] || er.bottom < clip[1] || er.top > clip[3]) continue;
      const underBanner = bannerRect && !el.closest(".banner");
      const mask = st.masked && el.closest(".field.focused .val");
      let piece = null, i = 0;
      for (const ch of node.data) {
        range.setStart(node, i); range.setEnd(node, i + ch.length);
        i += ch.length;
        const r = range.getBoundingClientRect();
        const cx = (r.left + r.right) / 2, cy = (r.top + r.bottom) / 2;
        const seen = r.height > 0 && inside(clip, cx, cy) && !(underBanner && inside(bannerRect, cx, cy)) && !inside(kbdRect, cx, cy);
        if (piece && (!seen || Math.abs(r.top - piece[2]) > 0.5 * (piece[4] - piece[2]))) {
          out.push(piece);
          piece = null;
        }
        if (!seen) continue;
        const text = mask && ch.trim() ? "\u2022" : ch;
        if (!piece) piece = [text, r.left, r.top, r.right, r.bottom];
        else {
          piece[0] += text;
          if (ch.trim()) { piece[3] = Math.max(piece[3], r.right); piece[4] = Math.max(piece[4], r.bottom); }
        }
      }
      if (piece) out.push(piece);
    }
    return out.filter((p) => p[0].trim());
  }

  async function step(st) {
    const root = phone();
    const kbd = root.querySelector(".kbd");
    if (kbd) {
      kbd.style.display = st.layout ? "" : "none";
      if (st.layout) kbd.dataset.layout = st.layout;
      fillCandidates(kbd.querySelector(".candbar"), st);
    }
    const field = root.querySelector(".field.focused");
    fillField(field, st);
    void root.offsetHeight;  // lay out now, so that fonts.ready covers what this step uses
    await document.fonts.ready;
    const content = root.querySelector(".content");
    if (content) {
      if (root.dataset.app === "chat") content.scrollTop = content.scrollHeight;
      else {
        // Keep the focused field (and the line under it) in view above the keyboard.
        const c = content.getBoundingClientRect(), f = field.getBoundingClientRect();
        if (f.bottom + 12 > c.bottom) content.scrollTop += f.bottom + 12 - c.bottom;
        if (f.top < c.top) content.scrollTop -= c.top - f.top;
      }
    }
    const view = [0, 0, window.innerWidth, window.innerHeight];
    const contentRect = rect(content);
    const banner = root.querySelector(".banner");
    const chip = root.querySelector(".chip");
    if (chip && banner) banner.classList.toggle("hidden", Boolean(st.layout));  // no keyboard: the text shows as a banner
    let infoBox = null;
    for (const info of root.querySelectorAll("[data-info]")) {
      infoBox = box(info, [view, content && content.contains(info) ? contentRect : null]);
      if (infoBox) break;
    }
    const bannerRect = banner && !banner.classList.contains("hidden") ? rect(banner) : null;
    let input = box(field, [view, content && content.contains(field) ? contentRect : null]);
    if (input && bannerRect && input[1] < bannerRect[3] && input[3] > bannerRect[3]) input[1] = bannerRect[3];
    return {
      input_field: input,
      chat_bubble: infoBox,
      keyboard: kbd && st.layout ? box(kbd, [view]) : null,
      title_bar: box(root.querySelector(".appbar"), [view]),
      texts: texts(root, st, kbd, bannerRect),
      height: Math.ceil(root.getBoundingClientRect().height),
    };
  }

  // Every web font loaded up front: a font still loading when a screen is drawn would fall back
  // to another one, and which one would depend on what the page drew before.
  async function ready() {
    await Promise.all([...document.fonts].map((f) => f.load()));
    return [...document.fonts].filter((f) => f.status === "loaded").length;
  }

  return { load, step, ready };
})();
