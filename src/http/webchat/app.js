// The web chat page: one socket to the gateway (`/ws`), the chat in the middle, past chats
// on the left (from the store), the live supervision tree on the right. Every text from a
// model or a person reaches the page through textContent or the markdown renderer, which
// builds nodes and never parses HTML.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const els = {
    agent: $("agent"), agentState: $("agent-state"), input: $("input"), form: $("composer"),
    messages: $("messages"), conn: $("conn"), notice: $("notice"), tree: $("tree"), ready: $("ready"),
    summary: $("summary"), newChat: $("new"), send: $("send"), stop: $("stop"), chatList: $("chat-list"),
    chatsMore: $("chats-more"), chats: $("chats"), side: $("side"), scrim: $("scrim"),
    chatsToggle: $("chats-toggle"), sideToggle: $("side-toggle"), confirm: $("confirm"),
    confirmText: $("confirm-text"), confirmOk: $("confirm-ok"), confirmCancel: $("confirm-cancel"),
  };
  const md = window.PincerMarkdown;

  // --- storage (localStorage may be unavailable: fall back to memory) ---
  const store = {
    get(k) { try { return localStorage.getItem(k); } catch { return null; } },
    set(k, v) { try { localStorage.setItem(k, v); } catch { /* quota or disabled */ } },
    del(k) { try { localStorage.removeItem(k); } catch { /* ignore */ } },
  };
  const K_AGENT = "pincer.agent", K_CHAT = "pincer.chat.", K_CLIENT = "pincer.client", K_OUTBOX = "pincer.outbox.";
  const CHATS_PAGE = 50;

  // crypto.randomUUID only exists in secure contexts; getRandomValues exists everywhere.
  function uuid() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  const newSessionId = () => "web-" + uuid().replace(/-/g, "").slice(0, 16);
  // This browser's secret: its chats are bound to it (the gateway keeps only a digest).
  let client = store.get(K_CLIENT);
  if (!client || !/^[0-9a-f]{32}$/.test(client)) {
    client = uuid().replace(/-/g, "");
    store.set(K_CLIENT, client);
  }

  // The chat on screen: an agent and the page's session id with it.
  let agent = store.get(K_AGENT) || "";
  let session = "";
  function chatOf(a) {
    let s = store.get(K_CHAT + a);
    if (!s || !/^[A-Za-z0-9_-]{1,64}$/.test(s)) { s = newSessionId(); store.set(K_CHAT + a, s); }
    return s;
  }

  // --- messages on screen ---
  // entries: "u:<id>" / "a:<id>" / "n:<id>" -> entry; ids are the page's message ids, or
  // "t<seq>" for what came from the store.
  const entries = new Map();
  // outbox: id -> {frame, gen}: messages of this chat whose reply has not ended.
  const outbox = new Map();
  let lastUserText = "";

  const nearBottom = () => { const m = els.messages; return m.scrollHeight - m.scrollTop - m.clientHeight < 80; };
  const scrollDown = () => { els.messages.scrollTop = els.messages.scrollHeight; };

  function makeEntry(id, role, state) {
    const li = document.createElement("li");
    li.className = "msg";
    li.dataset.id = id; li.dataset.role = role; li.dataset.state = state;
    const steps = document.createElement("div"); steps.className = "steps";
    const text = document.createElement("div"); text.className = role === "assistant" ? "text md" : "text";
    const err = document.createElement("div"); err.className = "err";
    const mark = document.createElement("span"); mark.className = "mark";
    li.append(steps, text, err, mark);
    const stick = nearBottom();
    els.messages.append(li);
    if (stick) scrollDown();
    const entry = { id, role, text: "", state, el: li, textEl: text, errEl: err, stepsEl: steps, steps: [], cache: [], frame: 0 };
    entries.set(role[0] + ":" + id, entry);
    return entry;
  }
  // Assistant text is markdown, re-rendered at most once a frame while it streams (only
  // its last, open block is rebuilt); other text is plain.
  function setText(entry, text) {
    entry.text = text;
    if (entry.role !== "assistant") { entry.textEl.textContent = text; return; }
    if (entry.frame) return;
    entry.frame = requestAnimationFrame(() => {
      entry.frame = 0;
      const stick = nearBottom();
      md.renderInto(entry.textEl, entry.text, entry.cache);
      if (stick) scrollDown();
    });
  }
  function setState(entry, state) {
    // A reply that ends shows its whole text at once, not a frame later.
    if (state !== "streaming" && state !== "stopping" && entry.frame) {
      cancelAnimationFrame(entry.frame);
      entry.frame = 0;
      md.renderInto(entry.textEl, entry.text, entry.cache);
    }
    entry.state = state; entry.el.dataset.state = state;
  }
  function setError(entry, msg) {
    entry.errEl.textContent = "";
    const head = document.createElement("strong"); head.textContent = "Error";
    const why = document.createElement("span"); why.textContent = msg;
    entry.errEl.append(head, why);
    setState(entry, "error");
  }
  // A tool call as a collapsible line: "web_fetch example.org — 1.2 s".
  function setStep(entry, m) {
    const n = m.n | 0;
    let s = entry.steps.find((x) => x.n === n);
    if (!s) {
      s = { n, tool: String(m.tool || "tool"), summary: String(m.summary || ""), status: String(m.status || ""), args: String(m.arguments ?? "") };
      entry.steps.push(s);
    }
    if (typeof m.ok === "boolean") { s.ok = m.ok; s.ms = Number(m.ms) || 0; }
    renderSteps(entry);
  }
  function renderSteps(entry) {
    entry.stepsEl.textContent = "";
    for (const s of entry.steps) {
      const d = document.createElement("details"); d.className = "step";
      const sum = document.createElement("summary");
      const when = s.ok === undefined ? s.status || "running…" : fmtSecs(s.ms) + (s.ok ? "" : " · failed");
      sum.textContent = s.tool + (s.summary ? " " + s.summary : "") + " — " + when;
      if (s.ok !== undefined) d.dataset.ok = String(s.ok);
      const a = document.createElement("div"); a.className = "args"; a.textContent = s.args;
      d.append(sum, a);
      entry.stepsEl.append(d);
    }
  }
  const fmtSecs = (ms) => (ms < 1000 ? ms + " ms" : (ms / 1000).toFixed(1) + " s");
  const assistant = (id) => entries.get("a:" + id) || makeEntry(id, "assistant", "streaming");

  function clearMessages() {
    for (const e of entries.values()) if (e.frame) cancelAnimationFrame(e.frame);
    entries.clear();
    els.messages.textContent = "";
  }

  // Notices with an approval question get buttons that answer as the person would type.
  function approvalButtons(entry, approval, agentId) {
    const row = document.createElement("div"); row.className = "asks";
    for (const [label, answer] of [["Run once", "once"], ["Always", "always"], ["Deny", "deny"]]) {
      const b = document.createElement("button"); b.type = "button";
      b.textContent = label; b.dataset.answer = answer;
      b.addEventListener("click", () => {
        for (const x of row.querySelectorAll("button")) x.disabled = true;
        sendText("/approve " + approval.id + " " + answer, agentId);
      });
      row.append(b);
    }
    entry.el.append(row);
  }

  function notice(msg) {
    els.notice.textContent = msg;
    clearTimeout(notice.t);
    notice.t = setTimeout(() => { els.notice.textContent = ""; }, 8000);
  }

  // The unanswered messages of a chat survive a reload: they are sent again (same id).
  function saveOutbox() {
    const list = Array.from(outbox.values()).map((o) => o.frame);
    if (list.length) store.set(K_OUTBOX + agent + "." + session, JSON.stringify(list.slice(-32)));
    else store.del(K_OUTBOX + agent + "." + session);
  }
  function loadOutbox() {
    let list = [];
    try { list = JSON.parse(store.get(K_OUTBOX + agent + "." + session) || "[]"); } catch { list = []; }
    if (!Array.isArray(list)) return;
    for (const f of list) {
      if (!f || typeof f.id !== "string" || typeof f.text !== "string") continue;
      const frame = { type: "send", id: f.id, agent, session, text: f.text };
      outbox.set(f.id, { frame, gen: 0 });
    }
  }
  function showOutbox() {
    for (const [id, o] of outbox) {
      if (entries.has("u:" + id)) continue;
      const u = makeEntry(id, "user", "done");
      setText(u, o.frame.text);
      u.el.dataset.delivery = "queued";
    }
  }

  // --- the chat's transcript from the store ---
  function showTranscript(items) {
    clearMessages();
    let pendingSteps = [];
    for (const it of Array.isArray(items) ? items : []) {
      if (!it || typeof it !== "object") continue;
      const id = "t" + (it.seq | 0);
      const text = typeof it.text === "string" ? it.text : "";
      switch (it.role) {
        case "user": {
          const u = makeEntry(id, "user", "done");
          setText(u, text);
          lastUserText = text;
          break;
        }
        case "tool":
          if (it.tool) pendingSteps.push({ n: pendingSteps.length + 1, tool: it.tool.name, arguments: it.tool.arguments, ok: !!it.tool.ok, ms: it.tool.ms | 0 });
          break;
        case "assistant": {
          const a = makeEntry(id, "assistant", "done");
          for (const s of pendingSteps) setStep(a, s);
          pendingSteps = [];
          if (it.outcome === "failed") setError(a, text);
          else {
            setText(a, text);
            if (it.outcome === "stopped") setState(a, "stopped");
          }
          break;
        }
        case "notice": {
          const n = makeEntry(id, "notice", "done");
          setText(n, text);
          break;
        }
        default: break; // summaries are the model's business
      }
    }
    showOutbox();
    scrollDown();
    updateStop();
  }

  // --- socket ---
  const token = new URLSearchParams(location.search).get("token");
  const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" +
    (token ? "?token=" + encodeURIComponent(token) : "");
  let ws = null, gen = 0, delay = 500, retryTimer = 0, haveAgents = false, failures = 0;
  const setConn = (state, text) => { els.conn.dataset.state = state; els.conn.textContent = text; };
  const open = () => ws && ws.readyState === WebSocket.OPEN;
  function sendFrame(frame) {
    if (!open()) return false;
    try { ws.send(JSON.stringify(frame)); return true; } catch { return false; }
  }

  function connect() {
    retryTimer = 0;
    setConn(gen === 0 ? "connecting" : "reconnecting", gen === 0 ? "connecting…" : "reconnecting…");
    let s;
    try { s = new WebSocket(wsUrl); } catch { return retry(); }
    ws = s; gen += 1; haveAgents = false;
    s.onopen = () => {
      if (ws !== s) return;
      delay = 500; failures = 0;
      setConn("online", "connected");
      sendFrame({ type: "hello", client });
    };
    s.onmessage = (ev) => {
      if (ws !== s) return;
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (m && typeof m === "object") handle(m);
    };
    s.onclose = () => {
      if (ws !== s) return;
      ws = null;
      setConn("reconnecting", "reconnecting…");
      els.side.dataset.stale = "";
      els.ready.dataset.ready = "unknown";
      els.ready.textContent = "no connection";
      showAgentState();
      if (++failures === 3) {
        notice("Cannot open the chat socket." + (token ? "" : " From another machine, open this page with ?token=<gateway token>."));
      }
      retry();
    };
  }
  function retry() {
    if (retryTimer) return;
    const d = Math.min(5000, delay * (0.8 + Math.random() * 0.4));
    delay = Math.min(5000, delay * 2);
    retryTimer = setTimeout(connect, d);
  }
  function flush() {
    if (!open() || !haveAgents) return;
    for (const [id, o] of outbox) {
      if (o.gen === gen) continue;
      if (!sendFrame(o.frame)) return;
      o.gen = gen;
      const u = entries.get("u:" + id);
      if (u) u.el.dataset.delivery = "sent";
    }
  }

  function handle(m) {
    switch (m.type) {
      case "agents": return onAgents(m.agents);
      case "accepted": {
        const u = entries.get("u:" + m.id);
        if (!u) return;
        u.el.dataset.delivery = "accepted";
        const a = assistant(m.id);
        if (a.state === "error") { setState(a, "streaming"); a.errEl.textContent = ""; }
        return updateStop();
      }
      case "delta": {
        if (!outbox.has(m.id)) return;
        const a = assistant(m.id);
        if (a.state !== "streaming" && a.state !== "stopping") setState(a, "streaming");
        setText(a, a.text + String(m.text ?? ""));
        return updateStop();
      }
      case "restart": {
        const a = entries.get("a:" + m.id);
        if (!a || !outbox.has(m.id)) return;
        setState(a, "streaming");
        a.cache.forEach((c) => c.node.remove()); a.cache = [];
        setText(a, "");
        a.steps = []; renderSteps(a);
        return;
      }
      case "notice": {
        if (!entries.has("u:" + m.id)) return;
        const n = makeEntry(m.id + "/" + (entries.size + 1), "notice", "done");
        setText(n, String(m.text || ""));
        // A question comes before the reply it holds up, which goes on below it.
        const waiting = entries.get("a:" + m.id);
        if (waiting && waiting.state === "streaming") waiting.el.before(n.el);
        const ap = m.approval;
        if (ap && typeof ap.id === "string" && /^[a-z0-9]{1,32}$/.test(ap.id)) approvalButtons(n, ap, agent);
        return;
      }
      case "step": {
        if (!outbox.has(m.id)) return;
        const a = assistant(m.id);
        setStep(a, m);
        return;
      }
      case "done": {
        const known = outbox.delete(m.id);
        saveOutbox();
        if (!known && !entries.has("a:" + m.id)) return;
        const a = assistant(m.id);
        const text = typeof m.text === "string" ? m.text : a.text;
        if (m.failed === true) {
          setError(a, text);
        } else {
          a.errEl.textContent = "";
          setText(a, text);
          setState(a, m.stopped === true ? "stopped" : "done");
        }
        askChats();
        return updateStop();
      }
      case "error": {
        const msg = String(m.message || "error");
        if (m.id != null && outbox.has(m.id)) {
          outbox.delete(m.id);
          saveOutbox();
          setError(assistant(m.id), msg);
          return updateStop();
        }
        return notice(msg);
      }
      case "chats": return onChats(m);
      case "transcript":
        if (m.agent === agent && m.session === session) {
          showTranscript(m.items);
          if (m.left_out > 0) {
            const n = makeEntry("older", "notice", "done");
            setText(n, `${m.left_out} earlier entries are not shown.`);
            els.messages.prepend(n.el);
          }
        }
        return;
      case "renamed": case "deleted": return askChats();
      case "tree":
        latestTree = m;
        delete els.side.dataset.stale;
        askSessions(m);
        showAgentState();
        return scheduleTree();
      case "sessions":
        ownSessions = Array.isArray(m.items) ? m.items : [];
        ownTotal = m.total | 0;
        return scheduleTree();
      default: return; // unknown types are ignored
    }
  }

  // --- agents and their readiness ---
  let agents = [];
  function onAgents(list) {
    if (!Array.isArray(list)) return;
    agents = list.filter((a) => a && typeof a.id === "string");
    const current = agent;
    els.agent.textContent = "";
    let pick = null, dflt = null;
    for (const a of agents) {
      const o = document.createElement("option");
      o.value = a.id;
      o.textContent = a.model ? `${a.id} · ${a.model}` : a.id;
      els.agent.append(o);
      if (a.id === current) pick = a.id;
      if (a.default && dflt === null) dflt = a.id;
    }
    const chosen = pick || dflt || (agents[0] && agents[0].id) || "";
    els.agent.value = chosen;
    haveAgents = true;
    switchTo(chosen, chatOf(chosen));
  }
  // An agent is ready when nothing fails in it and nothing fails that all agents need
  // (the store, the gateway itself); another agent's trouble is not its own.
  function showAgentState() {
    const a = agents.find((x) => x.id === agent);
    const el = els.agentState;
    if (!latestTree || !a || !open()) { el.dataset.ready = "unknown"; el.textContent = open() ? "…" : "offline"; el.title = ""; return; }
    const failing = Array.isArray(latestTree.failing) ? latestTree.failing : [];
    const isAgent = (p) => /\/agent:[^/]+(\/|$)/.test(p) || /\/agents$/.test(p);
    const own = failing.filter((f) => f && typeof f.path === "string" && (f.path === a.path || f.path.startsWith(a.path + "/")));
    const shared = failing.filter((f) => f && typeof f.path === "string" && !isAgent(f.path) && !/\/channel:(?!web)/.test(f.path));
    const bad = own.concat(shared);
    el.dataset.ready = String(bad.length === 0);
    el.textContent = bad.length === 0 ? "ready" : "not ready";
    el.title = bad.map((f) => `${f.path}: ${f.reason || ""}`).join("\n") || `${agent} can answer`;
    if (bad.length) el.textContent = "not ready: " + String(bad[0].reason || bad[0].path);
  }

  // Shows chat `s` of agent `a`: its transcript from the store, then what waits to be sent.
  function switchTo(a, s) {
    const changed = a !== agent || s !== session;
    if (a !== agent) { chatItems = []; chatsShown = CHATS_PAGE; renaming = ""; }
    agent = a; session = s;
    store.set(K_AGENT, a); store.set(K_CHAT + a, s);
    if (changed || !entries.size) {
      clearMessages();
      outbox.clear();
      loadOutbox();
      showOutbox();
    }
    sendFrame({ type: "open", agent, session });
    askChats(true);
    flush();
    showAgentState();
    updateStop();
  }
  els.agent.addEventListener("change", () => { switchTo(els.agent.value, chatOf(els.agent.value)); });

  // --- past chats ---
  let chatItems = [], chatsShown = CHATS_PAGE, chatsTimer = 0, renaming = "";
  function askChats(now) {
    if (chatsTimer) return;
    chatsTimer = setTimeout(() => {
      chatsTimer = 0;
      sendFrame({ type: "chats", agent, offset: 0, limit: Math.min(chatsShown, CHATS_PAGE) });
    }, now ? 0 : 300);
  }
  function onChats(m) {
    if (m.agent !== agent) return;
    chatItems = Array.isArray(m.items) ? m.items : [];
    els.chatsMore.hidden = !(m.total > chatItems.length);
    renderChats();
  }
  function ago(ms) {
    const s = Math.max(0, (Date.now() - ms) / 1000);
    if (s < 60) return "just now";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return new Date(ms).toLocaleDateString();
  }
  function renderChats() {
    const frag = document.createDocumentFragment();
    const items = chatItems.slice();
    // The chat on screen is listed even before its first reply is stored.
    if (session && !items.some((c) => c.session === session) && (entries.size || outbox.size)) {
      let first = null;
      for (const e of entries.values()) if (e.role === "user") { first = e.text; break; }
      items.unshift({ session, title: first || "New chat", last_active_ms: Date.now(), turns: 0, pending: true });
    }
    for (const c of items) {
      if (!c || typeof c.session !== "string") continue;
      const li = document.createElement("li");
      li.className = "chat";
      li.dataset.session = c.session;
      li.setAttribute("aria-current", String(c.session === session));
      const title = document.createElement("span"); title.className = "title";
      const meta = document.createElement("span"); meta.className = "meta";
      meta.textContent = `${ago(Number(c.last_active_ms) || 0)} · ${c.turns | 0} ${c.turns === 1 ? "turn" : "turns"}`;
      if (renaming === c.session) {
        const input = document.createElement("input");
        input.value = String(c.title || "");
        input.maxLength = 120;
        input.setAttribute("aria-label", "Chat title");
        input.addEventListener("keydown", (e) => {
          if (e.key === "Enter") { e.preventDefault(); renaming = ""; sendFrame({ type: "rename", agent, session: c.session, title: input.value }); renderChats(); }
          if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); renaming = ""; renderChats(); }
        });
        input.addEventListener("click", (e) => e.stopPropagation());
        title.append(input);
        setTimeout(() => { input.focus(); input.select(); }, 0);
      } else {
        title.textContent = String(c.title || "Untitled");
        title.title = title.textContent;
      }
      li.append(title);
      if (!c.pending) {
        const tools = document.createElement("span"); tools.className = "tools";
        const ren = document.createElement("button"); ren.type = "button"; ren.className = "rename"; ren.textContent = "✎"; ren.title = "Rename"; ren.setAttribute("aria-label", "Rename chat");
        ren.addEventListener("click", (e) => { e.stopPropagation(); renaming = c.session; renderChats(); });
        const del = document.createElement("button"); del.type = "button"; del.className = "delete"; del.textContent = "×"; del.title = "Delete"; del.setAttribute("aria-label", "Delete chat");
        del.addEventListener("click", (e) => { e.stopPropagation(); confirmDelete(c); });
        tools.append(ren, del);
        li.append(tools);
      }
      li.append(meta);
      li.addEventListener("click", () => { if (c.session !== session) switchTo(agent, c.session); closeDrawers(); });
      frag.append(li);
    }
    els.chatList.replaceChildren(frag);
  }
  els.chatsMore.addEventListener("click", () => { chatsShown += CHATS_PAGE; askChats(true); });

  // Deleting asks first, in the page: a real dialog, not window.confirm.
  function confirmDelete(c) {
    els.confirmText.textContent = `“${String(c.title || "Untitled")}” and its messages will be deleted from the gateway. This cannot be undone.`;
    const done = (ok) => {
      els.confirmOk.onclick = null; els.confirmCancel.onclick = null;
      els.confirm.close();
      if (!ok) return;
      sendFrame({ type: "delete", agent, session: c.session });
      store.del(K_OUTBOX + agent + "." + c.session); // nothing of it is sent again
      chatItems = chatItems.filter((x) => x.session !== c.session);
      if (c.session === session) { store.del(K_CHAT + agent); switchTo(agent, chatOf(agent)); }
      renderChats();
    };
    els.confirmOk.onclick = () => done(true);
    els.confirmCancel.onclick = () => done(false);
    els.confirm.oncancel = () => { els.confirmOk.onclick = null; els.confirmCancel.onclick = null; };
    els.confirm.showModal();
    els.confirmCancel.focus();
  }

  // --- composer ---
  function send() {
    const text = els.input.value;
    if (!text.trim()) return;
    sendText(text, agent);
  }
  function sendText(text, agentId) {
    const id = uuid();
    const frame = { type: "send", id, agent: agentId, session, text };
    const u = makeEntry(id, "user", "done");
    setText(u, text);
    u.el.dataset.delivery = "queued";
    outbox.set(id, { frame, gen: 0 });
    if (!text.startsWith("/approve ")) lastUserText = text;
    els.input.value = ""; autosize();
    scrollDown();
    saveOutbox();
    flush();
    if (!chatItems.some((c) => c.session === session)) renderChats();
    updateStop();
  }
  // The reply in flight, if any: the last of this chat's messages still waiting.
  function inFlight() {
    let last = null;
    for (const id of outbox.keys()) last = id;
    return last;
  }
  function stopReply() {
    const id = inFlight();
    if (!id) return false;
    const a = entries.get("a:" + id);
    if (a) setState(a, "stopping");
    sendFrame({ type: "stop", id, agent, session });
    return true;
  }
  function updateStop() { els.stop.hidden = inFlight() === null; }
  els.stop.addEventListener("click", () => { stopReply(); els.input.focus(); });
  els.form.addEventListener("submit", (e) => { e.preventDefault(); send(); els.input.focus(); });
  els.input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault(); send();
    } else if (e.key === "ArrowUp" && els.input.value === "" && lastUserText) {
      // Up in an empty input: the last message again, to edit and send anew.
      e.preventDefault();
      els.input.value = lastUserText;
      autosize();
      els.input.setSelectionRange(lastUserText.length, lastUserText.length);
    }
  });
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || els.confirm.open) return;
    if (closeDrawers()) return;
    if (stopReply()) e.preventDefault();
  });
  function autosize() {
    els.input.style.height = "auto";
    els.input.style.height = Math.min(200, els.input.scrollHeight + 2) + "px";
  }
  els.input.addEventListener("input", autosize);

  els.newChat.addEventListener("click", () => {
    // The chat on screen stays in the list; a new session starts.
    const s = newSessionId();
    lastUserText = "";
    switchTo(agent, s);
    closeDrawers();
    els.input.focus();
  });

  // Copy buttons of code blocks (one listener for all, so rendered nodes carry none).
  els.messages.addEventListener("click", (e) => {
    const b = e.target.closest("button.copy");
    if (!b) return;
    const code = b.closest(".code")?.querySelector("pre code");
    if (!code) return;
    const text = code.textContent;
    const said = (ok) => { b.textContent = ok ? "Copied" : "Copy failed"; setTimeout(() => { b.textContent = "Copy"; }, 1500); };
    const fallback = () => {
      const range = document.createRange();
      range.selectNodeContents(code);
      const sel = getSelection(); sel.removeAllRanges(); sel.addRange(range);
      let ok = false;
      try { ok = document.execCommand("copy"); } catch { ok = false; }
      sel.removeAllRanges();
      said(ok);
    };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(() => said(true), fallback);
    else fallback();
  });

  // --- drawers (narrow screens) ---
  function setDrawer(panel, toggle, on) {
    if (on) panel.dataset.open = ""; else delete panel.dataset.open;
    toggle.setAttribute("aria-expanded", String(on));
    els.scrim.hidden = !("open" in els.chats.dataset || "open" in els.side.dataset);
  }
  function closeDrawers() {
    const was = "open" in els.chats.dataset || "open" in els.side.dataset;
    setDrawer(els.chats, els.chatsToggle, false);
    setDrawer(els.side, els.sideToggle, false);
    return was;
  }
  els.chatsToggle.addEventListener("click", () => setDrawer(els.chats, els.chatsToggle, !("open" in els.chats.dataset)));
  els.sideToggle.addEventListener("click", () => setDrawer(els.side, els.sideToggle, !("open" in els.side.dataset)));
  els.scrim.addEventListener("click", closeDrawers);

  // --- supervision tree ---
  let latestTree = null, treeTimer = 0, ownSessions = [], ownTotal = 0, webTally = "";
  const isWebSessions = (path) => /\/channel:web:[^/]+\/sessions$/.test(path);
  function askSessions(m) {
    let tally = "";
    const find = (n) => {
      if (!n || typeof n.path !== "string") return;
      if (isWebSessions(n.path) && n.sessions) tally += n.path + JSON.stringify(n.sessions);
      for (const c of Array.isArray(n.children) ? n.children : []) find(c);
    };
    for (const n of Array.isArray(m.tree) ? m.tree : []) find(n);
    if (tally === webTally || !open()) return;
    webTally = tally;
    sendFrame({ type: "sessions", limit: 50 });
  }
  function tallyNote(t, what) {
    const parts = [];
    for (const k of ["starting", "restarting", "stopping", "failed"]) if (t[k] > 0) parts.push(t[k] + " " + k);
    const one = what.slice(0, -1);
    return (t.total | 0) + " " + (t.total === 1 ? one : what) + (parts.length ? " (" + parts.join(", ") + ")" : "");
  }
  const collapsed = new Set();
  function scheduleTree() { if (!treeTimer) treeTimer = setTimeout(() => { treeTimer = 0; renderTree(); }, 50); }
  function fmtMs(ms) {
    if (typeof ms !== "number") return "";
    if (ms < 1000) return ms + " ms";
    const s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  }
  function span(cls, text) { const s = document.createElement("span"); s.className = cls; s.textContent = text; return s; }
  function renderTree() {
    const m = latestTree;
    if (!m) return;
    const ready = m.ready === true;
    els.ready.dataset.ready = String(ready);
    els.ready.textContent = ready ? "gateway ready" : "gateway not ready";
    const failing = Array.isArray(m.failing) ? m.failing : [];
    if (failing.length) {
      const ul = document.createElement("ul");
      for (const f of failing) {
        const li = document.createElement("li");
        li.textContent = f && f.reason ? `${f.path}: ${f.reason}` : String(f && f.path);
        ul.append(li);
      }
      els.ready.append(ul);
    }
    const frag = document.createDocumentFragment();
    let count = 0, restarts = 0;
    const walk = (n, depth) => {
      if (!n || typeof n.path !== "string") return;
      count++; restarts += n.restarts_total | 0;
      const kids = Array.isArray(n.children) ? n.children : [];
      const row = document.createElement("div");
      row.className = "node";
      row.setAttribute("role", "treeitem");
      row.style.setProperty("--d", String(depth));
      row.dataset.path = n.path;
      row.dataset.state = String(n.state || "");
      row.dataset.restarts = String(n.restarts_total | 0);
      row.dataset.kind = String(n.kind || "");
      const shut = collapsed.has(n.path);
      row.append(span("tw", kids.length ? (shut ? "▸" : "▾") : ""), span("nm", n.path.slice(n.path.lastIndexOf("/") + 1)),
        span("badge s-" + String(n.state || "unknown").replace(/[^a-z]/g, ""), String(n.state || "?")));
      if (n.restarts_total > 0) {
        const rs = span("rs", "↻ " + n.restarts_total);
        rs.title = `${n.restarts_total} restarts, ${n.restarts_in_window | 0} in the current window`;
        row.append(rs);
      }
      let note = "";
      if (n.state === "restarting") note = "attempt " + (n.attempt ?? "?") + (n.next_delay_ms != null ? ", in " + fmtMs(n.next_delay_ms) : "");
      else if (n.state === "failed" && n.last_error) note = String(n.last_error);
      if (shut && kids.length) note = (note ? note + " · " : "") + kids.length + " hidden";
      if (note) row.append(span("note", note));
      for (const what of ["sessions", "turns"]) {
        if (!n[what]) continue;
        const s = span("note", tallyNote(n[what], what));
        s.title = s.textContent;
        row.append(s);
      }
      // Sessions resting in the store: counted by the account's keeper, never listed.
      if (n.counts && typeof n.counts.hibernated === "number") {
        const s = span("note", n.counts.hibernated + " hibernated");
        s.title = "sessions resting in the store until their next message";
        row.append(s);
      }
      const tip = [n.path, n.kind + (n.restart ? ", " + n.restart : "")];
      if (typeof n.started_at_ms === "number") tip.push("up " + fmtMs(Math.max(0, Date.now() - n.started_at_ms)));
      if (n.last_error) tip.push("last error: " + n.last_error);
      row.title = tip.join("\n");
      frag.append(row);
      if (!shut) for (const c of kids) walk(c, depth + 1);
      if (!shut && isWebSessions(n.path)) ownRows(depth + 1);
    };
    const ownRows = (depth) => {
      for (const o of ownSessions) {
        if (!o || typeof o.session !== "string") continue;
        const row = document.createElement("div");
        row.className = "node own";
        row.setAttribute("role", "treeitem");
        row.style.setProperty("--d", String(depth));
        row.dataset.state = String(o.state || "");
        row.append(span("tw", ""), span("nm", o.session), span("badge s-" + String(o.state || "unknown").replace(/[^a-z]/g, ""), String(o.state || "?")),
          span("note", (o.agent ? o.agent : "") + (o.session === session ? " · this chat" : "")));
        row.title = "your session " + o.session + (o.agent ? " with " + o.agent : "");
        frag.append(row);
      }
      if (ownTotal > ownSessions.length) {
        const more = document.createElement("div");
        more.className = "node own"; more.style.setProperty("--d", String(depth));
        more.textContent = "… " + (ownTotal - ownSessions.length) + " more of yours";
        frag.append(more);
      }
    };
    for (const n of Array.isArray(m.tree) ? m.tree : []) walk(n, 0);
    const top = els.tree.scrollTop;
    els.tree.replaceChildren(frag);
    els.tree.scrollTop = top;
    els.summary.textContent = `${count} actors · ${restarts} restarts`;
  }
  els.tree.addEventListener("click", (e) => {
    const row = e.target.closest(".node[data-kind='supervisor']");
    if (!row) return;
    const p = row.dataset.path;
    if (collapsed.has(p)) collapsed.delete(p); else collapsed.add(p);
    renderTree();
  });

  // A phone has no room for the keyboard hints (and no Esc key to speak of).
  const narrow = window.matchMedia("(max-width: 760px)");
  const placeholder = () => { els.input.placeholder = narrow.matches ? "Message" : "Message (Enter to send, Shift+Enter for a new line, Esc to stop)"; };
  narrow.addEventListener("change", placeholder);
  placeholder();

  connect();
  els.input.focus();
})();
