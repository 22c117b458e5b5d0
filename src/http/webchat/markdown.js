// Markdown for the web chat, safe by construction: the text is parsed here and the page
// is built with createElement and textContent only. No string from a model or a person
// is ever parsed as HTML, so `<script>`, `<img onerror>`, SVG handlers and inline styles
// show as the characters they are. Links keep only http(s) and mailto URLs, as the
// browser's own URL parser reads them, and open apart (rel="noopener noreferrer").
//
// Streaming: `renderInto(root, text, cache)` splits the text into blocks and rebuilds
// only blocks whose source changed (in practice the last, still open one); finished
// blocks keep their nodes, so the reply does not reflow as it grows.
"use strict";
(() => {
  const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
  const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
  const HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
  const QUOTE = /^ {0,3}> ?/;
  const LIST = /^( {0,12})([-*+]|\d{1,9}[.)])[ \t]+/;
  const TABLE_SEP = /^ {0,3}\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
  const MAX_DEPTH = 12; // nested quotes and lists: deeper ones render as text

  // --- blocks: [{kind, src, ...}] from the text's lines ---
  function blocks(text) {
    const lines = text.split("\n");
    const out = [];
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      if (!line.trim()) { i++; continue; }
      const start = i;
      let m;
      if ((m = FENCE.exec(line))) {
        const mark = m[1];
        i++;
        const body = [];
        let closed = false;
        while (i < lines.length) {
          const l = lines[i];
          const t = l.trim();
          if (t.startsWith(mark[0].repeat(mark.length)) && /^[`~]+$/.test(t) && t[0] === mark[0]) { closed = true; i++; break; }
          body.push(l);
          i++;
        }
        out.push({ kind: "code", lang: m[2] || "", body: body.join("\n"), closed, src: lines.slice(start, i).join("\n") + (closed ? "" : "\u0000") });
        continue;
      }
      if ((m = HEADING.exec(line))) {
        out.push({ kind: "h", level: m[1].length, body: m[2] || "", src: line });
        i++;
        continue;
      }
      if (HR.test(line)) { out.push({ kind: "hr", src: line }); i++; continue; }
      if (QUOTE.test(line)) {
        while (i < lines.length && lines[i].trim() && QUOTE.test(lines[i])) i++;
        const src = lines.slice(start, i).join("\n");
        out.push({ kind: "quote", body: lines.slice(start, i).map((l) => l.replace(QUOTE, "")).join("\n"), src });
        continue;
      }
      if (LIST.test(line)) {
        // Items, their indented continuations, and blank lines inside the list. An item of
        // the other kind (bullets, numbers) at the list's own indent starts another list.
        const head = LIST.exec(line);
        const ordered = /\d/.test(head[2]);
        const sameList = (l) => {
          const m = LIST.exec(l);
          return m && (m[1].length > head[1].length + 1 || /\d/.test(m[2]) === ordered);
        };
        i++;
        while (i < lines.length) {
          const l = lines[i];
          if (!l.trim()) {
            const next = lines[i + 1];
            if (next !== undefined && (sameList(next) || /^\s{2,}\S/.test(next))) { i++; continue; }
            break;
          }
          if (LIST.test(l) && !sameList(l)) break;
          if (LIST.test(l) || /^\s+\S/.test(l)) { i++; continue; }
          if (FENCE.test(l) || HEADING.test(l) || HR.test(l) || QUOTE.test(l)) break;
          i++; // a lazy continuation of the item's paragraph
        }
        out.push({ kind: "list", lines: lines.slice(start, i), src: lines.slice(start, i).join("\n") });
        continue;
      }
      if (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes("-")) {
        i += 2;
        while (i < lines.length && lines[i].trim() && lines[i].includes("|")) i++;
        out.push({ kind: "table", lines: lines.slice(start, i), src: lines.slice(start, i).join("\n") });
        continue;
      }
      // A paragraph: until a blank line or the start of another block.
      i++;
      while (i < lines.length) {
        const l = lines[i];
        if (!l.trim() || FENCE.test(l) || HEADING.test(l) || HR.test(l) || QUOTE.test(l) || LIST.test(l)) break;
        if (l.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1])) break;
        i++;
      }
      out.push({ kind: "p", body: lines.slice(start, i).join("\n"), src: lines.slice(start, i).join("\n") });
    }
    return out;
  }

  const el = (tag, cls) => { const e = document.createElement(tag); if (cls) e.className = cls; return e; };

  // --- one block to nodes ---
  function renderBlock(b, depth) {
    switch (b.kind) {
      case "code": return codeBlock(b.lang, b.body);
      case "h": { const h = el("h" + b.level); inline(h, b.body.trim(), 0); return h; }
      case "hr": return el("hr");
      case "quote": {
        const q = el("blockquote");
        if (depth >= MAX_DEPTH) { q.textContent = b.body; return q; }
        for (const inner of blocks(b.body)) q.append(renderBlock(inner, depth + 1));
        return q;
      }
      case "list": return list(b.lines, depth);
      case "table": return table(b.lines);
      default: { const p = el("p"); inline(p, b.body, 0); return p; }
    }
  }

  function list(lines, depth) {
    const first = LIST.exec(lines[0]);
    const ordered = /\d/.test(first[2]);
    const root = el(ordered ? "ol" : "ul");
    if (ordered) {
      const n = parseInt(first[2], 10);
      if (n !== 1 && n < 1e9) root.start = n;
    }
    const base = first[1].length;
    // Items at this list's indent; deeper lines belong to the item above.
    const items = [];
    for (const line of lines) {
      const m = LIST.exec(line);
      if (m && m[1].length <= base + 1 && /\d/.test(m[2]) === ordered) {
        items.push([line.slice(m[0].length)]);
      } else if (items.length) {
        items[items.length - 1].push(line.replace(new RegExp("^ {0," + (base + 4) + "}"), ""));
      }
    }
    for (const body of items) {
      const li = el("li");
      const text = body.join("\n");
      const task = /^\[([ xX])\][ \t]+/.exec(text);
      const inner = task ? text.slice(task[0].length) : text;
      if (task) li.append(task[1] === " " ? "☐ " : "☑ ");
      const parts = blocks(inner);
      if (depth >= MAX_DEPTH) {
        li.append(inner);
      } else if (parts.length === 1 && parts[0].kind === "p") {
        inline(li, parts[0].body, 0); // a tight item: no paragraph around its text
      } else {
        for (const part of parts) li.append(renderBlock(part, depth + 1));
      }
      root.append(li);
    }
    return root;
  }

  function cells(line) {
    let s = line.trim();
    if (s.startsWith("|")) s = s.slice(1);
    if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
    const out = [];
    let cur = "";
    for (let i = 0; i < s.length; i++) {
      if (s[i] === "\\" && s[i + 1] === "|") { cur += "|"; i++; continue; }
      if (s[i] === "|") { out.push(cur.trim()); cur = ""; continue; }
      cur += s[i];
    }
    out.push(cur.trim());
    return out;
  }

  function table(lines) {
    const wrap = el("div", "table");
    const t = el("table");
    const head = cells(lines[0]);
    const align = cells(lines[1]).map((c) => (c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : ""));
    const thead = el("thead"), tr = el("tr");
    head.forEach((c, i) => {
      const th = el("th");
      if (align[i]) th.dataset.align = align[i];
      inline(th, c, 0);
      tr.append(th);
    });
    thead.append(tr);
    const tbody = el("tbody");
    for (const line of lines.slice(2)) {
      const row = el("tr");
      const cs = cells(line);
      for (let i = 0; i < head.length; i++) {
        const td = el("td");
        if (align[i]) td.dataset.align = align[i];
        inline(td, cs[i] || "", 0);
        row.append(td);
      }
      tbody.append(row);
    }
    t.append(thead, tbody);
    wrap.append(t);
    return wrap;
  }

  // A fenced block: a bar with its language and a copy button, and the highlighted code.
  function codeBlock(lang, body) {
    const box = el("div", "code");
    const bar = el("div", "bar");
    const name = el("span", "lang");
    const safeLang = /^[A-Za-z0-9_+#.-]{1,24}$/.test(lang) ? lang.toLowerCase() : "";
    name.textContent = safeLang || "text";
    const copy = el("button", "copy");
    copy.type = "button";
    copy.textContent = "Copy";
    copy.title = "Copy the code";
    bar.append(name, copy);
    const pre = el("pre");
    const code = el("code");
    if (safeLang) code.dataset.lang = safeLang;
    const hl = window.PincerHighlight;
    if (hl) hl.highlightInto(code, body, safeLang); else code.textContent = body;
    pre.append(code);
    box.append(bar, pre);
    return box;
  }

  // --- inline: emphasis, code, links, breaks ---
  const PUNCT = /[!-/:-@[-`{-~]/;
  const BARE_URL = /^https?:\/\/[^\s<>"'`]*[^\s<>"'`.,:;!?)\]}*_~]/;

  // The URL if it may be a link: absolute http(s) or mailto, as the browser reads it.
  function safeHref(raw) {
    const s = String(raw).trim();
    if (!s || s.length > 2048) return null;
    let u;
    try { u = new URL(s); } catch { return null; }
    if (u.protocol !== "http:" && u.protocol !== "https:" && u.protocol !== "mailto:") return null;
    return u.href;
  }

  function link(parent, text, href, depth) {
    const safe = safeHref(href);
    if (!safe) { inline(parent, text, depth + 1); return; }
    const a = el("a");
    a.href = safe;
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    a.title = safe;
    // No link inside a link (a URL as its own text would link itself again).
    inLink++;
    try { inline(a, text, depth + 1); } finally { inLink--; }
    parent.append(a);
  }
  let inLink = 0;

  // The `)` closing the `(` at `at`, with nesting (URLs may hold parentheses).
  function paren(s, at) {
    let n = 0;
    for (let i = at; i < s.length; i++) {
      if (s[i] === "\\") { i++; continue; }
      if (s[i] === "(") n++;
      else if (s[i] === ")" && --n === 0) return i;
      else if (s[i] === "\n" && s[i + 1] === "\n") return -1;
    }
    return -1;
  }

  // Finds the closing `delim` for an opening at `from` (not after a space, not empty).
  function closing(s, delim, from) {
    let i = from;
    for (;;) {
      const j = s.indexOf(delim, i);
      if (j < 0) return -1;
      if (s[j - 1] === "\\") { i = j + 1; continue; }
      if (j > from && !/\s/.test(s[j - 1])) return j;
      i = j + 1;
    }
  }

  // Matching `]` for the `[` at `at`, with nesting.
  function bracket(s, at) {
    let n = 0;
    for (let i = at; i < s.length; i++) {
      if (s[i] === "\\") { i++; continue; }
      if (s[i] === "[") n++;
      else if (s[i] === "]" && --n === 0) return i;
    }
    return -1;
  }

  function inline(parent, s, depth) {
    if (depth > MAX_DEPTH) { parent.append(s); return; }
    let buf = "";
    const flush = () => { if (buf) { parent.append(buf); buf = ""; } };
    for (let i = 0; i < s.length;) {
      const c = s[i];
      if (c === "\\" && i + 1 < s.length && PUNCT.test(s[i + 1])) { buf += s[i + 1]; i += 2; continue; }
      if (c === "\\" && s[i + 1] === "\n") { flush(); parent.append(el("br")); i += 2; continue; }
      if (c === "\n") {
        flush();
        parent.append(el("br"));
        i++;
        continue;
      }
      if (c === "`") {
        let n = 1;
        while (s[i + n] === "`") n++;
        const ticks = "`".repeat(n);
        const end = s.indexOf(ticks, i + n);
        if (end > 0) {
          flush();
          const code = el("code");
          let body = s.slice(i + n, end).replace(/\n/g, " ");
          if (/^ .* $/.test(body)) body = body.slice(1, -1);
          code.textContent = body;
          parent.append(code);
          i = end + n;
          continue;
        }
        buf += ticks; i += n; continue;
      }
      if ((c === "*" || c === "_") && s[i + 1] === c && s[i + 2] && !/\s/.test(s[i + 2])) {
        const end = closing(s, c + c, i + 2);
        if (end > 0) {
          flush();
          const b = el("strong");
          inline(b, s.slice(i + 2, end), depth + 1);
          parent.append(b);
          i = end + 2;
          continue;
        }
      }
      if ((c === "*" || c === "_") && s[i + 1] && !/\s/.test(s[i + 1]) && s[i + 1] !== c &&
          !(c === "_" && i > 0 && /\w/.test(s[i - 1]))) {
        let end = closing(s, c, i + 1);
        while (end > 0 && s[end + 1] === c) end = closing(s, c, end + 2);
        if (end > 0 && !(c === "_" && /\w/.test(s[end + 1] || ""))) {
          flush();
          const em = el("em");
          inline(em, s.slice(i + 1, end), depth + 1);
          parent.append(em);
          i = end + 1;
          continue;
        }
      }
      if (c === "~" && s[i + 1] === "~") {
        const end = closing(s, "~~", i + 2);
        if (end > 0) {
          flush();
          const d = el("del");
          inline(d, s.slice(i + 2, end), depth + 1);
          parent.append(d);
          i = end + 2;
          continue;
        }
      }
      if (!inLink && (c === "[" || (c === "!" && s[i + 1] === "["))) {
        const open = c === "!" ? i + 1 : i;
        const close = bracket(s, open);
        if (close > 0 && s[close + 1] === "(") {
          const end = paren(s, close + 1);
          if (end > 0) {
            flush();
            const target = s.slice(close + 2, end).trim().split(/\s+/)[0].replace(/^<|>$/g, "");
            // An image never loads (nothing leaves the page): it shows as a link.
            const label = s.slice(open + 1, close) || target;
            link(parent, c === "!" ? "image: " + label : label, target, depth);
            i = end + 1;
            continue;
          }
        }
      }
      if (c === "<" && !inLink) {
        const m = /^<((?:https?|mailto):[^\s<>]+)>/i.exec(s.slice(i));
        if (m) { flush(); link(parent, m[1], m[1], depth); i += m[0].length; continue; }
      }
      if (c === "h" && !inLink && (i === 0 || /[\s(]/.test(s[i - 1]))) {
        const m = BARE_URL.exec(s.slice(i, i + 2048));
        if (m) { flush(); link(parent, m[0], m[0], depth); i += m[0].length; continue; }
      }
      buf += c;
      i++;
    }
    flush();
  }

  // Renders `text` into `root`, reusing the nodes of blocks whose source is unchanged
  // since the last call with the same `cache` (an array kept by the caller).
  function renderInto(root, text, cache) {
    const list = blocks(String(text));
    let same = 0;
    while (same < list.length && same < cache.length && cache[same].src === list[same].src && cache[same].kind === list[same].kind) same++;
    // Drop the nodes from the first changed block on, then build the rest.
    for (let k = cache.length - 1; k >= same; k--) cache[k].node.remove();
    cache.length = same;
    for (let k = same; k < list.length; k++) {
      const node = renderBlock(list[k], 0);
      root.append(node);
      cache.push({ src: list[k].src, kind: list[k].kind, node });
    }
  }

  window.PincerMarkdown = Object.freeze({ renderInto, blocks, safeHref });
})();
